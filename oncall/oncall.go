// Package oncall answers who is on call, from a source a team really has: an iCalendar feed
// (PagerDuty, Opsgenie, Google Calendar, a file) or a static rota declared in the configuration.
// Timebox uses it to auto-approve low-risk requests of the engineer on call during their shift.
//
// It fails closed: when a source cannot be read and no copy of it younger than MaxStale is
// held, it reports EUNAVAILABLE rather than guessing.
package oncall

import (
	"fmt"
	"iter"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// Limits and defaults of the package.
const (
	// MaxStale is the age beyond which the last good copy of a source is no longer used when
	// the source cannot be read again: OnCall and Shifts then fail with EUNAVAILABLE.
	MaxStale = time.Hour
	// DefaultRefresh is how often an URL source is fetched again when the schedule sets no
	// Refresh.
	DefaultRefresh = 5 * time.Minute
	// Lookahead is how far past the asked instant OnCall follows a chain of directly
	// following shifts of the same person to report until when they are on call.
	Lookahead = 31 * 24 * time.Hour
	// MaxSourceBytes is the largest calendar read from a file or an URL.
	MaxSourceBytes = 10 << 20
	// MaxShifts bounds the shifts one call expands (recurrences are expanded only within the
	// asked range, and at most this many occurrences per recurring event).
	MaxShifts = 10000
)

// Schedule is one on-call schedule declared in the configuration.
type Schedule struct {
	Name string `yaml:"name"`
	// ICS is an iCalendar source: a file path, or an http(s) URL (what PagerDuty and Opsgenie
	// export; webcal:// is fetched as https://).
	ICS string `yaml:"ics"`
	// Rotation is a static rota: Users take Shift-long turns starting at Start, in order,
	// forever.
	Rotation *Rotation `yaml:"rotation"`
	// Refresh is how often an URL is fetched again (default 5m, at most MaxStale); a file is
	// re-read when its modification time changes.
	Refresh timebox.Duration `yaml:"refresh"`
}

// Rotation is a static rota: Users take Shift-long turns starting at Start, in order, forever.
// Nobody is on call before Start. Turns are exact durations: they do not follow DST.
type Rotation struct {
	// Users are user names or emails, as Shift.Who reports them; a name may repeat.
	Users []string         `yaml:"users"`
	Start time.Time        `yaml:"start"`
	Shift timebox.Duration `yaml:"shift"`
}

// Shift is one person's turn: Who is on call from Start (inclusive) to End (exclusive), both
// in UTC.
type Shift struct {
	Start time.Time
	End   time.Time
	// Who is as written in the source: a user name, an email, or a display name.
	Who string
}

var schedulePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func fieldError(field, format string, args ...any) error {
	return timebox.Errorf(timebox.EINVALID, "%s: %s", field, fmt.Sprintf(format, args...))
}

// Validate checks the schedule and returns an EINVALID error naming the first bad field under
// the prefix field (e.g. "on_call[0]"). Exactly one of ICS and Rotation must be set. An URL
// is never echoed beyond its host: the rest may be a secret token.
func (s *Schedule) Validate(field string) error {
	switch {
	case !schedulePattern.MatchString(s.Name):
		return fieldError(field+".name", "%q is not a valid schedule name (lowercase letters, digits, '.', '_', '-')", timebox.Clip(s.Name))
	case s.ICS != "" && s.Rotation != nil:
		return fieldError(field+".ics", "set either ics or rotation, not both")
	case s.ICS == "" && s.Rotation == nil:
		return fieldError(field, "one of ics (a file path or an http(s) URL) or rotation is required")
	case s.Refresh < 0:
		return fieldError(field+".refresh", "must not be negative")
	case time.Duration(s.Refresh) > MaxStale:
		return fieldError(field+".refresh", "must be at most %s (an older copy is never used)", MaxStale)
	case s.Refresh != 0 && time.Duration(s.Refresh) < 10*time.Second:
		return fieldError(field+".refresh", "must be at least 10s")
	}
	if s.Rotation != nil {
		return s.Rotation.validate(field + ".rotation")
	}
	if _, _, err := sourceOf(s.ICS); err != nil {
		return fieldError(field+".ics", "%s", err.Error())
	}
	return nil
}

func (r *Rotation) validate(field string) error {
	if len(r.Users) == 0 {
		return fieldError(field+".users", "must list at least one user")
	}
	for i, u := range r.Users {
		if strings.TrimSpace(u) == "" {
			return fieldError(fmt.Sprintf("%s.users[%d]", field, i), "empty user")
		}
	}
	switch {
	case r.Start.IsZero():
		return fieldError(field+".start", "required (when the first user's first shift starts, e.g. 2026-01-05T09:00:00+01:00)")
	case time.Duration(r.Shift) < time.Minute:
		return fieldError(field+".shift", "must be at least 1m")
	}
	return nil
}

// ValidateSchedules validates each schedule under field (e.g. "on_call") and refuses a name
// declared twice.
func ValidateSchedules(field string, schedules []Schedule) error {
	seen := map[string]bool{}
	for i := range schedules {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := schedules[i].Validate(f); err != nil {
			return err
		} else if seen[schedules[i].Name] {
			return fieldError(f+".name", "schedule %q is declared twice", schedules[i].Name)
		}
		seen[schedules[i].Name] = true
	}
	return nil
}

// sourceOf tells a file path from an URL and returns what to read (webcal:// becomes
// https://) and whether it is an URL. Its errors never contain more of an URL than the host.
func sourceOf(ics string) (loc string, isURL bool, err error) {
	scheme, rest, ok := strings.Cut(ics, "://")
	if !ok {
		if strings.TrimSpace(ics) == "" {
			return "", false, fmt.Errorf("empty file path")
		}
		return ics, false, nil
	}
	switch strings.ToLower(scheme) {
	case "http", "https":
	case "webcal", "webcals":
		ics = "https://" + rest
	default:
		return "", false, fmt.Errorf("unsupported scheme %q (use a file path or an http(s) URL)", timebox.Clip(scheme))
	}
	u, err := url.Parse(ics)
	if err != nil || u.Hostname() == "" {
		return "", false, fmt.Errorf("invalid URL %s", redact(ics))
	}
	return ics, true, nil
}

// redact returns an URL cut after its host ("https://acme.pagerduty.com/…"): calendar feed
// URLs carry their secret token in the path or the query, and user info may hold a password.
// An URL that does not parse shows its scheme only: where its host ends is then unknown.
func redact(raw string) string {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return "an URL"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return strings.ToLower(timebox.Clip(scheme)) + "://…"
	}
	out := u.Scheme + "://" + timebox.Clip(u.Host)
	if u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		out += "/…"
	}
	return out
}

// matches reports whether a shift's Who designates the user: their name exactly, or their
// email or one of their OnCallNames in any case.
func matches(who string, u *timebox.User) bool {
	who = strings.TrimSpace(who)
	return who != "" && (who == u.Name || strings.EqualFold(who, u.Email) ||
		slices.ContainsFunc(u.OnCallNames, func(n string) bool { return strings.EqualFold(strings.TrimSpace(n), who) }))
}

// turns yields the rotation's turns from the one holding from (or the first), in order, until
// their start no longer fits a time.Duration after Start (292 years).
func (r *Rotation) turns(from time.Time) iter.Seq[Shift] {
	return func(yield func(Shift) bool) {
		d, n := time.Duration(r.Shift), int64(len(r.Users))
		if d <= 0 || n == 0 {
			return
		}
		var k int64
		if from.After(r.Start) {
			k = int64(from.Sub(r.Start) / d) // Sub saturates: k*d never overflows
		}
		for ; k <= math.MaxInt64/int64(d); k++ {
			start := r.Start.Add(time.Duration(k) * d)
			if !yield(Shift{Start: start.UTC(), End: start.Add(d).UTC(), Who: r.Users[k%n]}) {
				return
			}
		}
	}
}

// shifts returns the rotation's turns overlapping [from, to), at most MaxShifts.
func (r *Rotation) shifts(from, to time.Time) ([]Shift, error) {
	var out []Shift
	for s := range r.turns(from) {
		if !s.Start.Before(to) {
			break
		} else if !s.End.After(from) {
			continue // only when from is beyond the turns' range
		} else if len(out) == MaxShifts {
			return nil, tooManyShifts(from, to)
		}
		out = append(out, s)
	}
	return out, nil
}

func tooManyShifts(from, to time.Time) error {
	return fmt.Errorf("more than %d shifts between %s and %s: ask for a shorter range", MaxShifts, from.Format(time.RFC3339), to.Format(time.RFC3339))
}
