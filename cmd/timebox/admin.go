package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// newConfigCommand returns `timebox config check`.
func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with configuration files"}
	var path string
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a configuration file without starting anything",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return usagef("config check: name the file (timebox config check timebox.yaml)")
			}
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			for _, w := range c.unresolvedSecrets() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: %s (not readable on this machine now)\n", path, w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK (%d users, %d servers, %d databases, %d access levels)\n",
				path, len(c.Users), len(c.Servers), len(c.Databases), len(c.AccessLevels))
			return nil
		},
	}
	check.Flags().StringVar(&path, "config", "", "configuration file")
	cmd.AddCommand(check)
	return cmd
}

// newAdminCommand returns `timebox admin …`, which works on the store directly on the server
// host (like tctl), not through the API.
func newAdminCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Administer the store directly on the server host"}
	token := &cobra.Command{Use: "token", Short: "Manage API tokens"}
	var path, user, name, ttl string
	create := &cobra.Command{
		Use:   "create --config FILE --user NAME [--name LABEL] [--ttl DURATION]",
		Short: "Create an API token for a user and print it (only its hash is stored)",
		Long: "Creates an API token for a user and prints its secret on standard output, once:\n" +
			"only its hash is stored. The token expires after --ttl (default tokens.default_ttl,\n" +
			"30d; at most tokens.max_ttl, 90d). Give the secret to its user, who runs timebox login.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" || user == "" {
				return usagef("admin token create: --config and --user are required")
			} else if err := checkDuration("ttl", ttl); err != nil {
				return err
			}
			d, _ := timebox.ParseDuration(ttl) // 0 when not given: the default
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			dsn, err := c.storeDSN()
			if err != nil {
				return err
			}
			keys, err := c.keyring()
			if err != nil {
				return err
			}
			db, err := store.Open(cmd.Context(), dsn)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := timebox.CheckStoreKey(cmd.Context(), db, keys); err != nil {
				return err
			}
			db.Keys = keys // its event joins the keyed audit chain
			svc := &timebox.Service{Store: db, Catalog: &c.Catalog, Keys: keys, Now: time.Now, Tokens: c.Tokens.policy()}
			secret, t, err := svc.IssueToken(cmd.Context(), "admin-cli", user, name, d)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s for %s expires at %s\n", t.ID, user, localTime(t.ExpiresAt))
			return nil
		},
	}
	create.Flags().StringVar(&path, "config", "", "configuration file")
	create.Flags().StringVar(&user, "user", "", "user the token belongs to")
	create.Flags().StringVar(&name, "name", "", "a label saying what the token is for (laptop, ci)")
	create.Flags().StringVar(&ttl, "ttl", "", "how long the token lives, e.g. 7d (default tokens.default_ttl)")
	token.AddCommand(create)
	cmd.AddCommand(token)
	return cmd
}

// createToken stores a new token for a catalog user with the default lifetime, authenticated
// with keys, with an audit event, and returns its secret.
func createToken(ctx context.Context, st timebox.Store, cat *timebox.Catalog, keys *timebox.Keyring, user string) (string, error) {
	svc := &timebox.Service{Store: st, Catalog: cat, Keys: keys, Now: time.Now}
	secret, _, err := svc.IssueToken(ctx, "admin-cli", user, "", 0)
	return secret, err
}
