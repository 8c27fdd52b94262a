package console

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/timebox-dev/timebox"
)

// Page sizes of the audit page.
const (
	auditPageSize = 100
	auditMaxPage  = 1000
)

// auditRoutes are the audit log (filtered, paged by seq), its chain verification (run on
// demand: it reads every event) and its export as CSV or JSON.
func (s *Server) auditRoutes() []route {
	v := &verifier{}
	return []route{
		{Method: "GET", Path: "/audit", h: func(w http.ResponseWriter, r *http.Request, c *call) error {
			return s.handleAudit(w, r, c, v)
		}},
		{Method: "POST", Path: "/audit/verify", h: func(w http.ResponseWriter, r *http.Request, c *call) error {
			return s.handleVerify(w, r, c, v)
		}},
		{Method: "GET", Path: "/audit/export", h: s.handleAuditExport},
	}
}

// mayAudit refuses those who may not read the whole audit log. The API shows anyone the
// events of their own requests and of those they review (Service.FindEvents), and each
// request's page shows its history; the log as a whole is for admins and auditors, as its
// verification is (Service.VerifyAudit).
func (s *Server) mayAudit(c *call) error {
	if cat := s.Service.Catalog; !cat.IsAdmin(c.User.Name) && !cat.IsAuditor(c.User.Name) {
		return timebox.Errorf(timebox.EFORBIDDEN, "only admins and auditors may read the audit log; the history of each of your requests is on its page")
	}
	return nil
}

// auditFilter is the audit page's filter as typed (Form) and as the store reads it (F).
type auditFilter struct {
	Form   url.Values
	F      timebox.EventFilter
	Errors map[string]string // by field
}

// auditFields are the filter's query parameters.
var auditFields = []string{"action", "actor", "user", "request", "database", "since", "until", "limit", "before"}

// parseAuditFilter reads the filter from r's query; times are in the viewer's zone, and
// since may say how long ago (2h, 30d).
func (s *Server) parseAuditFilter(r *http.Request, c *call) *auditFilter {
	q := r.URL.Query()
	af := &auditFilter{Form: url.Values{}, Errors: map[string]string{}}
	for _, k := range auditFields {
		if v := strings.TrimSpace(q.Get(k)); len(v) > 200 {
			af.Errors[k] = "is too long"
		} else if v != "" {
			af.Form.Set(k, v)
		}
	}
	f := &af.F
	f.Action, f.Actor, f.User = af.Form.Get("action"), af.Form.Get("actor"), af.Form.Get("user")
	f.RequestID, f.Database = af.Form.Get("request"), af.Form.Get("database")
	now := s.Service.Now()
	if v := af.Form.Get("since"); v != "" {
		if d, err := timebox.ParseDuration(v); err == nil {
			f.Since = now.Add(-d)
		} else if f.Since, err = timebox.ParseTime(v, now, c.Zone); err != nil {
			af.Errors["since"] = "a time (2026-01-02 15:04, in " + c.Zone.String() + ") or how long ago (2h, 30d)"
		}
	}
	if v := af.Form.Get("until"); v != "" {
		var err error
		if f.Until, err = timebox.ParseTime(v, now, c.Zone); err != nil {
			af.Errors["until"] = "a time such as 2026-01-02 15:04 (in " + c.Zone.String() + ")"
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		af.Errors["until"] = "must be after since"
	}
	f.Limit = auditPageSize
	if v := af.Form.Get("limit"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > auditMaxPage {
			af.Errors["limit"] = "a number of events from 1 to " + strconv.Itoa(auditMaxPage)
		} else {
			f.Limit = n
		}
	}
	if v := af.Form.Get("before"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 1 {
			af.Errors["before"] = "a positive event number"
		} else {
			f.Before = n
		}
	}
	return af
}

// query returns the filter as a query string with before set to the given seq (0: none),
// and without the page size when export is set.
func (af *auditFilter) query(before int64, export bool) string {
	q := url.Values{}
	for k, v := range af.Form {
		if k != "before" && !(export && k == "limit") {
			q[k] = v
		}
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	return q.Encode()
}

// auditPage is what the audit page shows.
type auditPage struct {
	Filter    *auditFilter
	Databases []string
	// Events are newest first; Older links to the page before them ("" at the start of the
	// log), Newest to the first page ("" on it).
	Events        []*timebox.Event
	Older, Newest string
	// First and Last are the seqs of the oldest and newest event shown.
	First, Last int64
	// ExportCSV and ExportJSON export the filtered events.
	ExportCSV, ExportJSON string
	Verify                *verification
	ShowRequest           bool
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request, c *call, v *verifier) error {
	if err := s.mayAudit(c); err != nil {
		return err
	}
	af := s.parseAuditFilter(r, c)
	p := &auditPage{Filter: af, Verify: v.result(), ShowRequest: true}
	q := af.query(0, true)
	if q != "" {
		q += "&"
	}
	p.ExportCSV, p.ExportJSON = "/audit/export?"+q+"format=csv", "/audit/export?"+q+"format=json"
	for _, db := range s.Service.Catalog.Databases {
		p.Databases = append(p.Databases, db.Name)
	}
	if len(af.Errors) > 0 {
		s.render(w, r, c, http.StatusBadRequest, "audit", "Audit log", p)
		return nil
	}
	f := af.F
	f.Limit++ // one more tells whether there are older events
	es, err := s.Service.FindEvents(r.Context(), c.User.Name, f)
	if err != nil {
		return err
	}
	if len(es) > af.F.Limit {
		es = es[1:]
		p.Older = "/audit?" + af.query(es[0].Seq, false)
	}
	if af.F.Before > 0 {
		p.Newest = strings.TrimSuffix("/audit?"+af.query(0, false), "?")
	}
	if len(es) > 0 {
		p.First, p.Last = es[0].Seq, es[len(es)-1].Seq
	}
	slices.Reverse(es)
	p.Events = es
	s.render(w, r, c, http.StatusOK, "audit", "Audit log", p)
	return nil
}

// verifier runs the chain verification one at a time and keeps its last result (in this
// process: another replica shows its own).
type verifier struct {
	run  sync.Mutex // held while a verification runs
	mu   sync.Mutex
	last *verification
}

// verification is the outcome of one run of Service.VerifyAudit.
type verification struct {
	At   time.Time
	By   string
	Took time.Duration
	V    *timebox.AuditVerification
	Err  string
}

func (v *verifier) result() *verification {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last
}

// handleVerify verifies the whole chain and its checkpoint, then sends the browser to the
// audit page, which shows the outcome. A verification asked for while another runs waits
// for it and shows its outcome instead of reading the log a second time.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request, c *call, v *verifier) error {
	if err := s.mayAudit(c); err != nil {
		return err
	}
	asked := time.Now()
	v.run.Lock()
	defer v.run.Unlock()
	if last := v.result(); last == nil || last.At.Before(asked) {
		res, err := s.Service.VerifyAudit(r.Context(), c.User.Name)
		if timebox.ErrorCode(err) == timebox.EFORBIDDEN {
			return err
		}
		out := &verification{At: time.Now(), By: c.User.Name, Took: time.Since(asked), V: res}
		if err != nil {
			out.Err = timebox.ErrorMessage(err)
			s.Logger.Error("console: audit verification", "err", err)
		}
		v.mu.Lock()
		v.last = out
		v.mu.Unlock()
	}
	http.Redirect(w, r, "/audit#verification", http.StatusSeeOther)
	return nil
}

// handleAuditExport answers the filtered events (every page of them) as a CSV or JSON
// attachment.
func (s *Server) handleAuditExport(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := s.mayAudit(c); err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format != "csv" && format != "json" {
		return timebox.Errorf(timebox.EINVALID, "export format %q: use csv or json", timebox.Clip(format))
	}
	af := s.parseAuditFilter(r, c)
	delete(af.Errors, "limit")
	for field, msg := range af.Errors {
		return timebox.Errorf(timebox.EINVALID, "%s: %s", field, msg)
	}
	f := af.F
	f.Limit = 0 // the whole filtered log; Before still applies
	es, err := s.Service.FindEvents(r.Context(), c.User.Name, f)
	if err != nil {
		return err
	}
	name := "timebox-audit-" + s.Service.Now().UTC().Format("20060102T150405Z") + "." + format
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	if format == "json" {
		w.Header().Set("Content-Type", "application/json")
		if es == nil {
			es = []*timebox.Event{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(es)
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	return writeEventsCSV(w, es)
}

// writeEventsCSV writes events as `timebox audit -o csv` does: times in UTC (RFC 3339),
// details as one line of JSON, every cell defused against formula injection.
func writeEventsCSV(w http.ResponseWriter, es []*timebox.Event) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"seq", "time", "actor", "action", "request_id", "database", "details", "hash"}); err != nil {
		return err
	}
	for _, e := range es {
		details := ""
		if len(e.Details) > 0 {
			b, _ := json.Marshal(e.Details)
			details = string(b)
		}
		row := []string{strconv.FormatInt(e.Seq, 10), e.Time.UTC().Format(time.RFC3339), e.Actor, e.Action,
			e.RequestID, e.Database, details, e.Hash}
		for i, cell := range row {
			row[i] = csvCell(cell)
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvCell defuses a cell that a spreadsheet would run as a formula (it starts with = + - @,
// a tab or a carriage return) by prefixing it with a single quote.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
