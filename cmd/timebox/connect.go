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
		Use:   "connect ID [-- client arguments…]",
		Short: "Open psql or mariadb on the database of your active request",
		Long: "Fetches the login of your active request and runs the database's client with it:\n" +
			"psql ($TIMEBOX_PSQL, or psql on PATH) for PostgreSQL, passing the login in the\n" +
			"environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE); mariadb or mysql\n" +
			"($TIMEBOX_MYSQL, or mariadb, then mysql on PATH) for MySQL and MariaDB, passing it\n" +
			"in an option file only you can read, removed when the client exits. The password is\n" +
			"never on the command line, where other users could see it. Arguments after -- go to\n" +
			"the client. The exit code is the client's.",
		Example: "  timebox connect k3j4h5g6f7 -- -c 'select count(*) from orders'",
		Args: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); n != 1 && (n != -1 || len(args) != 1) {
				return usagef("expected one argument, the request ID, optionally followed by -- and psql arguments")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newAPIClient()
			if err != nil {
				return err
			}
			creds, err := c.Credentials(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var p *exec.Cmd
			switch {
			case strings.HasPrefix(creds.URI, "postgres"):
				psql, err := findPsql()
				if err != nil {
					return err
				}
				// Not CommandContext: Ctrl-C must cancel the client's query, not kill it.
				p = exec.Command(psql, args[1:]...)
				p.Env = psqlEnv(os.Environ(), creds)
			case strings.HasPrefix(creds.URI, "mysql"):
				client, err := findMySQLClient()
				if err != nil {
					return err
				}
				optFile, err := mysqlOptionFile(creds)
				if err != nil {
					return err
				}
				defer os.Remove(optFile)
				// --defaults-extra-file must come first; the database goes last, after the
				// user's arguments, as the client's positional argument.
				p = exec.Command(client, append(append([]string{"--defaults-extra-file=" + optFile}, args[1:]...), creds.Database)...)
				p.Env = os.Environ()
			default:
				return timebox.Errorf(timebox.EINVALID, "request %s is on an engine timebox connect does not know: use timebox creds %s", args[0], args[0])
			}
			p.Stdin, p.Stdout, p.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			return clientExit(p.Path, p.Run())
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

// findMySQLClient returns the path of the MySQL/MariaDB client: $TIMEBOX_MYSQL, or mariadb,
// or mysql on PATH.
func findMySQLClient() (string, error) {
	if name := os.Getenv("TIMEBOX_MYSQL"); name != "" {
		path, err := exec.LookPath(name)
		if err != nil {
			return "", timebox.Errorf(timebox.ENOTFOUND, "TIMEBOX_MYSQL=%s is not an executable program", name)
		}
		return path, nil
	}
	for _, name := range []string{"mariadb", "mysql"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", timebox.Errorf(timebox.ENOTFOUND, "neither mariadb nor mysql found on PATH: install one (Debian/Ubuntu: apt-get install mariadb-client) or set TIMEBOX_MYSQL to its path")
}

// mysqlOptionFile writes the login of creds to a new option file that only the current user
// can read, and returns its path; the caller removes it.
func mysqlOptionFile(creds *timebox.Credentials) (string, error) {
	f, err := os.CreateTemp("", "timebox-client-*.cnf") // mode 0600
	if err != nil {
		return "", timebox.Errorf(timebox.EINTERNAL, "cannot write the client's option file: %v", err)
	}
	// Option-file values in double quotes take backslash escapes.
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace
	opts := fmt.Sprintf("[client]\nuser=\"%s\"\nhost=\"%s\"\nport=%d\nprotocol=tcp\n", q(creds.User), q(creds.Host), creds.Port)
	if creds.Password != "" { // role_membership: people use their own password (-- -p to be asked)
		opts += fmt.Sprintf("password=\"%s\"\n", q(creds.Password))
	}
	_, err = f.WriteString(opts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", timebox.Errorf(timebox.EINTERNAL, "cannot write the client's option file: %v", err)
	}
	return f.Name(), nil
}

// clientExit turns the client's outcome into nil or an *exitError with its exit code
// (128+signal when a signal ended it).
func clientExit(client string, err error) error {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ee):
		return timebox.Errorf(timebox.EINTERNAL, "cannot run %s: %v", client, err)
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
