package oncall

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// utc parses "2006-01-02T15:04" as UTC.
func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02T15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// format renders shifts as "start/end who" lines in UTC, for comparison.
func format(shifts []Shift) []string {
	out := []string{}
	for _, s := range shifts {
		out = append(out, fmt.Sprintf("%s/%s %s", s.Start.UTC().Format("2006-01-02T15:04"), s.End.UTC().Format("2006-01-02T15:04"), s.Who))
	}
	return out
}

// vcal wraps VEVENT lines in a calendar, with LF line ends.
func vcal(lines ...string) string {
	return "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n" + strings.Join(lines, "\n") + "\nEND:VCALENDAR\n"
}

func shiftsOf(t *testing.T, ics string, from, to time.Time) []string {
	t.Helper()
	cal, err := parseICS([]byte(ics))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	shifts, err := cal.shifts(from, to)
	if err != nil {
		t.Fatalf("shifts: %v", err)
	}
	return format(shifts)
}

func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file     string
		from, to string
		want     []string
	}{
		{"pagerduty.ics", "2026-11-01T00:00", "2026-12-01T00:00", []string{
			// the first ATTENDEE is folded in the middle of its parameters and of its email
			"2026-11-23T09:00/2026-11-24T09:00 alice@example.com",
			"2026-11-24T09:00/2026-11-25T09:00 Alice@Example.com",
			"2026-11-25T09:00/2026-11-26T09:00 bob@example.com",
			"2026-11-26T09:00/2026-11-26T21:00 alice@example.com",
			"2026-11-26T22:00/2026-11-27T09:00 alice@example.com",
		}},
		{"pagerduty.ics", "2026-11-24T12:00", "2026-11-25T09:00", []string{
			"2026-11-24T09:00/2026-11-25T09:00 Alice@Example.com",
		}},
		{"opsgenie.ics", "2026-10-01T00:00", "2026-12-01T00:00", []string{
			"2026-10-12T07:00/2026-10-19T07:00 Alice Example",   // 09:00 CEST
			"2026-10-19T07:00/2026-10-26T08:00 bob@example.com", // to 09:00 CET
			"2026-10-26T08:00/2026-11-02T08:00 Alice Example",
			"2026-10-28T12:00/2026-10-28T18:00 Carol Override",
		}},
		{"google.ics", "2026-10-01T00:00", "2027-01-01T00:00", []string{
			"2026-10-05T07:00/2026-10-12T07:00 alice@example.com", // bob declined; VALARM's mallory ignored
			"2026-10-12T07:00/2026-10-19T07:00 Bob Builder",
			"2026-10-19T07:00/2026-10-26T08:00 alice@example.com", // wall-clock hand-over across DST
			"2026-10-26T08:00/2026-11-02T08:00 Bob Builder",
			"2026-11-02T08:00/2026-11-09T08:00 alice@example.com",
			"2026-11-10T08:00/2026-11-16T08:00 Bob Builder", // RECURRENCE-ID moved the 11-09 instance
			"2026-11-16T08:00/2026-11-23T08:00 Carol",       // alice's 11-16 is an EXDATE; Dave's is CANCELLED
			"2026-11-23T08:00/2026-11-30T08:00 Bob Builder",
			"2026-11-30T08:00/2026-12-07T08:00 alice@example.com",
			"2026-12-07T08:00/2026-12-14T08:00 Bob Builder",       // COUNT=5 ends here
			"2026-12-14T08:00/2026-12-21T08:00 alice@example.com", // UNTIL is inclusive
			"2026-12-24T00:00/2026-12-26T00:00 Erin, Example",     // DATE values, escaped comma
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.from, func(t *testing.T) {
			data, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if got := shiftsOf(t, string(data), utc(tt.from), utc(tt.to)); !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseFeatures(t *testing.T) {
	tests := []struct {
		name     string
		ics      string
		from, to string
		want     []string
	}{
		{"folded with tab and space, LF", vcal("BEGIN:VEVENT", "DTSTART:20260105T090000Z", "DTEND:20260105T1", " 70000Z", "SUMMARY:On Call - Al", "\tice - Primary", "END:VEVENT"),
			"2026-01-01T00:00", "2026-02-01T00:00", []string{"2026-01-05T09:00/2026-01-05T17:00 Alice"}},
		{"TZID America/New_York, quoted", vcal("BEGIN:VEVENT", `DTSTART;TZID="America/New_York":20260105T090000`, "DTEND;TZID=America/New_York:20260105T170000", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-02-01T00:00", []string{"2026-01-05T14:00/2026-01-05T22:00 ann"}},
		{"floating time is UTC", vcal("BEGIN:VEVENT", "DTSTART:20260105T090000", "DTEND:20260105T100000", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-02-01T00:00", []string{"2026-01-05T09:00/2026-01-05T10:00 ann"}},
		{"DATE without DTEND is one day", vcal("BEGIN:VEVENT", "DTSTART;VALUE=DATE:20261123", "SUMMARY:On-call: ann", "END:VEVENT"),
			"2026-11-01T00:00", "2026-12-01T00:00", []string{"2026-11-23T00:00/2026-11-24T00:00 ann"}},
		{"DATE-TIME without end lasts nothing", vcal("BEGIN:VEVENT", "DTSTART:20261123T090000Z", "SUMMARY:ann", "END:VEVENT"),
			"2026-11-01T00:00", "2026-12-01T00:00", []string{}},
		{"DURATION with exact hours", vcal("BEGIN:VEVENT", "DTSTART:20260105T090000Z", "DURATION:PT8H30M", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-02-01T00:00", []string{"2026-01-05T09:00/2026-01-05T17:30 ann"}},
		{"DURATION P1W is nominal across DST", vcal("BEGIN:VEVENT", "DTSTART;TZID=Europe/Berlin:20261019T090000", "DURATION:P1W", "SUMMARY:ann", "END:VEVENT"),
			"2026-10-01T00:00", "2026-11-01T00:00", []string{"2026-10-19T07:00/2026-10-26T08:00 ann"}},
		{"weekly BYDAY with COUNT", vcal("BEGIN:VEVENT", "DTSTART:20260105T090000Z", "DTEND:20260105T170000Z", "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=5", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{
				"2026-01-05T09:00/2026-01-05T17:00 ann", "2026-01-07T09:00/2026-01-07T17:00 ann", "2026-01-09T09:00/2026-01-09T17:00 ann",
				"2026-01-12T09:00/2026-01-12T17:00 ann", "2026-01-14T09:00/2026-01-14T17:00 ann"}},
		{"weekly BYDAY weekend with DATE UNTIL", vcal("BEGIN:VEVENT", "DTSTART;VALUE=DATE:20260103", "DTEND;VALUE=DATE:20260104", "RRULE:FREQ=WEEKLY;BYDAY=SU,SA;UNTIL=20260111", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{
				"2026-01-03T00:00/2026-01-04T00:00 ann", "2026-01-04T00:00/2026-01-05T00:00 ann",
				"2026-01-10T00:00/2026-01-11T00:00 ann", "2026-01-11T00:00/2026-01-12T00:00 ann"}},
		{"weekly BYDAY, WKST=SU and INTERVAL=2", vcal("BEGIN:VEVENT", "DTSTART:20260104T000000Z", "DURATION:PT1H", "RRULE:FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=SU,TU;COUNT=4", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{
				"2026-01-04T00:00/2026-01-04T01:00 ann", "2026-01-06T00:00/2026-01-06T01:00 ann",
				"2026-01-18T00:00/2026-01-18T01:00 ann", "2026-01-20T00:00/2026-01-20T01:00 ann"}},
		{"daily INTERVAL=2 with UTC UNTIL", vcal("BEGIN:VEVENT", "DTSTART:20260105T090000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;INTERVAL=2;UNTIL=20260109T090000Z", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{
				"2026-01-05T09:00/2026-01-05T10:00 ann", "2026-01-07T09:00/2026-01-07T10:00 ann", "2026-01-09T09:00/2026-01-09T10:00 ann"}},
		{"daily business hours with an EXDATE list", vcal("BEGIN:VEVENT", "DTSTART;TZID=Europe/Berlin:20260105T090000", "DTEND;TZID=Europe/Berlin:20260105T170000",
			"RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", "EXDATE;TZID=Europe/Berlin:20260106T090000,20260108T090000", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-05T00:00", "2026-01-12T00:00", []string{
				"2026-01-05T08:00/2026-01-05T16:00 ann", "2026-01-07T08:00/2026-01-07T16:00 ann", "2026-01-09T08:00/2026-01-09T16:00 ann"}},
		{"EXDATE of DTSTART", vcal("BEGIN:VEVENT", "DTSTART:20260105T090000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=2", "EXDATE:20260105T090000Z", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{"2026-01-06T09:00/2026-01-06T10:00 ann"}},
		{"CANCELLED event", vcal("BEGIN:VEVENT", "DTSTART:20260105T090000Z", "DURATION:PT1H", "STATUS:CANCELLED", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{}},
		{"CANCELLED override removes one instance", vcal(
			"BEGIN:VEVENT", "UID:r1", "DTSTART:20260105T090000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=3", "SUMMARY:ann", "END:VEVENT",
			"BEGIN:VEVENT", "UID:r1", "RECURRENCE-ID:20260106T090000Z", "DTSTART:20260106T090000Z", "DURATION:PT1H", "STATUS:CANCELLED", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{"2026-01-05T09:00/2026-01-05T10:00 ann", "2026-01-07T09:00/2026-01-07T10:00 ann"}},
		{"monthly on the 31st skips short months", vcal("BEGIN:VEVENT", "DTSTART:20260131T000000Z", "DURATION:PT1H", "RRULE:FREQ=MONTHLY;COUNT=3", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2027-01-01T00:00", []string{
				"2026-01-31T00:00/2026-01-31T01:00 ann", "2026-03-31T00:00/2026-03-31T01:00 ann", "2026-05-31T00:00/2026-05-31T01:00 ann"}},
		{"RDATE adds, duplicates merge", vcal("BEGIN:VEVENT", "DTSTART:20260105T090000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=2", "RDATE:20260106T090000Z,20260110T090000Z", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{
				"2026-01-05T09:00/2026-01-05T10:00 ann", "2026-01-06T09:00/2026-01-06T10:00 ann", "2026-01-10T09:00/2026-01-10T10:00 ann"}},
		{"endless rule is expanded only in range", vcal("BEGIN:VEVENT", "DTSTART:19700105T090000Z", "DURATION:PT8H", "RRULE:FREQ=DAILY", "SUMMARY:ann", "END:VEVENT"),
			"2026-06-10T12:00", "2026-06-11T10:00", []string{"2026-06-10T09:00/2026-06-10T17:00 ann", "2026-06-11T09:00/2026-06-11T17:00 ann"}},
		{"endless rule starting in year 0", vcal("BEGIN:VEVENT", "DTSTART:00000101T090000Z", "DURATION:PT8H", "RRULE:FREQ=WEEKLY;BYDAY=MO", "SUMMARY:ann", "END:VEVENT"),
			"2026-06-16T00:00", "2026-06-23T00:00", []string{"2026-06-22T09:00/2026-06-22T17:00 ann"}},
		{"endless weekly rule starting long ago", vcal("BEGIN:VEVENT", "DTSTART;TZID=Europe/Berlin:20000103T090000", "DTEND;TZID=Europe/Berlin:20000110T090000", "RRULE:FREQ=WEEKLY;INTERVAL=3", "SUMMARY:ann", "END:VEVENT"),
			"2026-06-16T00:00", "2026-06-17T00:00", []string{"2026-06-15T07:00/2026-06-22T07:00 ann"}},
		{"all attendees, not declined or non-participant", vcal("BEGIN:VEVENT", "DTSTART:20260105T090000Z", "DURATION:PT1H", "SUMMARY:On Call - Someone - Primary",
			"ATTENDEE;CN=A:mailto:a@example.com", "ATTENDEE;CN=B:MAILTO:b@example.com", "ATTENDEE;PARTSTAT=DECLINED:mailto:c@example.com",
			"ATTENDEE;ROLE=NON-PARTICIPANT:mailto:d@example.com", "ATTENDEE:urn:uuid:1234", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{"2026-01-05T09:00/2026-01-05T10:00 a@example.com", "2026-01-05T09:00/2026-01-05T10:00 b@example.com"}},
		{"summary forms", vcal(
			"BEGIN:VEVENT", "DTSTART:20260105T090000Z", "DURATION:PT1H", "SUMMARY:on call - Ann Lee - Secondary - EU", "END:VEVENT",
			"BEGIN:VEVENT", "DTSTART:20260105T100000Z", "DURATION:PT1H", "SUMMARY:On-call: Bo\\; Jr", "END:VEVENT",
			"BEGIN:VEVENT", "DTSTART:20260105T110000Z", "DURATION:PT1H", "SUMMARY:  ", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{"2026-01-05T09:00/2026-01-05T10:00 Ann Lee", "2026-01-05T10:00/2026-01-05T11:00 Bo; Jr"}},
		{"multiple calendars, BOM, unknown properties and components", "\xef\xbb\xbf" + vcal("BEGIN:VTODO", "DTSTART:20260105T090000Z", "SUMMARY:todo", "END:VTODO",
			"BEGIN:VEVENT", "X-FOO;X-A=\"a;b:c\":v", "DTSTART:20260105T090000Z", "DURATION:PT1H", "SUMMARY:ann", "END:VEVENT") + vcal("BEGIN:VEVENT", "DTSTART:20260106T090000Z", "DURATION:PT1H", "SUMMARY:bo", "END:VEVENT"),
			"2026-01-01T00:00", "2026-03-01T00:00", []string{"2026-01-05T09:00/2026-01-05T10:00 ann", "2026-01-06T09:00/2026-01-06T10:00 bo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shiftsOf(t, tt.ics, utc(tt.from), utc(tt.to)); !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	ev := func(lines ...string) string {
		return vcal(append(append([]string{"BEGIN:VEVENT", "UID:e1", "SUMMARY:ann"}, lines...), "END:VEVENT")...)
	}
	tests := []struct {
		name, ics, want string
	}{
		{"HTML login page", "<!DOCTYPE html>\n<html><body>Sign in</body></html>\n", `line 1: malformed line "<!DOCTYPE html>": no ':'`},
		{"empty", "", "not an iCalendar file"},
		{"other object", "BEGIN:VCARD\nEND:VCARD\n", "line 1: expected BEGIN:VCALENDAR, found BEGIN:VCARD"},
		{"truncated download", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260105T090000Z\n", "truncated: VEVENT is not closed"},
		{"mismatched END", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n", "line 3: END:VCALENDAR where END:VEVENT was expected"},
		{"no DTSTART", ev("DTEND:20260105T090000Z"), `event at line 4 (UID "e1"): no DTSTART`},
		{"bad date", ev("DTSTART:20260230T090000Z"), `line 7: DTSTART: invalid date or date-time "20260230T090000Z"`},
		{"bad time", ev("DTSTART:20260105T250000Z"), "invalid date or date-time"},
		{"date-time where DATE", ev("DTSTART;VALUE=DATE:20260105T090000Z"), "invalid date or date-time"},
		{"unknown TZID", ev("DTSTART;TZID=W. Europe Standard Time:20260105T090000"), `unknown time zone TZID="W. Europe Standard Time"`},
		{"DTEND before DTSTART", ev("DTSTART:20260105T090000Z", "DTEND:20260105T080000Z"), "DTEND is before DTSTART"},
		{"DTEND and DURATION", ev("DTSTART:20260105T090000Z", "DTEND:20260105T100000Z", "DURATION:PT1H"), "both DTEND and DURATION"},
		{"negative DURATION", ev("DTSTART:20260105T090000Z", "DURATION:-PT1H"), `DURATION: invalid duration "-PT1H"`},
		{"DURATION past int64 nanoseconds", ev("DTSTART:20260105T090000Z", "DURATION:PT5124096H"), "DURATION: invalid duration"}, // once wrapped to 25m
		{"DURATION summing past 100 years", ev("DTSTART:20260105T090000Z", "DURATION:PT"+strings.Repeat("9999999S", 400)), "DURATION: invalid duration"},
		{"leap second", ev("DTSTART:20260105T235960Z"), "invalid date or date-time"},
		{"DTSTART twice", ev("DTSTART:20260105T090000Z", "DTSTART:20260106T090000Z"), "DTSTART given twice (lines 7 and 8)"},
		{"FREQ=HOURLY", ev("DTSTART:20260105T090000Z", "RRULE:FREQ=HOURLY"), "RRULE: FREQ=HOURLY is not supported"},
		{"numbered BYDAY", ev("DTSTART:20260105T090000Z", "RRULE:FREQ=WEEKLY;BYDAY=1MO"), "numbered weekdays are not supported"},
		{"BYMONTH", ev("DTSTART:20260105T090000Z", "RRULE:FREQ=WEEKLY;BYMONTH=1"), "RRULE: BYMONTH is not supported"},
		{"no FREQ", ev("DTSTART:20260105T090000Z", "RRULE:COUNT=3"), "RRULE: no FREQ"},
		{"bad INTERVAL", ev("DTSTART:20260105T090000Z", "RRULE:FREQ=DAILY;INTERVAL=0"), "INTERVAL=0: want 1 to 10000"},
		{"EXDATE period", ev("DTSTART:20260105T090000Z", "RDATE;VALUE=PERIOD:20260105T090000Z/PT1H"), "RDATE periods are not supported"},
		{"unterminated quote", ev(`DTSTART;TZID="Europe/Berlin:20260105T090000`), "unterminated quoted parameter value"},
		{"quote inside a value", ev(`DTSTART;TZID=Eu"rope:20260105T090000`), "malformed parameter TZID"},
		{"parameter without colon", ev("DTSTART;TZID=Europe/Berlin"), "malformed parameter TZID"},
		{"parameter without =", ev("DTSTART;TZID:20260105T090000"), "malformed parameter"},
		{"property outside", "SUMMARY:x\n", "line 1: SUMMARY outside BEGIN:VCALENDAR"},
		{"deep nesting", "BEGIN:VCALENDAR\n" + strings.Repeat("BEGIN:X\n", 20), "nested more than 8 deep"},
		{"invalid UTF-8", "BEGIN:VCALENDAR\nSUMMARY:\xff\n", "line 2: not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseICS([]byte(tt.ics))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestParseBounds feeds hostile calendars: every one must fail or answer quickly and small.
func TestParseBounds(t *testing.T) {
	t.Run("larger than 10 MB", func(t *testing.T) {
		big := vcal("X-PAD:" + strings.Repeat("a", MaxSourceBytes))
		if _, err := parseICS([]byte(big)); err == nil || !strings.Contains(err.Error(), "larger than 10 MB") {
			t.Errorf("error %v", err)
		}
	})
	// expandErr parses ics, which must be valid, and expands it over [from, to), which must
	// fail with an error containing want.
	expandErr := func(t *testing.T, ics, from, to, want string) {
		t.Helper()
		c, err := parseICS([]byte(ics))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.shifts(utc(from), utc(to)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
	endless := vcal("BEGIN:VEVENT", "UID:e1", "DTSTART:19700101T000000Z", "DURATION:PT1M", "RRULE:FREQ=DAILY", "SUMMARY:ann", "END:VEVENT")
	t.Run("endless rule, one year", func(t *testing.T) {
		cal, err := parseICS([]byte(endless))
		if err != nil {
			t.Fatal(err)
		}
		s, err := cal.shifts(utc("2026-01-01T00:00"), utc("2027-01-01T00:00"))
		if err != nil || len(s) != 365 {
			t.Errorf("%d shifts, %v", len(s), err)
		}
	})
	t.Run("endless rule, a century", func(t *testing.T) {
		expandErr(t, endless, "2000-01-01T00:00", "2100-01-01T00:00", `event "e1": recurrence runs over more than 10000 periods`)
	})
	t.Run("huge COUNT from long ago", func(t *testing.T) {
		expandErr(t, vcal("BEGIN:VEVENT", "DTSTART:19700101T000000Z", "DURATION:PT1M", "RRULE:FREQ=DAILY;COUNT=1000000000", "SUMMARY:ann", "END:VEVENT"),
			"2026-01-01T00:00", "2026-01-02T00:00", "ask for a shorter range")
	})
	t.Run("many attendees times many instances", func(t *testing.T) {
		lines := []string{"BEGIN:VEVENT", "DTSTART:20260101T000000Z", "DURATION:PT1M", "RRULE:FREQ=DAILY", "SUMMARY:x"}
		for i := range 100 {
			lines = append(lines, fmt.Sprintf("ATTENDEE:mailto:u%d@example.com", i))
		}
		expandErr(t, vcal(append(lines, "END:VEVENT")...), "2026-01-01T00:00", "2029-01-01T00:00", "more than 10000 shifts")
	})
	t.Run("EXDATE flood", func(t *testing.T) {
		ex := strings.Repeat("20260101T000000Z,", maxInstants) + "20260101T000000Z"
		_, err := parseICS([]byte(vcal("BEGIN:VEVENT", "DTSTART:20260101T000000Z", "RRULE:FREQ=DAILY", "EXDATE:"+ex, "SUMMARY:x", "END:VEVENT")))
		if err == nil || !strings.Contains(err.Error(), "more than 10000 EXDATE and RDATE values") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("too many events", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("BEGIN:VCALENDAR\n")
		for range maxEvents + 1 {
			b.WriteString("BEGIN:VEVENT\nDTSTART:20260101T000000Z\nSUMMARY:x\nEND:VEVENT\n")
		}
		if _, err := parseICS([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than 50000 events") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("many long recurrences share one budget", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("BEGIN:VCALENDAR\n")
		for range maxEvents {
			b.WriteString("BEGIN:VEVENT\nDTSTART:19900101T000000Z\nDURATION:PT1M\nRRULE:FREQ=DAILY;COUNT=9999\nSUMMARY:x\nEND:VEVENT\n")
		}
		expandErr(t, b.String()+"END:VCALENDAR\n", "2026-01-01T00:00", "2026-02-01T00:00", "too many recurrences to expand")
	})
	t.Run("many attendees", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101T000000Z\nDURATION:PT1H\nSUMMARY:x\n")
		for i := range 200000 {
			fmt.Fprintf(&b, "ATTENDEE:mailto:u%d@example.com\n", i%100000)
		}
		expandErr(t, b.String()+"END:VEVENT\nEND:VCALENDAR\n", "2026-01-01T00:00", "2026-01-02T00:00", "more than 10000 shifts")
	})
	t.Run("many parameters", func(t *testing.T) {
		_, err := parseICS([]byte(vcal("X-A" + strings.Repeat(";A=b", 1000000) + ":v")))
		if err == nil || !strings.Contains(err.Error(), "line 4: X-A: more than 64 parameters") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("many time zones", func(t *testing.T) {
		p := &parser{zones: map[string]*time.Location{}}
		for i := range maxZones {
			p.zones[fmt.Sprint(i)] = time.UTC
		}
		if _, err := p.location("Europe/Paris"); err == nil || !strings.Contains(err.Error(), "more than 64 time zones") {
			t.Errorf("error %v", err)
		}
	})
}

// TestRecurrenceWindowMatchesFullExpansion checks that expanding a rule from shortly before
// the asked range (without COUNT) gives what expanding it from DTSTART and keeping the
// instances in the range gives.
func TestRecurrenceWindowMatchesFullExpansion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"}
	freqs := []string{"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
	days := []string{"MO", "TU", "WE", "TH", "FR", "SA", "SU"}
	for i := range 300 {
		start := utc("2018-01-01T00:00").Add(time.Duration(rng.IntN(3*365*24)) * time.Hour)
		freq := freqs[rng.IntN(len(freqs))]
		rule := fmt.Sprintf("FREQ=%s;INTERVAL=%d;WKST=%s", freq, 1+rng.IntN(4), days[rng.IntN(7)])
		if (freq == "DAILY" || freq == "WEEKLY") && rng.IntN(2) == 0 {
			rule += ";BYDAY=" + days[rng.IntN(7)] + "," + days[rng.IntN(7)]
		}
		if rng.IntN(3) == 0 {
			rule += ";UNTIL=" + start.AddDate(2+rng.IntN(4), 0, 0).Format("20060102T150405Z")
		}
		ics := vcal("BEGIN:VEVENT", fmt.Sprintf("DTSTART;TZID=%s:%s", zones[rng.IntN(len(zones))], start.Format("20060102T150405")),
			fmt.Sprintf("DURATION:P%dDT%dH", rng.IntN(40), rng.IntN(24)), "RRULE:"+rule, "SUMMARY:ann", "END:VEVENT")
		cal, err := parseICS([]byte(ics))
		if err != nil {
			t.Fatal(err)
		}
		from := utc("2024-01-01T00:00").Add(time.Duration(rng.IntN(2*365*24)) * time.Hour)
		to := from.Add(time.Duration(1+rng.IntN(60*24)) * time.Hour)
		got, err := cal.shifts(from, to)
		if err != nil {
			t.Fatal(err)
		}
		all, err := cal.shifts(start.AddDate(0, 0, -2), to)
		if err != nil {
			t.Fatal(err)
		}
		want := []Shift{}
		for _, s := range all {
			if s.End.After(from) {
				want = append(want, s)
			}
		}
		if !slices.Equal(format(got), format(want)) {
			t.Fatalf("case %d %s [%s, %s):\ngot  %v\nwant %v", i, rule, from, to, format(got), format(want))
		}
	}
}
