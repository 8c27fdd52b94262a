package oncall

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"gopkg.in/yaml.v3"
)

func TestValidate(t *testing.T) {
	rot := func() *Rotation {
		return &Rotation{Users: []string{"alice", "bob"}, Start: utc("2026-01-05T06:00"), Shift: timebox.Duration(8 * time.Hour)}
	}
	tests := []struct {
		name string
		s    Schedule
		want string // "" for valid
	}{
		{"file", Schedule{Name: "db-primary", ICS: "/etc/timebox/oncall.ics"}, ""},
		{"url", Schedule{Name: "db", ICS: "https://acme.pagerduty.com/private/abc/feed/P1", Refresh: timebox.Duration(time.Minute)}, ""},
		{"webcal", Schedule{Name: "db", ICS: "webcal://acme.pagerduty.com/private/abc/feed/P1"}, ""},
		{"rotation", Schedule{Name: "db", Rotation: rot()}, ""},
		{"bad name", Schedule{Name: "DB Primary", ICS: "x.ics"}, `on_call[0].name: "DB Primary" is not a valid schedule name`},
		{"neither", Schedule{Name: "db"}, "on_call[0]: one of ics (a file path or an http(s) URL) or rotation is required"},
		{"both", Schedule{Name: "db", ICS: "x.ics", Rotation: rot()}, "on_call[0].ics: set either ics or rotation, not both"},
		{"ftp", Schedule{Name: "db", ICS: "ftp://files.example.com/secret-token/x.ics"}, `on_call[0].ics: unsupported scheme "ftp"`},
		{"no host", Schedule{Name: "db", ICS: "https:///secret-token"}, "on_call[0].ics: invalid URL https:///…"},
		{"refresh too short", Schedule{Name: "db", ICS: "https://h/x", Refresh: timebox.Duration(time.Second)}, "on_call[0].refresh: must be at least 10s"},
		{"refresh too long", Schedule{Name: "db", ICS: "https://h/x", Refresh: timebox.Duration(2 * time.Hour)}, "on_call[0].refresh: must be at most 1h0m0s"},
		{"no users", Schedule{Name: "db", Rotation: &Rotation{Start: utc("2026-01-05T06:00"), Shift: timebox.Duration(time.Hour)}}, "on_call[0].rotation.users: must list at least one user"},
		{"empty user", Schedule{Name: "db", Rotation: &Rotation{Users: []string{"a", " "}, Start: utc("2026-01-05T06:00"), Shift: timebox.Duration(time.Hour)}}, "on_call[0].rotation.users[1]: empty user"},
		{"no start", Schedule{Name: "db", Rotation: &Rotation{Users: []string{"a"}, Shift: timebox.Duration(time.Hour)}}, "on_call[0].rotation.start: required"},
		{"short shift", Schedule{Name: "db", Rotation: &Rotation{Users: []string{"a"}, Start: utc("2026-01-05T06:00"), Shift: timebox.Duration(time.Second)}}, "on_call[0].rotation.shift: must be at least 1m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate("on_call[0]")
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			case err != nil && timebox.ErrorCode(err) != timebox.EINVALID:
				t.Errorf("code %s", timebox.ErrorCode(err))
			case err != nil && strings.Contains(err.Error(), "secret-token"):
				t.Errorf("error %q shows the URL's secret", err)
			}
		})
	}
	err := ValidateSchedules("on_call", []Schedule{{Name: "db", ICS: "a.ics"}, {Name: "db", ICS: "b.ics"}})
	if err == nil || !strings.Contains(err.Error(), `on_call[1].name: schedule "db" is declared twice`) {
		t.Errorf("duplicate: %v", err)
	}
}

func TestScheduleYAML(t *testing.T) {
	var got []Schedule
	err := yaml.Unmarshal([]byte(`
- name: db-primary
  ics: https://acme.pagerduty.com/private/abc/feed/P1
  refresh: 2m
- name: weekend
  rotation:
    users: [alice, bob@example.com]
    start: 2026-01-03T09:00:00+01:00
    shift: 1d
`), &got)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateSchedules("on_call", got); err != nil {
		t.Fatal(err)
	}
	if got[0].Refresh != timebox.Duration(2*time.Minute) || got[1].Rotation.Shift != timebox.Duration(24*time.Hour) ||
		!got[1].Rotation.Start.Equal(utc("2026-01-03T08:00")) || !slices.Equal(got[1].Rotation.Users, []string{"alice", "bob@example.com"}) {
		t.Errorf("decoded %+v %+v", got[0], *got[1].Rotation)
	}
}

func TestOnCallRotation(t *testing.T) {
	start := utc("2026-01-05T06:00")
	r := NewResolver([]Schedule{
		{Name: "three", Rotation: &Rotation{Users: []string{"alice", "bob@example.com", "carol"}, Start: start, Shift: timebox.Duration(8 * time.Hour)}},
		{Name: "twice", Rotation: &Rotation{Users: []string{"alice", "alice", "bob"}, Start: start, Shift: timebox.Duration(8 * time.Hour)}},
	})
	alice := &timebox.User{Name: "alice", Email: "alice@example.com"}
	bob := &timebox.User{Name: "bob", Email: "Bob@Example.com"}
	tests := []struct {
		schedule string
		user     *timebox.User
		at       string
		until    string // "" for not on call
	}{
		{"three", alice, "2026-01-05T05:59", ""}, // before Start: nobody
		{"three", alice, "2026-01-05T06:00", "2026-01-05T14:00"},
		{"three", bob, "2026-01-05T06:00", ""},
		{"three", bob, "2026-01-05T14:00", "2026-01-05T22:00"}, // email, any case
		{"three", alice, "2026-01-05T14:00", ""},               // her shift ended
		{"three", alice, "2026-01-06T06:30", "2026-01-06T14:00"},
		{"three", alice, "2026-03-01T07:00", "2026-03-01T14:00"}, // 165 turns later
		{"three", alice, "2026-03-01T15:00", ""},
		{"twice", alice, "2026-01-05T07:00", "2026-01-05T22:00"}, // two turns merged
		{"twice", alice, "2026-01-05T22:00", ""},
		{"twice", bob, "2026-01-05T22:00", "2026-01-06T06:00"},
	}
	for _, tt := range tests {
		until, ok, err := r.OnCall(context.Background(), tt.schedule, tt.user, utc(tt.at))
		if err != nil {
			t.Fatal(err)
		}
		if want := tt.until != ""; ok != want || (ok && !until.Equal(utc(tt.until))) {
			t.Errorf("%s %s at %s: %v until %s, want %q", tt.schedule, tt.user.Name, tt.at, ok, until, tt.until)
		}
	}
	shifts, err := r.Shifts(context.Background(), "three", utc("2026-01-04T00:00"), utc("2026-01-05T15:00"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2026-01-05T06:00/2026-01-05T14:00 alice", "2026-01-05T14:00/2026-01-05T22:00 bob@example.com"}
	if got := format(shifts); !slices.Equal(got, want) {
		t.Errorf("shifts %v, want %v", got, want)
	}
	if _, err := r.Shifts(context.Background(), "three", start, start.AddDate(20, 0, 0)); timebox.ErrorCode(err) != timebox.EINVALID ||
		!strings.Contains(err.Error(), "ask for a shorter range") {
		t.Errorf("20 years of 8h shifts: %v", err)
	}
}

func TestOnCallErrors(t *testing.T) {
	r := NewResolver([]Schedule{{Name: "db", Rotation: &Rotation{Users: []string{"a"}, Start: utc("2026-01-05T06:00"), Shift: timebox.Duration(time.Hour)}}})
	ctx := context.Background()
	if _, _, err := r.OnCall(ctx, "nope", &timebox.User{Name: "a"}, time.Now()); timebox.ErrorCode(err) != timebox.ENOTFOUND {
		t.Errorf("unknown schedule: %v", err)
	}
	if _, _, err := r.OnCall(ctx, "db", nil, time.Now()); timebox.ErrorCode(err) != timebox.EINVALID {
		t.Errorf("nil user: %v", err)
	}
	if _, err := r.Shifts(ctx, "db", utc("2026-01-05T06:00"), utc("2026-01-05T06:00")); timebox.ErrorCode(err) != timebox.EINVALID {
		t.Errorf("empty range: %v", err)
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"https://acme.pagerduty.com/private/0123456789abcdef/feed/PABC123":                              "https://acme.pagerduty.com/…",
		"https://acme.app.opsgenie.com/webapi/webcal/getRecentSchedule?webcalToken=s3cr3t&scheduleId=x": "https://acme.app.opsgenie.com/…",
		"https://user:pa55@cal.example.com":                                                             "https://cal.example.com/…",
		"https://cal.example.com":                                                                       "https://cal.example.com",
		"HTTP://cal.example.com:8443?token=x":                                                           "http://cal.example.com:8443/…",
		"not a url":                                                                                     "an URL",
		"https://alice:s3cr/et@cal.example.com/x":                                                       "https://…", // does not parse: where the host ends is unknown
	}
	for in, want := range tests {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrubURL(t *testing.T) {
	raw := "https://alice:Sup3rS3cret@cal.example.com/private/" + token + "/feed?" + query
	got := scrubURL(raw, "proxy refused alice:Sup3rS3cret, Sup3rS3cret, "+token+" and Q7sEcReTqUeRy at "+raw)
	for _, secret := range []string{"Sup3rS3cret", token, "Q7sEcReTqUeRy"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q shows %q", got, secret)
		}
	}
}

func TestMatches(t *testing.T) {
	u := &timebox.User{Name: "alice", Email: "Alice@Example.com", OnCallNames: []string{"", " Alice Example "}}
	for who, want := range map[string]bool{
		"alice": true, "ALICE@example.com": true, "alice example": true, " alice ": true,
		"Alice": false, "": false, "  ": false, "bob": false,
	} {
		if got := matches(who, u); got != want {
			t.Errorf("matches(%q) = %v, want %v", who, got, want)
		}
	}
	if matches("x", &timebox.User{}) || matches("", &timebox.User{}) {
		t.Error("a user without name or email matches")
	}
}

// TestOnCallShortRotation: a rota of turns of a few minutes (valid from 1m) holds more turns
// in Lookahead than MaxShifts; OnCall walks them rather than failing.
func TestOnCallShortRotation(t *testing.T) {
	start := utc("2026-01-05T06:00")
	r := NewResolver([]Schedule{
		{Name: "pair", Rotation: &Rotation{Users: []string{"alice", "bob"}, Start: start, Shift: timebox.Duration(time.Minute)}},
		{Name: "solo", Rotation: &Rotation{Users: []string{"alice"}, Start: start, Shift: timebox.Duration(time.Minute)}},
		{Name: "ancient", Rotation: &Rotation{Users: []string{"alice"}, Start: utc("1700-01-01T00:00"), Shift: timebox.Duration(time.Minute)}},
	})
	for _, tt := range []struct{ schedule, at, want string }{
		{"pair", "2026-01-05T06:00", "2026-01-05T06:01"},
		{"pair", "2026-01-05T06:01", ""},
		{"pair", "2026-02-05T07:02", "2026-02-05T07:03"},
		{"solo", "2026-01-05T06:00", "2026-02-05T06:00"}, // followed for Lookahead
		{"ancient", "2026-01-05T06:00", ""},              // beyond 292 years of turns: nobody, and no endless walk
	} {
		if got := onCall(r, tt.schedule, alice, tt.at); got != tt.want {
			t.Errorf("%s at %s: %q, want %q", tt.schedule, tt.at, got, tt.want)
		}
	}
	if shifts, err := r.Shifts(context.Background(), "ancient", utc("2026-01-05T00:00"), utc("2026-01-06T00:00")); err != nil || len(shifts) != 0 {
		t.Errorf("ancient: %v, %v", format(shifts), err)
	}
}
