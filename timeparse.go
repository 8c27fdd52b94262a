package timebox

import (
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses Go duration syntax (90s, 45m, 8h, 1h30m) and whole days (30d). It
// refuses zero, negative and absurd (over ten years) durations.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" && !strings.ContainsAny(n, "hmsµun") {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
		if days < 0 || days > 3650 {
			d = -1
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	switch {
	case err != nil:
		return 0, Errorf(EINVALID, "invalid duration %q (use Go syntax such as 90s, 45m, 8h, or days such as 30d)", Clip(s))
	case d <= 0 || d > 3650*24*time.Hour:
		return 0, Errorf(EINVALID, "invalid duration %q: must be positive and at most 3650d", Clip(s))
	}
	return d, nil
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTime parses a point in time: "now", "+DURATION" (from now), RFC 3339, a date and
// time without zone (in loc), or a clock time "15:04" (today in loc, or tomorrow when that
// has passed).
func ParseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now, nil
	}
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		d, err := ParseDuration(rest)
		if err != nil {
			return time.Time{}, Errorf(EINVALID, "invalid time %q: %s", Clip(s), ErrorMessage(err))
		}
		return now.Add(d), nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"15:04", "15:04:05"} {
		if c, err := time.ParseInLocation(layout, s, loc); err == nil {
			n := now.In(loc)
			t := time.Date(n.Year(), n.Month(), n.Day(), c.Hour(), c.Minute(), c.Second(), 0, loc)
			if !t.After(now) {
				t = t.AddDate(0, 0, 1)
			}
			return t, nil
		}
	}
	return time.Time{}, Errorf(EINVALID, "invalid time %q (use RFC 3339 such as 2026-01-02T15:04:05Z, \"2026-01-02 15:04\", \"15:04\", \"now\" or \"+2h\")", Clip(s))
}
