package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
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
		newApproveCommand(), newDenyCommand(), newRevokeCommand(), newCancelCommand(), newReleaseCommand(),
		newCredsCommand(), newConnectCommand(), newAuditCommand(), newReportCommand(), newStatusCommand(),
		newExtendCommand(), newFollowUpCommand(), newPolicyCommand(), newUsersCommand(), newTokenCommand(),
		newNotifyCommand(),
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

// checkDuration returns a usage error naming flag when s is set and is not a duration.
func checkDuration(flag, s string) error {
	if s == "" {
		return nil
	}
	if _, err := timebox.ParseDuration(s); err != nil {
		return usagef("--%s: %s", flag, timebox.ErrorMessage(err))
	}
	return nil
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
		c, err := out.client()
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
		return callAPI(cmd, out, func(ctx context.Context, c *tbhttp.Client) ([]tbhttp.DatabaseView, error) {
			dbs, err := c.Databases(ctx)
			return nonNilSlice(dbs), err
		}, func(w io.Writer, dbs []tbhttp.DatabaseView) error {
			rows := make([][]string, 0, len(dbs))
			for _, d := range dbs {
				owner := ""
				if d.Owner {
					owner = "yes"
				}
				rows = append(rows, []string{d.Name, d.Environment, d.Server, strings.Join(d.AccessLevels, ", "),
					strings.Join(d.Owners, ", "), owner})
			}
			return outTable(w, []string{"NAME", "ENV", "SERVER", "ACCESS LEVELS", "OWNERS", "YOU OWN"}, rows)
		})
	}
	return cmd
}

func newRequestCommand() *cobra.Command {
	var in timebox.RequestInput
	var dur, until, start string
	var tables []string
	cmd := &cobra.Command{
		Use:   "request --db NAME (--access LEVEL | --table SPEC…) (--for DUR | --until TIME) --reason TEXT",
		Short: "Ask for access to a database for a window",
		Example: "  timebox request --db orders-prod --access read-only --for 2h --reason 'INC-42 refunds' --ticket INC-42\n" +
			"  timebox request --db orders-prod --access read-write --start 22:00 --until 23:30 --reason 'migration'\n" +
			"  timebox request --db orders-prod --table public.orders:select:id,total --table refunds:select,update --for 1h --reason 'INC-42'\n" +
			"  timebox request --db orders-prod --access read-write --for 30m --reason 'prod down' --break-glass",
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
	f.StringArrayVar(&tables, "table", nil, "instead of --access, an ad-hoc grant [SCHEMA.]TABLE[:OPERATIONS[:COLUMNS]] (repeatable), e.g. orders:select,update:id,status")
	f.BoolVar(&in.BreakGlass, "break-glass", false, "emergency: activate now without approval (break-glass groups only; audited; owners review it afterwards)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		switch {
		case in.Database == "":
			return usagef("--db is required (see timebox databases)")
		case in.Access == "" && len(tables) == 0:
			return usagef("--access is required, e.g. --access read-only (or --table for an ad-hoc grant)")
		case in.Access != "" && len(tables) > 0:
			return usagef("give either --access or --table, not both")
		case strings.TrimSpace(in.Reason) == "":
			return usagef("--reason is required: say why you need the access")
		case (dur == "") == (until == ""):
			return usagef("give exactly one of --for DURATION or --until TIME")
		}
		in.Duration = dur
		var err error
		if err = checkDuration("for", dur); err != nil {
			return err
		} else if in.End, err = optionalTime("until", until); err != nil {
			return err
		} else if in.Start, err = optionalTime("start", start); err != nil {
			return err
		} else if in.Tables, err = parseTables(tables); err != nil {
			return err
		}
		return callAPI(cmd, out, func(ctx context.Context, c *tbhttp.Client) (*tbhttp.RequestView, error) {
			return c.CreateRequest(ctx, in)
		}, func(w io.Writer, r *tbhttp.RequestView) error {
			return outFields(w, append([][2]string{
				{"request", r.ID}, {"state", r.PolicyStatus(r.Status)}, {"database", r.Database + " (" + r.Access + ")"},
				{"window", windowText(r.Start, r.End)},
			}, policyFields(r.Request)...))
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
	f.BoolVar(&q.FollowUp, "follow-up", false, "only break-glass requests whose follow-up review is open")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		for _, s := range q.States {
			if !slices.Contains(timebox.States, timebox.State(s)) {
				return usagef("--state: unknown state %q: use one of %s", s, stateNames())
			}
		}
		if q.Limit < 0 {
			return usagef("--limit must not be negative")
		}
		return callAPI(cmd, out, func(ctx context.Context, c *tbhttp.Client) ([]*tbhttp.RequestView, error) {
			rs, err := c.Requests(ctx, q)
			return nonNilSlice(rs), err
		}, func(w io.Writer, rs []*tbhttp.RequestView) error {
			return outTable(w, requestsHeader, requestRows(rs))
		})
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
	var plan bool
	cmd := &cobra.Command{
		Use:   "show ID [--plan]",
		Short: "Show a request: its window, reviews (and what they changed), grant and status",
		Args:  exactArgs("request ID"),
	}
	out := addOutputFlag(cmd, outputTable, outputJSON)
	cmd.Flags().BoolVar(&plan, "plan", false, "also show the exact statements the database will run")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := out.client()
		if err != nil {
			return err
		}
		r, err := c.Request(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		var p *tbhttp.PlanView
		if plan {
			if p, err = c.Plan(cmd.Context(), args[0]); err != nil {
				return err
			}
		}
		if out.value == outputJSON && p != nil {
			return outJSON(cmd.OutOrStdout(), struct {
				*tbhttp.RequestView
				Plan *tbhttp.PlanView `json:"plan"`
			}{r, p})
		} else if out.value == outputJSON {
			return outJSON(cmd.OutOrStdout(), r)
		}
		if err := outRequest(cmd.OutOrStdout(), r); err != nil || p == nil {
			return err
		}
		outPlan(cmd.OutOrStdout(), p)
		return nil
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

// reviewCommand builds approve, deny, revoke, cancel or release: one request ID, a note (required
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
		if noteRequired != "" && strings.TrimSpace(note) == "" {
			return usagef("%s needs a note saying why: --note TEXT", noteRequired)
		}
		return callAPI(cmd, out, func(_ context.Context, c *tbhttp.Client) (*tbhttp.RequestView, error) {
			return act(cmd, c, args[0], note)
		}, func(w io.Writer, r *tbhttp.RequestView) error {
			fmt.Fprintf(w, "request %s: %s\n", r.ID, cleanText(r.PolicyStatus(r.Status)))
			if cmd.Name() == "approve" {
				approvalChanges(w, r)
			}
			return nil
		})
	}
	return cmd
}

// approvalChanges says what an approval just changed: "extended" when it applied an
// extension, "narrowed" when it narrowed the window or tables, nothing when it only added an
// approval (the status line says what is still awaited).
func approvalChanges(w io.Writer, r *tbhttp.RequestView) {
	n := len(r.Reviews)
	if n == 0 || r.Reviews[n-1].Changes == "" || r.Extension != nil {
		return // an approval of an extension that still awaits others changed nothing yet
	}
	switch last := r.Reviews[n-1]; last.Decision {
	case timebox.ActionExtend:
		fmt.Fprintf(w, "extended: %s\n", cleanText(last.Changes))
	case timebox.ActionApprove:
		fmt.Fprintf(w, "narrowed: %s\n", cleanText(last.Changes))
	}
}

func newApproveCommand() *cobra.Command {
	var start, end string
	var tables []string
	cmd := reviewCommand("approve ID", "Approve a pending request or extension, optionally narrowing its window or tables", "",
		func(cmd *cobra.Command, c *tbhttp.Client, id, note string) (*tbhttp.RequestView, error) {
			in := timebox.ApproveInput{Note: note}
			var err error
			if in.Start, err = optionalTime("start", start); err != nil {
				return nil, err
			} else if in.End, err = optionalTime("end", end); err != nil {
				return nil, err
			} else if in.Tables, err = parseTables(tables); err != nil {
				return nil, err
			}
			return c.Approve(cmd.Context(), id, in)
		})
	cmd.Flags().StringVar(&start, "start", "", "narrow the window: a later start")
	cmd.Flags().StringVar(&end, "end", "", "narrow the window (or an extension): an earlier end")
	cmd.Flags().StringArrayVar(&tables, "table", nil, "ad-hoc requests: the tables to keep, [SCHEMA.]TABLE[:OPERATIONS[:COLUMNS]] (repeatable; only removals)")
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

func newReleaseCommand() *cobra.Command {
	return reviewCommand("release ID", "Give up your own active request before its end (its login and sessions go now)", "",
		func(cmd *cobra.Command, c *tbhttp.Client, id, note string) (*tbhttp.RequestView, error) {
			return c.Release(cmd.Context(), id, note)
		})
}

func newCancelCommand() *cobra.Command {
	return reviewCommand("cancel ID", "Withdraw your own pending or approved request", "",
		func(cmd *cobra.Command, c *tbhttp.Client, id, note string) (*tbhttp.RequestView, error) {
			return c.Cancel(cmd.Context(), id, note)
		})
}
