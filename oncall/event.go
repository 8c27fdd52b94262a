package oncall

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// event is one VEVENT: its first instance, who it puts on call, and how it recurs.
type event struct {
	uid   string
	start time.Time // DTSTART, in its time zone (UTC for UTC, floating and DATE values)
	// An instance starting at s ends at wall(s)+span in the event's zone, plus exact: DTEND
	// gives a wall-clock span (a weekly 09:00 hand-over stays at 09:00 across DST), DURATION
	// gives nominal days (span) and an exact time part.
	span, exact time.Duration
	who         []string
	cancelled   bool
	rule        *rrule
	exdates     map[int64]bool // Unix seconds of removed instance starts
	rdates      []time.Time

	hasRecurrenceID bool
	recurrenceID    time.Time // the instance of the UID's recurring event this one replaces
}

// singleProps may appear at most once in a VEVENT.
var singleProps = []string{"DTSTART", "DTEND", "DURATION", "RRULE", "RECURRENCE-ID"}

// event builds an event from its properties.
func (p *parser) event(props []prop) (*event, error) {
	ev := &event{}
	one := map[string]*prop{}
	var attendees []*prop
	summary, seenSummary := "", false
	for i := range props {
		pr := &props[i]
		switch pr.name {
		case "UID":
			if ev.uid == "" {
				ev.uid = strings.TrimSpace(pr.value)
			}
		case "STATUS":
			ev.cancelled = ev.cancelled || strings.EqualFold(strings.TrimSpace(pr.value), "CANCELLED")
		case "SUMMARY":
			if !seenSummary {
				summary, seenSummary = textEscapes.Replace(pr.value), true
			}
		case "ATTENDEE":
			attendees = append(attendees, pr)
		}
		if slices.Contains(singleProps, pr.name) {
			if one[pr.name] != nil {
				return nil, fmt.Errorf("%s given twice (lines %d and %d)", pr.name, one[pr.name].line, pr.line)
			}
			one[pr.name] = pr
		}
	}
	ev.who = whoOf(attendees, summary)
	if one["DTSTART"] == nil {
		return nil, fmt.Errorf("no DTSTART")
	}
	start, isDate, err := p.dateTime(one["DTSTART"], one["DTSTART"].value)
	if err != nil {
		return nil, err
	}
	ev.start = start
	if err := p.setEnd(ev, isDate, one["DTEND"], one["DURATION"]); err != nil {
		return nil, err
	}
	if rid := one["RECURRENCE-ID"]; rid != nil {
		if ev.recurrenceID, _, err = p.dateTime(rid, rid.value); err != nil {
			return nil, err
		}
		ev.hasRecurrenceID = true
		return ev, nil // an override is one instance: its own RRULE, if any, is not followed
	}
	if r := one["RRULE"]; r != nil {
		if ev.rule, err = parseRRule(r.value, ev.start); err != nil {
			return nil, fmt.Errorf("line %d: RRULE: %w", r.line, err)
		}
	}
	return ev, p.setInstants(ev, props)
}

// setEnd sets how long the event's instances last.
func (p *parser) setEnd(ev *event, isDate bool, dtend, duration *prop) error {
	switch {
	case dtend != nil && duration != nil:
		return fmt.Errorf("both DTEND and DURATION (line %d)", duration.line)
	case dtend != nil:
		end, _, err := p.dateTime(dtend, dtend.value)
		if err != nil {
			return err
		} else if end.Before(ev.start) {
			return fmt.Errorf("line %d: DTEND is before DTSTART", dtend.line)
		}
		ev.span = wall(end.In(ev.start.Location())).Sub(wall(ev.start))
	case duration != nil:
		days, clock, err := parseDuration(strings.TrimSpace(duration.value))
		if err != nil {
			return fmt.Errorf("line %d: DURATION: %w", duration.line, err)
		}
		ev.span, ev.exact = time.Duration(days)*24*time.Hour, clock
	case isDate:
		ev.span = 24 * time.Hour // an all-day event lasts the day
	}
	return nil
}

// setInstants reads EXDATE and RDATE lists.
func (p *parser) setInstants(ev *event, props []prop) error {
	n := 0
	for i := range props {
		pr := &props[i]
		if pr.name != "EXDATE" && pr.name != "RDATE" {
			continue
		}
		for _, v := range strings.Split(pr.value, ",") {
			if n++; n > maxInstants {
				return fmt.Errorf("line %d: more than %d EXDATE and RDATE values", pr.line, maxInstants)
			} else if strings.Contains(v, "/") {
				return fmt.Errorf("line %d: %s periods are not supported", pr.line, pr.name)
			}
			t, _, err := p.dateTime(pr, v)
			if err != nil {
				return err
			}
			if pr.name == "RDATE" {
				ev.rdates = append(ev.rdates, t)
			} else {
				if ev.exdates == nil {
					ev.exdates = map[int64]bool{}
				}
				ev.exdates[t.Unix()] = true
			}
		}
	}
	return nil
}

// dateTime parses one DATE or DATE-TIME value of pr: "...Z" is UTC, a TZID parameter names
// the zone of a local time, a floating time is taken as UTC, and a DATE is midnight UTC.
func (p *parser) dateTime(pr *prop, v string) (t time.Time, isDate bool, err error) {
	v = strings.TrimSpace(v)
	loc := time.UTC
	if tzid := pr.param("TZID"); tzid != "" && !strings.HasSuffix(v, "Z") && len(v) != 8 {
		if loc, err = p.location(tzid); err != nil {
			return time.Time{}, false, fmt.Errorf("line %d: %s: %w", pr.line, pr.name, err)
		}
	}
	t, isDate, ok := parseDateTime(v, loc)
	if !ok || (strings.EqualFold(pr.param("VALUE"), "DATE") && !isDate) {
		return time.Time{}, false, fmt.Errorf("line %d: %s: invalid date or date-time %q", pr.line, pr.name, timebox.Clip(v))
	}
	return t, isDate, nil
}

// parseDateTime parses YYYYMMDD (a DATE, midnight UTC), YYYYMMDDTHHMMSSZ (UTC) and
// YYYYMMDDTHHMMSS (in loc). A leap second (:60) is refused, as time.Parse does.
func parseDateTime(v string, loc *time.Location) (t time.Time, isDate, ok bool) {
	var layout string
	switch {
	case len(v) == 8:
		layout, loc, isDate = "20060102", time.UTC, true
	case len(v) == 15:
		layout = "20060102T150405"
	case len(v) == 16 && v[15] == 'Z':
		layout, loc = "20060102T150405Z", time.UTC
	default:
		return time.Time{}, false, false
	}
	t, err := time.ParseInLocation(layout, v, loc)
	return t, isDate, err == nil
}

// parseDuration parses an RFC 5545 duration (P1W, P1D, PT8H, P1DT12H30M) into nominal days
// and an exact time part, each at most 100 years. Negative durations are refused.
func parseDuration(v string) (days int, clock time.Duration, err error) {
	const maxDays = 100 * 366
	s, ok := strings.CutPrefix(strings.TrimPrefix(v, "+"), "P")
	if !ok || s == "" {
		return 0, 0, fmt.Errorf("invalid duration %q", timebox.Clip(v))
	}
	inTime, any := false, false
	var secs int64 // the time part: at most 7 digits per unit, checked after each, never wraps
	for s != "" {
		if s[0] == 'T' && !inTime {
			inTime, s = true, s[1:]
			continue
		}
		i := 0
		for i < len(s) && i < 7 && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil || i == len(s) {
			return 0, 0, fmt.Errorf("invalid duration %q", timebox.Clip(v))
		}
		unit := s[i]
		s, any = s[i+1:], true
		switch {
		case unit == 'W' && !inTime:
			days += 7 * n
		case unit == 'D' && !inTime:
			days += n
		case unit == 'H' && inTime:
			secs += int64(n) * 3600
		case unit == 'M' && inTime:
			secs += int64(n) * 60
		case unit == 'S' && inTime:
			secs += int64(n)
		default:
			return 0, 0, fmt.Errorf("invalid duration %q", timebox.Clip(v))
		}
		if days > maxDays || secs > maxDays*24*3600 {
			return 0, 0, fmt.Errorf("invalid duration %q", timebox.Clip(v))
		}
	}
	if !any {
		return 0, 0, fmt.Errorf("invalid duration %q", timebox.Clip(v))
	}
	return days, time.Duration(secs) * time.Second, nil
}

// whoOf tells who an event puts on call: the email of every ATTENDEE (PagerDuty) that has
// not declined and is a participant; else the SUMMARY (Opsgenie: the participant's name;
// PagerDuty: "On Call - Alice Example - Primary") without its "On Call - " or "On-call: "
// prefix and anything after " - ".
func whoOf(attendees []*prop, summary string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range attendees {
		v := strings.TrimSpace(a.value)
		if len(v) < 7 || !strings.EqualFold(v[:7], "mailto:") ||
			strings.EqualFold(a.param("PARTSTAT"), "DECLINED") || strings.EqualFold(a.param("ROLE"), "NON-PARTICIPANT") {
			continue
		}
		if email := strings.TrimSpace(v[7:]); email != "" && !seen[email] {
			seen[email] = true
			out = append(out, email)
		}
	}
	if len(out) > 0 {
		return out
	}
	s := strings.TrimSpace(summary)
	for _, prefix := range []string{"On Call - ", "On-call: ", "On call: ", "On-call - "} {
		if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
			s = s[len(prefix):]
			break
		}
	}
	if i := strings.Index(s, " - "); i >= 0 {
		s = s[:i]
	}
	if s = strings.TrimSpace(s); s != "" {
		return []string{s}
	}
	return nil
}

// wall returns t's wall clock in its zone, as a UTC time: arithmetic on it ignores DST.
func wall(t time.Time) time.Time {
	y, m, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, m, d, h, mi, s, t.Nanosecond(), time.UTC)
}

// fromWall returns the instant at which loc's clocks show w's wall clock.
func fromWall(w time.Time, loc *time.Location) time.Time {
	y, m, d := w.Date()
	h, mi, s := w.Clock()
	return time.Date(y, m, d, h, mi, s, w.Nanosecond(), loc)
}

// endOf returns when the instance of e starting at s ends.
func (e *event) endOf(s time.Time) time.Time {
	loc := e.start.Location()
	return fromWall(wall(s.In(loc)).Add(e.span), loc).Add(e.exact)
}

// shifts returns the calendar's shifts overlapping [from, to), sorted by start, at most
// MaxShifts.
func (c *calendar) shifts(from, to time.Time) ([]Shift, error) {
	var out []Shift
	budget := maxSteps
	for _, e := range c.events {
		var skip map[int64]bool
		if !e.hasRecurrenceID && e.uid != "" {
			skip = c.overridden[e.uid]
		}
		err := e.instances(from, to, skip, &budget, func(s, end time.Time) error {
			for _, w := range e.who {
				if len(out) == MaxShifts {
					return tooManyShifts(from, to)
				}
				out = append(out, Shift{Start: s.UTC(), End: end.UTC(), Who: w})
			}
			return nil
		})
		if errors.Is(err, errBudget) {
			return nil, err
		} else if err != nil {
			if e.uid != "" {
				return nil, fmt.Errorf("event %q: %w", timebox.Clip(e.uid), err)
			}
			return nil, err
		}
	}
	sortShifts(out)
	return slices.CompactFunc(out, func(a, b Shift) bool {
		return a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.Who == b.Who
	}), nil
}

func sortShifts(s []Shift) {
	slices.SortFunc(s, func(a, b Shift) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		} else if c := a.End.Compare(b.End); c != 0 {
			return c
		}
		return cmp.Compare(a.Who, b.Who)
	})
}
