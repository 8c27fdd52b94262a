package console

import (
	"slices"

	"github.com/timebox-dev/timebox"
)

// standing is what the viewer may do with one request, as far as the page needs to know to
// offer a form. It only hides what the Service would refuse: every decision still goes
// through the Service method, which decides.
type standing struct {
	// Rule is the rule that decides the request (or its pending extension) under the
	// current policy; nil when the policy no longer allows it.
	Rule *timebox.Rule
	// Extension says the decision waiting is on a pending extension, not the request.
	Extension bool
	// Reviewer: the viewer is not the requester and owns the database, administers, or
	// approves under its rule (they see the statements and may deny or revoke).
	Reviewer bool
	// Approve: the viewer may approve what waits (the request or its extension); Deny: may
	// deny it. Approved: the viewer approved it already (the quorum still needs others).
	Approve, Deny, Approved bool
	// Revoke: the request is approved or active and the viewer reviews it.
	Revoke bool
	// FollowUp: a break-glass follow-up is open and the viewer may close it.
	FollowUp bool
}

// standingOf returns what viewer may do with r.
func (s *Server) standingOf(r *timebox.Request, viewer string) standing {
	var st standing
	cat := s.Service.Catalog
	db, err := cat.Database(r.Database)
	if err != nil {
		return st
	}
	live := r.State == timebox.StateApproved || r.State == timebox.StateActive
	st.Extension = r.Extension != nil && live && r.Ending == timebox.EndingNone
	end, reviews := r.End, r.Reviews
	if st.Extension {
		end, reviews = r.Extension.End, r.Extension.Reviews
	}
	if requester, err := cat.User(r.Requester); err == nil {
		in := timebox.RuleInput{Requester: requester, Database: db, Access: r.Access,
			Operations: timebox.TableOperations(r.Tables), Duration: end.Sub(r.Start)}
		if rule, _, err := cat.Rule(in); err == nil && rule.Refuse == "" {
			st.Rule = rule
		}
	}
	if r.Requester == viewer {
		return st // nobody reviews their own request (they cancel, release or extend it)
	}
	mayApprove := st.Rule != nil && cat.MayApprove(st.Rule, db, viewer)
	st.Reviewer = mayApprove || cat.IsOwner(viewer, db) || cat.IsAdmin(viewer)
	waiting := r.State == timebox.StatePending || st.Extension
	st.Approved = slices.Contains(approvedBy(reviews), viewer)
	st.Approve = waiting && mayApprove && !st.Approved
	st.Deny = waiting && st.Reviewer
	st.Revoke = live && r.Ending == timebox.EndingNone && st.Reviewer
	if f := r.FollowUp; f != nil && f.Open {
		var reviewers []string
		if bg := cat.BreakGlass; bg != nil {
			reviewers = bg.Reviewers
		}
		u, err := cat.User(viewer)
		st.FollowUp = cat.IsAdmin(viewer) || cat.IsOwner(viewer, db) || (err == nil && u.InAny(reviewers))
	}
	return st
}
