package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
)

func newCredsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "creds ID",
		Short: "Print the database login of your active request",
		Long: "Prints the login of your active request. -o env prints shell assignments:\n" +
			"  eval \"$(timebox creds ID -o env)\" && psql",
		Args: exactArgs("request ID"),
	}
	out := addOutputFlag(cmd, outputJSON, outputEnv, outputURI)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := out.client()
		if err != nil {
			return err
		}
		creds, err := c.Credentials(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		switch out.value {
		case outputEnv:
			return outCredentialsEnv(w, creds)
		case outputURI:
			_, err := fmt.Fprintln(w, creds.URI)
			return err
		}
		return outJSON(w, creds)
	}
	return cmd
}

// nonNilSlice returns s, or an empty slice for nil, so that JSON shows [] rather than null.
func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// exitError ends the process with code and prints nothing more: the program that failed
// (psql) has already told the user why.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newConnectCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "connect ID [-- psql arguments…]",
		Short: "Open psql on the database of your active request",
		Long: "Fetches the login of your active request and runs psql ($TIMEBOX_PSQL, or psql on\n" +
			"PATH) with it. The login is passed in the environment (PGHOST, PGPORT, PGUSER,\n" +
			"PGPASSWORD, PGDATABASE), never on the command line, where other users could see it.\n" +
			"Arguments after -- go to psql. The exit code is psql's.",
		Example: "  timebox connect k3j4h5g6f7 -- -c 'select count(*) from orders'",
		Args: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); n != 1 && (n != -1 || len(args) != 1) {
				return usagef("expected one argument, the request ID, optionally followed by -- and psql arguments")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			psql, err := findPsql()
			if err != nil {
				return err
			}
			c, err := newAPIClient()
			if err != nil {
				return err
			}
			creds, err := c.Credentials(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !strings.HasPrefix(creds.URI, "postgres") {
				return timebox.Errorf(timebox.EINVALID, "connect runs psql, and request %s is not on a PostgreSQL server: use timebox creds %s", args[0], args[0])
			}
			// Not CommandContext: Ctrl-C must cancel psql's query, not kill psql.
			p := exec.Command(psql, args[1:]...)
			p.Env = psqlEnv(os.Environ(), creds)
			p.Stdin, p.Stdout, p.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			return psqlExit(p.Run())
		},
	}
}

// findPsql returns the path of psql: $TIMEBOX_PSQL, or psql on PATH.
func findPsql() (string, error) {
	name := os.Getenv("TIMEBOX_PSQL")
	if name != "" {
		path, err := exec.LookPath(name)
		if err != nil {
			return "", timebox.Errorf(timebox.ENOTFOUND, "TIMEBOX_PSQL=%s is not an executable program", name)
		}
		return path, nil
	}
	path, err := exec.LookPath("psql")
	if err != nil {
		return "", timebox.Errorf(timebox.ENOTFOUND, "psql not found on PATH: install it (Debian/Ubuntu: apt-get install postgresql-client) or set TIMEBOX_PSQL to its path")
	}
	return path, nil
}

// psqlEnv returns base without the libpq variables that could redirect the connection,
// plus the login of creds.
func psqlEnv(base []string, creds *timebox.Credentials) []string {
	drop := []string{"PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE", "PGSERVICEFILE"}
	env := make([]string, 0, len(base)+6)
	appName := false
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(drop, name) {
			continue
		}
		appName = appName || name == "PGAPPNAME"
		env = append(env, kv)
	}
	for _, kv := range credentialsEnv(creds) {
		env = append(env, kv[0]+"="+kv[1])
	}
	if !appName {
		env = append(env, "PGAPPNAME=timebox")
	}
	return env
}

// psqlExit turns psql's outcome into nil or an *exitError with its exit code (128+signal
// when a signal ended it).
func psqlExit(err error) error {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ee):
		return timebox.Errorf(timebox.EINTERNAL, "cannot run psql: %v", err)
	}
	code := ee.ExitCode()
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code <= 0 {
		code = 1
	}
	return &exitError{code: code}
}
