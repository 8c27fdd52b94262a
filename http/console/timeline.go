package console

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// timelineRoutes are the access timeline: who had access to which database, when, at what
// level, over a range of days.
func (s *Server) timelineRoutes() []route {
	return []route{{Method: "GET", Path: "/timeline", h: s.handleTimeline}}
}

const (
	// timelineDefaultDays is the range shown without from and to: the last 7 days, today
	// included.
	timelineDefaultDays = 7
	// timelineMaxGrants bounds one page: beyond it the page shows the most recently activated
	// and asks for a narrower range.
	timelineMaxGrants = 1000
	dateLayout        = "2006-01-02"
)

// timelineMaxDays is the longest range, in whole days (the Service's bound).
var timelineMaxDays = int(timebox.MaxTimelineSpan / (24 * time.Hour))

// timelineForm is the filter form as the viewer filled it, with an error per field.
type timelineForm struct {
	Database, User, From, To string
	Errors                   map[string]string
}

// timelineData is the timeline page's data.
type timelineData struct {
	Form      timelineForm
	MaxDays   int
	Databases []dbOption
	People    []string
	// From and To are the range shown ([From, To): To is the midnight after the last day).
	From, To time.Time
	Days     int
	Charts   []*chart
	Grants   int
	// Truncated says more grants than timelineMaxGrants overlapped the range.
	Truncated bool
	Max       int
	Legend    []legendItem
}

// dbOption is one database of the form's select, under its environment.
type dbOption struct {
	Environment string
	Names       []string
}

func (s *Server) handleTimeline(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	form := timelineForm{
		Database: strings.TrimSpace(q.Get("database")), User: strings.TrimSpace(q.Get("user")),
		From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to")), Errors: map[string]string{},
	}
	now := s.Service.Now()
	data := &timelineData{MaxDays: timelineMaxDays, Max: timelineMaxGrants, Databases: s.databaseOptions()}
	if s.Service.Catalog.IsAdmin(c.User.Name) || s.Service.Catalog.IsAuditor(c.User.Name) {
		for _, p := range s.Service.Catalog.People() {
			data.People = append(data.People, p.Name)
		}
	}
	from, to := timelineRange(&form, now, c.Zone)
	if form.Database != "" {
		if _, err := s.Service.Catalog.Database(form.Database); err != nil {
			form.Errors["database"] = fmt.Sprintf("There is no database named %q.", timebox.Clip(form.Database))
		}
	}
	data.Form = form
	if len(form.Errors) > 0 {
		s.render(w, r, c, http.StatusBadRequest, "timeline", "Access timeline", data)
		return nil
	}
	data.From, data.To = from, to
	data.Days = daysBetween(from, to)
	ps, err := s.Service.Timeline(s.ctx(r), c.User.Name, timebox.AccessFilter{
		From: from, To: to, Database: form.Database, Requester: form.User, Limit: timelineMaxGrants + 1,
	})
	if err != nil {
		return err
	}
	if len(ps) > timelineMaxGrants {
		ps, data.Truncated = ps[:timelineMaxGrants], true
	}
	data.Grants = len(ps)
	data.Charts = s.charts(ps, from, to, now, c.Zone)
	data.Legend = s.legend(ps)
	s.render(w, r, c, http.StatusOK, "timeline", "Access timeline", data)
	return nil
}

// timelineRange reads the form's from and to (dates in zone; the range includes both days)
// and returns the instants they cover, noting an error per field. Without them the range is
// the last timelineDefaultDays days.
func timelineRange(form *timelineForm, now time.Time, zone *time.Location) (from, to time.Time) {
	today := midnight(now.In(zone), 0)
	parse := func(field, v string) (time.Time, bool) {
		d, err := time.ParseInLocation(dateLayout, v, zone)
		if err != nil {
			form.Errors[field] = fmt.Sprintf("%q is not a date: use YYYY-MM-DD.", timebox.Clip(v))
			return time.Time{}, false
		}
		return d, true
	}
	last, first := today, time.Time{}
	okTo, okFrom := true, true
	if form.To != "" {
		last, okTo = parse("to", form.To)
	}
	if form.From != "" {
		first, okFrom = parse("from", form.From)
	} else if okTo {
		first = midnight(last, -(timelineDefaultDays - 1))
	}
	if !okTo || !okFrom {
		return time.Time{}, time.Time{}
	}
	if form.To == "" && first.After(last) {
		last = midnight(first, timelineDefaultDays-1)
	}
	form.From, form.To = first.Format(dateLayout), last.Format(dateLayout)
	from, to = first, midnight(last, 1)
	switch days := daysBetween(from, to); {
	case last.Before(first):
		form.Errors["to"] = fmt.Sprintf("The last day (%s) is before the first (%s).", form.To, form.From)
	case days > timelineMaxDays:
		form.Errors["to"] = fmt.Sprintf("The range is %d days; the timeline shows at most %d. Choose a later first day or an earlier last day.", days, timelineMaxDays)
	}
	return from, to
}

// midnight returns the start of the day days after t's, in t's zone (DST-safe).
func midnight(t time.Time, days int) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d+days, 0, 0, 0, 0, t.Location())
}

// daysBetween counts the calendar days from from to to (midnights in the same zone): whole
// days, give or take the hour a DST change adds or removes.
func daysBetween(from, to time.Time) int {
	return int(math.Round(to.Sub(from).Hours() / 24))
}

// databaseOptions are the catalog's databases for the form, grouped by environment.
func (s *Server) databaseOptions() []dbOption {
	byEnv := map[string][]string{}
	for _, db := range s.Service.Catalog.Databases {
		byEnv[db.Environment] = append(byEnv[db.Environment], db.Name)
	}
	var out []dbOption
	for env, names := range byEnv {
		sort.Strings(names)
		out = append(out, dbOption{Environment: env, Names: names})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Environment < out[j].Environment })
	return out
}

// legendItem is one colour of the charts.
type legendItem struct{ Class, Label string }

// levelClass is the colour class of an access level: its place in the catalog, so a level
// keeps its colour from one page to the next.
func (s *Server) levelClass(access string) string {
	if access == timebox.AdHocAccess {
		return "lvl-adhoc"
	}
	for i, l := range s.Service.Catalog.AccessLevels {
		if l.Name == access {
			return fmt.Sprintf("lvl-%d", i%8)
		}
	}
	return "lvl-other"
}

// legend lists the levels that ps shows, in the catalog's order.
func (s *Server) legend(ps []timebox.AccessPeriod) []legendItem {
	seen := map[string]bool{}
	for _, p := range ps {
		seen[p.Level] = true
	}
	var out []legendItem
	for _, l := range s.Service.Catalog.AccessLevels {
		if seen[l.Name] {
			out, seen[l.Name] = append(out, legendItem{s.levelClass(l.Name), l.Name}), false
		}
	}
	var rest []string
	for name, ok := range seen {
		if ok {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range rest {
		out = append(out, legendItem{s.levelClass(name), name})
	}
	return out
}
