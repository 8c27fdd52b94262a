package console

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// requestRoutes are the "New request" form: GET shows it, POST checks it (action=check:
// Service.Explain, nothing stored) or files it (action=submit: Service.CreateRequest).
func (s *Server) requestRoutes() []route {
	return []route{
		{Method: "GET", Path: "/requests/new", h: s.handleNewRequest},
		{Method: "POST", Path: "/requests", h: s.handleRequestForm},
	}
}

// newRequestPage is the "New request" page.
type newRequestPage struct {
	Form *requestForm
	// Groups are the databases by environment.
	Groups []dbGroup
	Levels []timebox.AccessLevel
	// BreakGlass offers the break-glass checkbox (the person is in a break-glass group).
	BreakGlass bool
	// Preview is the policy's answer to the form as it is (after "Check").
	Preview *timebox.Explanation
}

// Still keeps the form from being replaced while it is filled in.
func (*newRequestPage) Still() bool { return true }

// dbGroup is the databases of one environment.
type dbGroup struct {
	Environment string
	Databases   []dbChoice
}

// dbChoice is one database of the form.
type dbChoice struct {
	tbhttp.DatabaseView
	// Database is its name on the server; AdHoc says it takes ad-hoc tables.
	Database, Engine string
	AdHoc, Checked   bool
}

// requestForm is what the form sent (kept as typed, to show again) and what is wrong with it.
type requestForm struct {
	Database, Access, Tables, Window, Duration, Start, End, Reason, Ticket string
	BreakGlass                                                             bool
	// Errors are field name → the one line that says what is wrong with it; Problem is an
	// error that concerns no single field.
	Errors  map[string]string
	Problem string
}

// requestFields are the form's fields in their order on the page, for the error summary.
var requestFields = []string{"database", "access", "tables", "duration", "start", "end", "reason", "ticket", "break_glass"}

// readRequestForm reads the posted form.
func readRequestForm(r *http.Request) *requestForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	f := &requestForm{Database: v("database"), Access: v("access"), Tables: v("tables"), Window: v("window"),
		Duration: v("duration"), Start: v("start"), End: v("end"), Reason: r.PostFormValue("reason"),
		Ticket: v("ticket"), BreakGlass: r.PostFormValue("break_glass") != "", Errors: map[string]string{}}
	if f.Window != "until" {
		f.Window = "duration"
	}
	return f
}

// fail records msg against field (the first error of a field stands), or as the form's
// problem when field is "".
func (f *requestForm) fail(field, msg string) {
	switch {
	case field == "" && f.Problem == "":
		f.Problem = msg
	case field != "" && f.Errors[field] == "":
		f.Errors[field] = msg
	}
}

// refused records the Service's error against the field it concerns.
func (f *requestForm) refused(err error) {
	msg := timebox.ErrorMessage(err)
	f.fail(requestField(msg, f.Window), msg)
}

// Attrs returns the ARIA attributes of field's input: described by its help text (when
// help) and its error, and marked invalid when it has one. field is a constant of the
// template, never user input.
func (f *requestForm) Attrs(field string, help bool) template.HTMLAttr {
	var ids []string
	if help {
		ids = append(ids, field+"-help")
	}
	attrs := ""
	if f.Errors[field] != "" {
		ids = append(ids, field+"-error")
		attrs = ` aria-invalid="true"`
	}
	if len(ids) > 0 {
		attrs = ` aria-describedby="` + strings.Join(ids, " ") + `"` + attrs
	}
	return template.HTMLAttr(attrs)
}

// ErrorList is the form's errors in the order of the fields, for the summary at the top.
func (f *requestForm) ErrorList() [][2]string {
	var out [][2]string
	for _, k := range requestFields {
		if m := f.Errors[k]; m != "" {
			out = append(out, [2]string{k, m})
		}
	}
	return out
}

// requestField returns the field of the form that a message of the Service concerns ("":
// the whole request). The Service's messages name their subject first: "duration …",
// "ticket …", "reason is required", "unknown database …", "access level …", "table …".
func requestField(msg, window string) string {
	m := strings.ToLower(msg)
	has, starts := func(s string) bool { return strings.Contains(m, s) }, func(s string) bool { return strings.HasPrefix(m, s) }
	span := "duration"
	if window == "until" {
		span = "end"
	}
	switch {
	case has("break-glass"):
		return "break_glass"
	case has("ticket"):
		return "ticket"
	case starts("reason"):
		return "reason"
	case has("ad-hoc"), starts("table "), starts("schema "), starts("column "), starts("give either an access level or tables"):
		return "tables"
	case has("access level"):
		return "access"
	case starts("unknown database"), starts("database"):
		return "database"
	case starts("start"):
		return "start"
	case starts("end "), starts("the window already ended"):
		return "end"
	case has("duration"), starts("an end is required"), starts("give either an end time or a duration"):
		return span
	}
	return ""
}

// input returns the request the form asks for, in zone, recording what cannot be read.
func (f *requestForm) input(zone *time.Location) timebox.RequestInput {
	in := timebox.RequestInput{Database: f.Database, Access: f.Access, Reason: f.Reason, Ticket: f.Ticket, BreakGlass: f.BreakGlass}
	for _, line := range strings.Split(f.Tables, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		t, err := timebox.ParseTableSpec(line)
		if err != nil {
			f.refused(err)
			continue
		}
		in.Tables = append(in.Tables, t)
	}
	if f.Access == timebox.AdHocAccess && len(in.Tables) == 0 && f.Errors["tables"] == "" {
		f.fail("tables", "list at least one table for ad-hoc access, one per line")
	}
	if f.Start != "" {
		if t, err := parseLocal("start", f.Start, zone); err != nil {
			f.fail("start", timebox.ErrorMessage(err))
		} else {
			in.Start = &t
		}
	}
	if f.Window == "until" {
		if f.End == "" {
			f.fail("end", "end: give the end of the window, or choose a duration")
		} else if t, err := parseLocal("end", f.End, zone); err != nil {
			f.fail("end", timebox.ErrorMessage(err))
		} else {
			in.End = &t
		}
	} else {
		in.Duration = f.Duration
	}
	return in
}

// localLayouts are the values of a datetime-local input (seconds are optional).
var localLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05"}

// parseLocal reads the value of a datetime-local input, a wall-clock time, in zone.
// EINVALID when it is not one, or when zone skips it (the hour clocks jump forward).
func parseLocal(field, v string, zone *time.Location) (time.Time, error) {
	for _, layout := range localLayouts {
		t, err := time.ParseInLocation(layout, v, zone)
		if err != nil {
			continue
		} else if t.Format(layout) != v {
			return t, timebox.Errorf(timebox.EINVALID, "%s %s does not exist in %s (the clocks skip it); choose another time", field, strings.Replace(v, "T", " ", 1), zone)
		}
		return t, nil
	}
	return time.Time{}, timebox.Errorf(timebox.EINVALID, "%s %q is not a date and time (YYYY-MM-DD HH:MM)", field, timebox.Clip(v))
}

func (s *Server) handleNewRequest(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	f := &requestForm{Database: q.Get("database"), Access: q.Get("access"), Window: "duration", Duration: "1h", Errors: map[string]string{}}
	s.render(w, r, c, http.StatusOK, "new", "New request", s.newRequestPage(c, f))
	return nil
}

// handleRequestForm checks the form (Explain) or, for action=submit, files the request and
// goes to its page. Bad input stores nothing and shows the form again with its values.
func (s *Server) handleRequestForm(w http.ResponseWriter, r *http.Request, c *call) error {
	f := readRequestForm(r)
	in := f.input(c.Zone)
	p := s.newRequestPage(c, f)
	if r.PostFormValue("action") != "submit" {
		s.preview(r.Context(), c, p, in)
		s.render(w, r, c, http.StatusOK, "new", "Check · New request", p)
		return nil
	}
	if len(f.Errors) > 0 {
		s.render(w, r, c, http.StatusBadRequest, "new", "New request", p)
		return nil
	}
	req, err := s.Service.CreateRequest(r.Context(), c.User.Name, in)
	if err != nil {
		if tbhttp.ErrorStatus(err) >= 500 {
			s.Logger.Error("console: create request", "err", err)
		}
		f.refused(err)
		s.render(w, r, c, tbhttp.ErrorStatus(err), "new", "New request", p)
		return nil
	}
	http.Redirect(w, r, "/requests/"+url.PathEscape(req.ID), http.StatusSeeOther)
	return nil
}

// preview asks the policy about the form's request, without storing anything, and puts
// what it would refuse next to the fields concerned.
func (s *Server) preview(ctx context.Context, c *call, p *newRequestPage, in timebox.RequestInput) {
	f := p.Form
	if f.Database == "" {
		f.fail("database", "choose a database")
	}
	if strings.TrimSpace(f.Reason) == "" {
		f.fail("reason", "reason is required: say what you need the access for")
	}
	d, ok := previewDuration(f, in, s.Service.Now())
	if f.Database == "" || !ok {
		return
	}
	x, err := s.Service.Explain(ctx, c.User.Name, timebox.ExplainInput{Database: in.Database, Access: in.Access, Tables: in.Tables, Duration: d})
	if err != nil {
		f.refused(err)
		return
	}
	p.Preview = x
	if x.Refusal != "" && !f.BreakGlass {
		f.refused(timebox.Errorf(timebox.EINVALID, "%s", x.Refusal))
	}
	switch {
	case f.BreakGlass && strings.HasPrefix(x.BreakGlass, "no: "):
		f.fail("break_glass", strings.TrimPrefix(x.BreakGlass, "no: "))
	case f.BreakGlass:
	case x.Rule != nil && x.Allowed:
		// The rule's ticket pattern (its other limits are in the explanation already).
		if err := x.Rule.Check(timebox.RuleInput{}, f.Ticket); err != nil {
			f.refused(err)
		} else if x.TicketRequired && f.Ticket == "" {
			db, _ := s.Service.Catalog.Database(in.Database)
			f.fail("ticket", fmt.Sprintf("a ticket is required for %s databases", db.Environment))
		}
	}
}

// previewDuration returns the length of the form's window for Explain ("", false when the
// form does not say, with the error recorded).
func previewDuration(f *requestForm, in timebox.RequestInput, now time.Time) (string, bool) {
	if f.Window != "until" {
		if f.Duration == "" {
			f.fail("duration", "duration: say how long, e.g. 2h or 30m")
			return "", false
		}
		return f.Duration, f.Errors["start"] == ""
	}
	if in.End == nil || f.Errors["start"] != "" {
		return "", false
	}
	start := now
	if in.Start != nil && in.Start.After(now) {
		start = *in.Start
	}
	if !in.End.After(start) {
		f.fail("end", "end is not after the start of the window")
		return "", false
	}
	return in.End.Sub(start).Round(time.Second).String(), true
}

// newRequestPage builds the form's page around f.
func (s *Server) newRequestPage(c *call, f *requestForm) *newRequestPage {
	cat := s.Service.Catalog
	p := &newRequestPage{Form: f, Levels: cat.AccessLevels,
		BreakGlass: cat.BreakGlass != nil && c.User.InAny(cat.BreakGlass.Groups)}
	byEnv := map[string]*dbGroup{}
	for _, v := range tbhttp.DatabaseViews(cat, c.User.Name) {
		db, err := cat.Database(v.Name)
		if err != nil {
			continue
		}
		ch := dbChoice{DatabaseView: v, Database: db.Database, AdHoc: db.Method == timebox.MethodEphemeralLogin, Checked: v.Name == f.Database}
		if srv, err := cat.Server(db.Server); err == nil {
			ch.Engine = srv.Engine
		}
		g := byEnv[v.Environment]
		if g == nil {
			g = &dbGroup{Environment: v.Environment}
			byEnv[v.Environment] = g
		}
		g.Databases = append(g.Databases, ch)
	}
	for _, g := range byEnv {
		slices.SortFunc(g.Databases, func(a, b dbChoice) int { return cmp.Compare(a.Name, b.Name) })
		p.Groups = append(p.Groups, *g)
	}
	slices.SortFunc(p.Groups, func(a, b dbGroup) int { return cmp.Compare(a.Environment, b.Environment) })
	return p
}
