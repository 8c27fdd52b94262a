package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
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
// (the database client) has already told the user why.
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
			"in an option file only you can read (the only one it reads), removed when the client\n" +
			"exits. The password is never on the command line, where other users could see it.\n" +
			"Arguments after -- go to the client. The exit code is the client's.",
		Example: "  timebox connect k3j4h5g6f7 -- -c 'select count(*) from orders'",
		Args: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); n != 1 && (n != -1 || len(args) != 1) {
				return usagef("expected one argument, the request ID, optionally followed by -- and the client's arguments")
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
			p, cleanup, err := clientCommand(creds, args[0], args[1:])
			if err != nil {
				return err
			}
			defer cleanup()
			p.Stdin, p.Stdout, p.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			return clientExit(p.Path, p.Run())
		},
	}
}

// clientCommand returns the database client to run on creds (of request id) with the
// user's arguments, and the function that removes what it wrote for the client (the MySQL
// option file), to call once the client has exited. The password goes in the environment
// (psql) or in an option file only the user can read (mariadb, mysql), never in the
// arguments, which other users of the machine can see.
func clientCommand(creds *timebox.Credentials, id string, args []string) (*exec.Cmd, func(), error) {
	switch {
	case strings.HasPrefix(creds.URI, "postgres"):
		psql, err := findClient("TIMEBOX_PSQL", "postgresql-client", "psql")
		if err != nil {
			return nil, nil, err
		}
		// Not CommandContext: Ctrl-C must cancel the client's query, not kill it.
		p := exec.Command(psql, args...)
		p.Env = psqlEnv(os.Environ(), creds)
		return p, func() {}, nil
	case strings.HasPrefix(creds.URI, "mysql"):
		client, err := findClient("TIMEBOX_MYSQL", "mariadb-client", "mariadb", "mysql")
		if err != nil {
			return nil, nil, err
		}
		optFile, err := mysqlOptionFile(creds)
		if err != nil {
			return nil, nil, err
		}
		// A hang-up (the terminal closed) must not end timebox before the client, which it
		// reaches too: the option file would stay behind.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		cleanup := func() { signal.Stop(hup); os.Remove(optFile) }
		// --defaults-file must come first: the client then reads no other option file, whose
		// user, host or password (~/.my.cnf is read after an extra file) would win over the
		// login's. The database goes last, after the user's arguments, as the client's
		// positional argument.
		p := exec.Command(client, append(append([]string{"--defaults-file=" + optFile}, args...), creds.Database)...)
		return p, cleanup, nil
	}
	return nil, nil, timebox.Errorf(timebox.EINVALID, "request %s is on an engine timebox connect does not know: use timebox creds %s", id, id)
}

// findClient returns the path of a database client: the program $envVar names, or the first
// of names on PATH; the error says to install the Debian package pkg.
func findClient(envVar, pkg string, names ...string) (string, error) {
	if name := os.Getenv(envVar); name != "" {
		path, err := exec.LookPath(name)
		if err != nil {
			return "", timebox.Errorf(timebox.ENOTFOUND, "%s=%s is not an executable program", envVar, name)
		}
		return path, nil
	}
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", timebox.Errorf(timebox.ENOTFOUND, "%s not found on PATH: install it (Debian/Ubuntu: apt-get install %s) or set %s to its path",
		strings.Join(names, " or "), pkg, envVar)
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
