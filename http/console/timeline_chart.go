package console

import (
	"fmt"
	"html/template"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// Chart geometry, in the SVG's user units (the SVG scales to the page's width).
const (
	chartWidth = 1000.0
	plotLeft   = 170.0 // people's names are left of it
	plotRight  = 985.0
	axisHeight = 38.0
	laneHeight = 20.0
	barHeight  = 12.0
	minBar     = 2.0 // a grant of a few minutes stays visible
)

// chart is one database's timeline: an SVG with a band per person (a lane per overlapping
// grant within it) and a table with the same grants in the same order.
type chart struct {
	ID, Database, Environment string
	Zone                      *time.Location
	From, To                  time.Time
	Width, Height             float64
	PlotLeft, PlotRight       float64
	Title, Desc               string
	Ticks                     []tick
	People                    []band
	Bars                      []bar
	// BarsHTML and RowsHTML are the bars' and rows' markup (timeline_markup.go).
	BarsHTML, RowsHTML template.HTML
	ShowNow            bool
	NowX               float64
	Rows               []grantRow
}

// tick is one mark of the time axis, labelled in the viewer's zone.
type tick struct {
	X     float64
	At    time.Time
	Label string
}

// band is one person's rows of the chart.
type band struct {
	Name, Label string
	Y, H, TextY float64
	Odd         bool
}

// bar is one grant's access on the chart, clipped to the range.
type bar struct {
	RequestID, Class string
	X, Y, W, H       float64
	// PlannedX and PlannedW are the part of live access still to come (until its end);
	// PlannedW is 0 when there is none in the range.
	PlannedX, PlannedW       float64
	BreakGlass               bool
	ClippedStart, ClippedEnd bool
	Tip                      string
}

// grantRow is one grant in the table that stands for the chart.
type grantRow struct {
	ID, Person, Database, Level, Class string
	BreakGlass, Tampered               bool
	From                               time.Time
	// To is when the access ended; zero while it lasts (End is then its scheduled end).
	To, End     time.Time
	State       timebox.State
	Removing    bool // still active, its removal under way
	Duration    time.Duration
	BeforeRange bool
}

// charts lays out ps (the access of [from, to) as the viewer may see it) as one chart per
// database, by name; in each, people by name and their grants by activation.
func (s *Server) charts(ps []timebox.AccessPeriod, from, to, now time.Time, zone *time.Location) []*chart {
	byDB := map[string][]*timebox.AccessPeriod{}
	for i := range ps {
		byDB[ps[i].Database] = append(byDB[ps[i].Database], &ps[i])
	}
	names := make([]string, 0, len(byDB))
	for name := range byDB {
		names = append(names, name)
	}
	sort.Strings(names)
	ticks := axisTicks(from, to, zone)
	var out []*chart
	for i, name := range names {
		c := &chart{ID: "tl-" + strconv.Itoa(i), Database: name, Zone: zone, From: from, To: to,
			Width: chartWidth, PlotLeft: plotLeft, PlotRight: plotRight, Ticks: ticks}
		if db, err := s.Service.Catalog.Database(name); err == nil {
			c.Environment = db.Environment
		}
		s.layout(c, byDB[name], now)
		out = append(out, c)
	}
	return out
}

// x is where t falls on c's time axis (t within the range).
func (c *chart) x(t time.Time) float64 {
	span := c.To.Sub(c.From)
	return plotLeft + (plotRight-plotLeft)*float64(t.Sub(c.From))/float64(span)
}

// clip returns t within c's range.
func (c *chart) clip(t time.Time) time.Time {
	switch {
	case t.Before(c.From):
		return c.From
	case t.After(c.To):
		return c.To
	}
	return t
}

// layout places ps on c: a band per person, a lane per grant that overlaps an earlier one.
func (s *Server) layout(c *chart, rs []*timebox.AccessPeriod, now time.Time) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.User != b.User {
			return a.User < b.User
		}
		if !a.From.Equal(b.From) {
			return a.From.Before(b.From)
		}
		return a.RequestID < b.RequestID
	})
	y := axisHeight
	people, breakGlass := 0, 0
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && rs[j].User == rs[i].User {
			j++
		}
		var laneEnds []float64
		for _, r := range rs[i:j] {
			b, row := s.place(c, r, now)
			lane := 0
			for lane < len(laneEnds) && laneEnds[lane]+1 > b.X {
				lane++
			}
			if lane == len(laneEnds) {
				laneEnds = append(laneEnds, 0)
			}
			laneEnds[lane] = max(b.X+b.W, b.PlannedX+b.PlannedW)
			b.Y = y + float64(lane)*laneHeight + (laneHeight-barHeight)/2
			c.Bars, c.Rows = append(c.Bars, b), append(c.Rows, row)
			if b.BreakGlass {
				breakGlass++
			}
		}
		h := float64(len(laneEnds)) * laneHeight
		c.People = append(c.People, band{Name: rs[i].User, Label: clipLabel(rs[i].User, 22),
			Y: y, H: h, TextY: y + laneHeight/2 + 4, Odd: people%2 == 1})
		y += h
		people++
		i = j
	}
	c.Height = y + 6
	c.BarsHTML, c.RowsHTML = c.barsHTML(), c.rowsHTML()
	if now.After(c.From) && now.Before(c.To) {
		c.ShowNow, c.NowX = true, c.x(now)
	}
	when := whenIn
	c.Title = fmt.Sprintf("Access to %s from %s until %s", c.Database, when(c.From, c.Zone), when(c.To, c.Zone))
	c.Desc = fmt.Sprintf("%s by %s%s. The table “Access to %s” after the chart lists each grant with its times.",
		plural(len(rs), "grant"), plural(people, "person"), bgNote(breakGlass), c.Database)
}

// place returns the bar (without its lane) and the table row of p.
func (s *Server) place(c *chart, p *timebox.AccessPeriod, now time.Time) (bar, grantRow) {
	live := p.Live()
	end := p.To
	if live {
		end = now
	}
	if end.Before(p.From) {
		end = p.From
	}
	class := s.levelClass(p.Level)
	row := grantRow{ID: p.RequestID, Person: p.User, Database: p.Database, Level: p.Level, Class: class,
		BreakGlass: p.BreakGlass, Tampered: p.Tampered, From: p.From, To: p.To, State: p.State,
		Duration: end.Sub(p.From), BeforeRange: p.From.Before(c.From)}
	if live {
		row.End, row.Removing = p.End, p.Ending != timebox.EndingNone
	}
	start, stop := c.clip(p.From), c.clip(end)
	b := bar{RequestID: p.RequestID, Class: class, BreakGlass: p.BreakGlass, H: barHeight,
		ClippedStart: p.From.Before(c.From), ClippedEnd: end.After(c.To)}
	b.X = c.x(start)
	b.W = max(c.x(stop)-b.X, minBar)
	if live && row.End.After(now) && now.Before(c.To) {
		ps, pe := c.clip(now), c.clip(row.End)
		if pe.After(ps) {
			b.PlannedX, b.PlannedW = c.x(ps), c.x(pe)-c.x(ps)
		}
	}
	tip := []string{p.User, p.Level}
	if p.BreakGlass {
		tip = append(tip, "break-glass")
	}
	to := "now (active)"
	if !live {
		to = whenIn(p.To, c.Zone) + " (" + string(p.State) + ")"
	}
	b.Tip = strings.Join(tip, ", ") + ": " + whenIn(p.From, c.Zone) + " – " + to
	return b, row
}

// axisTicks marks the range in zone: every 3 or 6 hours over a day or a few, then every
// 1, 2 or 7 days from the first midnight, so that a chart has at most about 16 labels.
func axisTicks(from, to time.Time, zone *time.Location) []tick {
	c := &chart{From: from, To: to}
	days := to.Sub(from).Hours() / 24
	var out []tick
	add := func(t time.Time, label string) { out = append(out, tick{X: c.x(t), At: t, Label: label}) }
	if days <= 4 {
		step := 6
		if days <= 1.5 {
			step = 3
		}
		f := from.In(zone)
		for h := 0; ; h += step {
			t := time.Date(f.Year(), f.Month(), f.Day(), f.Hour()+h, 0, 0, 0, zone)
			if !t.Before(to) {
				break
			}
			if t.Hour() == 0 {
				add(t, t.Format("Jan 2"))
			} else {
				add(t, t.Format("15:04"))
			}
		}
		return out
	}
	step, layout := 1, "Jan 2"
	switch {
	case days <= 8:
		layout = "Mon Jan 2"
	case days <= 16:
	case days <= 32:
		step = 2
	default:
		step = 7
	}
	f := from.In(zone)
	for d := 0; ; d += step {
		t := time.Date(f.Year(), f.Month(), f.Day()+d, 0, 0, 0, 0, zone)
		if !t.Before(to) {
			break
		}
		add(t, t.Format(layout))
	}
	return out
}

// whenIn is the templates' when: t in zone with the zone shown.
func whenIn(t time.Time, zone *time.Location) string {
	return funcs["when"].(func(time.Time, *time.Location) string)(t, zone)
}

// clipLabel shortens s to n runes with an ellipsis.
func clipLabel(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if noun == "person" {
		return strconv.Itoa(n) + " people"
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func bgNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d of them break-glass", n)
}

func init() {
	funcs["tlpx"] = px
	// tladd is a+b, for SVG coordinates.
	funcs["tladd"] = func(a, b float64) float64 { return a + b }
}
