package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// requestPage is what one request's page shows.
type requestPage struct {
	R  *timebox.Request
	St standing
	// Own says the viewer asked for it; Status is its status line after its state (times in
	// the viewer's zone).
	Own    bool
	Status string
	// Narrowed says an approver changed the window the requester asked for.
	Narrowed bool
	Events   []*timebox.Event
	// Plan is the statements it runs on the database: for its reviewers while it is live
	// (nil otherwise).
	Plan *planView
	// Tables is the key of the request's tables in the narrowing form (see tablesKey).
	Tables string
	// Failed names the form whose action was refused, Error says why, Form is what was sent.
	Failed, Error string
	Form          url.Values
	// ShowRequest is false: the history table needs no request column here.
	ShowRequest bool
	// Deliveries are the request's notifications, newest first, for admins and auditors
	// (ShowDeliveries); DeliveriesMore says there are more than shown.
	Deliveries                     []*timebox.Delivery
	ShowDeliveries, DeliveriesMore bool
}

// Value returns what was typed into field of form when that form was refused ("" else),
// so that a refused form keeps what the person wrote.
func (p *requestPage) Value(form, field string) string {
	if p.Failed != form || p.Form == nil {
		return ""
	}
	return p.Form.Get(field)
}

// Checked reports whether checkbox field with value is ticked: as sent when form was
// refused, ticked otherwise.
func (p *requestPage) Checked(form, field, value string) bool {
	if p.Failed != form || p.Form == nil {
		return true
	}
	return slices.Contains(p.Form[field], value)
}

func (s *Server) handleRequestPage(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.showRequest(w, r, c, http.StatusOK, "", nil)
}

// showRequest renders request {id}'s page with status; failed and err, when set, are the
// form whose action was refused and why. ENOTFOUND when the viewer may not see it.
func (s *Server) showRequest(w http.ResponseWriter, r *http.Request, c *call, status int, failed string, err error) error {
	me, id := c.User.Name, r.PathValue("id")
	req, ferr := s.Service.FindRequest(r.Context(), me, id)
	if ferr != nil {
		return ferr
	}
	p := &requestPage{R: req, St: s.standingOf(req, me), Own: req.Requester == me,
		Status:   localTimes(strings.TrimPrefix(strings.TrimPrefix(req.PolicyStatus(req.Status()), string(req.State)), ", "), c.Zone),
		Narrowed: !req.RequestedStart.Equal(req.Start) || !req.RequestedEnd.Equal(req.End) || len(req.RequestedTables) > 0,
		Tables:   tablesKey(req.Tables)}
	if err != nil {
		p.Failed, p.Error, p.Form = failed, localTimes(timebox.ErrorMessage(err), c.Zone), r.PostForm
	}
	if p.Events, ferr = s.Service.FindEvents(r.Context(), me, timebox.EventFilter{RequestID: req.ID}); ferr != nil {
		return ferr
	}
	slices.Reverse(p.Events) // newest first
	if cat := s.Service.Catalog; cat.IsAdmin(me) || cat.IsAuditor(me) {
		p.ShowDeliveries = true
		ds, err := s.Service.Deliveries(r.Context(), me, timebox.DeliveryFilter{RequestID: req.ID, Limit: requestDeliveries + 1})
		if err != nil {
			return err
		}
		p.Deliveries, p.DeliveriesMore = cut(ds, requestDeliveries)
	}
	if p.St.Reviewer && req.State.Live() {
		grant, revoke, err := s.Service.Statements(r.Context(), me, req.ID)
		p.Plan = newPlanView(grant, revoke, err)
	}
	s.render(w, r, c, status, "request", "Request "+req.ID, p)
	return nil
}

// refused answers a decision the Service (or the form) refused: the request's page with the
// error next to form, with the status of its code. A request the viewer may not see, or a
// session that ended, is answered as such.
func (s *Server) refused(w http.ResponseWriter, r *http.Request, c *call, form string, err error) error {
	switch timebox.ErrorCode(err) {
	case timebox.ENOTFOUND, timebox.EUNAUTHORIZED, timebox.EINTERNAL:
		return err
	}
	return s.showRequest(w, r, c, tbhttp.ErrorStatus(err), form, err)
}

// decided sends the browser on after a decision: to the form's next page (the inbox) or
// back to the request's page, which shows the outcome.
func decided(w http.ResponseWriter, r *http.Request, id string) {
	next := "/requests/" + url.PathEscape(id)
	if n := r.PostFormValue("next"); n != "" {
		next = localPath(n)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request, c *call) error {
	me, id := c.User.Name, r.PathValue("id")
	req, err := s.Service.FindRequest(r.Context(), me, id)
	if err != nil {
		return err // before reading the form: a stranger learns nothing of the request
	}
	in, err := s.approveInput(r, c, req)
	if err == nil {
		req, err = s.Service.Approve(r.Context(), me, id, in)
	}
	if err != nil {
		return s.refused(w, r, c, "approve", err)
	}
	if (req.State == timebox.StateApproved && !req.Start.After(s.Service.Now())) || req.ExtensionUnsynced() {
		s.settle(r, id)
	}
	decided(w, r, id)
	return nil
}

func (s *Server) handleDeny(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.noted(w, r, c, "deny", s.Service.Deny)
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.noted(w, r, c, "revoke", s.Service.Revoke)
}

func (s *Server) handleFollowUp(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.noted(w, r, c, "follow-up", s.Service.CloseFollowUp)
}

// noted serves a decision that takes a note (deny, revoke, close a follow-up) by the
// Service method fn, as the signed-in user; a removal from the database is given its
// chance to finish before the answer.
func (s *Server) noted(w http.ResponseWriter, r *http.Request, c *call, form string,
	fn func(ctx context.Context, actor, id, note string) (*timebox.Request, error)) error {
	id := r.PathValue("id")
	req, err := fn(r.Context(), c.User.Name, id, r.PostFormValue("note"))
	if err != nil {
		return s.refused(w, r, c, form, err)
	}
	if req.Ending != timebox.EndingNone {
		s.settle(r, id)
	}
	decided(w, r, id)
	return nil
}

// approveInput reads the approval form: a note, and optionally a later start, an earlier
// end or a shorter duration (times in the viewer's zone), and the tables, operations and
// columns to keep of an ad-hoc request.
func (s *Server) approveInput(r *http.Request, c *call, req *timebox.Request) (timebox.ApproveInput, error) {
	in := timebox.ApproveInput{Note: r.PostFormValue("note")}
	now := s.Service.Now()
	start, end, dur := strings.TrimSpace(r.PostFormValue("start")), strings.TrimSpace(r.PostFormValue("end")), strings.TrimSpace(r.PostFormValue("duration"))
	if start != "" {
		t, err := timebox.ParseTime(start, now, c.Zone)
		if err != nil {
			return in, timebox.Errorf(timebox.EINVALID, "later start: %s", timebox.ErrorMessage(err))
		}
		in.Start = &t
	}
	switch {
	case end != "" && dur != "":
		return in, timebox.Errorf(timebox.EINVALID, "give either an earlier end or a shorter duration, not both")
	case end != "":
		t, err := timebox.ParseTime(end, now, c.Zone)
		if err != nil {
			return in, timebox.Errorf(timebox.EINVALID, "earlier end: %s", timebox.ErrorMessage(err))
		}
		in.End = &t
	case dur != "":
		d, err := timebox.ParseDuration(dur)
		if err != nil {
			return in, timebox.Errorf(timebox.EINVALID, "shorter duration: %s", timebox.ErrorMessage(err))
		}
		from := req.Start
		if in.Start != nil {
			from = *in.Start
		}
		t := from.Add(d)
		in.End = &t
	}
	if key := r.PostFormValue("tables"); key != "" {
		tables, err := keptTables(r.PostForm, key, req.Tables)
		if err != nil {
			return in, err
		}
		in.Tables = tables
	}
	return in, nil
}

// tablesKey identifies a request's tables in the narrowing form, so that a form loaded
// before another approver narrowed them is not applied to different tables.
func tablesKey(tables []timebox.TableGrant) string {
	if len(tables) == 0 {
		return ""
	}
	return timebox.DescribeTables(tables)
}

// keptTables reads the tables the approver kept (fields keep.N, op.N and col.N for the
// request's table N): nil when they kept everything.
func keptTables(form url.Values, key string, asked []timebox.TableGrant) ([]timebox.TableGrant, error) {
	if key != tablesKey(asked) {
		return nil, timebox.Errorf(timebox.ECONFLICT, "the request's tables changed since this page was loaded: review them again")
	}
	var keep []timebox.TableGrant
	for i, t := range asked {
		n := strconv.Itoa(i)
		if form.Get("keep."+n) == "" {
			continue
		}
		k := timebox.TableGrant{Schema: t.Schema, Table: t.Table}
		for _, op := range t.Operations {
			if slices.Contains(form["op."+n], op) {
				k.Operations = append(k.Operations, op)
			}
		}
		for _, col := range t.Columns {
			if slices.Contains(form["col."+n], col) {
				k.Columns = append(k.Columns, col)
			}
		}
		name := tableLabel(t)
		switch {
		case len(k.Operations) == 0:
			return nil, timebox.Errorf(timebox.EINVALID, "table %s: keep at least one operation, or remove the table", name)
		case len(t.Columns) > 0 && len(k.Columns) == 0:
			return nil, timebox.Errorf(timebox.EINVALID, "table %s: keep at least one column, or remove the table", name)
		}
		keep = append(keep, k)
	}
	if len(keep) == 0 {
		return nil, timebox.Errorf(timebox.EINVALID, "keep at least one table, or deny the request")
	} else if timebox.DescribeTables(keep) == timebox.DescribeTables(asked) {
		return nil, nil
	}
	return keep, nil
}

// tableLabel is a table's name as people read it.
func tableLabel(t timebox.TableGrant) string {
	if t.Schema == "" {
		return t.Table
	}
	return t.Schema + "." + t.Table
}
