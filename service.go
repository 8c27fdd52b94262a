package timebox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Service is the request workflow: who may ask, approve, deny, revoke, cancel and see what.
// Every state change is stored with its audit event in one transaction. The database work
// itself (activation and removal) is the scheduler's.
type Service struct {
	Store   Store
	Catalog *Catalog
	// Keys are derived from secret_key (and the previous keys); Sealer is Keys.Sealer().
	Keys   *Keyring
	Sealer *Sealer
	// Now returns the current time (tests replace it).
	Now func() time.Time
	// Wake, when set, is called after a change that the scheduler must act on.
	Wake func()
	// OnCall, when set, answers the on-call auto-approvals of rules; without it they never
	// approve (a person must).
	OnCall OnCallResolver
	// Plan, when set, returns the statements the database will run for a request (the
	// scheduler's plan through the engine's Planner).
	Plan func(r *Request) (grant, revoke []string, err error)
	// CheckTables, when set, checks an ad-hoc request's tables on its database before it is
	// stored (EINVALID for a missing table or column); an unreachable server does not stop
	// the request, whose activation checks again.
	CheckTables func(ctx context.Context, r *Request) error
	// Tokens bounds the lifetimes of API tokens (zero: the defaults).
	Tokens TokenPolicy
	// Sessions bounds console sessions (zero: the defaults).
	Sessions SessionPolicy
	// Checkpoint, when set, is the audit head checkpoint kept outside the store, which
	// VerifyAudit compares with the store (without it, truncation and rollback go unseen).
	Checkpoint *CheckpointFile
}

// OnCallResolver tells who is on call (package oncall implements it).
type OnCallResolver interface {
	// OnCall reports whether user is on call in schedule at time at, and until when.
	// ENOTFOUND for an unknown schedule, EUNAVAILABLE when its source cannot be read.
	OnCall(ctx context.Context, schedule string, user *User, at time.Time) (until time.Time, ok bool, err error)
}

// NewService returns a Service on the given store, catalog and keys.
func NewService(store Store, catalog *Catalog, keys *Keyring) *Service {
	return &Service{Store: store, Catalog: catalog, Keys: keys, Sealer: keys.Sealer(), Now: time.Now}
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

func (s *Service) wake() {
	if s.Wake != nil {
		s.Wake()
	}
}

// CreateRequest files a new request by actor: pending, or approved at once when its rule
// auto-approves it or it is a break-glass request. EINVALID names the first bad field, the
// limit that was exceeded or why no rule allows it; ENOTFOUND an unknown database or access
// level; EFORBIDDEN an unknown or disabled user, or break-glass by a non-member.
func (s *Service) CreateRequest(ctx context.Context, actor string, in RequestInput) (*Request, error) {
	user, err := s.Catalog.User(actor)
	if err != nil || user.Disabled {
		return nil, Errorf(EFORBIDDEN, "unknown or disabled user %q", actor)
	}
	db, err := s.Catalog.Database(in.Database)
	if err != nil {
		return nil, err
	}
	access, tables, err := s.access(db, in)
	if err != nil {
		return nil, err
	}
	now := s.now()
	start, end, err := window(in, now)
	if err != nil {
		return nil, err
	}
	limits := s.Catalog.LimitsFor(db.Environment)
	if err := checkWindow(start, end, now, limits, db.Environment); err != nil {
		return nil, err
	} else if err := checkText("reason", in.Reason, true); err != nil {
		return nil, err
	} else if err := checkText("ticket", in.Ticket, false); err != nil {
		return nil, err
	} else if limits.RequireTicket && !in.BreakGlass && strings.TrimSpace(in.Ticket) == "" {
		return nil, Errorf(EINVALID, "a ticket is required for %s databases", db.Environment)
	}
	r := &Request{
		ID: RandomID(10), Requester: actor, Database: db.Name, Access: access,
		Start: start, End: end, RequestedStart: start, RequestedEnd: end,
		Reason: strings.TrimSpace(in.Reason), Ticket: strings.TrimSpace(in.Ticket),
		State: StatePending, Reviews: []Review{}, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	r.Tables = tables
	rin := RuleInput{Requester: user, Database: db, Access: access, Operations: TableOperations(tables), Duration: end.Sub(start)}
	var decided *decision
	if in.BreakGlass {
		decided, err = s.breakGlass(rin, r)
	} else {
		decided, err = s.decide(ctx, rin, r)
	}
	if err != nil {
		return nil, err
	}
	if len(tables) > 0 && s.CheckTables != nil {
		if err := s.CheckTables(ctx, r); ErrorCode(err) == EINVALID {
			return nil, err
		} // otherwise (server down, say) it could not look: the activation checks again
	}
	err = s.Store.Update(ctx, func(tx Tx) error {
		if err := s.checkEnabled(tx, actor); err != nil {
			return err
		} else if err := s.checkLoginFree(tx, r, db); err != nil {
			return err
		}
		if err := tx.CreateRequest(r); err != nil {
			return err
		}
		details := map[string]any{
			"access": r.Access, "start": fmtTime(r.Start), "end": fmtTime(r.End),
			"reason": r.Reason, "ticket": r.Ticket, "rule": r.Rule,
		}
		if len(r.Tables) > 0 {
			details["tables"] = DescribeTables(r.Tables)
		}
		if err := tx.AppendEvent(requestEvent(now, actor, "request.created", r, details)); err != nil {
			return err
		} else if decided == nil {
			return nil
		}
		return s.record(tx, r, decided, now)
	})
	if err != nil {
		return nil, fmt.Errorf("create request: %w", err)
	}
	s.wake() // its window's end is a deadline (an unreviewed request expires)
	return r, nil
}

// access resolves what a request asks for: a named access level that grants something on
// db, or ad-hoc tables (returned normalised) on a database whose method creates a login.
func (s *Service) access(db *Database, in RequestInput) (string, []TableGrant, error) {
	srv, err := s.Catalog.Server(db.Server)
	if err != nil {
		return "", nil, err
	}
	if len(in.Tables) > 0 {
		if in.Access != "" && in.Access != AdHocAccess {
			return "", nil, Errorf(EINVALID, "give either an access level or tables, not both")
		} else if db.Method != MethodEphemeralLogin {
			return "", nil, Errorf(EINVALID, "database %s uses method %s: ad-hoc table grants need method %s (a login of their own)", db.Name, db.Method, MethodEphemeralLogin)
		}
		tables, err := NormalizeTables(in.Tables, srv.Engine)
		return AdHocAccess, tables, err
	}
	if in.Access == AdHocAccess {
		return "", nil, Errorf(EINVALID, "an ad-hoc request lists at least one table")
	}
	if g, err := s.Catalog.Grants(db, in.Access); err != nil {
		return "", nil, err
	} else if len(g.Roles)+len(g.Privileges) == 0 && db.Method != MethodUnlockLogin {
		return "", nil, Errorf(EINVALID, "access level %q grants nothing on database %q", in.Access, db.Name)
	}
	return in.Access, nil, nil
}

// window returns the window a request asks for: start (now when unset, and a start up to a
// minute in the past is taken as now) and end (an end time or a duration).
func window(in RequestInput, now time.Time) (start, end time.Time, err error) {
	start = now
	if in.Start != nil {
		start = in.Start.UTC().Truncate(time.Microsecond)
		if start.Before(now.Add(-time.Minute)) {
			return start, end, Errorf(EINVALID, "start %s is in the past", fmtTime(start))
		} else if start.Before(now) {
			start = now
		}
	}
	end, err = endOf(in.End, in.Duration, start, "an end is required: a duration (--for 2h) or an end time (--until TIME)")
	return start, end, err
}

// endOf returns the end a request or an extension gives: end, or from plus duration (one of
// them, never both; missing says what to give when neither is).
func endOf(end *time.Time, duration string, from time.Time, missing string) (time.Time, error) {
	switch {
	case end != nil && duration != "":
		return time.Time{}, Errorf(EINVALID, "give either an end time or a duration, not both")
	case end != nil:
		return end.UTC().Truncate(time.Microsecond), nil
	case duration != "":
		d, err := ParseDuration(duration)
		if err != nil {
			return time.Time{}, err
		}
		return from.Add(d), nil
	}
	return time.Time{}, Errorf(EINVALID, "%s", missing)
}

// checkLoginFree refuses r when its database unlocks a shared login (method unlock_login)
// that another approved or active request holds during an overlapping window. Refusing, not
// queueing: a queue would hand a shared login on without anyone reviewing the hand-over, and
// the error tells the requester when the login is free.
func (s *Service) checkLoginFree(tx Tx, r *Request, db *Database) error {
	if db.Method != MethodUnlockLogin {
		return nil
	}
	var same []string
	for _, d := range s.Catalog.Databases {
		if d.Method == MethodUnlockLogin && d.Server == db.Server && d.Login == db.Login {
			same = append(same, d.Name)
		}
	}
	holders, err := tx.FindRequests(RequestFilter{States: []State{StateApproved, StateActive}})
	if err != nil {
		return err
	}
	for _, h := range holders {
		if h.ID == r.ID || !slices.Contains(same, h.Database) || h.Ending != EndingNone {
			continue
		}
		if h.Start.Before(r.End) && r.Start.Before(h.End) {
			return Errorf(ECONFLICT, "login %q on server %s is held by request %s (%s) from %s to %s; ask for a window after %s",
				db.Login, db.Server, h.ID, h.Requester, fmtTime(h.Start), fmtTime(h.End), fmtTime(h.End))
		}
	}
	return nil
}

// requestEvent builds an audit event about r.
func requestEvent(now time.Time, actor, action string, r *Request, details map[string]any) *Event {
	return &Event{Time: now, Actor: actor, Action: action, RequestID: r.ID, Database: r.Database, Details: details}
}

// review loads request id inside tx and checks that actor may review it: an owner of its
// database, an admin, or an approver of its rule; never its requester, except to revoke.
func (s *Service) review(tx Tx, actor, id, verb string) (*Request, error) {
	r, err := s.visibleRequest(tx, actor, id)
	if err != nil {
		return nil, err
	} else if err := s.checkEnabled(tx, actor); err != nil {
		return nil, err
	}
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return nil, Errorf(ECONFLICT, "database %s of request %s is no longer configured", r.Database, id)
	}
	if r.Requester == actor && verb != string(ActionRevoke) {
		return nil, Errorf(EFORBIDDEN, "nobody may %s their own request, admins included", verb)
	}
	if s.Catalog.IsOwner(actor, db) || s.Catalog.IsAdmin(actor) || s.mayReview(r, db, actor) {
		return r, nil
	}
	return nil, Errorf(EFORBIDDEN, "%s is not an owner of database %s, an admin or an approver of its rule, so cannot %s request %s", actor, db.Name, verb, id)
}

// Approve approves a pending request, optionally narrowing its window (a later start, an
// earlier end) or its tables, or approves the pending extension of an approved or active
// one. The request is approved once its rule's quorum is met; until then the approval is
// recorded. EFORBIDDEN for the requester and those who may not approve under the rule;
// ECONFLICT when there is nothing to approve, the window has ended, or actor approved already;
// EINVALID for a widened or empty window.
func (s *Service) Approve(ctx context.Context, actor, id string, in ApproveInput) (*Request, error) {
	if err := checkText("note", in.Note, false); err != nil {
		return nil, err
	}
	var r *Request
	err := s.retryStale(ctx, func(tx Tx) (err error) {
		now := s.now()
		if r, err = s.review(tx, actor, id, string(ActionApprove)); err != nil {
			return err
		}
		if r.Extension != nil && (r.State == StateApproved || r.State == StateActive) && r.Ending == EndingNone {
			return s.approveExtension(tx, r, actor, in, now)
		}
		return s.approve(tx, r, actor, in, now)
	})
	if err != nil {
		return nil, fmt.Errorf("approve: %w", err)
	}
	s.wake()
	return r, nil
}

// approve records actor's approval of pending r, with its narrowing, and approves r when
// the quorum is met.
func (s *Service) approve(tx Tx, r *Request, actor string, in ApproveInput, now time.Time) error {
	if _, err := Transition(r.State, ActionApprove); err != nil {
		return err
	}
	rule, err := s.ruleFor(r)
	if err != nil {
		return err
	}
	db, _ := s.Catalog.Database(r.Database)
	var forged []string // approvals written into the store without the key never count
	r.Reviews, forged = s.Keys.Genuine(r.ID, r.Reviews)
	if !s.Catalog.MayApprove(rule, db, actor) {
		return Errorf(EFORBIDDEN, "%s is not an approver under rule %s (%s)", actor, rule.Name, rule.Describe())
	} else if slices.Contains(reviewers(r.Reviews, ActionApprove), actor) {
		return Errorf(ECONFLICT, "%s already approved request %s; it still needs %s", actor, r.ID, r.Awaiting)
	}
	changes, err := narrow(r, in, now)
	if err != nil {
		return err
	}
	if tc, err := s.narrowTables(r, in.Tables); err != nil {
		return err
	} else if tc != "" {
		changes = strings.TrimPrefix(changes+"; "+tc, "; ")
	}
	// The policy as it is now: a maximum or ticket pattern tightened since the request was
	// filed holds at its approval.
	if rin, err := s.ruleInput(r, r.End); err != nil {
		return err
	} else if err := rule.Check(rin, r.Ticket); err != nil {
		return err
	} else if err := s.checkLimits(r, rin, r.End, now); err != nil {
		return err
	}
	r.UpdatedAt = now
	rv := Review{Reviewer: actor, Decision: ActionApprove, Note: in.Note, Changes: changes, At: now}
	s.Keys.SealReview(r.ID, &rv)
	r.Reviews = append(r.Reviews, rv)
	approvers, err := s.enabled(tx, reviewers(r.Reviews, ActionApprove))
	if err != nil {
		return err
	}
	met, missing := s.Catalog.Quorum(rule, db, r.Requester, approvers)
	details := map[string]any{"note": in.Note, "changes": changes, "start": fmtTime(r.Start), "end": fmtTime(r.End), "rule": rule.Name}
	if in.Via != "" {
		details["via"] = in.Via
	}
	if len(forged) > 0 {
		details["forged_approvals_ignored"] = forged
	}
	if len(r.Tables) > 0 {
		details["tables"] = DescribeTables(r.Tables)
	}
	if !met {
		r.Awaiting = missing
		details["awaiting"] = missing
		if err := tx.UpdateRequest(r); err != nil {
			return err
		}
		return tx.AppendEvent(requestEvent(now, actor, "request.approval_added", r, details))
	}
	if err := s.checkLoginFree(tx, r, db); err != nil {
		return err
	}
	r.State, r.Awaiting = StateApproved, ""
	r.UnusedAfter = unusedAfter(rule, db)
	details["approvers"] = approvers
	s.Keys.SealDecision(r) // the quorum is met: what it allowed is authenticated now
	if err := tx.UpdateRequest(r); err != nil {
		return err
	}
	return tx.AppendEvent(requestEvent(now, actor, "request.approved", r, details))
}

// narrowTables applies an approver's narrowing of an ad-hoc request's tables.
func (s *Service) narrowTables(r *Request, keep []TableGrant) (string, error) {
	if len(keep) == 0 {
		return "", nil
	} else if r.Access != AdHocAccess {
		return "", Errorf(EINVALID, "request %s names an access level; only ad-hoc requests have tables to narrow", r.ID)
	}
	db, _ := s.Catalog.Database(r.Database)
	srv, err := s.Catalog.Server(db.Server)
	if err != nil {
		return "", err
	}
	norm, err := NormalizeTables(keep, srv.Engine)
	if err != nil {
		return "", err
	}
	tables, changes, err := NarrowTables(r.Tables, norm)
	if err != nil || changes == "" {
		return "", err
	}
	if r.RequestedTables == nil {
		r.RequestedTables = r.Tables
	}
	r.Tables = tables
	return changes, nil
}

// reviewers returns who gave reviews of decision, once each, in order. An approval that a
// later reopen voided is not among the approvers (its approver may approve again).
func reviewers(reviews []Review, decision Action) []string {
	var out []string
	for _, rv := range reviews {
		if decision == ActionApprove && len(rv.Voids) > 0 {
			out = slices.DeleteFunc(out, func(n string) bool { return slices.Contains(rv.Voids, n) })
		} else if rv.Decision == decision && !slices.Contains(out, rv.Reviewer) {
			out = append(out, rv.Reviewer)
		}
	}
	return out
}

// retryStale runs fn in a store transaction, again (up to 5 times) when the store found
// that a request changed since fn read it: two approvers clicking at once both have their
// approval recorded, in turn, and the second sees the first.
func (s *Service) retryStale(ctx context.Context, fn func(Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.Store.Update(ctx, fn)
		if err == nil || !errors.Is(err, ErrStale) || attempt == 4 {
			return err
		}
	}
}

// narrow applies an approver's window changes to r and describes them.
func narrow(r *Request, in ApproveInput, now time.Time) (string, error) {
	start, end := r.Start, r.End
	if in.Start != nil {
		start = in.Start.UTC().Truncate(time.Microsecond)
		if start.Before(r.Start) {
			return "", Errorf(EINVALID, "an approval may only narrow the window: start %s is before the requested %s", fmtTime(start), fmtTime(r.Start))
		}
	}
	if in.End != nil {
		end = in.End.UTC().Truncate(time.Microsecond)
		if end.After(r.End) {
			return "", Errorf(EINVALID, "an approval may only narrow the window: end %s is after the requested %s", fmtTime(end), fmtTime(r.End))
		}
	}
	if !end.After(now) {
		return "", Errorf(ECONFLICT, "the window already ended at %s; it cannot be approved", fmtTime(end))
	} else if !end.After(start) {
		return "", Errorf(EINVALID, "end %s is not after start %s", fmtTime(end), fmtTime(start))
	}
	var changes []string
	if !start.Equal(r.Start) {
		changes = append(changes, fmt.Sprintf("start %s → %s", fmtTime(r.Start), fmtTime(start)))
	}
	if !end.Equal(r.End) {
		changes = append(changes, fmt.Sprintf("end %s → %s", fmtTime(r.End), fmtTime(end)))
	}
	r.Start, r.End = start, end
	return strings.Join(changes, "; "), nil
}

// Deny denies a pending request (once the rule's number of denials is reached: by default
// any single deny), or the pending extension of an approved or active one; the note is
// required.
func (s *Service) Deny(ctx context.Context, actor, id, note string) (*Request, error) {
	if strings.TrimSpace(note) == "" {
		return nil, Errorf(EINVALID, "a denial needs a note saying why")
	} else if err := checkText("note", note, true); err != nil {
		return nil, err
	}
	var r *Request
	err := s.retryStale(ctx, func(tx Tx) (err error) {
		now := s.now()
		if r, err = s.review(tx, actor, id, string(ActionDeny)); err != nil {
			return err
		}
		if r.Extension != nil && (r.State == StateApproved || r.State == StateActive) {
			return s.denyExtension(tx, r, actor, note, now)
		} else if _, err := Transition(r.State, ActionDeny); err != nil {
			return err
		}
		need := DefaultRule.Denials
		if rule, err := s.ruleFor(r); err == nil {
			need = rule.Denials
		}
		r.Reviews = append(r.Reviews, Review{Reviewer: actor, Decision: ActionDeny, Note: note, At: now})
		if n := len(reviewers(r.Reviews, ActionDeny)); n < need {
			r.UpdatedAt = now
			if err := tx.UpdateRequest(r); err != nil {
				return err
			}
			return tx.AppendEvent(requestEvent(now, actor, "request.denial_added", r, map[string]any{"note": note, "denials": n, "needed": need}))
		}
		r.Reviews = r.Reviews[:len(r.Reviews)-1] // finish records it
		return s.finish(tx, r, actor, ActionDeny, note, now)
	})
	if err != nil {
		return nil, fmt.Errorf("deny: %w", err)
	}
	return r, nil
}

// Revoke ends an approved or active request now. When access may exist on the database the
// request stays in its state with a pending revocation until the database confirms it.
func (s *Service) Revoke(ctx context.Context, actor, id, note string) (*Request, error) {
	if strings.TrimSpace(note) == "" {
		return nil, Errorf(EINVALID, "a revocation needs a note saying why")
	} else if err := checkText("note", note, true); err != nil {
		return nil, err
	}
	var r *Request
	err := s.retryStale(ctx, func(tx Tx) (err error) {
		now := s.now()
		if r, err = s.review(tx, actor, id, string(ActionRevoke)); err != nil {
			return err
		}
		return s.end(tx, r, actor, ActionRevoke, note, now)
	})
	if err != nil {
		return nil, fmt.Errorf("revoke: %w", err)
	}
	s.wake()
	return r, nil
}

// Cancel withdraws the actor's own pending or approved request.
func (s *Service) Cancel(ctx context.Context, actor, id, note string) (*Request, error) {
	if err := checkText("note", note, false); err != nil {
		return nil, err
	}
	var r *Request
	err := s.retryStale(ctx, func(tx Tx) (err error) {
		now := s.now()
		if r, err = s.visibleRequest(tx, actor, id); err != nil {
			return err
		} else if r.Requester != actor {
			return Errorf(EFORBIDDEN, "only the requester may cancel request %s", id)
		}
		return s.end(tx, r, actor, ActionCancel, note, now)
	})
	if err != nil {
		return nil, fmt.Errorf("cancel: %w", err)
	}
	s.wake()
	return r, nil
}

// Release gives up the actor's own active request before its end: its access is removed
// from the database exactly as at expiry (login disabled, sessions ended, dropped), and the
// request is released once the database confirmed it, with a "request.released" event. An
// approved request that is not active yet is cancelled instead (Cancel); ECONFLICT says so.
func (s *Service) Release(ctx context.Context, actor, id, note string) (*Request, error) {
	if err := checkText("note", note, false); err != nil {
		return nil, err
	}
	var r *Request
	err := s.retryStale(ctx, func(tx Tx) (err error) {
		if r, err = s.visibleRequest(tx, actor, id); err != nil {
			return err
		} else if r.Requester != actor {
			return Errorf(EFORBIDDEN, "only the requester may release request %s", id)
		} else if r.State == StatePending || r.State == StateApproved {
			return Errorf(ECONFLICT, "request %s is %s, not active: cancel it instead (timebox cancel %s)", id, r.State, id)
		}
		return s.end(tx, r, actor, ActionRelease, note, s.now())
	})
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	s.wake()
	return r, nil
}

// end revokes, cancels or releases r: at once when nothing can exist on the database, otherwise by
// recording the ending for the scheduler, which completes the transition once the database
// confirmed the removal.
func (s *Service) end(tx Tx, r *Request, actor string, action Action, note string, now time.Time) error {
	if _, err := Transition(r.State, action); err != nil {
		return err
	} else if r.Ending != EndingNone {
		return Errorf(ECONFLICT, "request %s is already being removed from the database (%s)", r.ID, r.Status())
	}
	if r.Grant == nil {
		return s.finish(tx, r, actor, action, note, now)
	}
	r.Ending, r.EndingSince, r.UpdatedAt = Ending(action), now, now
	r.Reviews = append(r.Reviews, Review{Reviewer: actor, Decision: action, Note: note, At: now})
	if err := tx.UpdateRequest(r); err != nil {
		return err
	}
	return tx.AppendEvent(requestEvent(now, actor, "request."+string(action)+"_requested", r, map[string]any{"note": note}))
}

// finish moves r to its final state for action, with a review and an audit event.
func (s *Service) finish(tx Tx, r *Request, actor string, action Action, note string, now time.Time) error {
	to, err := Transition(r.State, action)
	if err != nil {
		return err
	}
	r.State, r.Ending, r.EndingSince, r.UpdatedAt, r.EndedAt = to, EndingNone, time.Time{}, now, now
	r.Extension, r.Awaiting = nil, "" // nothing is pending on a finished request
	r.Reviews = append(r.Reviews, Review{Reviewer: actor, Decision: action, Note: note, At: now})
	if err := tx.UpdateRequest(r); err != nil {
		return err
	}
	return tx.AppendEvent(requestEvent(now, actor, "request."+string(to), r, map[string]any{"note": note}))
}

// visibility returns nil when actor may see everything, else what actor may see.
func (s *Service) visibility(actor string) *Visibility {
	if s.Catalog.IsAdmin(actor) || s.Catalog.IsAuditor(actor) {
		return nil
	}
	v := &Visibility{Requester: actor, Databases: []string{}}
	for i := range s.Catalog.Databases {
		if db := &s.Catalog.Databases[i]; s.Catalog.IsOwner(actor, db) || s.Catalog.ReviewsOn(actor, db) {
			v.Databases = append(v.Databases, db.Name)
		}
	}
	return v
}

// visibleRequest loads a request that actor may see; ENOTFOUND otherwise, so that ids of
// other people's requests are not confirmed.
func (s *Service) visibleRequest(tx Tx, actor, id string) (*Request, error) {
	r, err := tx.FindRequest(id)
	if err != nil {
		return nil, err
	}
	if v := s.visibility(actor); v != nil && r.Requester != actor && !slices.Contains(v.Databases, r.Database) {
		return nil, Errorf(ENOTFOUND, "request %s not found", id)
	}
	return r, nil
}

// FindRequest returns one request that actor may see, or ENOTFOUND.
func (s *Service) FindRequest(ctx context.Context, actor, id string) (r *Request, err error) {
	err = s.Store.View(ctx, func(tx Tx) error {
		r, err = s.visibleRequest(tx, actor, id)
		return err
	})
	return r, err
}

// FindRequests returns the requests matching f that actor may see.
func (s *Service) FindRequests(ctx context.Context, actor string, f RequestFilter) (rs []*Request, err error) {
	f.Visible = s.visibility(actor)
	err = s.Store.View(ctx, func(tx Tx) error {
		rs, err = tx.FindRequests(f)
		return err
	})
	return rs, err
}

// Credentials returns the login for an active request, to its requester only, and records
// that they were handed out. ECONFLICT when the request is not active.
func (s *Service) Credentials(ctx context.Context, actor, id string) (*Credentials, error) {
	var c *Credentials
	err := s.retryStale(ctx, func(tx Tx) error {
		r, err := s.visibleRequest(tx, actor, id)
		if err != nil {
			return err
		} else if err := s.checkEnabled(tx, actor); err != nil {
			return err
		} else if r.Requester != actor {
			return Errorf(EFORBIDDEN, "only the requester of %s may see its credentials", id)
		} else if r.State != StateActive || r.Ending != EndingNone || r.Grant == nil || r.Grant.Status != GrantActive || !r.End.After(s.now()) {
			return Errorf(ECONFLICT, "request %s has no credentials: it is %s", id, r.Status())
		}
		if c, err = s.credentials(r); err != nil {
			return err
		}
		if r.UsedAt.IsZero() { // an unused_after deadline no longer applies
			r.UsedAt, r.UpdatedAt = s.now(), s.now()
			if err := tx.UpdateRequest(r); err != nil {
				return err
			}
		}
		return tx.AppendEvent(requestEvent(s.now(), actor, "credentials.viewed", r, map[string]any{"user": c.User}))
	})
	return c, err
}

func (s *Service) credentials(r *Request) (*Credentials, error) {
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return nil, err
	}
	srv, err := s.Catalog.Server(db.Server)
	if err != nil {
		return nil, err
	}
	var password string // method role_membership: the person logs in with their own password
	if r.Grant.SealedPassword != nil {
		if password, err = s.Sealer.Open(r.Grant.SealedPassword, r.ID); err != nil {
			return nil, err
		}
	}
	host, port := srv.Endpoint()
	return &Credentials{
		User: r.Grant.Principal, Password: password, Host: host, Port: port, Database: db.Database,
		URI:       ConnectURI(srv.Engine, r.Grant.Principal, password, host, port, db.Database),
		ExpiresAt: r.End,
	}, nil
}
