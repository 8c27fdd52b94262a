package scheduler

import (
	"context"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// upgradeIntegrity is the one-time upgrade that migration 00004 leaves in a store: the live
// requests of a store made before decisions were authenticated get their proofs.
const upgradeIntegrity = "integrity"

// check returns the fields of r that fail their integrity check (see
// timebox.Keyring.CheckRequest). A scheduler without keys checks nothing (tests only: the
// server always has them).
func (s *Scheduler) check(r *timebox.Request) []string {
	if s.Keys == nil {
		return nil
	}
	return s.Keys.CheckRequest(r)
}

// ended returns the audit event that r's rows no longer reflect ("" when none): a live
// request whose log says it ended, whose removal was asked for while its row shows none, or
// that went back to pending (an approver disabled) after its last approval, is an older copy
// of its rows written back into the store (a replay), whose proofs still verify. Activation
// (before its first intent) and every repair look, with one indexed read of the request's
// events; deleting those events breaks the keyed audit chain.
func ended(tx timebox.Tx, r *timebox.Request) (string, error) {
	es, err := tx.FindEvents(timebox.EventFilter{RequestID: r.ID})
	if err != nil {
		return "", err
	}
	reopened := ""
	for _, e := range es {
		switch e.Action {
		case "request.revoked", "request.expired", "request.cancelled", "request.denied", "request.released":
			return e.Action, nil
		case "request.revoke_requested", "request.cancel_requested", "request.release_requested":
			if r.Ending == timebox.EndingNone {
				return e.Action, nil
			}
		case "request.reopened":
			reopened = e.Action + " after its last approval"
		case "request.approved", "request.auto_approved", "request.break_glass":
			reopened = ""
		}
	}
	if r.State != timebox.StatePending {
		return reopened, nil
	}
	return "", nil
}

// replayed returns why r fails its integrity check inside tx, with the audit log looked at
// too (see ended): nil when it verifies.
func (s *Scheduler) replayed(tx timebox.Tx, r *timebox.Request) ([]string, error) {
	if bad := s.check(r); len(bad) > 0 || s.Keys == nil {
		return bad, nil
	}
	action, err := ended(tx, r)
	if err != nil || action == "" {
		return nil, err
	}
	return []string{"state (replayed: the audit log has " + action + ")"}, nil
}

// authentic returns g with the fields of its authenticated intent when its proof verifies, so
// that a removal never uses a principal, server or role edited in the store; g otherwise.
func (s *Scheduler) authentic(g *timebox.Grant) *timebox.Grant {
	if s.Keys == nil {
		return g
	}
	if in, _ := s.Keys.CheckIntent(g); in != nil {
		return in.Apply(g)
	}
	return g
}

// tampered fails r closed inside tx, after check found bad: nothing of it is applied; its
// grant goes back to what its intent authenticated (when that still verifies) and is removed
// by the normal removal path, and a request with nothing on the database ends revoked at once.
// The first detection of the same fields is a "store.tampered" audit event and a metric; the
// scheduler finds it again on every pass until the removal is done, without more events.
func (s *Scheduler) tampered(tx timebox.Tx, r *timebox.Request, bad []string, now time.Time) error {
	fields := strings.Join(bad, ", ")
	first := r.Tampered != fields
	r.Tampered = fields
	details := map[string]any{"fields": bad, "state": string(r.State), "outcome": "access removed; nothing applied"}
	if g := r.Grant; g != nil {
		if in, _ := s.Keys.CheckIntent(g); in != nil {
			r.Grant = in.Apply(g)
		}
		details["principal"], details["server"] = r.Grant.Principal, r.Grant.Server
		if err := tx.PutGrant(r.Grant); err != nil {
			return err
		}
	}
	if first {
		if err := tx.AppendEvent(event(now, "store.tampered", r, details)); err != nil {
			return err
		}
		if s.Metrics != nil {
			s.Metrics.Tampered.Inc()
		}
		s.Logger.Error("scheduler: a request was edited in the store without the key; its access is removed", "request", r.ID, "fields", fields)
	}
	switch {
	case r.Ending != timebox.EndingNone: // a removal is under way already
	case r.Grant == nil || r.Grant.Status == timebox.GrantRevoked:
		to, err := timebox.Transition(r.State, timebox.ActionRevoke)
		if err != nil {
			return err
		}
		note := "edited in the store without the key: " + fields
		r.State, r.EndedAt, r.Extension, r.Awaiting = to, now, nil, ""
		r.Reviews = append(r.Reviews, timebox.Review{Reviewer: Actor, Decision: timebox.ActionRevoke, Note: note, At: now})
		return tx.AppendEvent(event(now, "request.revoked", r, map[string]any{"note": note}))
	default:
		r.Ending, r.EndingSince = timebox.EndingRevoke, now
		r.Reviews = append(r.Reviews, timebox.Review{Reviewer: Actor, Decision: timebox.ActionRevoke, Note: "edited in the store without the key: " + fields, At: now})
	}
	return nil
}

// failClosed checks request id afresh in its own transaction and fails it closed when it
// does not verify; it reports whether it did.
func (s *Scheduler) failClosed(ctx context.Context, id string) (bool, error) {
	_, ok, err := s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		if !r.State.Live() {
			return false, nil
		}
		bad, err := s.replayed(tx, r)
		if err != nil || len(bad) == 0 {
			return false, err
		}
		return true, s.tampered(tx, r, bad, now)
	})
	return ok, err
}

// Adopt does the one-time integrity upgrade of a store made before decisions were
// authenticated (the migration leaves it to do): every approved or active request without a
// decision proof, every grant of one without an intent proof, and the approvals of pending
// requests and extensions, are authenticated as they are now — trust on first use — and one
// "store.integrity_adopted" audit event lists them. After
// that, a missing proof is tampering. Run calls it; it does nothing once done or without keys.
func (s *Scheduler) Adopt(ctx context.Context) error {
	if s.Keys == nil {
		return nil
	}
	return s.Store.Update(ctx, func(tx timebox.Tx) error {
		if pending, err := tx.PendingUpgrade(upgradeIntegrity); err != nil || !pending {
			return err
		}
		reqs, err := tx.FindRequests(timebox.RequestFilter{States: []timebox.State{timebox.StatePending, timebox.StateApproved, timebox.StateActive}})
		if err != nil {
			return err
		}
		var ids []string
		for _, r := range reqs {
			if s.Keys.AdoptReviews(r) && r.State == timebox.StatePending {
				if err := tx.UpdateRequest(r); err != nil {
					return err
				}
				ids = append(ids, r.ID)
				continue
			}
			if r.State == timebox.StatePending || r.Decided.Tag != "" && (r.Grant == nil || r.Grant.Intended.Tag != "") {
				continue
			}
			if r.Grant != nil && r.Grant.Intended.Tag == "" {
				s.Keys.SealIntent(r.Grant)
				if err := tx.PutGrant(r.Grant); err != nil {
					return err
				}
			}
			if r.Decided.Tag == "" {
				s.Keys.SealDecision(r)
			}
			if err := tx.UpdateRequest(r); err != nil { // the decision, and the extension's approvals
				return err
			}
			ids = append(ids, r.ID)
		}
		if len(ids) > 0 {
			now := s.Now().UTC()
			if err := tx.AppendEvent(&timebox.Event{Time: now, Actor: Actor, Action: "store.integrity_adopted", Details: map[string]any{
				"requests": ids, "key": s.Keys.ID(),
				"note": "live requests of a store made before decisions were authenticated, trusted as they were at this first start (trust on first use)",
			}}); err != nil {
				return err
			}
		}
		return tx.FinishUpgrade(upgradeIntegrity)
	})
}
