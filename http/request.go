package http

import (
	"context"
	"net/http"
	"net/url"

	"github.com/timebox-dev/timebox"
)

// RequestView is a request as the API shows it: every field of timebox.Request plus its
// one-line status, which tells a pending removal or a retrying activation apart.
type RequestView struct {
	*timebox.Request
	Status string `json:"status"`
}

// newRequestView returns the view of r.
func newRequestView(r *timebox.Request) *RequestView {
	return &RequestView{Request: r, Status: r.Status()}
}

// requestParams are the query parameters of GET /api/v1/requests.
var requestParams = []string{"state", "mine", "database", "limit", "follow_up"}

// requestList is the body of GET /api/v1/requests.
type requestList struct {
	Requests []*RequestView `json:"requests"`
}

// noteInput is the body of deny, revoke, cancel and release.
type noteInput struct {
	Note string `json:"note"`
}

func (s *Server) handleCreateRequest(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	var in timebox.RequestInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	req, err := s.Service.CreateRequest(r.Context(), u.Name, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/requests/"+url.PathEscape(req.ID))
	writeJSON(w, http.StatusCreated, newRequestView(req))
	return nil
}

func (s *Server) handleRequests(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	q, err := parseQuery(r, requestParams...)
	if err != nil {
		return err
	}
	var f timebox.RequestFilter
	if f.States, err = q.states(); err != nil {
		return err
	} else if f.Database, err = q.string("database"); err != nil {
		return err
	} else if f.Limit, err = q.limit(); err != nil {
		return err
	}
	if f.FollowUpOpen, err = q.bool("follow_up"); err != nil {
		return err
	}
	if mine, err := q.bool("mine"); err != nil {
		return err
	} else if mine {
		f.Requester = u.Name
	}
	rs, err := s.Service.FindRequests(r.Context(), u.Name, f)
	if err != nil {
		return err
	}
	list := requestList{Requests: make([]*RequestView, len(rs))}
	for i, req := range rs {
		list.Requests[i] = newRequestView(req)
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) handleRequest(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	req, err := s.Service.FindRequest(r.Context(), u.Name, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newRequestView(req))
	return nil
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	var in timebox.ApproveInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	req, err := s.Service.Approve(r.Context(), u.Name, id, in)
	if err != nil {
		return err
	}
	if !req.Start.After(s.now()) {
		req = s.settle(r, u, req)
	}
	writeJSON(w, http.StatusOK, newRequestView(req))
	return nil
}

func (s *Server) handleDeny(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	return s.noted(w, r, u, s.Service.Deny)
}

// noted serves a decision on one request that takes a note (deny, revoke, cancel, release, close a
// follow-up). When access must first be removed from the database it lets the runner try
// before answering; it answers with the request as it is then.
func (s *Server) noted(w http.ResponseWriter, r *http.Request, u *timebox.User,
	fn func(ctx context.Context, actor, id, note string) (*timebox.Request, error)) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	var in noteInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	req, err := fn(r.Context(), u.Name, id, in.Note)
	if err != nil {
		return err
	}
	if req.Ending != timebox.EndingNone {
		req = s.settle(r, u, req)
	}
	writeJSON(w, http.StatusOK, newRequestView(req))
	return nil
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	return s.noted(w, r, u, s.Service.Revoke)
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	return s.noted(w, r, u, s.Service.Cancel)
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	return s.noted(w, r, u, s.Service.Release)
}

// requestID returns the request id in r's path, or EINVALID when it cannot be one (see
// checkParam).
func requestID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	return id, checkParam("the request id", id)
}

// settle asks the runner, when there is one, to do req's database work now and waits for it
// up to runTimeout, then returns req as stored afterwards. The change itself is already
// stored, so a slow or failing database only means the answer shows the request still on
// its way (the scheduler keeps retrying); it is not an error.
func (s *Server) settle(r *http.Request, u *timebox.User, req *timebox.Request) *timebox.Request {
	if s.Runner == nil {
		return req
	}
	// The database work must not be cut short because the client hung up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), runTimeout)
	defer cancel()
	if err := s.Runner.RunNow(ctx, req.ID); err != nil {
		s.logger().Warn("http: database work not finished before answering", "request", req.ID, "err", err)
	}
	fresh, err := s.Service.FindRequest(r.Context(), u.Name, req.ID)
	if err != nil {
		s.logger().Warn("http: reload request", "request", req.ID, "err", err)
		return req
	}
	return fresh
}

func (s *Server) handleCredentials(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	w.Header().Set("Cache-Control", "no-store")
	id, err := requestID(r)
	if err != nil {
		return err
	}
	c, err := s.Service.Credentials(r.Context(), u.Name, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}
