package notify

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// Summary is the text of a notification, written once for every sender: Slack blocks, a
// Teams card and an e-mail are laid out from it.
type Summary struct {
	// Title is one line: "alice asks for read-only on orders (prod)".
	Title string
	// Status is the request's state in words: "Waiting for 1 more of dba", "Approved by bob".
	Status string
	// Facts are the details, in order.
	Facts []Fact
	// Links open the request in the console (and, for an expiry warning, its extend form).
	Links []Link
	// Decidable is set while the request waits for a decision: Slack shows Approve / Deny.
	Decidable bool
	// Time is when it happened.
	Time time.Time
}

// Fact is one named detail.
type Fact struct{ Name, Value string }

// Link is a link into the console.
type Link struct{ Text, URL string }

// Text returns the summary as plain text: title, status, facts and links, one per line (the
// further lines of a fact's value indented under it).
func (s *Summary) Text() string {
	var b strings.Builder
	b.WriteString(s.Title + "\n")
	if s.Status != "" {
		b.WriteString(s.Status + "\n")
	}
	b.WriteString("\n")
	for _, f := range s.Facts {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, indentLines(f.Value))
	}
	if len(s.Links) > 0 {
		b.WriteString("\n")
	}
	for _, l := range s.Links {
		fmt.Fprintf(&b, "%s: %s\n", l.Text, l.URL)
	}
	return b.String()
}

// indentLines indents every line of v after the first: a fact's value (a requester's reason)
// cannot start a line of its own in the plain text, such as a status or a link to click.
func indentLines(v string) string {
	v = strings.ReplaceAll(strings.ReplaceAll(v, "\r\n", "\n"), "\r", "\n")
	return strings.ReplaceAll(v, "\n", "\n    ")
}

// RequestURL returns the console's page of request id under base (the console's URL).
func RequestURL(base, id string) string {
	return strings.TrimRight(base, "/") + "/requests/" + url.PathEscape(id)
}

// ExtendURL returns where the requester extends request id: its card on My access, which
// holds the extend form.
func ExtendURL(base, id string) string {
	return strings.TrimRight(base, "/") + "/#req-" + url.PathEscape(id) + "-h"
}

// summarize writes the summary of m (Kind, Event, Request) with links under base.
func summarize(m *Message, base string) *Summary {
	s := &Summary{}
	r, e := m.Request, m.Event
	if e != nil {
		s.Time = e.Time
	}
	if r == nil {
		s.Title = titleWithoutRequest(m.Kind, e)
		if e != nil {
			s.Facts = append(s.Facts, Fact{"Event", e.Action}, Fact{"By", e.Actor})
			if e.Database != "" {
				s.Facts = append(s.Facts, Fact{"Database", e.Database})
			}
			if d := timebox.DetailsText(e.Details, nil); d != "" {
				s.Facts = append(s.Facts, Fact{"Details", d})
			}
		}
		return s
	}
	s.Title = title(m.Kind, r, e)
	s.Status = status(r)
	s.Decidable = r.State == timebox.StatePending
	access := r.Access
	if len(r.Tables) > 0 {
		access = timebox.DescribeTables(r.Tables)
	}
	s.Facts = append(s.Facts,
		Fact{"Request", r.ID},
		Fact{"Requester", r.Requester},
		Fact{"Database", r.Database},
		Fact{"Access", access},
		Fact{"Window", window(r.Start, r.End)},
		Fact{"Reason", r.Reason})
	if r.Ticket != "" {
		s.Facts = append(s.Facts, Fact{"Ticket", r.Ticket})
	}
	if r.Rule != "" {
		s.Facts = append(s.Facts, Fact{"Rule", r.Rule})
	}
	if changed := narrowed(r); changed != "" {
		s.Facts = append(s.Facts, Fact{"Changed by the approver", changed})
	}
	if e != nil {
		if note, _ := e.Details["note"].(string); note != "" {
			s.Facts = append(s.Facts, Fact{"Note", note})
		}
	}
	if base != "" {
		s.Links = append(s.Links, Link{"Open in Timebox", RequestURL(base, r.ID)})
		if m.Kind == KindExpiryWarning {
			s.Links = append(s.Links, Link{"Extend", ExtendURL(base, r.ID)})
		}
	}
	return s
}

// title is the summary line of a notification about r.
func title(k Kind, r *timebox.Request, e *timebox.Event) string {
	on := fmt.Sprintf("%s on %s", accessName(r), r.Database)
	actor := ""
	if e != nil {
		actor = e.Actor
	}
	switch k {
	case KindNewRequest:
		return fmt.Sprintf("%s asks for %s", r.Requester, on)
	case KindAwaiting:
		return fmt.Sprintf("%s approved %s's request for %s; %s", actor, r.Requester, on, r.Awaiting)
	case KindDecision:
		if e != nil && e.Action == "request.denied" {
			return fmt.Sprintf("%s denied %s's request for %s", actor, r.Requester, on)
		}
		if e != nil && e.Action == "request.auto_approved" {
			return fmt.Sprintf("%s's request for %s was approved by rule %s", r.Requester, on, r.Rule)
		}
		return fmt.Sprintf("%s approved %s's request for %s", actor, r.Requester, on)
	case KindActivation:
		return fmt.Sprintf("%s now has %s until %s", r.Requester, on, clock(r.End))
	case KindExpiryWarning:
		return fmt.Sprintf("%s's %s ends in %s", r.Requester, on, until(r.End))
	case KindExpiry:
		return fmt.Sprintf("%s's %s has ended", r.Requester, on)
	case KindRevoke:
		return fmt.Sprintf("%s revoked %s's %s", actor, r.Requester, on)
	case KindRelease:
		return fmt.Sprintf("%s gave back %s", r.Requester, on)
	case KindBreakGlass:
		return fmt.Sprintf("BREAK-GLASS: %s activated %s without approval", r.Requester, on)
	case KindFollowUpDue:
		return fmt.Sprintf("Follow-up due: %s's break-glass %s has ended and waits for review", r.Requester, on)
	case KindDriftRepaired:
		return fmt.Sprintf("Drift repaired on %s (request of %s)", r.Database, r.Requester)
	case KindStoreTampered:
		return fmt.Sprintf("STORE TAMPERED: request %s of %s was edited outside Timebox; its access was removed", r.ID, r.Requester)
	case KindExtension:
		return fmt.Sprintf("%s: more time on %s (%s)", r.Requester, on, actionWords(e))
	case kindCancelled:
		return fmt.Sprintf("%s withdrew the request for %s", r.Requester, on)
	case kindFollowUpClosed:
		return fmt.Sprintf("%s closed the follow-up of %s's break-glass %s", actor, r.Requester, on)
	}
	return fmt.Sprintf("%s: %s", actionWords(e), on)
}

func titleWithoutRequest(k Kind, e *timebox.Event) string {
	switch k {
	case KindDriftRepaired:
		return "Drift repaired by the reconciler"
	case KindStoreTampered:
		return "STORE TAMPERED: the store was edited outside Timebox"
	}
	return actionWords(e)
}

func actionWords(e *timebox.Event) string {
	if e == nil {
		return "notice"
	}
	return strings.ReplaceAll(e.Action, "_", " ")
}

func accessName(r *timebox.Request) string {
	if len(r.Tables) > 0 {
		return "table access"
	}
	return r.Access
}

// status is r's state in words.
func status(r *timebox.Request) string {
	last := func(verdict string) string {
		for i := len(r.Reviews) - 1; i >= 0; i-- {
			if string(r.Reviews[i].Decision) == verdict {
				return r.Reviews[i].Reviewer
			}
		}
		return ""
	}
	switch r.State {
	case timebox.StatePending:
		if r.Awaiting != "" {
			return "Waiting for " + r.Awaiting
		}
		return "Waiting for review"
	case timebox.StateApproved:
		if by := approvers(r); by != "" {
			return "Approved by " + by + "; starts " + clock(r.Start)
		}
		return "Approved; starts " + clock(r.Start)
	case timebox.StateActive:
		s := "Active until " + clock(r.End)
		if by := approvers(r); by != "" {
			s += " (approved by " + by + ")"
		}
		return s
	case timebox.StateDenied:
		return "Denied by " + last(string(timebox.ActionDeny))
	}
	s := strings.ToUpper(string(r.State[:1])) + string(r.State[1:])
	if by := approvers(r); by != "" {
		s += " (approved by " + by + ")"
	}
	return s
}

// approvers lists who approved r.
func approvers(r *timebox.Request) string {
	var names []string
	for _, rv := range r.Reviews {
		if rv.Decision == timebox.ActionApprove {
			names = append(names, rv.Reviewer)
		}
	}
	return strings.Join(names, ", ")
}

// narrowed says what approvers changed: the window or the tables asked for.
func narrowed(r *timebox.Request) string {
	var out []string
	for _, rv := range r.Reviews {
		if rv.Changes != "" {
			out = append(out, rv.Reviewer+": "+rv.Changes)
		}
	}
	if len(out) > 0 {
		return strings.Join(out, "; ")
	}
	if !r.RequestedStart.IsZero() && (!r.RequestedStart.Equal(r.Start) || !r.RequestedEnd.Equal(r.End)) {
		out = append(out, "window narrowed from "+window(r.RequestedStart, r.RequestedEnd))
	}
	if len(r.RequestedTables) > 0 {
		out = append(out, fmt.Sprintf("tables narrowed from %d asked for", len(r.RequestedTables)))
	}
	return strings.Join(out, "; ")
}

func window(start, end time.Time) string {
	return fmt.Sprintf("%s – %s (%s)", start.UTC().Format("2006-01-02 15:04 MST"), end.UTC().Format("15:04 MST"),
		end.Sub(start).Round(time.Minute))
}

// until says how long until end, in minutes or hours and minutes.
func until(end time.Time) string {
	d := time.Until(end).Round(time.Minute)
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	}
	return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
}

// clock writes t as "2026-12-04 14:51 UTC": notifications are read by people in several
// time zones, so they say which.
func clock(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }
