package timebox

import (
	"slices"
	"strings"
	"time"
)

// CauseApproverGone is the cause recorded when an approval no longer counts because its
// approver was disabled or removed before the window started.
const CauseApproverGone = "approver_gone"

// reopenApprovals sends back to pending every approved request whose window has not started
// and whose rule's quorum no longer holds without the approvals of people removed or
// disabled since: an approval counts only from someone who may still approve when the
// window starts. Each one gets a reopen review that voids those approvals (so that they
// never count again, and the approvers may approve anew once enabled) and a
// "request.reopened" event by "timebox" saying why. A request whose window has started keeps
// its approval: what it grants is already the database's, and a disabled requester's
// access is the cascade's. Requests approved by Timebox itself (a rule's auto-approval,
// break-glass) are left alone. It returns how many requests it reopened.
func (s *Service) reopenApprovals(tx Tx, now time.Time) (int, error) {
	disabled, err := tx.DisabledUsers()
	if err != nil {
		return 0, err
	}
	approved, err := tx.FindRequests(RequestFilter{States: []State{StateApproved}})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range approved {
		if r.Ending != EndingNone || r.Grant != nil || !r.Start.After(now) {
			continue
		}
		approvers := reviewers(r.Reviews, ActionApprove)
		if slices.Contains(approvers, Actor) {
			continue // approved by a rule or break-glass, not by people
		}
		var gone, why []string
		for _, a := range approvers {
			if cause, note := s.userGone(a, disabled); cause != "" {
				gone, why = append(gone, a), append(why, note)
			}
		}
		if len(gone) == 0 {
			continue
		}
		rule, err := s.ruleFor(r)
		if err != nil {
			continue // the policy no longer allows it: the cascade's to end, not to reopen
		}
		db, err := s.Catalog.Database(r.Database)
		if err != nil {
			continue
		}
		counted := slices.DeleteFunc(slices.Clone(approvers), func(a string) bool { return slices.Contains(gone, a) })
		met, missing := s.Catalog.Quorum(rule, db, r.Requester, counted)
		if met {
			continue
		}
		note := "approval by " + strings.Join(gone, ", ") + " no longer counts: " + strings.Join(why, "; ") + " before the window started"
		if err := s.reopen(tx, r, gone, note, missing, now); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// reopen moves approved r back to pending, voiding the approvals of gone.
func (s *Service) reopen(tx Tx, r *Request, gone []string, note, missing string, now time.Time) error {
	to, err := Transition(r.State, ActionReopen)
	if err != nil {
		return err
	}
	r.State, r.Awaiting, r.UnusedAfter, r.UpdatedAt = to, missing, 0, now
	r.Reviews = append(r.Reviews, Review{Reviewer: Actor, Decision: ActionReopen, Note: note, Voids: gone, At: now})
	if err := tx.UpdateRequest(r); err != nil {
		return err
	}
	return tx.AppendEvent(requestEvent(now, Actor, "request.reopened", r, map[string]any{
		"cause": CauseApproverGone, "note": note, "voided": gone, "awaiting": missing,
	}))
}
