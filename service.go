package timebox

import (
	"context"
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
	Sealer  *Sealer
	// Now returns the current time (tests replace it).
	Now func() time.Time
	// Wake, when set, is called after a change that the scheduler must act on.
	Wake func()
}

// NewService returns a Service on the given store, catalog and sealer.
func NewService(store Store, catalog *Catalog, sealer *Sealer) *Service {
	return &Service{Store: store, Catalog: catalog, Sealer: sealer, Now: time.Now}
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

func (s *Service) wake() {
	if s.Wake != nil {
		s.Wake()
	}
}

// CreateRequest files a new pending request by actor. EINVALID names the first bad field or
// the limit that was exceeded; ENOTFOUND an unknown database or access level.
func (s *Service) CreateRequest(ctx context.Context, actor string, in RequestInput) (*Request, error) {
	if _, err := s.Catalog.User(actor); err != nil {
		return nil, Errorf(EFORBIDDEN, "unknown user %q", actor)
	}
	db, err := s.Catalog.Database(in.Database)
	if err != nil {
		return nil, err
	}
	if g, err := s.Catalog.Grants(db, in.Access); err != nil {
		return nil, err
	} else if len(g.Roles)+len(g.Privileges) == 0 && db.Method != MethodUnlockLogin {
		return nil, Errorf(EINVALID, "access level %q grants nothing on database %q", in.Access, db.Name)
	}
	now := s.now()
	start := now
	if in.Start != nil {
		start = in.Start.UTC().Truncate(time.Microsecond)
		if start.Before(now.Add(-time.Minute)) {
			return nil, Errorf(EINVALID, "start %s is in the past", fmtTime(start))
		} else if start.Before(now) {
			start = now
		}
	}
	var end time.Time
	switch {
	case in.End != nil && in.Duration != "":
		return nil, Errorf(EINVALID, "give either an end time or a duration, not both")
	case in.End != nil:
		end = in.End.UTC().Truncate(time.Microsecond)
	case in.Duration != "":
		d, err := ParseDuration(in.Duration)
		if err != nil {
			return nil, err
		}
		end = start.Add(d)
	default:
		return nil, Errorf(EINVALID, "an end is required: a duration (--for 2h) or an end time (--until TIME)")
	}
	limits := s.Catalog.LimitsFor(db.Environment)
	if err := checkWindow(start, end, now, limits, db.Environment); err != nil {
		return nil, err
	} else if err := checkText("reason", in.Reason, true); err != nil {
		return nil, err
	} else if err := checkText("ticket", in.Ticket, limits.RequireTicket); err != nil {
		if limits.RequireTicket && strings.TrimSpace(in.Ticket) == "" {
			return nil, Errorf(EINVALID, "a ticket is required for %s databases", db.Environment)
		}
		return nil, err
	}
	r := &Request{
		ID: RandomID(10), Requester: actor, Database: db.Name, Access: in.Access,
		Start: start, End: end, RequestedStart: start, RequestedEnd: end,
		Reason: strings.TrimSpace(in.Reason), Ticket: strings.TrimSpace(in.Ticket),
		State: StatePending, Reviews: []Review{}, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	err = s.Store.Update(ctx, func(tx Tx) error {
		if err := s.checkLoginFree(tx, r, db); err != nil {
			return err
		}
		if err := tx.CreateRequest(r); err != nil {
			return err
		}
		return tx.AppendEvent(requestEvent(now, actor, "request.created", r, map[string]any{
			"access": r.Access, "start": fmtTime(r.Start), "end": fmtTime(r.End),
			"reason": r.Reason, "ticket": r.Ticket,
		}))
	})
	if err != nil {
		return nil, fmt.Errorf("create request: %w", err)
	}
	s.wake() // its window's end is a deadline (an unreviewed request expires)
	return r, nil
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

// review loads request id inside tx, checks that actor may review it (an owner of its
// database or an admin, never the requester), and returns it.
func (s *Service) review(tx Tx, actor, id, verb string) (*Request, error) {
	r, err := s.visibleRequest(tx, actor, id)
	if err != nil {
		return nil, err
	}
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return nil, err
	}
	if r.Requester == actor && verb != string(ActionRevoke) {
		return nil, Errorf(EFORBIDDEN, "nobody may %s their own request, admins included", verb)
	}
	if !s.Catalog.IsOwner(actor, db) && !s.Catalog.IsAdmin(actor) {
		return nil, Errorf(EFORBIDDEN, "%s is not an owner of database %s and not an admin, so cannot %s request %s", actor, db.Name, verb, id)
	}
	return r, nil
}

// Approve approves a pending request, optionally narrowing its window (a later start, an
// earlier end). EFORBIDDEN for the requester and non-owners; ECONFLICT when it is not pending
// or its window has ended; EINVALID for a widened or empty window.
func (s *Service) Approve(ctx context.Context, actor, id string, in ApproveInput) (*Request, error) {
	if err := checkText("note", in.Note, false); err != nil {
		return nil, err
	}
	var r *Request
	err := s.Store.Update(ctx, func(tx Tx) (err error) {
		now := s.now()
		if r, err = s.review(tx, actor, id, string(ActionApprove)); err != nil {
			return err
		}
		to, err := Transition(r.State, ActionApprove)
		if err != nil {
			return err
		}
		changes, err := narrow(r, in, now)
		if err != nil {
			return err
		}
		if db, err := s.Catalog.Database(r.Database); err != nil {
			return err
		} else if err := s.checkLoginFree(tx, r, db); err != nil {
			return err
		}
		r.State, r.UpdatedAt = to, now
		r.Reviews = append(r.Reviews, Review{Reviewer: actor, Decision: ActionApprove, Note: in.Note, Changes: changes, At: now})
		if err := tx.UpdateRequest(r); err != nil {
			return err
		}
		return tx.AppendEvent(requestEvent(now, actor, "request.approved", r, map[string]any{
			"note": in.Note, "changes": changes, "start": fmtTime(r.Start), "end": fmtTime(r.End),
		}))
	})
	if err != nil {
		return nil, fmt.Errorf("approve: %w", err)
	}
	s.wake()
	return r, nil
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

// Deny denies a pending request; the note is required.
func (s *Service) Deny(ctx context.Context, actor, id, note string) (*Request, error) {
	if strings.TrimSpace(note) == "" {
		return nil, Errorf(EINVALID, "a denial needs a note saying why")
	} else if err := checkText("note", note, true); err != nil {
		return nil, err
	}
	var r *Request
	err := s.Store.Update(ctx, func(tx Tx) (err error) {
		now := s.now()
		if r, err = s.review(tx, actor, id, string(ActionDeny)); err != nil {
			return err
		}
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
	err := s.Store.Update(ctx, func(tx Tx) (err error) {
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
	err := s.Store.Update(ctx, func(tx Tx) (err error) {
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

// end revokes or cancels r: at once when nothing can exist on the database, otherwise by
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
		if s.Catalog.IsOwner(actor, &s.Catalog.Databases[i]) {
			v.Databases = append(v.Databases, s.Catalog.Databases[i].Name)
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
	err := s.Store.Update(ctx, func(tx Tx) error {
		r, err := s.visibleRequest(tx, actor, id)
		if err != nil {
			return err
		} else if r.Requester != actor {
			return Errorf(EFORBIDDEN, "only the requester of %s may see its credentials", id)
		} else if r.State != StateActive || r.Ending != EndingNone || r.Grant == nil || r.Grant.Status != GrantActive || !r.End.After(s.now()) {
			return Errorf(ECONFLICT, "request %s has no credentials: it is %s", id, r.Status())
		}
		if c, err = s.credentials(r); err != nil {
			return err
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
