package http

import (
	"net/http"
	"time"

	"github.com/timebox-dev/timebox"
)

// reportPeriod is the default period of the access report.
const reportPeriod = 30 * 24 * time.Hour

// Query parameters of the audit routes.
var (
	eventParams  = []string{"user", "actor", "database", "request", "since", "until", "limit"}
	reportParams = []string{"since", "until"}
)

// eventList is the body of GET /api/v1/audit.
type eventList struct {
	Events []*timebox.Event `json:"events"`
}

// accessReport is the body of GET /api/v1/reports/access.
type accessReport struct {
	Records []timebox.AccessRecord `json:"records"`
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	q, err := parseQuery(r, eventParams...)
	if err != nil {
		return err
	}
	var f timebox.EventFilter
	for name, dst := range map[string]*string{"user": &f.User, "actor": &f.Actor, "database": &f.Database, "request": &f.RequestID} {
		if *dst, err = q.string(name); err != nil {
			return err
		}
	}
	if f.Since, err = q.time("since"); err != nil {
		return err
	} else if f.Until, err = q.time("until"); err != nil {
		return err
	} else if f.Limit, err = q.limit(); err != nil {
		return err
	}
	es, err := s.Service.FindEvents(r.Context(), u.Name, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, eventList{Events: nonNil(es)})
	return nil
}

func (s *Server) handleVerifyAudit(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	v, err := s.Service.VerifyAudit(r.Context(), u.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// handleStatus answers the servers' health and pending work, to admins and auditors.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	if !s.Service.Catalog.IsAdmin(u.Name) && !s.Service.Catalog.IsAuditor(u.Name) {
		return timebox.Errorf(timebox.EFORBIDDEN, "only admins and auditors may see the servers' status")
	}
	if s.Reporter == nil {
		return timebox.Errorf(timebox.EUNAVAILABLE, "this server runs no scheduler, so it has no status to report")
	}
	st, err := s.Reporter.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) handleAccessReport(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	q, err := parseQuery(r, reportParams...)
	if err != nil {
		return err
	}
	since, err := q.time("since")
	if err != nil {
		return err
	}
	until, err := q.time("until")
	if err != nil {
		return err
	}
	if until.IsZero() {
		until = s.now()
	}
	if since.IsZero() {
		since = until.Add(-reportPeriod)
	}
	if !since.Before(until) {
		return timebox.Errorf(timebox.EINVALID, "since %s is not before until %s", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	records, err := s.Service.AccessReport(r.Context(), u.Name, since, until)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accessReport{Records: nonNil(records)})
	return nil
}
