package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

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
	if format == outputJSON {
		if err := outJSON(w, v); err != nil {
			return err
		}
	} else {
		printVerification(w, v)
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

// printVerification prints the outcome of audit --verify: a summary line when the log is
// intact, else one line per problem; then what the check could not cover.
func printVerification(w io.Writer, v *timebox.AuditVerification) {
	if v.OK {
		keyed := "plain SHA-256, not keyed yet"
		if v.KeyedFrom > 0 {
			keyed = fmt.Sprintf("keyed since event %d", v.KeyedFrom)
		}
		checkpoint := "no checkpoint"
		if cp := v.Checkpoint; cp != nil && cp.Lines > 0 {
			checkpoint = fmt.Sprintf("checkpoint at event %d (%s, %s)", cp.Seq, cp.Time.Local().Format(time.DateTime), cp.Path)
		}
		fmt.Fprintf(w, "audit log OK: %d events, chain intact (%s), %s\n", v.Events, keyed, checkpoint)
	}
	for _, p := range v.Problems {
		if p.Seq == 0 {
			fmt.Fprintf(w, "checkpoint: %s\n", cleanText(p.Problem))
		} else {
			fmt.Fprintf(w, "seq %d: %s\n", p.Seq, cleanText(p.Problem))
		}
	}
	for _, n := range v.Notes {
		fmt.Fprintf(w, "note: %s\n", cleanText(n))
	}
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
