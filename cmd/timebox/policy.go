package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// policyFields are the lines `timebox show` adds for the policy's part of a request.
func policyFields(r *timebox.Request) [][2]string {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	add("rule", r.Rule)
	if r.BreakGlass {
		add("break-glass", "yes: activated without approval")
	}
	if f := r.FollowUp; f != nil && f.Open {
		add("follow-up", "OPEN: an owner must review it (timebox follow-up "+r.ID+" --note …)")
	} else if f != nil {
		add("follow-up", "closed by "+f.ClosedBy+" at "+localTime(f.ClosedAt)+": "+f.Note)
	}
	if len(r.Tables) > 0 {
		add("tables", timebox.DescribeTables(r.Tables))
	}
	if len(r.RequestedTables) > 0 {
		add("requested tables", timebox.DescribeTables(r.RequestedTables))
	}
	if x := r.Extension; x != nil {
		add("extension", "to "+localTime(x.End)+" pending: "+x.Reason)
	}
	if !r.UnusedBy.IsZero() && r.UsedAt.IsZero() {
		add("unused by", localTime(r.UnusedBy)+" (ends then unless its credentials are fetched)")
	}
	return out
}

// parseTables parses repeated --table flags.
func parseTables(specs []string) ([]timebox.TableGrant, error) {
	var out []timebox.TableGrant
	for _, s := range specs {
		t, err := timebox.ParseTableSpec(s)
		if err != nil {
			return nil, usagef("--table: %s", timebox.ErrorMessage(err))
		}
		out = append(out, t)
	}
	return out, nil
}

// outPlan writes the statements of a plan.
func outPlan(w io.Writer, p *tbhttp.PlanView) {
	fmt.Fprintln(w, "\nplan: statements Timebox runs at the start of the window")
	for _, s := range p.Grant {
		fmt.Fprintln(w, "  "+statementLine(s))
	}
	fmt.Fprintln(w, "\nplan: statements Timebox runs at the end")
	for _, s := range p.Revoke {
		fmt.Fprintln(w, "  "+statementLine(s))
	}
}

// statementLine ends a statement with its semicolon, before a trailing "-- comment" rather
// than inside it, so that the line reads (and pastes) as SQL.
func statementLine(s string) string {
	lines := strings.Split(s, "\n") // a statement may span lines (a MySQL event body)
	for i, l := range lines {
		lines[i] = cleanText(l)
	}
	s = strings.Join(lines, "\n    ")
	if strings.HasPrefix(s, "--") {
		return s
	}
	if stmt, comment, ok := strings.Cut(s, " -- "); ok && !strings.Contains(comment, "\n") {
		return stmt + "; -- " + comment
	}
	return s + ";"
}

func newExtendCommand() *cobra.Command {
	var in timebox.ExtendInput
	var until string
	cmd := &cobra.Command{
		Use:     "extend ID (--for DUR | --until TIME) --reason TEXT",
		Short:   "Ask for more time on your approved or active request (approved under the same rules)",
		Example: "  timebox extend 7h2k9x3m4p --for 1h --reason 'migration still running'",
		Args:    exactArgs("request ID"),
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.Flags().StringVar(&in.Duration, "for", "", "how much longer, e.g. 30m, 1h")
	cmd.Flags().StringVar(&until, "until", "", "the new end")
	cmd.Flags().StringVar(&in.Reason, "reason", "", "why you need more time")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if (in.Duration == "") == (until == "") {
			return usagef("give exactly one of --for DURATION or --until TIME")
		} else if strings.TrimSpace(in.Reason) == "" {
			return usagef("--reason is required: say why you need more time")
		}
		var err error
		if err = checkDuration("for", in.Duration); err != nil {
			return err
		} else if in.End, err = optionalTime("until", until); err != nil {
			return err
		}
		return callAPI(cmd, out, func(ctx context.Context, c *tbhttp.Client) (*tbhttp.RequestView, error) {
			return c.Extend(ctx, args[0], in)
		}, func(w io.Writer, r *tbhttp.RequestView) error {
			_, err := fmt.Fprintf(w, "request %s: %s\nwindow: %s\n", r.ID, cleanText(r.PolicyStatus(r.Status)), windowText(r.Start, r.End))
			return err
		})
	}
	return cmd
}

func newFollowUpCommand() *cobra.Command {
	return reviewCommand("follow-up ID --note TEXT", "Close the follow-up review of a break-glass request", "closing a follow-up",
		func(cmd *cobra.Command, c *tbhttp.Client, id, note string) (*tbhttp.RequestView, error) {
			return c.CloseFollowUp(cmd.Context(), id, note)
		})
}

func newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Ask the server about its approval policy"}
	var in timebox.ExplainInput
	var tables []string
	explain := &cobra.Command{
		Use:   "explain --db NAME (--access LEVEL | --table SPEC…) --for DUR [--as USER]",
		Short: "Show which approval rule applies to a request, why, and what it takes to get approved",
		Example: "  timebox policy explain --db orders-prod --access read-only --for 2h --as alice\n" +
			"  timebox policy explain --db orders-prod --table public.orders:select:id,total --for 1h",
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(explain, outputTable, outputJSON)
	f := explain.Flags()
	f.StringVar(&in.Database, "db", "", "database name")
	f.StringVar(&in.Access, "access", "", "access level")
	f.StringArrayVar(&tables, "table", nil, "ad-hoc table grant [SCHEMA.]TABLE[:OPERATIONS[:COLUMNS]] (repeatable)")
	f.StringVar(&in.Duration, "for", "", "length of the window, e.g. 2h")
	f.StringVar(&in.As, "as", "", "the requester (default: you; admins and auditors may name anyone)")
	explain.RunE = func(cmd *cobra.Command, _ []string) error {
		if in.Database == "" || in.Duration == "" || (in.Access == "") == (len(tables) == 0) {
			return usagef("give --db, --for and exactly one of --access or --table")
		}
		var err error
		if err = checkDuration("for", in.Duration); err != nil {
			return err
		} else if in.Tables, err = parseTables(tables); err != nil {
			return err
		}
		return callAPI(cmd, out, func(ctx context.Context, c *tbhttp.Client) (*timebox.Explanation, error) {
			return c.Explain(ctx, in)
		}, outExplanation)
	}
	cmd.AddCommand(explain)
	return cmd
}

// outExplanation writes an explanation for people.
func outExplanation(w io.Writer, x *timebox.Explanation) error {
	verdict := "allowed"
	if !x.Allowed {
		verdict = "REFUSED: " + x.Refusal
	}
	rule := "none"
	if x.Rule != nil {
		rule = x.Rule.Name
	}
	ticket := "optional"
	if x.TicketRequired {
		ticket = "required"
	}
	if x.Ticket != "" {
		ticket = "required, matching " + x.Ticket
	}
	if err := outFields(w, [][2]string{
		{"request", fmt.Sprintf("%s: %s on %s for %s", x.Requester, x.Access, x.Database, x.Duration)},
		{"rule", rule}, {"verdict", verdict}, {"takes", x.Takes}, {"approvers", strings.Join(x.Approvers, ", ")},
		{"auto-approval", x.AutoApproval}, {"ticket", ticket}, {"break-glass", x.BreakGlass},
	}); err != nil {
		return err
	}
	if len(x.Limits) > 0 {
		fmt.Fprintln(w, "\nlimits:")
		for _, l := range x.Limits {
			fmt.Fprintf(w, "  %s\n", cleanText(l))
		}
	}
	if len(x.Why) > 0 {
		fmt.Fprintln(w, "\nother rules:")
		rows := make([][]string, 0, len(x.Why))
		for _, m := range x.Why {
			rows = append(rows, []string{"  " + m.Rule, m.Reason})
		}
		return outTable(w, []string{"  RULE", "WHY NOT"}, rows)
	}
	return nil
}

func newUsersCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Disable or enable users (admins)"}
	var note string
	disable := &cobra.Command{
		Use:   "disable NAME --note TEXT",
		Short: "Disable a user: no sign-in, no requests, no reviews; their live requests end and their tokens are revoked now",
		Args:  exactArgs("user name"),
	}
	disable.Flags().StringVar(&note, "note", "", "why (required)")
	disable.RunE = func(cmd *cobra.Command, args []string) error {
		if strings.TrimSpace(note) == "" {
			return usagef("disabling a user needs a note saying why: --note TEXT")
		}
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		n, err := c.DisableUser(cmd.Context(), args[0], note)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "user %s disabled; %d live request(s) ended; their API tokens are revoked\n", cleanText(args[0]), n)
		return nil
	}
	enable := &cobra.Command{Use: "enable NAME", Short: "Lift a disable made with timebox users disable", Args: exactArgs("user name")}
	enable.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := newAPIClient()
		if err != nil {
			return err
		}
		if err := c.EnableUser(cmd.Context(), args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "user %s enabled; their old API tokens stay revoked: timebox admin token create --user %s issues a new one\n", cleanText(args[0]), cleanText(args[0]))
		return nil
	}
	cmd.AddCommand(disable, enable)
	return cmd
}
