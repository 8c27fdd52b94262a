package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// clientCommands returns the commands that talk to a Timebox server through its HTTP API.
func clientCommands() []*cobra.Command {
	return []*cobra.Command{
		newLoginCommand(), newWhoamiCommand(), newDatabasesCommand(),
		newRequestCommand(), newRequestsCommand(), newShowCommand(),
		newApproveCommand(), newDenyCommand(), newRevokeCommand(), newCancelCommand(),
		newCredsCommand(), newConnectCommand(), newAuditCommand(), newReportCommand(),
	}
}

// parseTimeFlag parses the value of a time flag; a bad value is a usage error naming the flag.
func parseTimeFlag(flag, s string) (time.Time, error) {
	t, err := timebox.ParseTime(s, time.Now(), time.Local)
	if err != nil {
		return time.Time{}, usagef("--%s: %s", flag, timebox.ErrorMessage(err))
	}
	return t, nil
}

// optionalTime parses a time flag that may be empty (nil).
func optionalTime(flag, s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := parseTimeFlag(flag, s)
	return &t, err
}

func newWhoamiCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show who the server knows you as",
		Args:  cobra.NoArgs,
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		me, err := c.Me(cmd.Context())
		if err != nil {
			return err
		}
		if out.value == outputJSON {
			return outJSON(cmd.OutOrStdout(), me)
		}
		var roles []string
		if me.Admin {
			roles = append(roles, "admin")
		}
		if me.Auditor {
			roles = append(roles, "auditor")
		}
		return outFields(cmd.OutOrStdout(), [][2]string{
			{"user", me.User}, {"email", me.Email}, {"groups", strings.Join(me.Groups, ", ")},
			{"roles", strings.Join(roles, ", ")}, {"server", c.URL},
		})
	}
	return cmd
}

func newDatabasesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "databases",
		Short: "List the databases you can request access to",
		Args:  cobra.NoArgs,
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		dbs, err := c.Databases(cmd.Context())
		if err != nil {
			return err
		}
		if out.value == outputJSON {
			return outJSON(cmd.OutOrStdout(), nonNilSlice(dbs))
		}
		rows := make([][]string, 0, len(dbs))
		for _, d := range dbs {
			owner := ""
			if d.Owner {
				owner = "yes"
			}
			rows = append(rows, []string{d.Name, d.Environment, d.Server, strings.Join(d.AccessLevels, ", "),
				strings.Join(d.Owners, ", "), owner})
		}
		return outTable(cmd.OutOrStdout(), []string{"NAME", "ENV", "SERVER", "ACCESS LEVELS", "OWNERS", "YOU OWN"}, rows)
	}
	return cmd
}

func newRequestCommand() *cobra.Command {
	var in timebox.RequestInput
	var dur, until, start string
	cmd := &cobra.Command{
		Use:   "request --db NAME --access LEVEL (--for DUR | --until TIME) --reason TEXT",
		Short: "Ask for access to a database for a window",
		Example: "  timebox request --db orders-prod --access read-only --for 2h --reason 'INC-42 refunds' --ticket INC-42\n" +
			"  timebox request --db orders-prod --access read-write --start 22:00 --until 23:30 --reason 'migration'",
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	f := cmd.Flags()
	f.StringVar(&in.Database, "db", "", "database name (see timebox databases)")
	f.StringVar(&in.Access, "access", "", "access level, e.g. read-only")
	f.StringVar(&dur, "for", "", "length of the window, e.g. 90m, 2h")
	f.StringVar(&until, "until", "", "end of the window (RFC 3339, \"2026-01-02 15:04\", \"15:04\", \"+2h\")")
	f.StringVar(&start, "start", "", "start of the window (default now)")
	f.StringVar(&in.Reason, "reason", "", "why you need the access")
	f.StringVar(&in.Ticket, "ticket", "", "ticket or incident reference")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		switch {
		case in.Database == "":
			return usagef("--db is required (see timebox databases)")
		case in.Access == "":
			return usagef("--access is required, e.g. --access read-only")
		case strings.TrimSpace(in.Reason) == "":
			return usagef("--reason is required: say why you need the access")
		case (dur == "") == (until == ""):
			return usagef("give exactly one of --for DURATION or --until TIME")
		}
		if dur != "" {
			if _, err := timebox.ParseDuration(dur); err != nil {
				return usagef("--for: %s", timebox.ErrorMessage(err))
			}
			in.Duration = dur
		}
		var err error
		if in.End, err = optionalTime("until", until); err != nil {
			return err
		} else if in.Start, err = optionalTime("start", start); err != nil {
			return err
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		r, err := c.CreateRequest(cmd.Context(), in)
		if err != nil {
			return err
		}
		if out.value == outputJSON {
			return outJSON(cmd.OutOrStdout(), r)
		}
		return outFields(cmd.OutOrStdout(), [][2]string{
			{"request", r.ID}, {"state", r.Status}, {"database", r.Database + " (" + r.Access + ")"},
			{"window", windowText(r.Start, r.End)},
		})
	}
	return cmd
}

func newRequestsCommand() *cobra.Command {
	var q tbhttp.RequestQuery
	cmd := &cobra.Command{
		Use:   "requests",
		Short: "List the requests you may see (yours, and those of the databases you own)",
		Args:  cobra.NoArgs,
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	f := cmd.Flags()
	f.StringSliceVar(&q.States, "state", nil, "only requests in this state (repeatable): "+stateNames())
	f.BoolVar(&q.Mine, "mine", false, "only your own requests")
	f.StringVar(&q.Database, "db", "", "only requests for this database")
	f.IntVar(&q.Limit, "limit", 0, "at most this many requests, newest first (0: no limit)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		for _, s := range q.States {
			if !slices.Contains(timebox.States, timebox.State(s)) {
				return usagef("--state: unknown state %q: use one of %s", s, stateNames())
			}
		}
		if q.Limit < 0 {
			return usagef("--limit must not be negative")
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		rs, err := c.Requests(cmd.Context(), q)
		if err != nil {
			return err
		}
		if out.value == outputJSON {
			return outJSON(cmd.OutOrStdout(), nonNilSlice(rs))
		}
		return outTable(cmd.OutOrStdout(), requestsHeader, requestRows(rs))
	}
	return cmd
}

func stateNames() string {
	names := make([]string, len(timebox.States))
	for i, s := range timebox.States {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

func newShowCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a request: its window, reviews (and what they changed), grant and status",
		Args:  exactArgs("request ID"),
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(); err != nil {
			return err
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		r, err := c.Request(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if out.value == outputJSON {
			return outJSON(cmd.OutOrStdout(), r)
		}
		return outRequest(cmd.OutOrStdout(), r)
	}
	return cmd
}

// exactArgs requires exactly one positional argument, named in the usage error.
func exactArgs(name string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usagef("expected one argument, the %s; got %d", name, len(args))
		}
		return nil
	}
}

// reviewCommand builds approve, deny, revoke or cancel: one request ID, a note (required
// when noteRequired names the decision, e.g. "a denial"), and an action that returns the
// resulting request, which is printed.
func reviewCommand(use, short, noteRequired string, act func(cmd *cobra.Command, c *tbhttp.Client, id, note string) (*tbhttp.RequestView, error)) *cobra.Command {
	var note string
	cmd := &cobra.Command{Use: use, Short: short, Args: exactArgs("request ID")}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	help := "a note for the requester and the audit log"
	if noteRequired != "" {
		help += " (required)"
	}
	cmd.Flags().StringVar(&note, "note", "", help)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(); err != nil {
			return err
		}
		if noteRequired != "" && strings.TrimSpace(note) == "" {
			return usagef("%s needs a note saying why: --note TEXT", noteRequired)
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		r, err := act(cmd, c, args[0], note)
		if err != nil {
			return err
		}
		if out.value == outputJSON {
			return outJSON(cmd.OutOrStdout(), r)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "request %s: %s\n", r.ID, cleanText(r.Status))
		if n := len(r.Reviews); cmd.Name() == "approve" && n > 0 && r.Reviews[n-1].Changes != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "window narrowed: %s\n", cleanText(r.Reviews[n-1].Changes))
		}
		return nil
	}
	return cmd
}

func newApproveCommand() *cobra.Command {
	var start, end string
	cmd := reviewCommand("approve ID", "Approve a pending request, optionally narrowing its window", "",
		func(cmd *cobra.Command, c *tbhttp.Client, id, note string) (*tbhttp.RequestView, error) {
			in := timebox.ApproveInput{Note: note}
			var err error
			if in.Start, err = optionalTime("start", start); err != nil {
				return nil, err
			} else if in.End, err = optionalTime("end", end); err != nil {
				return nil, err
			}
			return c.Approve(cmd.Context(), id, in)
		})
	cmd.Flags().StringVar(&start, "start", "", "narrow the window: a later start")
	cmd.Flags().StringVar(&end, "end", "", "narrow the window: an earlier end")
	return cmd
}

func newDenyCommand() *cobra.Command {
	return reviewCommand("deny ID --note TEXT", "Deny a pending request, saying why", "a denial",
		func(cmd *cobra.Command, c *tbhttp.Client, id, note string) (*tbhttp.RequestView, error) {
			return c.Deny(cmd.Context(), id, note)
		})
}

func newRevokeCommand() *cobra.Command {
	return reviewCommand("revoke ID --note TEXT", "Revoke an approved or active request now, saying why", "a revocation",
		func(cmd *cobra.Command, c *tbhttp.Client, id, note string) (*tbhttp.RequestView, error) {
			return c.Revoke(cmd.Context(), id, note)
		})
}

func newCancelCommand() *cobra.Command {
	return reviewCommand("cancel ID", "Withdraw your own pending or approved request", "",
		func(cmd *cobra.Command, c *tbhttp.Client, id, note string) (*tbhttp.RequestView, error) {
			return c.Cancel(cmd.Context(), id, note)
		})
}

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
		if err := out.check(); err != nil {
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

// parseSince parses --since: a duration meaning that long ago (30d, 2h), or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := timebox.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := timebox.ParseTime(s, now, time.Local)
	if err != nil {
		return time.Time{}, usagef("--since: use a duration meaning that long ago (30d, 2h) or a time (%s)", timebox.ErrorMessage(err))
	}
	return t, nil
}

func newAuditCommand() *cobra.Command {
	var q tbhttp.EventQuery
	var since, until string
	var verify bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log, or verify its hash chain (--verify)",
		Args:  cobra.NoArgs,
	}
	out := addOutputFlag(cmd, outputTable, outputJSON, outputCSV)
	f := cmd.Flags()
	f.StringVar(&q.User, "user", "", "events by this user or about their requests")
	f.StringVar(&q.Actor, "actor", "", "events by this actor only")
	f.StringVar(&q.Database, "db", "", "events about this database")
	f.StringVar(&q.RequestID, "request", "", "events about this request")
	f.StringVar(&since, "since", "", "from this time, or this long ago (30d, 2h)")
	f.StringVar(&until, "until", "", "up to this time")
	f.IntVar(&q.Limit, "limit", 0, "at most this many events (0: no limit)")
	f.BoolVar(&verify, "verify", false, "verify the whole hash chain instead of listing events")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		if verify {
			for _, name := range []string{"user", "actor", "db", "request", "since", "until", "limit"} {
				if cmd.Flags().Changed(name) {
					return usagef("--verify checks the whole log and takes no --%s", name)
				}
			}
			if out.value == outputCSV {
				return usagef("--verify prints table or json, not csv")
			}
			return verifyAudit(cmd, out.value)
		}
		if q.Limit < 0 {
			return usagef("--limit must not be negative")
		}
		var err error
		if since != "" {
			if q.Since, err = parseSince(since, time.Now()); err != nil {
				return err
			}
		}
		if until != "" {
			if q.Until, err = parseTimeFlag("until", until); err != nil {
				return err
			}
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		events, err := c.Events(cmd.Context(), q)
		if err != nil {
			return err
		}
		if out.value == outputJSON {
			return outJSON(cmd.OutOrStdout(), nonNilSlice(events))
		}
		return outEvents(cmd.OutOrStdout(), out.value, events)
	}
	return cmd
}

// verifyAudit runs timebox audit --verify: ECONFLICT when the chain is broken.
func verifyAudit(cmd *cobra.Command, format string) error {
	c, err := newAPIClient()
	if err != nil {
		return err
	}
	v, err := c.VerifyAudit(cmd.Context())
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	switch {
	case format == outputJSON:
		if err := outJSON(w, v); err != nil {
			return err
		}
	case v.OK:
		fmt.Fprintf(w, "audit log OK: %d events, chain intact\n", v.Events)
	default:
		for _, p := range v.Problems {
			fmt.Fprintf(w, "seq %d: %s\n", p.Seq, cleanText(p.Problem))
		}
	}
	if !v.OK {
		n := max(len(v.Problems), 1)
		plural := "s"
		if n == 1 {
			plural = ""
		}
		return timebox.Errorf(timebox.ECONFLICT, "audit log verification failed: %d problem%s", n, plural)
	}
	return nil
}

func newReportCommand() *cobra.Command {
	report := &cobra.Command{
		Use:   "report",
		Short: "Reports for auditors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("name a report: timebox report access")
		},
	}
	var since, until string
	access := &cobra.Command{
		Use:   "access",
		Short: "Who had access to which database, when, approved by whom, with which ticket",
		Args:  cobra.NoArgs,
	}
	out := addOutputFlag(access, outputTable, outputJSON, outputCSV)
	access.Flags().StringVar(&since, "since", "30d", "from this time, or this long ago (30d, 2h)")
	access.Flags().StringVar(&until, "until", "", "up to this time (default now)")
	access.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		now := time.Now()
		from, err := parseSince(since, now)
		if err != nil {
			return err
		}
		to := now
		if until != "" {
			if to, err = parseTimeFlag("until", until); err != nil {
				return err
			}
		}
		if !to.After(from) {
			return usagef("--until must be after --since")
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		recs, err := c.AccessReport(cmd.Context(), from, to)
		if err != nil {
			return err
		}
		if out.value == outputJSON {
			return outJSON(cmd.OutOrStdout(), nonNilSlice(recs))
		}
		return outAccess(cmd.OutOrStdout(), out.value, recs)
	}
	report.AddCommand(access)
	return report
}
