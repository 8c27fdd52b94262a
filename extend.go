package timebox

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Extend asks for more time on the actor's own approved or active request. The extended
// window goes through the same policy as a new request (the rule for the whole window, its
// maximum duration and quorum; an auto-approving rule approves it at once); on approval the
// end moves, and the scheduler moves the database's expiry, with no gap and no new grant. On
// denial nothing changes. EINVALID for a bad end or a window the policy refuses; ECONFLICT
// when the request cannot be extended (not approved or active, ending, an extension pending,
// break-glass).
func (s *Service) Extend(ctx context.Context, actor, id string, in ExtendInput) (*Request, error) {
	if err := checkText("reason", in.Reason, true); err != nil {
		return nil, err
	}
	var r *Request
	var end time.Time
	var rin RuleInput
	err := s.Store.View(ctx, func(tx Tx) (err error) {
		if err := s.checkEnabled(tx, actor); err != nil {
			return err
		} else if r, err = s.visibleRequest(tx, actor, id); err != nil {
			return err
		} else if r.Requester != actor {
			return Errorf(EFORBIDDEN, "only the requester may extend request %s", id)
		} else if end, err = s.checkExtension(r, in, s.now()); err != nil {
			return err
		}
		rin, err = s.ruleInput(r, end)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("extend: %w", err)
	}
	// Decided outside the transaction (an on-call check may read a calendar over the
	// network); the update fails as stale if the request changed meanwhile.
	rule, d, err := s.decideExtension(ctx, rin, r, end)
	if err != nil {
		return nil, fmt.Errorf("extend: %w", err)
	}
	err = s.Store.Update(ctx, func(tx Tx) error {
		now := s.now()
		if !r.End.After(now) {
			return Errorf(ECONFLICT, "the window already ended at %s", fmtTime(r.End))
		} else if err := s.checkLoginFreeUntil(tx, r, end); err != nil {
			return err
		} else if d != nil {
			return s.applyExtension(tx, r, Actor, rule.Name, d.end, d.note, in.Reason, now)
		}
		r.Extension = &Extension{End: end, Rule: rule.Name, Reason: strings.TrimSpace(in.Reason), RequestedAt: now, Reviews: []Review{}}
		r.Awaiting, r.UpdatedAt = rule.quorumText(), now
		if err := tx.UpdateRequest(r); err != nil {
			return err
		}
		return tx.AppendEvent(requestEvent(now, actor, "extension.requested", r, map[string]any{
			"end": fmtTime(end), "reason": r.Extension.Reason, "rule": rule.Name, "awaiting": r.Awaiting,
		}))
	})
	if err != nil {
		return nil, fmt.Errorf("extend: %w", err)
	}
	s.wake()
	return r, nil
}

// checkExtension validates an extension of r and returns the new end.
func (s *Service) checkExtension(r *Request, in ExtendInput, now time.Time) (time.Time, error) {
	switch {
	case r.State != StateApproved && r.State != StateActive || r.Ending != EndingNone || !r.End.After(now):
		return time.Time{}, Errorf(ECONFLICT, "request %s cannot be extended: it is %s", r.ID, r.Status())
	case r.Extension != nil:
		return time.Time{}, Errorf(ECONFLICT, "request %s already has an extension to %s waiting for approval", r.ID, fmtTime(r.Extension.End))
	case r.BreakGlass:
		return time.Time{}, Errorf(ECONFLICT, "a break-glass request cannot be extended; ask for a new one")
	}
	end, err := endOf(in.End, in.Duration, r.End, "say how much longer: a duration (--for 1h) or a new end (--until TIME)")
	if err != nil {
		return end, err
	} else if !end.After(r.End) {
		return end, Errorf(EINVALID, "the new end %s is not after the current end %s", fmtTime(end), fmtTime(r.End))
	}
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return end, Errorf(ECONFLICT, "database %s is no longer configured", r.Database)
	}
	limits := s.Catalog.LimitsFor(db.Environment)
	limits.MaxLeadTime = 0 // the start is the request's, already checked
	return end, checkWindow(r.Start, end, now, limits, db.Environment)
}

// extensionDecision is an extension approved without a person.
type extensionDecision struct {
	end  time.Time
	note string
}

// decideExtension applies the policy to an extension of r to end: the rule for the whole
// window must allow it; an auto-approving rule approves it (an on-call one up to the end of
// the shift, which must still lie after the current end).
func (s *Service) decideExtension(ctx context.Context, in RuleInput, r *Request, end time.Time) (*Rule, *extensionDecision, error) {
	rule, _, err := s.Catalog.Rule(in)
	if err != nil {
		return nil, nil, err
	} else if err := rule.Check(in, r.Ticket); err != nil {
		return nil, nil, err
	}
	a := rule.AutoApprove
	switch {
	case a == nil:
		return rule, nil, nil
	case a.Always:
		return rule, &extensionDecision{end: end, note: "extended automatically by rule " + rule.Name}, nil
	case s.OnCall == nil:
		return rule, nil, nil
	}
	until, ok, err := s.OnCall.OnCall(ctx, a.OnCall, in.Requester, s.now())
	if err != nil || !ok || !until.After(r.End) {
		return rule, nil, nil
	}
	d := &extensionDecision{end: end, note: fmt.Sprintf("extended automatically by rule %s: %s is on call in %s until %s", rule.Name, r.Requester, a.OnCall, fmtTime(until))}
	if until.Before(end) {
		d.end = until
	}
	return rule, d, nil
}

// approveExtension records actor's approval of r's pending extension (narrowed by an
// earlier in.End) and applies it once the rule's quorum is met.
func (s *Service) approveExtension(tx Tx, r *Request, actor string, in ApproveInput, now time.Time) error {
	x := r.Extension
	if in.Start != nil || len(in.Tables) > 0 {
		return Errorf(EINVALID, "an extension's approval may only set an earlier end")
	}
	if in.End != nil {
		end := in.End.UTC().Truncate(time.Microsecond)
		if end.After(x.End) || !end.After(r.End) {
			return Errorf(EINVALID, "an extension's approval may only narrow it: the end must lie after %s and not after %s", fmtTime(r.End), fmtTime(x.End))
		}
		x.End = end
	}
	if !r.End.After(now) {
		return Errorf(ECONFLICT, "the window already ended at %s; the extension cannot be approved", fmtTime(r.End))
	}
	rin, err := s.ruleInput(r, x.End)
	if err != nil {
		return err
	}
	rule, _, err := s.Catalog.Rule(rin)
	if err != nil {
		return Errorf(ECONFLICT, "%s", ErrorMessage(err))
	} else if err := rule.Check(rin, r.Ticket); err != nil {
		return err
	}
	db := rin.Database
	// Approvals written without the key never count; an extension's are bound to it (not to
	// the request, nor to an earlier extension).
	scope := r.ExtensionScope()
	x.Reviews, _ = s.Keys.Genuine(scope, x.Reviews)
	if !s.Catalog.MayApprove(rule, db, actor) {
		return Errorf(EFORBIDDEN, "%s is not an approver under rule %s (%s)", actor, rule.Name, rule.Describe())
	} else if slices.Contains(reviewers(x.Reviews, ActionApprove), actor) {
		return Errorf(ECONFLICT, "%s already approved the extension of request %s; it still needs %s", actor, r.ID, r.Awaiting)
	} else if err := s.checkLimits(r, rin, x.End, now); err != nil {
		return err
	}
	x.Rule = rule.Name
	rv := Review{Reviewer: actor, Decision: ActionApprove, Note: in.Note, At: now}
	s.Keys.SealReview(scope, &rv)
	x.Reviews = append(x.Reviews, rv)
	approvers, err := s.enabled(tx, reviewers(x.Reviews, ActionApprove))
	if err != nil {
		return err
	}
	met, missing := s.Catalog.Quorum(rule, db, r.Requester, approvers)
	if met {
		return s.applyExtension(tx, r, actor, rule.Name, x.End, in.Note, x.Reason, now)
	}
	r.Awaiting, r.UpdatedAt = missing, now
	if err := tx.UpdateRequest(r); err != nil {
		return err
	}
	return tx.AppendEvent(requestEvent(now, actor, "extension.approval_added", r, map[string]any{"note": in.Note, "end": fmtTime(x.End), "awaiting": missing}))
}

// applyExtension moves r's end to end, now, under rule, with the review that did it; the
// scheduler then moves the database's expiry (see Request.ExtensionUnsynced).
func (s *Service) applyExtension(tx Tx, r *Request, actor, rule string, end time.Time, note, reason string, now time.Time) error {
	if err := s.checkLoginFreeUntil(tx, r, end); err != nil {
		return err
	} else if _, bad := s.Keys.CheckDecision(r); len(bad) > 0 {
		// Re-authenticating would make the edited fields look decided.
		return Errorf(ECONFLICT, "request %s was edited in the store without the key (%s does not verify); it cannot be extended", r.ID, strings.Join(bad, ", "))
	}
	changes := fmt.Sprintf("end %s → %s", fmtTime(r.End), fmtTime(end))
	approvers := []string{actor}
	if r.Extension != nil {
		approvers = reviewers(r.Extension.Reviews, ActionApprove)
	}
	r.End, r.Extension, r.Awaiting, r.Rule, r.UpdatedAt = end, nil, "", rule, now
	r.Reviews = append(r.Reviews, Review{Reviewer: actor, Decision: ActionExtend, Note: note, Changes: changes, At: now})
	s.Keys.SealDecision(r) // the extended end, and who extended it, authenticated now
	if err := tx.UpdateRequest(r); err != nil {
		return err
	}
	return tx.AppendEvent(requestEvent(now, actor, "request.extended", r, map[string]any{
		"end": fmtTime(end), "changes": changes, "reason": reason, "note": note, "rule": rule, "approvers": approvers,
	}))
}

// checkLoginFreeUntil refuses to move r's end to end when its shared login (method
// unlock_login) is held by another request in the added time.
func (s *Service) checkLoginFreeUntil(tx Tx, r *Request, end time.Time) error {
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return Errorf(ECONFLICT, "database %s is no longer configured", r.Database)
	}
	longer := *r
	longer.End = end
	return s.checkLoginFree(tx, &longer, db)
}

// denyExtension drops r's pending extension; r itself is unchanged.
func (s *Service) denyExtension(tx Tx, r *Request, actor, note string, now time.Time) error {
	end := r.Extension.End
	r.Extension, r.Awaiting, r.UpdatedAt = nil, "", now
	r.Reviews = append(r.Reviews, Review{Reviewer: actor, Decision: ActionDeny, Note: note, Changes: "extension to " + fmtTime(end) + " denied", At: now})
	if err := tx.UpdateRequest(r); err != nil {
		return err
	}
	return tx.AppendEvent(requestEvent(now, actor, "extension.denied", r, map[string]any{"note": note, "end": fmtTime(end)}))
}
