package timebox_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

const maxDuration = 3650 * 24 * time.Hour

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s":    90 * time.Second,
		"45m":    45 * time.Minute,
		"8h":     8 * time.Hour,
		"1h30m":  90 * time.Minute,
		"30d":    30 * 24 * time.Hour,
		"1d":     24 * time.Hour,
		"3650d":  maxDuration,
		" 2h ":   2 * time.Hour,
		"1.5h":   90 * time.Minute,
		"500ms":  500 * time.Millisecond,
		"87600h": maxDuration,
	} {
		got, err := timebox.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestParseDurationRefused(t *testing.T) {
	for _, in := range []string{
		"", "0s", "0", "0d", "-5m", "-1d", "5", "soon", "4000d", "3651d", "87601h",
		"1d12h", "1.5d", "d", "30D", "h", "+", "-0s", "99999999999999999999d", "9223372036854775807d",
	} {
		d, err := timebox.ParseDuration(in)
		if d != 0 {
			t.Errorf("ParseDuration(%q) returned %v with its error", in, d)
		}
		wantErr(t, err, timebox.EINVALID, strconv.Quote(strings.TrimSpace(in)))
	}
}

// A negative day count must never come back as a positive duration, however large it is:
// the day count times 24h overflows int64 and wraps around.
func TestParseDurationRefusesNegativeDayCounts(t *testing.T) {
	for _, in := range []string{"-281474976710655d", "-281474976710654d", "-106752d", "-9223372036854775807d"} {
		d, err := timebox.ParseDuration(in)
		if err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error (negative duration)", in, d)
			continue
		}
		wantErr(t, err, timebox.EINVALID, strconv.Quote(in))
	}
}

func TestParseTime(t *testing.T) {
	loc := time.FixedZone("EET", 2*3600)
	now := time.Date(2026, 3, 10, 10, 0, 0, 0, loc) // 08:00 UTC
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"now", now},
		{" now ", now},
		{"+2h", now.Add(2 * time.Hour)},
		{"+90s", now.Add(90 * time.Second)},
		{"+1d", now.Add(24 * time.Hour)},
		{"2026-01-02T15:04:05Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
		{"2026-01-02T15:04:05.25+05:30", time.Date(2026, 1, 2, 15, 4, 5, 250e6, time.FixedZone("", 5*3600+1800))},
		{"2026-01-02 15:04", time.Date(2026, 1, 2, 15, 4, 0, 0, loc)},
		{"2026-01-02 15:04:05", time.Date(2026, 1, 2, 15, 4, 5, 0, loc)},
		{"2026-01-02T15:04", time.Date(2026, 1, 2, 15, 4, 0, 0, loc)},
		{"2026-01-02", time.Date(2026, 1, 2, 0, 0, 0, 0, loc)},
		// Clock times: today when still ahead, otherwise tomorrow.
		{"15:04", time.Date(2026, 3, 10, 15, 4, 0, 0, loc)},
		{"10:00:01", time.Date(2026, 3, 10, 10, 0, 1, 0, loc)},
		{"09:59", time.Date(2026, 3, 11, 9, 59, 0, 0, loc)},
		{"10:00", time.Date(2026, 3, 11, 10, 0, 0, 0, loc)}, // exactly now has passed
		{"00:00", time.Date(2026, 3, 11, 0, 0, 0, 0, loc)},
	} {
		got, err := timebox.ParseTime(tc.in, now, loc)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// "15:04" is a clock time in loc, on loc's date, even when now is given in another zone
// whose date differs.
func TestParseTimeClockUsesLocationDate(t *testing.T) {
	loc := time.FixedZone("EET", 2*3600)
	now := time.Date(2026, 3, 10, 23, 30, 0, 0, time.UTC) // 2026-03-11 01:30 in loc
	got, err := timebox.ParseTime("08:00", now, loc)
	if want := time.Date(2026, 3, 11, 8, 0, 0, 0, loc); err != nil || !got.Equal(want) {
		t.Errorf("ParseTime(08:00) = %v, %v; want %v", got, err, want)
	}
	got, err = timebox.ParseTime("01:00", now, loc)
	if want := time.Date(2026, 3, 12, 1, 0, 0, 0, loc); err != nil || !got.Equal(want) {
		t.Errorf("ParseTime(01:00) = %v, %v; want %v", got, err, want)
	}
}

func TestParseTimeRefused(t *testing.T) {
	now := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	for _, in := range []string{"", "soon", "tomorrow", "25:00", "12:60", "2026-13-01", "2026-02-30 10:00", "15h04", "Now", "+soon", "+-5m", "+0s", "+", "+5000d"} {
		got, err := timebox.ParseTime(in, now, time.UTC)
		if !got.IsZero() {
			t.Errorf("ParseTime(%q) returned %v with its error", in, got)
		}
		if err == nil {
			t.Errorf("ParseTime(%q) succeeded", in)
			continue
		}
		if timebox.ErrorCode(err) != timebox.EINVALID {
			t.Errorf("ParseTime(%q): code %q, want %q", in, timebox.ErrorCode(err), timebox.EINVALID)
		}
	}
}

// Every error of ParseTime names what the user typed, so that a flag among several can be
// told apart ("--from +" must not say `invalid duration ""`).
func TestParseTimeErrorNamesInput(t *testing.T) {
	now := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	for _, in := range []string{"soon", "25:00", "2026-13-01", "+", "+soon", "+-5m"} {
		_, err := timebox.ParseTime(in, now, time.UTC)
		if err == nil {
			t.Errorf("ParseTime(%q) succeeded", in)
			continue
		}
		if msg := timebox.ErrorMessage(err); !strings.Contains(msg, strconv.Quote(in)) {
			t.Errorf("ParseTime(%q): message %q does not name the input %q", in, msg, in)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "45m", "8h", "1h30m", "30d", "3650d", "3651d", "", "0s", "-5m", "5", "soon", "4000d", "1d12h", " 7d ", "+3d", "1e3h", "9223372036854775807ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := timebox.ParseDuration(s)
		if err != nil {
			if d != 0 {
				t.Fatalf("ParseDuration(%q) = %v with error %v", s, d, err)
			}
			if timebox.ErrorCode(err) != timebox.EINVALID {
				t.Fatalf("ParseDuration(%q): code %q", s, timebox.ErrorCode(err))
			}
			if !strings.Contains(timebox.ErrorMessage(err), strconv.Quote(strings.TrimSpace(s))) {
				t.Fatalf("ParseDuration(%q): message %q does not name the input", s, timebox.ErrorMessage(err))
			}
			return
		}
		if d <= 0 || d > maxDuration {
			t.Fatalf("ParseDuration(%q) = %v, outside (0, 3650d]", s, d)
		}
		if strings.HasPrefix(strings.TrimSpace(s), "-") {
			t.Fatalf("ParseDuration(%q) = %v: a negative input was accepted", s, d)
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"now", "+2h", "+30d", "2026-01-02T15:04:05Z", "2026-01-02 15:04", "2026-01-02", "15:04", "23:59:59", "garbage", "+", "", "24:00"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	loc := time.FixedZone("X", -7*3600)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := timebox.ParseTime(s, now, loc)
		if err != nil {
			if !got.IsZero() || timebox.ErrorCode(err) != timebox.EINVALID {
				t.Fatalf("ParseTime(%q) = %v, %v (code %q)", s, got, err, timebox.ErrorCode(err))
			}
			return
		}
		if strings.HasPrefix(strings.TrimSpace(s), "+") && !got.After(now) {
			t.Fatalf("ParseTime(%q) = %v, not after now", s, got)
		}
	})
}
