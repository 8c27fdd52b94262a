package scheduler

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/timebox-dev/timebox"
)

// health is what the last engine calls said of one server.
type health struct {
	reachable   *bool
	okAt, errAt time.Time
	lastError   string
}

// observe records the outcome of one call to server.
func (s *Scheduler) observe(server string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.health[server]
	now := s.Now()
	reachable := err == nil || timebox.ErrorCode(err) != timebox.EUNAVAILABLE
	h.reachable = &reachable
	if err == nil {
		h.okAt = now
	} else {
		h.errAt, h.lastError = now, timebox.ErrorMessage(err)
	}
	s.health[server] = h
}

// Status reports each server's health as this process last saw it, and the work pending on
// it according to the store.
func (s *Scheduler) Status(ctx context.Context) (*timebox.Status, error) {
	var live, tampered []*timebox.Request
	err := s.Store.View(ctx, func(tx timebox.Tx) (err error) {
		live, err = tx.FindRequests(timebox.RequestFilter{States: []timebox.State{timebox.StateApproved, timebox.StateActive}})
		if err != nil {
			return err
		}
		tampered, err = tx.FindRequests(timebox.RequestFilter{Tampered: true, Limit: 100})
		return err
	})
	if err != nil {
		return nil, err
	}
	st := &timebox.Status{Leader: s.lead(ctx), Servers: []timebox.ServerStatus{}, Tampered: []timebox.TamperedRequest{}}
	for _, r := range tampered {
		st.Tampered = append(st.Tampered, timebox.TamperedRequest{ID: r.ID, Requester: r.Requester, Database: r.Database, State: r.State, Fields: r.Tampered})
	}
	byName := map[string]*timebox.ServerStatus{}
	s.mu.Lock()
	for _, name := range slices.Sorted(maps.Keys(s.Engines)) {
		h := s.health[name]
		ss := timebox.ServerStatus{Name: name, Reachable: h.reachable, LastOKAt: h.okAt, LastError: h.lastError, LastErrorAt: h.errAt}
		if srv, err := s.Catalog.Server(name); err == nil {
			ss.Engine = srv.Engine
		}
		st.Servers = append(st.Servers, ss)
	}
	s.mu.Unlock()
	for i := range st.Servers {
		byName[st.Servers[i].Name] = &st.Servers[i]
	}
	for _, r := range live {
		if r.Grant == nil || byName[r.Grant.Server] == nil {
			continue
		}
		ss, g := byName[r.Grant.Server], r.Grant
		switch {
		case r.Ending != timebox.EndingNone || g.Status == timebox.GrantRevoking:
			ss.Removing++
		case g.Status == timebox.GrantCreating:
			ss.Activating++
		case g.Status == timebox.GrantActive:
			ss.Active++
		}
		if g.NoBackstop() != "" && g.Status == timebox.GrantActive && r.Ending == timebox.EndingNone {
			ss.NoBackstop++
		}
		if g.LastError != "" && (g.Status == timebox.GrantCreating || g.Status == timebox.GrantRevoking) {
			ss.Retrying++
			step := map[timebox.GrantStatus]string{timebox.GrantCreating: "activation", timebox.GrantRevoking: "removal"}[g.Status]
			ss.Problems = append(ss.Problems, "request "+r.ID+" ("+g.Principal+"): "+step+" retrying: "+g.LastError)
		} else if g.LastError != "" && g.Status == timebox.GrantActive && r.Ending == timebox.EndingNone {
			ss.Failing++
			ss.Problems = append(ss.Problems, "request "+r.ID+" ("+g.Principal+"): "+g.LastError)
		}
	}
	return st, nil
}
