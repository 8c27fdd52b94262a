package timebox

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Actor is the audit actor of what Timebox does by itself (auto-approvals, cascades).
const Actor = "timebox"

// decision is an approval made without a person: by a rule's auto_approve, or break-glass.
type decision struct {
	rule       *Rule
	note       string
	changes    string
	breakGlass bool
}

// ruleInput is what r is matched against, with its current window.
func (s *Service) ruleInput(r *Request, end time.Time) (RuleInput, error) {
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return RuleInput{}, Errorf(ECONFLICT, "database %s of request %s is no longer configured", r.Database, r.ID)
	}
	u, err := s.Catalog.User(r.Requester)
	if err != nil {
		return RuleInput{}, Errorf(ECONFLICT, "requester %s of request %s is no longer configured", r.Requester, r.ID)
	}
	return RuleInput{Requester: u, Database: db, Access: r.Access, Operations: TableOperations(r.Tables), Duration: end.Sub(r.Start)}, nil
}

// ruleFor returns the rule that decides r under the current policy. ECONFLICT when the
// policy no longer allows r.
func (s *Service) ruleFor(r *Request) (*Rule, error) {
	in, err := s.ruleInput(r, r.End)
	if err != nil {
		return nil, err
	}
	rule, _, err := s.Catalog.Rule(in)
	if err != nil {
		return nil, Errorf(ECONFLICT, "%s", ErrorMessage(err))
	} else if rule.Refuse != "" {
		return nil, Errorf(ECONFLICT, "rule %s now refuses request %s: %s", rule.Name, r.ID, rule.Refuse)
	}
	return rule, nil
}

// decide applies the policy to a new request r: it records r's rule and what r awaits,
// refuses r (EINVALID) when its rule does, and returns the auto-approval when the rule
// grants one now (nil: people decide). An on-call approval cuts the window at the end of
// the requester's shift.
func (s *Service) decide(ctx context.Context, in RuleInput, r *Request) (*decision, error) {
	rule, _, err := s.Catalog.Rule(in)
	if err != nil {
		return nil, err
	} else if err := rule.Check(in, r.Ticket); err != nil {
		return nil, err
	}
	r.Rule, r.Awaiting = rule.Name, rule.quorumText()
	a := rule.AutoApprove
	switch {
	case a == nil:
		return nil, nil
	case a.Always:
		return &decision{rule: rule, note: fmt.Sprintf("approved automatically by rule %s", rule.Name)}, nil
	case s.OnCall == nil:
		return nil, nil
	}
	until, ok, err := s.OnCall.OnCall(ctx, a.OnCall, in.Requester, r.Start)
	if err != nil {
		r.Awaiting += fmt.Sprintf(" (on-call schedule %s could not be read: %s)", a.OnCall, ErrorMessage(err))
		return nil, nil
	} else if !ok {
		return nil, nil
	}
	d := &decision{rule: rule, note: fmt.Sprintf("approved automatically by rule %s: %s is on call in %s until %s", rule.Name, r.Requester, a.OnCall, fmtTime(until))}
	if until.Before(r.End) {
		d.changes = fmt.Sprintf("end %s → %s (end of the on-call shift)", fmtTime(r.End), fmtTime(until))
		r.End = until
	}
	return d, nil
}

// breakGlass checks a break-glass request and returns its decision: the requester is in a
// break-glass group, the environment allows it, the window starts now and is within the cap.
func (s *Service) breakGlass(in RuleInput, r *Request) (*decision, error) {
	if code, why := s.Catalog.BreakGlass.refusal(in.Requester, in.Database, in.Duration); code != "" {
		return nil, Errorf(code, "%s", why)
	} else if r.Start.After(r.CreatedAt) {
		return nil, Errorf(EINVALID, "a break-glass request starts now; give no start")
	}
	r.Rule, r.BreakGlass, r.FollowUp = BreakGlassRule, true, &FollowUp{Open: true}
	return &decision{rule: &Rule{Name: BreakGlassRule}, breakGlass: true,
		note: fmt.Sprintf("BREAK-GLASS by %s: activated without approval; a follow-up review is open", r.Requester)}, nil
}

// record approves new request r by decision d, with its review and its distinct audit event.
func (s *Service) record(tx Tx, r *Request, d *decision, now time.Time) error {
	to, err := Transition(r.State, ActionApprove)
	if err != nil {
		return err
	}
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return err
	}
	r.State, r.Awaiting, r.UpdatedAt = to, "", now
	r.UnusedAfter = unusedAfter(d.rule, db)
	rv := Review{Reviewer: Actor, Decision: ActionApprove, Note: d.note, Changes: d.changes, At: now}
	s.Keys.SealReview(r.ID, &rv)
	r.Reviews = append(r.Reviews, rv)
	s.Keys.SealDecision(r) // what the auto-approval or break-glass allowed, authenticated now
	if err := tx.UpdateRequest(r); err != nil {
		return err
	}
	action, details := "request.auto_approved", map[string]any{"rule": d.rule.Name, "note": d.note, "changes": d.changes, "end": fmtTime(r.End)}
	if d.breakGlass {
		action = "request.break_glass"
		details["follow_up"] = "open"
	}
	return tx.AppendEvent(requestEvent(now, Actor, action, r, details))
}

// unusedAfter is rule's unused_after for a request on db (0: none). It counts from the
// activation, when the credentials become available. A role_membership grant hands out no
// credentials, so it never applies.
func unusedAfter(rule *Rule, db *Database) Duration {
	if rule == nil || db.Method == MethodRoleMembership {
		return 0
	}
	return rule.UnusedAfter
}

// checkLimits re-applies, at an approval, the current limits of r's environment to r's
// window ending at end: a limit lowered since the request was filed holds.
func (s *Service) checkLimits(r *Request, in RuleInput, end time.Time, now time.Time) error {
	l := s.Catalog.LimitsFor(in.Database.Environment)
	if d := end.Sub(r.Start); l.MaxDuration > 0 && d > time.Duration(l.MaxDuration) {
		return Errorf(EINVALID, "duration %s exceeds the %s limit of %s", d.Round(time.Second), in.Database.Environment, time.Duration(l.MaxDuration))
	} else if !end.After(now) {
		return Errorf(ECONFLICT, "the window already ended at %s; it cannot be approved", fmtTime(end))
	}
	return nil
}

// enabled returns names without the users disabled in the configuration or through the API:
// an approval by someone disabled since no longer counts.
func (s *Service) enabled(tx Tx, names []string) ([]string, error) {
	disabled, err := tx.DisabledUsers()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if u, err := s.Catalog.User(n); err == nil && !u.Disabled && disabled[n] == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// mayReview reports whether actor approves under the rule of r's window or, when an
// extension is pending, under the rule of the extended window.
func (s *Service) mayReview(r *Request, db *Database, actor string) bool {
	if rule, err := s.ruleFor(r); err == nil && s.Catalog.MayApprove(rule, db, actor) {
		return true
	}
	if x := r.Extension; x != nil {
		if in, err := s.ruleInput(r, x.End); err == nil {
			rule, _, err := s.Catalog.Rule(in)
			return err == nil && s.Catalog.MayApprove(rule, db, actor)
		}
	}
	return false
}

// checkEnabled returns EFORBIDDEN when user is unknown, disabled in the configuration, or
// disabled through the API.
func (s *Service) checkEnabled(tx Tx, user string) error {
	if u, err := s.Catalog.User(user); err != nil || u.Disabled {
		return Errorf(EFORBIDDEN, "unknown or disabled user %q", user)
	}
	return disabledThroughAPI(tx, user)
}

// disabledThroughAPI returns EFORBIDDEN, naming who and when, when user was disabled through
// the API.
func disabledThroughAPI(tx Tx, user string) error {
	disabled, err := tx.DisabledUsers()
	if err != nil {
		return err
	} else if d := disabled[user]; d != nil {
		return Errorf(EFORBIDDEN, "user %q was disabled by %s at %s", user, d.By, fmtTime(d.At))
	}
	return nil
}

// CloseFollowUp closes the follow-up review of a break-glass request with a note: by an
// owner of its database, an admin or a break-glass reviewer, never its requester.
func (s *Service) CloseFollowUp(ctx context.Context, actor, id, note string) (*Request, error) {
	if err := checkText("note", note, true); err != nil {
		return nil, err
	}
	var r *Request
	err := s.retryStale(ctx, func(tx Tx) (err error) {
		now := s.now()
		if err := s.checkEnabled(tx, actor); err != nil {
			return err
		} else if r, err = s.visibleRequest(tx, actor, id); err != nil {
			return err
		} else if r.FollowUp == nil || !r.FollowUp.Open {
			return Errorf(ECONFLICT, "request %s has no open follow-up review", id)
		} else if r.Requester == actor {
			return Errorf(EFORBIDDEN, "nobody may close the follow-up of their own break-glass request")
		}
		db, _ := s.Catalog.Database(r.Database)
		var reviewers []string
		if bg := s.Catalog.BreakGlass; bg != nil {
			reviewers = bg.Reviewers
		}
		if !s.Catalog.IsAdmin(actor) && (db == nil || !s.Catalog.IsOwner(actor, db)) && !s.Catalog.inGroups(actor, reviewers) {
			return Errorf(EFORBIDDEN, "%s is not an owner of database %s, an admin or a break-glass reviewer", actor, r.Database)
		}
		r.FollowUp = &FollowUp{Open: false, ClosedBy: actor, Note: strings.TrimSpace(note), ClosedAt: now}
		r.UpdatedAt = now
		if err := tx.UpdateRequest(r); err != nil {
			return err
		}
		return tx.AppendEvent(requestEvent(now, actor, "request.follow_up_closed", r, map[string]any{"note": r.FollowUp.Note}))
	})
	if err != nil {
		return nil, fmt.Errorf("close follow-up: %w", err)
	}
	return r, nil
}

// Statements returns the statements the database will run for request id (to grant and, at
// the end, to remove), for those who may see it. EUNAVAILABLE when this server cannot plan.
func (s *Service) Statements(ctx context.Context, actor, id string) (grant, revoke []string, err error) {
	r, err := s.FindRequest(ctx, actor, id)
	if err != nil {
		return nil, nil, err
	} else if s.Plan == nil {
		return nil, nil, Errorf(EUNAVAILABLE, "this server cannot show plans")
	}
	return s.Plan(r)
}
