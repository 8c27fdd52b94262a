package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// newTokenCommand returns `timebox token list|revoke`, on the caller's own API tokens (an
// admin's on anyone's). Tokens are issued by admins: timebox admin token create.
func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "List and revoke API tokens (your own; admins anyone's)",
		Long: "Lists and revokes API tokens. Everyone sees and revokes their own; admins and\n" +
			"auditors list anyone's, admins revoke anyone's. Secrets are never shown again:\n" +
			"an admin issues new tokens with timebox admin token create --user NAME.",
	}
	cmd.AddCommand(newTokenListCommand(), newTokenRevokeCommand())
	return cmd
}

func newTokenListCommand() *cobra.Command {
	var user string
	var all bool
	cmd := &cobra.Command{
		Use:   "list [--user NAME | --all]",
		Short: "List API tokens: ID, label, owner, expiry, last use and state (never the secret)",
		Args:  cobra.NoArgs,
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.Flags().StringVar(&user, "user", "", "another user's tokens (admins and auditors)")
	cmd.Flags().BoolVar(&all, "all", false, "everyone's tokens (admins and auditors)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if all && user != "" {
			return usagef("give either --user or --all, not both")
		}
		return callAPI(cmd, out, func(ctx context.Context, c *tbhttp.Client) ([]tbhttp.TokenView, error) {
			return c.Tokens(ctx, user, all)
		}, func(w io.Writer, toks []tbhttp.TokenView) error {
			rows := make([][]string, 0, len(toks))
			for _, t := range toks {
				rows = append(rows, []string{t.ID, cleanText(t.Name), t.User, localTime(t.CreatedAt),
					localTime(t.ExpiresAt), localTime(t.LastUsedAt), t.State})
			}
			return outTable(w, []string{"ID", "NAME", "USER", "CREATED", "EXPIRES", "LAST USED", "STATE"}, rows)
		})
	}
	return cmd
}

func newTokenRevokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token now, by its ID (see timebox token list)",
		Args:  exactArgs("token ID (see timebox token list)"),
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return callAPI(cmd, out, func(ctx context.Context, c *tbhttp.Client) (*tbhttp.TokenView, error) {
			return c.RevokeToken(ctx, args[0])
		}, func(w io.Writer, t *tbhttp.TokenView) error {
			_, err := fmt.Fprintf(w, "token %s of %s revoked\n", t.ID, t.User)
			return err
		})
	}
	return cmd
}
