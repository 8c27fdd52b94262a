package scheduler

import (
	"context"
	"time"

	"github.com/timebox-dev/timebox"
)

// extend moves the database-side expiry of r's active grant to r's end after an approved
// extension: the engine's Extend touches nothing else (same login, same password, sessions
// untouched). A failure is retried with backoff, never past the end (Process removes the
// access first). r is as Process just read it: an extension stores no intent, so nothing is
// written before the engine call.
func (s *Scheduler) extend(ctx context.Context, r *timebox.Request) (*timebox.Request, error) {
	id, g, end := r.ID, r.Grant, r.End
	if len(s.check(r)) > 0 { // an end or grant edited in the store: removed, never extended
		if _, err := s.failClosed(ctx, id); err != nil {
			return nil, err
		}
		return s.load(ctx, id)
	}
	// No password: Extend changes the expiry only, and must not fail for want of the key.
	p := planOf(g)
	p.ValidUntil = end
	if g.Method == timebox.MethodRoleMembership {
		defer s.lockPrincipal(g.Server, g.Principal)()
	}
	err := s.onServer(ctx, g.Server, func(ctx context.Context, e timebox.Engine) error { return e.Extend(ctx, p) })
	if err != nil {
		// Recorded with its next attempt; no cooldown, which could delay the expiry.
		return s.failed(ctx, id, timebox.GrantActive, "grant.extend_failed", "extend", err)
	}
	r, _, err = s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		if !r.ExtensionUnsynced() {
			return false, nil
		} else if bad := s.check(r); len(bad) > 0 {
			return true, s.tampered(tx, r, bad, now)
		}
		g := r.Grant
		old := g.ValidUntil
		g.ValidUntil, g.LastError, g.NextAttemptAt, g.UpdatedAt = end, "", time.Time{}, now
		if s.Keys != nil { // end was the decided end when read, verified then (and r now)
			s.Keys.SealIntent(g)
		}
		if err := tx.PutGrant(g); err != nil {
			return false, err
		}
		return true, tx.AppendEvent(event(now, "grant.extended", r, map[string]any{
			"principal": g.Principal, "valid_until": end.Format(time.RFC3339Nano), "previous": old.Format(time.RFC3339Nano),
		}))
	})
	return r, err
}
