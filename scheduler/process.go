package scheduler

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// Process does whatever request id needs now: expire an unreviewed request, activate an
// approved one, or remove the access of one whose window ended or that was revoked. It is
// safe to call at any time; work that is not due does nothing.
func (s *Scheduler) Process(ctx context.Context, id string) error {
	_, err := s.process(ctx, id)
	return err
}

// process is Process, and returns the request as it last read or stored it (nil with an
// error), so that done need not read it again.
func (s *Scheduler) process(ctx context.Context, id string) (*timebox.Request, error) {
	r, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	if due, ok := r.DueAt(); !ok || due.After(now) || s.waitsForProbe(r, now) {
		return r, nil // not due, or its server is down: the probe wakes the loop when it answers
	}
	switch {
	case r.Ending != timebox.EndingNone:
		return s.remove(ctx, id)
	case (r.State == timebox.StatePending || r.State == timebox.StateApproved) && r.Grant == nil && !r.End.After(now):
		return s.expireUnused(ctx, id)
	case r.Unused(now):
		return s.remove(ctx, id)
	case r.ExtensionUnsynced() && r.End.After(now): // past the end, the removal comes first
		return s.extend(ctx, r)
	case r.State == timebox.StateApproved && r.End.After(now):
		return s.activate(ctx, id)
	case r.State == timebox.StateApproved, r.State == timebox.StateActive:
		return s.remove(ctx, id)
	}
	return r, nil
}

// load reads request id with its grant.
func (s *Scheduler) load(ctx context.Context, id string) (r *timebox.Request, err error) {
	err = s.Store.View(ctx, func(tx timebox.Tx) error {
		r, err = tx.FindRequest(id)
		return err
	})
	return r, err
}

// update runs fn on a freshly loaded request in one store transaction; fn returns false to
// change nothing (the request moved on since it was last read).
func (s *Scheduler) update(ctx context.Context, id string, fn func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error)) (*timebox.Request, bool, error) {
	var r *timebox.Request
	var changed bool
	err := s.Store.Update(ctx, func(tx timebox.Tx) (err error) {
		if r, err = tx.FindRequest(id); err != nil {
			return err
		}
		now := s.Now().UTC().Truncate(time.Microsecond)
		if s.Keys != nil { // a proof made with a previous key is made again with the current one
			s.Keys.Retag(r)
		}
		if changed, err = fn(tx, r, now); err != nil || !changed {
			return err
		}
		r.UpdatedAt = now
		return tx.UpdateRequest(r)
	})
	if err != nil {
		return nil, false, err
	}
	return r, changed, nil
}

func event(now time.Time, action string, r *timebox.Request, details map[string]any) *timebox.Event {
	return &timebox.Event{Time: now, Actor: Actor, Action: action, RequestID: r.ID, Database: r.Database, Details: details}
}

// expireUnused ends a pending or approved request whose window passed with nothing on the
// database.
func (s *Scheduler) expireUnused(ctx context.Context, id string) (*timebox.Request, error) {
	r, _, err := s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		if r.Grant != nil || r.Ending != timebox.EndingNone || r.End.After(now) {
			return false, nil
		}
		from := r.State
		to, err := timebox.Transition(r.State, timebox.ActionExpire)
		if err != nil {
			return false, nil
		}
		r.State, r.EndedAt, r.Extension, r.Awaiting = to, now, nil, ""
		return true, tx.AppendEvent(event(now, "request.expired", r, map[string]any{"note": fmt.Sprintf("the window ended while the request was %s", from)}))
	})
	return r, err
}

// unusedNote says why an approved request ended early, unused.
func unusedNote(r *timebox.Request) string {
	return fmt.Sprintf("unused: nobody fetched its credentials by %s (the rule's unused_after)", r.UnusedBy.UTC().Format(time.RFC3339))
}

// engine returns the engine of server name.
func (s *Scheduler) engine(name string) (timebox.Engine, error) {
	e, ok := s.Engines[name]
	if !ok {
		return nil, timebox.Errorf(timebox.EINTERNAL, "no engine for server %q", name)
	}
	return e, nil
}

// PrincipalName returns the database login name for a request: tbx_<user>_<id>, with the
// user part reduced to [a-z0-9_] and cut so the name stays within 63 bytes (PostgreSQL).
func PrincipalName(user, requestID string) string { return principalName(user, requestID, 63) }

// principalName is PrincipalName within maxLen bytes (MySQL: 32).
func principalName(user, requestID string, maxLen int) string {
	var b strings.Builder
	for _, c := range strings.ToLower(user) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	u := b.String()
	if room := max(maxLen-len("tbx__")-len(requestID), 0); len(u) > room {
		u = u[:room]
	}
	return "tbx_" + u + "_" + requestID
}
