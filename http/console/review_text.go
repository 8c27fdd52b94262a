package console

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// The review, audit and admin pages' template helpers.
func init() {
	funcs["local"] = localTimes
	funcs["details"] = detailsText
	funcs["accessText"] = accessText
	funcs["window"] = func(start, end time.Time) string { return shortDuration(end.Sub(start)) }
	funcs["stateClass"] = func(s timebox.State) string { return "badge state-" + string(s) }
	funcs["approvers"] = func(reviews []timebox.Review) string { return strings.Join(approvedBy(reviews), ", ") }
	funcs["tableLabel"] = tableLabel
	funcs["statement"] = statementLine
	funcs["tables"] = timebox.DescribeTables
	funcs["took"] = func(d time.Duration) string {
		if d < time.Minute {
			return d.Round(time.Millisecond).String()
		}
		return shortDuration(d)
	}
}

// rfc3339 matches the RFC 3339 times (UTC or with an offset) that the domain writes into
// its messages, events and review changes.
var rfc3339 = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})`)

// localTimes rewrites every RFC 3339 time in s (a status line, a review's changes, an
// error message) in the viewer's zone, with the zone shown, as every time on a page is.
func localTimes(s string, zone *time.Location) string {
	if !strings.Contains(s, "T") {
		return s
	}
	return rfc3339.ReplaceAllStringFunc(s, func(v string) string {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return v
		}
		return t.In(zone).Format("2006-01-02 15:04:05 MST")
	})
}

// detailsText is an event's details as `timebox audit` prints them, with times in the
// viewer's zone.
func detailsText(d map[string]any, zone *time.Location) string {
	return timebox.DetailsText(d, func(s string) string { return localTimes(s, zone) })
}

// accessText says what a request grants: its access level, or its tables.
func accessText(r *timebox.Request) string {
	if len(r.Tables) > 0 {
		return "ad-hoc: " + timebox.DescribeTables(r.Tables)
	}
	return r.Access
}

// approvedBy returns who approved, once each, in order, without the approvals a reopen
// voided (as the domain counts them).
func approvedBy(reviews []timebox.Review) []string {
	var out []string
	for _, rv := range reviews {
		if len(rv.Voids) > 0 {
			out = slices.DeleteFunc(out, func(n string) bool { return slices.Contains(rv.Voids, n) })
		} else if rv.Decision == timebox.ActionApprove && !slices.Contains(out, rv.Reviewer) {
			out = append(out, rv.Reviewer)
		}
	}
	return out
}

// statementLine ends a planned statement with its semicolon, before a trailing "-- comment"
// rather than inside it, so that it reads (and pastes) as SQL, as `timebox show --plan`
// prints it.
func statementLine(s string) string {
	s = strings.ReplaceAll(s, "\n", "\n    ")
	if strings.HasPrefix(s, "--") {
		return s
	}
	if stmt, comment, ok := strings.Cut(s, " -- "); ok && !strings.Contains(comment, "\n") {
		return stmt + "; -- " + comment
	}
	return s + ";"
}

func init() {
	// deref is the value of a *bool (a server's reachability).
	funcs["deref"] = func(b *bool) bool { return b != nil && *b }
}
