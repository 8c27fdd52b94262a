package oncall

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to the iCalendar parser and expands what it accepts: it must
// never panic, and the shifts it returns must be well-formed.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.ics")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		vcal("BEGIN:VEVENT", "DTSTART;TZID=Europe/Berlin:20260105T090000", "DURATION:P1W", "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20270101", "EXDATE;TZID=Europe/Berlin:20260119T090000", "SUMMARY:On Call - A - B", "END:VEVENT"),
		vcal("BEGIN:VEVENT", "UID:x", "DTSTART;VALUE=DATE:20260131", "RRULE:FREQ=MONTHLY;COUNT=20", "RDATE:20260301", "ATTENDEE;CN=\"A, B\":mailto:a@b", "END:VEVENT",
			"BEGIN:VEVENT", "UID:x", "RECURRENCE-ID;VALUE=DATE:20260331", "DTSTART:20260401T000000Z", "DTEND:20260402T000000Z", "SUMMARY:c", "END:VEVENT"),
		"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:19000101T000000Z\r\nRRULE:FREQ=DAILY\r\nDURATION:PT1M\r\nSUMMARY:x\r\n \r\nEND:VEVENT\r\nEND:VCALENDAR",
		"BEGIN:VCALENDAR\nX;A=\"b\"c:d\nY;A=b\nEND:VCALENDAR\n",
	} {
		f.Add([]byte(s))
	}
	windows := [][2]time.Time{
		{utc("2026-01-01T00:00"), utc("2026-03-01T00:00")},
		{utc("1899-12-31T00:00"), utc("1900-02-01T00:00")},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cal, err := parseICS(data)
		if err != nil {
			return
		}
		for _, w := range windows {
			shifts, err := cal.shifts(w[0], w[1])
			if err != nil {
				continue
			}
			for i, s := range shifts {
				switch {
				case !s.Start.Before(s.End), !s.End.After(w[0]), !s.Start.Before(w[1]), s.Who == "":
					t.Fatalf("bad shift %+v in [%s, %s)", s, w[0], w[1])
				case i > 0 && s.Start.Before(shifts[i-1].Start):
					t.Fatalf("shifts not sorted: %+v", shifts)
				}
			}
		}
	})
}
