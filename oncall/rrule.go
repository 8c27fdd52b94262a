package oncall

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// rrule is the part of an RFC 5545 recurrence rule that on-call exports use: FREQ DAILY or
// WEEKLY with INTERVAL, COUNT, UNTIL, BYDAY and WKST, and plain MONTHLY and YEARLY (same day
// of the month, months without that day skipped). Other parts are refused rather than
// misread.
type rrule struct {
	freq     string
	interval int
	count    int       // 0: no COUNT
	until    time.Time // inclusive; zero: no UNTIL
	byday    []time.Weekday
	wkst     time.Weekday
}

var weekdays = map[string]time.Weekday{
	"SU": time.Sunday, "MO": time.Monday, "TU": time.Tuesday, "WE": time.Wednesday,
	"TH": time.Thursday, "FR": time.Friday, "SA": time.Saturday,
}

// parseRRule parses an RRULE value for an event starting at start.
func parseRRule(value string, start time.Time) (*rrule, error) {
	r := &rrule{interval: 1, wkst: time.Monday}
	seen := map[string]bool{}
	for _, part := range strings.Split(value, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.ToUpper(strings.TrimSpace(k)), strings.ToUpper(strings.TrimSpace(v))
		switch {
		case !ok:
			return nil, fmt.Errorf("malformed part %q", timebox.Clip(part))
		case seen[k]:
			return nil, fmt.Errorf("%s given twice", clipName(k))
		}
		seen[k] = true
		if err := r.set(k, v, start); err != nil {
			return nil, err
		}
	}
	switch {
	case r.freq == "":
		return nil, fmt.Errorf("no FREQ")
	case len(r.byday) > 0 && r.freq != "DAILY" && r.freq != "WEEKLY":
		return nil, fmt.Errorf("BYDAY is only supported with FREQ=DAILY or WEEKLY")
	}
	slices.SortFunc(r.byday, func(a, b time.Weekday) int { return r.offset(a) - r.offset(b) })
	r.byday = slices.Compact(r.byday)
	return r, nil
}

func (r *rrule) set(k, v string, start time.Time) error {
	var err error
	switch k {
	case "FREQ":
		if v != "DAILY" && v != "WEEKLY" && v != "MONTHLY" && v != "YEARLY" {
			return fmt.Errorf("FREQ=%s is not supported (DAILY, WEEKLY, MONTHLY, YEARLY are)", clipName(v))
		}
		r.freq = v
	case "INTERVAL":
		if r.interval, err = strconv.Atoi(v); err != nil || r.interval < 1 || r.interval > 10000 {
			return fmt.Errorf("INTERVAL=%s: want 1 to 10000", clipName(v))
		}
	case "COUNT":
		if r.count, err = strconv.Atoi(v); err != nil || r.count < 1 || r.count > 1<<30 {
			return fmt.Errorf("COUNT=%s: want a positive number", clipName(v))
		}
	case "UNTIL":
		t, isDate, ok := parseDateTime(v, start.Location())
		if !ok {
			return fmt.Errorf("UNTIL=%s: invalid date or date-time", clipName(v))
		} else if isDate { // through the end of that day, in the event's zone
			t = fromWall(t.AddDate(0, 0, 1), start.Location()).Add(-time.Nanosecond)
		}
		r.until = t
	case "BYDAY":
		for _, d := range strings.Split(v, ",") {
			wd, ok := weekdays[strings.TrimSpace(d)]
			if !ok {
				return fmt.Errorf("BYDAY=%s: want weekdays such as MO,TU (numbered weekdays are not supported)", clipName(v))
			}
			r.byday = append(r.byday, wd)
		}
	case "WKST":
		wd, ok := weekdays[v]
		if !ok {
			return fmt.Errorf("WKST=%s: want a weekday such as MO", clipName(v))
		}
		r.wkst = wd
	default:
		return fmt.Errorf("%s is not supported", clipName(k))
	}
	return nil
}

// offset is the day's place in the week that starts on WKST.
func (r *rrule) offset(d time.Weekday) int { return (int(d) - int(r.wkst) + 7) % 7 }

// instances calls emit for each instance of e that overlaps [from, to), except those that
// start at an EXDATE or at a start in skip. Without COUNT, a rule is expanded only from
// shortly before from; in all cases at most MaxShifts periods are visited.
//
// Each instance and period visited costs one step of budget, shared by all the events of a
// calendar: a calendar of many long recurrences fails instead of running for minutes.
func (e *event) instances(from, to time.Time, skip map[int64]bool, budget *int, emit func(start, end time.Time) error) error {
	try := func(s time.Time) error {
		if *budget--; *budget < 0 {
			return errBudget
		}
		if e.exdates[s.Unix()] || skip[s.Unix()] {
			return nil
		}
		if end := e.endOf(s); end.After(s) && end.After(from) && s.Before(to) {
			return emit(s, end)
		}
		return nil
	}
	if err := try(e.start); err != nil {
		return err
	}
	for _, s := range e.rdates {
		if err := try(s); err != nil {
			return err
		}
	}
	if e.rule == nil {
		return nil
	}
	return e.rule.expand(e, from, to, budget, try)
}

// maxSteps is the budget of one expansion of a calendar (about a tenth of a second).
const maxSteps = 1000000

var errBudget = fmt.Errorf("too many recurrences to expand (more than %d steps): ask for a shorter range", maxSteps)

// expand calls try for the rule's instances after DTSTART (which counts as the first) up to
// the first that starts at or after to.
func (r *rrule) expand(e *event, from, to time.Time, budget *int, try func(time.Time) error) error {
	loc := e.start.Location()
	s0 := wall(e.start)
	k := 0
	if r.count == 0 {
		k = r.firstPeriod(s0, wall(from.In(loc)).Add(-e.span-e.exact-8*24*time.Hour))
	}
	n := 1
	var buf [7]time.Time
	for periods := 0; ; k++ {
		if *budget--; *budget < 0 {
			return errBudget
		} else if periods++; periods > MaxShifts {
			return fmt.Errorf("recurrence runs over more than %d periods before %s: ask for a shorter range", MaxShifts, to.Format(time.RFC3339))
		}
		begin, cands := r.period(s0, k, buf[:0])
		if b := fromWall(begin, loc); !b.Before(to) || (!r.until.IsZero() && b.After(r.until)) {
			return nil
		}
		for _, c := range cands {
			if !c.After(s0) {
				continue // DTSTART is counted already
			}
			if n++; r.count > 0 && n > r.count {
				return nil
			}
			t := fromWall(c, loc)
			if (!r.until.IsZero() && t.After(r.until)) || !t.Before(to) {
				return nil
			}
			if err := try(t); err != nil {
				return err
			}
		}
	}
}

// period returns the wall clock at which the k-th period of the rule begins and the starts
// of its instances, in order.
func (r *rrule) period(s0 time.Time, k int, buf []time.Time) (time.Time, []time.Time) {
	y, m, d := s0.Date()
	h, mi, s := s0.Clock()
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, h, mi, s, 0, time.UTC) }
	step := k * r.interval
	switch r.freq {
	case "DAILY":
		c := at(y, m, d+step)
		if len(r.byday) == 0 || slices.Contains(r.byday, c.Weekday()) {
			buf = append(buf, c)
		}
		return c, buf
	case "WEEKLY":
		ws := at(y, m, d-r.offset(s0.Weekday())+7*step)
		if len(r.byday) == 0 {
			return ws, append(buf, at(y, m, d+7*step))
		}
		for _, wd := range r.byday {
			buf = append(buf, ws.AddDate(0, 0, r.offset(wd)))
		}
		return ws, buf
	case "MONTHLY":
		if c := at(y, m+time.Month(step), d); c.Day() == d {
			buf = append(buf, c)
		}
		return at(y, m+time.Month(step), 1), buf
	default: // YEARLY
		if c := at(y+step, m, d); c.Day() == d {
			buf = append(buf, c)
		}
		return at(y+step, 1, 1), buf
	}
}

// firstPeriod returns the index of a period that begins at or before lo (a wall clock), so
// that every instance of the periods before it starts before lo: expansion can start there.
func (r *rrule) firstPeriod(s0, lo time.Time) int {
	if !lo.After(s0) {
		return 0
	}
	var n int
	switch r.freq {
	case "DAILY":
		day0 := time.Date(s0.Year(), s0.Month(), s0.Day(), 0, 0, 0, 0, time.UTC)
		n = int((lo.Unix() - day0.Unix()) / (24 * 3600)) // not Sub: it saturates at 292 years
	case "WEEKLY":
		ws := time.Date(s0.Year(), s0.Month(), s0.Day()-r.offset(s0.Weekday()), 0, 0, 0, 0, time.UTC)
		n = int((lo.Unix() - ws.Unix()) / (7 * 24 * 3600))
	case "MONTHLY":
		n = (lo.Year()-s0.Year())*12 + int(lo.Month()) - int(s0.Month()) - 1
	default:
		n = lo.Year() - s0.Year() - 1
	}
	return max(0, n) / r.interval
}
