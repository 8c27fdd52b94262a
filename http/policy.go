package http

import (
	"net/http"

	"github.com/timebox-dev/timebox"
)

// PlanView is the body of GET /api/v1/requests/{id}/plan: the statements the database will
// run for a request, to grant it and, at its end, to remove it.
type PlanView struct {
	Grant  []string `json:"grant"`
	Revoke []string `json:"revoke"`
}

// disabledList is the body of GET /api/v1/users/disabled.
type disabledList struct {
	Users []*timebox.DisabledUser `json:"users"`
}

// cascadeView is the body of POST /api/v1/users/{name}/disable.
type cascadeView struct {
	User  string `json:"user"`
	Ended int    `json:"ended"`
}

func (s *Server) handleExtend(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	var in timebox.ExtendInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	req, err := s.Service.Extend(r.Context(), u.Name, id, in)
	if err != nil {
		return err
	}
	if req.ExtensionUnsynced() {
		req = s.settle(r, u, req)
	}
	writeJSON(w, http.StatusOK, newRequestView(req))
	return nil
}

func (s *Server) handleFollowUp(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	return s.noted(w, r, u, s.Service.CloseFollowUp)
}

func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	id, err := requestID(r)
	if err != nil {
		return err
	}
	grant, revoke, err := s.Service.Statements(r.Context(), u.Name, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, PlanView{Grant: nonNilStrings(grant), Revoke: nonNilStrings(revoke)})
	return nil
}

func (s *Server) handleExplain(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	var in timebox.ExplainInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	x, err := s.Service.Explain(r.Context(), u.Name, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}

func (s *Server) handleDisableUser(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	name := r.PathValue("name")
	if err := checkParam("the user name", name); err != nil {
		return err
	}
	var in noteInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	n, err := s.Service.DisableUser(r.Context(), u.Name, name, in.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cascadeView{User: name, Ended: n})
	return nil
}

func (s *Server) handleEnableUser(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	name := r.PathValue("name")
	if err := checkParam("the user name", name); err != nil {
		return err
	}
	if err := s.Service.EnableUser(r.Context(), u.Name, name); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cascadeView{User: name})
	return nil
}

func (s *Server) handleDisabledUsers(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	list, err := s.Service.DisabledUsers(r.Context(), u.Name)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*timebox.DisabledUser{}
	}
	writeJSON(w, http.StatusOK, disabledList{Users: list})
	return nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
