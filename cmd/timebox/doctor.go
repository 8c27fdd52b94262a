package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// doctorEngine is an engine that can check its server's setup.
type doctorEngine interface {
	Doctor(ctx context.Context, databases, roles []string) (string, []timebox.Finding, error)
}

// newDoctorCommand returns `timebox doctor --config FILE`.
func newDoctorCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "doctor --config FILE",
		Short: "Check each declared server: admin privileges and the one-time hardening",
		Long: "Connects to every server of the configuration with its admin login and checks what\n" +
			"Timebox needs: on PostgreSQL (docs/postgres.md) CREATEROLE, pg_signal_backend,\n" +
			"CONNECT WITH GRANT OPTION on each database, ADMIN OPTION on each role, no\n" +
			"database open to PUBLIC, the owner and quarantine roles that receive what removed\n" +
			"logins leave, large objects PUBLIC may create, and what waits in quarantine; on MySQL/MariaDB (docs/mysql.md) CREATE USER, PROCESS,\n" +
			"CONNECTION ADMIN, the grant tables, each database WITH GRANT OPTION, each role WITH\n" +
			"ADMIN OPTION, and the event scheduler for the backstop. In the store, it checks the\n" +
			"proofs of every live request with secret_key and lists the requests found edited\n" +
			"without the key (docs/store-integrity.md).\n" +
			"Prints each problem with the SQL that fixes it; exits non-zero when there is one.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return usagef("doctor: --config is required")
			}
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			problems := doctorStore(cmd.Context(), cmd.OutOrStdout(), c)
			for _, s := range c.Servers {
				problems += doctorServer(cmd.Context(), cmd.OutOrStdout(), c, s)
			}
			if problems > 0 {
				return timebox.Errorf(timebox.ECONFLICT, "doctor found %d problem(s)", problems)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file")
	return cmd
}

// doctorServer checks one server and prints its findings; it returns the number of problems
// (an unreachable server is one).
func doctorServer(ctx context.Context, w io.Writer, c *Config, s timebox.Server) int {
	dbs, roles := managedBy(&c.Catalog, s.Name)
	e, err := openEngine(s, &c.Catalog)
	if err == nil {
		defer e.Close()
	}
	d, ok := e.(doctorEngine)
	if err == nil && !ok {
		err = timebox.Errorf(timebox.EINVALID, "engine %s has no checks", s.Engine)
	}
	var version string
	var findings []timebox.Finding
	if err == nil {
		version, findings, err = d.Doctor(ctx, dbs, roles)
	}
	if err != nil {
		fmt.Fprintf(w, "server %s (%s): FAIL  %s\n", s.Name, s.Engine, timebox.ErrorMessage(err))
		return 1
	}
	fmt.Fprintf(w, "server %s (%s %s):\n", s.Name, s.Engine, version)
	for _, f := range findings {
		fmt.Fprintf(w, "  %-4s  %s\n", f.Severity, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(w, "        fix (as a database superuser): %s\n", f.Fix)
		}
	}
	return timebox.Problems(findings)
}

// managedBy returns the server-side names of the databases declared on server, every role an
// access level hands out on them, and the shared logins that unlock_login opens.
func managedBy(cat *timebox.Catalog, server string) (dbs, roles []string) {
	for i := range cat.Databases {
		d := &cat.Databases[i]
		if d.Server != server {
			continue
		}
		dbs = append(dbs, d.Database)
		if d.Method == timebox.MethodUnlockLogin {
			roles = append(roles, d.Login) // the admin alters it (PostgreSQL 16: needs ADMIN OPTION)
			continue
		}
		for _, l := range cat.AccessLevels {
			if rs, err := cat.Roles(d, l.Name); err == nil {
				roles = append(roles, rs...)
			}
		}
	}
	slices.Sort(roles)
	return dbs, slices.Compact(roles)
}

// doctorStore checks the integrity of the store's live requests with the keys of c, and lists
// those the scheduler found edited without the key; it returns the number of problems.
func doctorStore(ctx context.Context, w io.Writer, c *Config) int {
	keys, err := c.keyring()
	var db *store.DB
	if err == nil {
		var dsn string
		if dsn, err = c.storeDSN(); err == nil {
			db, err = store.Open(ctx, dsn)
		}
	}
	if err != nil {
		fmt.Fprintf(w, "store: FAIL  %s\n", timebox.ErrorMessage(err))
		return 1
	}
	defer db.Close()
	var live, tampered []*timebox.Request
	err = db.View(ctx, func(tx timebox.Tx) (err error) {
		if live, err = tx.FindRequests(timebox.RequestFilter{States: []timebox.State{timebox.StateApproved, timebox.StateActive}}); err != nil {
			return err
		}
		tampered, err = tx.FindRequests(timebox.RequestFilter{Tampered: true, Limit: 100})
		return err
	})
	if err != nil {
		fmt.Fprintf(w, "store: FAIL  %s\n", timebox.ErrorMessage(err))
		return 1
	}
	fmt.Fprintf(w, "store (%d live requests):\n", len(live))
	problems := 0
	for _, r := range live {
		if len(keys.CheckRequest(r)) == 0 || r.Tampered != "" {
			continue
		}
		// A listing has no proof bodies: read the request whole to name the edited fields.
		if err := db.View(ctx, func(tx timebox.Tx) (err error) { r, err = tx.FindRequest(r.ID); return err }); err != nil {
			fmt.Fprintf(w, "store: FAIL  %s\n", timebox.ErrorMessage(err))
			return problems + 1
		}
		if bad := keys.CheckRequest(r); len(bad) > 0 {
			problems++
			fmt.Fprintf(w, "  %-4s  request %s (%s on %s, %s): %s does not verify; the scheduler removes its access on its next pass\n",
				timebox.SeverityFail, r.ID, cleanText(r.Requester), cleanText(r.Database), r.State, strings.Join(bad, ", "))
		}
	}
	for _, r := range tampered {
		sev, what := timebox.SeverityWarn, "its access was removed"
		if r.State.Live() {
			sev, what = timebox.SeverityFail, "its removal is under way"
			problems++
		}
		fmt.Fprintf(w, "  %-4s  request %s (%s on %s, now %s) was edited in the store without the key (%s did not verify); %s\n",
			sev, r.ID, cleanText(r.Requester), cleanText(r.Database), r.State, cleanText(r.Tampered), what)
	}
	if problems == 0 {
		fmt.Fprintf(w, "  %-4s  every live request's decision and grant verify with secret_key\n", timebox.SeverityOK)
	}
	if n := len(tampered); n > 0 {
		fmt.Fprintf(w, "        someone who can write the store edited %d request(s): see docs/store-integrity.md\n", n)
	}
	return problems
}
