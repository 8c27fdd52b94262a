package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// Output formats of the client commands.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputCSV   = "csv"
	outputEnv   = "env"
	outputURI   = "uri"
)

// localTimeLayout is how tables show times, in the local time zone.
const localTimeLayout = "2006-01-02 15:04:05"

// outputFlag is the -o/--output flag of one command and the formats it accepts.
type outputFlag struct {
	value   string
	allowed []string
}

// addOutputFlag adds -o/--output to cmd; the first allowed format is the default.
func addOutputFlag(cmd *cobra.Command, allowed ...string) *outputFlag {
	o := &outputFlag{value: allowed[0], allowed: allowed}
	cmd.Flags().StringVarP(&o.value, "output", "o", o.value, "output format: "+strings.Join(allowed, ", "))
	return o
}

// check returns a usage error naming the allowed formats when the flag's value is not one.
func (o *outputFlag) check() error {
	if !slices.Contains(o.allowed, o.value) {
		return usagef("unknown output format %q: use one of %s", o.value, strings.Join(o.allowed, ", "))
	}
	return nil
}

// client checks the output format, then returns the API client: the preamble of every
// command that talks to the server and prints a result.
func (o *outputFlag) client() (*tbhttp.Client, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	return newAPIClient()
}

// callAPI is the body of a command that asks the server one thing and prints the answer:
// it checks the output format, calls api, and writes the answer as JSON for -o json, or with
// text otherwise.
func callAPI[T any](cmd *cobra.Command, out *outputFlag, api func(ctx context.Context, c *tbhttp.Client) (T, error), text func(w io.Writer, v T) error) error {
	c, err := out.client()
	if err != nil {
		return err
	}
	v, err := api(cmd.Context(), c)
	if err != nil {
		return err
	} else if out.value == outputJSON {
		return outJSON(cmd.OutOrStdout(), v)
	}
	return text(cmd.OutOrStdout(), v)
}

// outJSON writes v as pretty JSON (two-space indent) followed by a newline.
func outJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// outTable writes a header and rows aligned in columns. Cells are cleaned of control
// characters, so text typed by other people cannot break the layout or drive the terminal.
func outTable(w io.Writer, header []string, rows [][]string) error {
	tr := newTrimWriter(w)
	tw := tabwriter.NewWriter(tr, 0, 0, 2, ' ', 0)
	for _, row := range append([][]string{header}, rows...) {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = cleanText(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return tr.flush()
}

// outFields writes label/value pairs, one per line, values aligned.
func outFields(w io.Writer, pairs [][2]string) error {
	tr := newTrimWriter(w)
	tw := tabwriter.NewWriter(tr, 0, 0, 2, ' ', 0)
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s\t%s\n", cleanText(p[0]), cleanText(p[1]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return tr.flush()
}

// trimWriter collects tabwriter's output and, on flush, writes it without the spaces that
// tabwriter leaves at the end of lines whose last cells are empty.
type trimWriter struct {
	w   io.Writer
	buf *strings.Builder
}

func newTrimWriter(w io.Writer) trimWriter { return trimWriter{w: w, buf: &strings.Builder{}} }

func (t trimWriter) Write(p []byte) (int, error) { return t.buf.Write(p) }

// flush writes the collected lines, trimmed.
func (t trimWriter) flush() error {
	lines := strings.SplitAfter(t.buf.String(), "\n")
	for i, l := range lines {
		if body, ok := strings.CutSuffix(l, "\n"); ok {
			lines[i] = strings.TrimRight(body, " ") + "\n"
		}
	}
	_, err := io.WriteString(t.w, strings.Join(lines, ""))
	return err
}

// outCSV writes a header and rows as CSV. Cells that a spreadsheet would run as a formula
// (starting with = + - @) are prefixed with a single quote.
func outCSV(w io.Writer, header []string, rows [][]string) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, row := range rows {
		safe := make([]string, len(row))
		for i, c := range row {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				c = "'" + c
			}
			safe[i] = c
		}
		if err := cw.Write(safe); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// cleanText makes s safe to print on a terminal: control and bidirectional-override
// characters are shown escaped (\x1b, \n, \u202e) instead of being interpreted, and invalid
// UTF-8 becomes U+FFFD.
func cleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unsafeRune(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// localTime formats t in the local time zone for tables; "" for the zero time.
func localTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(localTimeLayout)
}

// csvTime formats t for CSV: RFC 3339 in UTC; "" for the zero time.
func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// shorten cuts s to at most n runes, ending with "…" when it was cut.
func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// shortStatus is the request's status line for a table: the state, a pending removal and
// when it started (local time), and the start of the last error.
func shortStatus(r *timebox.Request) string {
	s := string(r.State)
	lastErr := ""
	if r.Grant != nil {
		lastErr = r.Grant.LastError
	}
	switch {
	case r.Ending != timebox.EndingNone:
		verb := map[timebox.Ending]string{timebox.EndingExpire: "expiry", timebox.EndingCancel: "cancel", timebox.EndingRelease: "release"}[r.Ending]
		if verb == "" {
			verb = "revoke"
		}
		s += ", " + verb + " pending since " + localTime(r.EndingSince)
	case r.State == timebox.StateApproved && lastErr != "":
		s += ", activation retrying"
	case r.State == timebox.StateActive && strings.HasPrefix(lastErr, timebox.PlanFailure):
	default:
		lastErr = ""
	}
	if lastErr != "" {
		s += ", last error: " + shorten(lastErr, 40)
	}
	return r.PolicyStatus(s)
}

// windowText describes a window in local time with its length.
func windowText(start, end time.Time) string {
	return fmt.Sprintf("%s → %s (%s)", localTime(start), localTime(end), end.Sub(start).Round(time.Second))
}

// requestRows are the rows of the requests table.
func requestRows(rs []*tbhttp.RequestView) [][]string {
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		rows = append(rows, []string{r.ID, shortStatus(r.Request), r.Requester, r.Database, r.Access,
			localTime(r.Start), localTime(r.End), r.Ticket})
	}
	return rows
}

// requestsHeader is the header of the requests table.
var requestsHeader = []string{"ID", "STATE", "REQUESTER", "DATABASE", "ACCESS", "START", "END", "TICKET"}

// outRequest writes every field of one request: its fields, reviews and grant.
func outRequest(w io.Writer, r *tbhttp.RequestView) error {
	pairs := [][2]string{
		{"id", r.ID}, {"status", r.PolicyStatus(r.Status)}, {"requester", r.Requester},
		{"database", r.Database}, {"access", r.Access}, {"window", windowText(r.Start, r.End)},
	}
	if !r.RequestedStart.Equal(r.Start) || !r.RequestedEnd.Equal(r.End) {
		pairs = append(pairs, [2]string{"requested", windowText(r.RequestedStart, r.RequestedEnd)})
	}
	pairs = append(pairs, [2]string{"reason", r.Reason}, [2]string{"ticket", r.Ticket},
		[2]string{"created", localTime(r.CreatedAt)})
	if !r.ActivatedAt.IsZero() {
		pairs = append(pairs, [2]string{"activated", localTime(r.ActivatedAt)})
	}
	if !r.EndedAt.IsZero() {
		pairs = append(pairs, [2]string{"ended", localTime(r.EndedAt)})
	}
	pairs = append(pairs, policyFields(r.Request)...)
	if err := outFields(w, pairs); err != nil {
		return err
	}
	if len(r.Reviews) > 0 {
		fmt.Fprintln(w, "\nreviews:")
		rows := make([][]string, 0, len(r.Reviews))
		for _, rv := range r.Reviews {
			rows = append(rows, []string{"  " + localTime(rv.At), rv.Reviewer, string(rv.Decision), rv.Note, rv.Changes})
		}
		if err := outTable(w, []string{"  TIME", "REVIEWER", "DECISION", "NOTE", "CHANGES"}, rows); err != nil {
			return err
		}
	}
	if x := r.Extension; x != nil && len(x.Reviews) > 0 {
		fmt.Fprintln(w, "\nextension reviews:")
		rows := make([][]string, 0, len(x.Reviews))
		for _, rv := range x.Reviews {
			rows = append(rows, []string{"  " + localTime(rv.At), rv.Reviewer, string(rv.Decision), rv.Note})
		}
		if err := outTable(w, []string{"  TIME", "REVIEWER", "DECISION", "NOTE"}, rows); err != nil {
			return err
		}
	}
	if g := r.Grant; g != nil {
		fmt.Fprintln(w, "\ngrant:")
		gp := [][2]string{
			{"  principal", g.Principal}, {"  server", g.Server}, {"  status", string(g.Status)},
			{"  roles", strings.Join(g.Roles, ", ")}, {"  valid until", localTime(g.ValidUntil)},
			{"  attempts", strconv.Itoa(g.Attempts)},
		}
		outcome, backstop := g.Outcome, g.NoBackstop()
		if strings.HasPrefix(outcome, timebox.NoBackstopPrefix) {
			outcome = "" // a note of the live grant, not how a removal ended
		}
		if backstop != "" {
			backstop = "NONE: " + backstop
		}
		for _, p := range [][2]string{{"  last error", g.LastError}, {"  last attempt", localTime(g.LastAttemptAt)},
			{"  next attempt", localTime(g.NextAttemptAt)}, {"  backstop", backstop}, {"  outcome", outcome}} {
			if p[1] != "" {
				gp = append(gp, p)
			}
		}
		return outFields(w, gp)
	}
	return nil
}

// detailsText is an event's details as compact key=value pairs (timebox.DetailsText).
func detailsText(d map[string]any) string { return timebox.DetailsText(d, nil) }

// detailsJSON is an event's details as one line of JSON with sorted keys, for CSV.
func detailsJSON(d map[string]any) string {
	if len(d) == 0 {
		return ""
	}
	b, _ := json.Marshal(d)
	return string(b)
}

// outEvents writes audit events as a table or CSV.
func outEvents(w io.Writer, format string, events []*timebox.Event) error {
	if format == outputCSV {
		rows := make([][]string, 0, len(events))
		for _, e := range events {
			rows = append(rows, []string{strconv.FormatInt(e.Seq, 10), csvTime(e.Time), e.Actor, e.Action,
				e.RequestID, e.Database, detailsJSON(e.Details), e.Hash})
		}
		return outCSV(w, []string{"seq", "time", "actor", "action", "request_id", "database", "details", "hash"}, rows)
	}
	rows := make([][]string, 0, len(events))
	for _, e := range events {
		rows = append(rows, []string{strconv.FormatInt(e.Seq, 10), localTime(e.Time), e.Actor, e.Action,
			e.RequestID, e.Database, detailsText(e.Details)})
	}
	return outTable(w, []string{"SEQ", "TIME", "ACTOR", "ACTION", "REQUEST", "DATABASE", "DETAILS"}, rows)
}

// outAccess writes an access report as a table or CSV.
func outAccess(w io.Writer, format string, recs []timebox.AccessRecord) error {
	if format == outputCSV {
		rows := make([][]string, 0, len(recs))
		for _, a := range recs {
			rows = append(rows, []string{a.User, a.Database, a.Environment, a.Access, csvTime(a.From), csvTime(a.To),
				strings.Join(a.ApprovedBy, " "), a.Ticket, a.RequestID, string(a.State), a.Principal, a.Reason})
		}
		return outCSV(w, []string{"user", "database", "environment", "access", "from", "to", "approved_by",
			"ticket", "request_id", "state", "principal", "reason"}, rows)
	}
	rows := make([][]string, 0, len(recs))
	for _, a := range recs {
		to := localTime(a.To)
		if a.To.IsZero() {
			to = "still active"
		}
		rows = append(rows, []string{a.User, a.Database, a.Environment, a.Access, localTime(a.From), to,
			strings.Join(a.ApprovedBy, ", "), a.Ticket, a.RequestID})
	}
	return outTable(w, []string{"USER", "DATABASE", "ENV", "ACCESS", "FROM", "TO", "APPROVED BY", "TICKET", "REQUEST"}, rows)
}

// shellQuote quotes s for a POSIX shell: in single quotes, each inner single quote written
// as quote, backslash, quote, quote (the usual close, escape, reopen).
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// credentialsEnv returns the libpq environment of c as name, value pairs.
func credentialsEnv(c *timebox.Credentials) [][2]string {
	return [][2]string{
		{"PGHOST", c.Host}, {"PGPORT", strconv.Itoa(c.Port)}, {"PGUSER", c.User},
		{"PGPASSWORD", c.Password}, {"PGDATABASE", c.Database},
	}
}

// outCredentialsEnv writes c as shell assignments followed by one export line, so that
// eval "$(timebox creds ID -o env)" sets them for the shell and the programs it starts.
func outCredentialsEnv(w io.Writer, c *timebox.Credentials) error {
	vars := credentialsEnv(c)
	if strings.HasPrefix(c.URI, "mysql") {
		// The mysql and mariadb clients read these; they take the user and the database as
		// arguments.
		vars = [][2]string{{"MYSQL_HOST", c.Host}, {"MYSQL_TCP_PORT", strconv.Itoa(c.Port)}, {"MYSQL_PWD", c.Password}}
		fmt.Fprintf(w, "# then: mariadb --protocol=tcp -u %s %s\n", shellQuote(c.User), shellQuote(c.Database))
	}
	names := make([]string, 0, 5)
	for _, kv := range vars {
		fmt.Fprintf(w, "%s=%s\n", kv[0], shellQuote(kv[1]))
		names = append(names, kv[0])
	}
	_, err := fmt.Fprintf(w, "export %s\n", strings.Join(names, " "))
	return err
}
