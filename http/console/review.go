package console

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/timebox-dev/timebox"
)

// settleTimeout bounds how long a decision's answer waits for the database work it started
// (as the API's does): a slow database only means the page shows the request on its way.
const settleTimeout = 10 * time.Second

// inboxLimit is how many entries each section of the inbox lists (its heading counts all).
const inboxLimit = 100

// reviewRoutes are the approvals inbox, one request's page, and the reviewers' decisions
// on a request: approve (optionally narrowed), deny, revoke, close a break-glass follow-up.
func (s *Server) reviewRoutes() []route {
	return []route{
		{Method: "GET", Path: "/approvals", h: s.handleApprovals},
		{Method: "GET", Path: "/requests/{id}", h: s.handleRequestPage},
		{Method: "POST", Path: "/requests/{id}/approve", h: s.handleApprove},
		{Method: "POST", Path: "/requests/{id}/deny", h: s.handleDeny},
		{Method: "POST", Path: "/requests/{id}/revoke", h: s.handleRevoke},
		{Method: "POST", Path: "/requests/{id}/follow-up", h: s.handleFollowUp},
	}
}

// inboxItem is one request waiting for the viewer.
type inboxItem struct {
	R  *timebox.Request
	St standing
	// Plan is the statements that will run when it is granted (nil without a planner).
	Plan *planView
}

// inboxSection is one part of the inbox: how many wait, and the first inboxLimit of them.
type inboxSection struct {
	Total int
	Items []*inboxItem
}

// inbox is what waits for the viewer: pending requests and pending extensions they may
// approve, and break-glass follow-ups they may close.
type inbox struct {
	Requests, Extensions, FollowUps inboxSection
	// Mine counts the viewer's own requests waiting for others.
	Mine int
}

// handleApprovals shows the inbox. It costs two indexed queries whatever the size of the
// store: the live requests the viewer may see (state pending, approved or active, for
// the pending extensions) and those with an open follow-up; finished requests are never read.
func (s *Server) handleApprovals(w http.ResponseWriter, r *http.Request, c *call) error {
	me := c.User.Name
	live, err := s.Service.FindRequests(r.Context(), me, timebox.RequestFilter{
		States: []timebox.State{timebox.StatePending, timebox.StateApproved, timebox.StateActive}})
	if err != nil {
		return err
	}
	open, err := s.Service.FindRequests(r.Context(), me, timebox.RequestFilter{FollowUpOpen: true})
	if err != nil {
		return err
	}
	in := &inbox{}
	var reqs, exts, fups []*inboxItem
	for _, req := range live {
		if req.Requester == me && (req.State == timebox.StatePending || req.Extension != nil) {
			in.Mine++
		}
		st := s.standingOf(req, me)
		switch {
		case st.Approve && st.Extension:
			exts = append(exts, &inboxItem{R: req, St: st})
		case st.Approve:
			reqs = append(reqs, &inboxItem{R: req, St: st})
		}
	}
	for _, req := range open {
		if st := s.standingOf(req, me); st.FollowUp {
			fups = append(fups, &inboxItem{R: req, St: st})
		}
	}
	// Longest waiting first.
	byAge := func(a, b *inboxItem) int {
		return cmp.Or(a.R.CreatedAt.Compare(b.R.CreatedAt), cmp.Compare(a.R.ID, b.R.ID))
	}
	slices.SortFunc(reqs, byAge)
	slices.SortFunc(exts, func(a, b *inboxItem) int {
		return cmp.Or(a.R.Extension.RequestedAt.Compare(b.R.Extension.RequestedAt), cmp.Compare(a.R.ID, b.R.ID))
	})
	slices.SortFunc(fups, byAge)
	in.Requests, in.Extensions, in.FollowUps = section(reqs), section(exts), section(fups)
	for _, it := range in.Requests.Items {
		it.Plan = s.inboxPlan(it.R)
	}
	title := "Approvals"
	if n := in.Requests.Total + in.Extensions.Total + in.FollowUps.Total; n > 0 {
		title = "Approvals (" + strconv.Itoa(n) + ")"
	}
	s.render(w, r, c, http.StatusOK, "approvals", title, in)
	return nil
}

func section(items []*inboxItem) inboxSection {
	sec := inboxSection{Total: len(items), Items: items}
	if len(items) > inboxLimit {
		sec.Items = items[:inboxLimit]
	}
	return sec
}

// inboxPlan returns the statements of a request the viewer was just shown by
// Service.FindRequests (which authorized it), without reading it again.
func (s *Server) inboxPlan(r *timebox.Request) *planView {
	if s.Service.Plan == nil {
		return nil
	}
	grant, revoke, err := s.Service.Plan(r)
	return newPlanView(grant, revoke, err)
}

// planView is the statements a request runs on its database, or why they cannot be shown.
type planView struct {
	Grant, Revoke []string
	Err           string
}

func newPlanView(grant, revoke []string, err error) *planView {
	if err != nil {
		return &planView{Err: timebox.ErrorMessage(err)}
	}
	return &planView{Grant: grant, Revoke: revoke}
}

// settle asks the runner, when there is one, to do request id's database work now and
// waits for it (up to settleTimeout), so that the page the decision redirects to shows
// "active" or "revoked" when the database is quick. The decision itself is stored: a slow
// or failing database is not an error here (the scheduler keeps trying).
func (s *Server) settle(r *http.Request, id string) {
	if s.Runner == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), settleTimeout)
	defer cancel()
	if err := s.Runner.RunNow(ctx, id); err != nil {
		s.Logger.Warn("console: database work not finished before answering", "request", id, "err", err)
	}
}
