package oncall

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/timebox-dev/timebox"
)

// This file reads iCalendar (RFC 5545) as PagerDuty, Opsgenie and Google Calendar export it:
// unfolded content lines, VEVENTs with their DTSTART/DTEND/DURATION, recurrence (rrule.go),
// EXDATE, RDATE, RECURRENCE-ID overrides and STATUS. VTIMEZONE is not read: TZID names are
// loaded from the system's time zone database.

// Parser bounds, on top of MaxSourceBytes.
const (
	maxEvents   = 50000 // VEVENTs in one calendar
	maxDepth    = 8     // nested components
	maxZones    = 64    // distinct TZIDs in one calendar
	maxInstants = 10000 // EXDATE plus RDATE values of one event
	maxParams   = 64    // parameters of one property
)

// calendar is a parsed iCalendar source.
type calendar struct {
	events []*event
	// overridden holds, per UID, the starts (Unix seconds) of the instances that an event
	// with a RECURRENCE-ID replaces or cancels.
	overridden map[string]map[int64]bool
}

// prop is one unfolded content line.
type prop struct {
	line   int
	name   string
	params []param
	value  string
}

type param struct{ name, value string }

// param returns the first value of the named parameter.
func (p *prop) param(name string) string {
	for _, x := range p.params {
		if x.name == name {
			return x.value
		}
	}
	return ""
}

// parseICS parses an iCalendar source. Its errors name the line and what was wrong; they
// quote at most a clipped piece of the input.
func parseICS(data []byte) (*calendar, error) {
	if len(data) > MaxSourceBytes {
		return nil, fmt.Errorf("larger than %d MB", MaxSourceBytes>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	p := &parser{cal: &calendar{overridden: map[string]map[int64]bool{}}, zones: map[string]*time.Location{}}
	var cur strings.Builder
	curLine, num := 0, 0
	for len(data) > 0 {
		num++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') && curLine > 0 {
			cur.Write(line[1:])
			continue
		}
		if curLine > 0 {
			if err := p.contentLine(curLine, cur.String()); err != nil {
				return nil, err
			}
		}
		cur.Reset()
		curLine = 0
		if len(bytes.TrimSpace(line)) > 0 {
			cur.Write(line)
			curLine = num
		}
	}
	if curLine > 0 {
		if err := p.contentLine(curLine, cur.String()); err != nil {
			return nil, err
		}
	}
	switch {
	case !p.seen:
		return nil, fmt.Errorf("not an iCalendar file (no BEGIN:VCALENDAR)")
	case len(p.stack) > 0:
		return nil, fmt.Errorf("truncated: %s is not closed (no END:%s)", p.stack[len(p.stack)-1], p.stack[len(p.stack)-1])
	}
	return p.cal, nil
}

type parser struct {
	cal   *calendar
	stack []string
	seen  bool   // a VCALENDAR began
	props []prop // of the VEVENT being read
	begin int    // line of its BEGIN:VEVENT
	zones map[string]*time.Location
}

// eventProps are the VEVENT properties that are kept; others are skipped.
var eventProps = map[string]bool{
	"UID": true, "DTSTART": true, "DTEND": true, "DURATION": true, "RRULE": true, "EXDATE": true,
	"RDATE": true, "RECURRENCE-ID": true, "STATUS": true, "SUMMARY": true, "ATTENDEE": true,
}

func (p *parser) contentLine(num int, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("line %d: not valid UTF-8", num)
	}
	pr, err := parseProp(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", num, err)
	}
	pr.line = num
	switch pr.name {
	case "BEGIN":
		return p.beginComponent(num, strings.ToUpper(strings.TrimSpace(pr.value)))
	case "END":
		return p.endComponent(num, strings.ToUpper(strings.TrimSpace(pr.value)))
	}
	switch {
	case len(p.stack) == 0:
		return fmt.Errorf("line %d: %s outside BEGIN:VCALENDAR", num, clipName(pr.name))
	case p.stack[len(p.stack)-1] == "VEVENT" && eventProps[pr.name]:
		p.props = append(p.props, pr)
	}
	return nil
}

func (p *parser) beginComponent(num int, name string) error {
	switch {
	case len(p.stack) == 0 && name != "VCALENDAR":
		return fmt.Errorf("line %d: expected BEGIN:VCALENDAR, found BEGIN:%s", num, clipName(name))
	case len(p.stack) > 0 && name == "VCALENDAR":
		return fmt.Errorf("line %d: VCALENDAR inside %s", num, p.stack[len(p.stack)-1])
	case len(p.stack) >= maxDepth:
		return fmt.Errorf("line %d: components nested more than %d deep", num, maxDepth)
	case name == "VEVENT" && p.stack[len(p.stack)-1] != "VCALENDAR":
		return fmt.Errorf("line %d: VEVENT inside %s", num, p.stack[len(p.stack)-1])
	case name == "VEVENT" && len(p.cal.events) >= maxEvents:
		return fmt.Errorf("line %d: more than %d events", num, maxEvents)
	}
	if name == "VEVENT" {
		p.props, p.begin = p.props[:0], num
	}
	p.seen = true
	p.stack = append(p.stack, clipName(name))
	return nil
}

func (p *parser) endComponent(num int, name string) error {
	if len(p.stack) == 0 || p.stack[len(p.stack)-1] != name {
		want := "nothing"
		if len(p.stack) > 0 {
			want = "END:" + p.stack[len(p.stack)-1]
		}
		return fmt.Errorf("line %d: END:%s where %s was expected", num, clipName(name), want)
	}
	p.stack = p.stack[:len(p.stack)-1]
	if name != "VEVENT" {
		return nil
	}
	ev, err := p.event(p.props)
	if err != nil {
		return fmt.Errorf("event at line %d%s: %w", p.begin, uidNote(p.props), err)
	}
	if ev.hasRecurrenceID {
		m := p.cal.overridden[ev.uid]
		if m == nil {
			m = map[int64]bool{}
			p.cal.overridden[ev.uid] = m
		}
		m[ev.recurrenceID.Unix()] = true
	}
	if !ev.cancelled && len(ev.who) > 0 {
		p.cal.events = append(p.cal.events, ev)
	}
	return nil
}

func uidNote(props []prop) string {
	for _, pr := range props {
		if pr.name == "UID" {
			return fmt.Sprintf(" (UID %q)", timebox.Clip(pr.value))
		}
	}
	return ""
}

// parseProp splits a content line into name, parameters and value.
func parseProp(s string) (prop, error) {
	var pr prop
	i := strings.IndexAny(s, ";:")
	if i < 0 {
		return pr, fmt.Errorf("malformed line %q: no ':'", timebox.Clip(s))
	} else if i == 0 {
		return pr, fmt.Errorf("malformed line %q: no property name", timebox.Clip(s))
	}
	pr.name = strings.ToUpper(strings.TrimSpace(s[:i]))
	s = s[i:]
	for s[0] == ';' {
		s = s[1:]
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return pr, fmt.Errorf("%s: malformed parameter", clipName(pr.name))
		}
		name := strings.ToUpper(s[:eq])
		s = s[eq+1:]
		for {
			var v string
			if strings.HasPrefix(s, `"`) {
				end := strings.IndexByte(s[1:], '"')
				if end < 0 {
					return pr, fmt.Errorf("%s: unterminated quoted parameter value", clipName(pr.name))
				}
				v, s = s[1:1+end], s[end+2:]
			} else {
				end := strings.IndexAny(s, ";:,\"")
				if end < 0 || s[end] == '"' {
					return pr, fmt.Errorf("%s: malformed parameter %s", clipName(pr.name), clipName(name))
				}
				v, s = s[:end], s[end:]
			}
			if len(pr.params) == maxParams {
				return pr, fmt.Errorf("%s: more than %d parameters", clipName(pr.name), maxParams)
			}
			pr.params = append(pr.params, param{name, v})
			if !strings.HasPrefix(s, ",") {
				break
			}
			s = s[1:]
		}
		if s == "" || (s[0] != ';' && s[0] != ':') {
			return pr, fmt.Errorf("%s: malformed parameter %s", clipName(pr.name), clipName(name))
		}
	}
	pr.value = s[1:]
	return pr, nil
}

// textEscapes decodes an RFC 5545 TEXT value.
var textEscapes = strings.NewReplacer(`\\`, `\`, `\;`, ";", `\,`, ",", `\n`, "\n", `\N`, "\n")

// clipName shortens and escapes a name read from the input for an error message.
func clipName(s string) string {
	q := strconv.Quote(timebox.Clip(s))
	return q[1 : len(q)-1]
}

// location returns the time zone a TZID names, from the system's database.
func (p *parser) location(tzid string) (*time.Location, error) {
	if loc, ok := p.zones[tzid]; ok {
		return loc, nil
	}
	if len(p.zones) >= maxZones {
		return nil, fmt.Errorf("more than %d time zones", maxZones)
	}
	name := strings.TrimPrefix(tzid, "/") // "/Europe/Berlin" is seen in some exports
	var loc *time.Location
	var err error
	switch {
	case name == "" || name == "Local":
		err = fmt.Errorf("not a zone name")
	case strings.EqualFold(name, "UTC"), strings.EqualFold(name, "GMT"), strings.EqualFold(name, "Etc/UTC"):
		loc = time.UTC
	default:
		loc, err = time.LoadLocation(name)
	}
	if err != nil {
		return nil, fmt.Errorf("unknown time zone TZID=%q", timebox.Clip(tzid))
	}
	p.zones[tzid] = loc
	return loc, nil
}
