package scheduler

import (
	"context"
	"time"

	"github.com/timebox-dev/timebox"
)

// remove takes r's access off the database: it records the intent, revokes on the database
// (disable login, end sessions, drop), and only then moves the request to its final state.
func (s *Scheduler) remove(ctx context.Context, id string) (*timebox.Request, error) {
	r, ok, err := s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		if !r.State.Live() || r.Grant == nil {
			return false, nil
		}
		switch {
		case r.Ending != timebox.EndingNone: // revoked, cancelled, or a removal under way
		case !r.End.After(now):
			r.Ending, r.EndingSince = timebox.EndingExpire, r.End
		case r.Unused(now): // ends early
			r.Ending, r.EndingSince = timebox.EndingExpire, r.UnusedBy
			if err := tx.AppendEvent(event(now, "request.expire_requested", r, map[string]any{"note": unusedNote(r)})); err != nil {
				return false, err
			}
		default:
			return false, nil
		}
		g := r.Grant
		if g.Status != timebox.GrantRevoking {
			g.Status, g.Attempts, g.LastError, g.NextAttemptAt = timebox.GrantRevoking, 0, "", time.Time{}
			if err := tx.AppendEvent(event(now, "grant.revoke_intent", r, map[string]any{
				"principal": g.Principal, "server": g.Server, "reason": string(r.Ending),
			})); err != nil {
				return false, err
			}
		}
		g.Attempts++
		g.LastAttemptAt, g.UpdatedAt = now, now
		return true, tx.PutGrant(g)
	})
	if err != nil || !ok {
		return r, err
	}
	s.hook(StepRevokeIntent)
	var res timebox.RevokeResult
	err = s.call(ctx, r, false, func(ctx context.Context, e timebox.Engine, p timebox.GrantPlan) (err error) {
		res, err = e.Revoke(ctx, p)
		return err
	})
	s.hook(StepRevokeDB)
	if err != nil {
		if len(res.Handed) > 0 { // committed on the database: a retry would not find it again
			s.recordHanded(ctx, id, res)
		}
		return s.failed(ctx, id, timebox.GrantRevoking, "grant.revoke_failed", "revoke", err)
	}
	var since time.Time // when the removal became due: the end, the unused deadline, the revocation
	r, ok, err = s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		if r.Grant == nil || r.Grant.Status != timebox.GrantRevoking || r.Ending == timebox.EndingNone {
			return false, nil
		}
		to, err := timebox.Transition(r.State, r.Ending.Action())
		if err != nil {
			return false, err
		}
		g := r.Grant
		g.Status, g.LastError, g.NextAttemptAt, g.UpdatedAt = timebox.GrantRevoked, "", time.Time{}, now
		switch {
		case res.Dropped:
			g.Outcome = "dropped"
		case g.Method == timebox.MethodUnlockLogin, g.Method == timebox.MethodRoleMembership:
			g.Outcome = res.Detail
		default:
			g.Outcome = "kept without login: " + res.Detail
		}
		if err := tx.PutGrant(g); err != nil {
			return false, err
		}
		since = r.EndingSince
		r.State, r.Ending, r.EndingSince, r.EndedAt = to, timebox.EndingNone, time.Time{}, now
		r.Extension, r.Awaiting = nil, "" // an extension still pending at the end is moot
		return true, tx.AppendEvent(event(now, "request."+string(to), r, handedDetails(res, map[string]any{
			"principal": g.Principal, "outcome": g.Outcome, "sessions_ended": res.SessionsEnded,
			"pending_since": since.Format(time.RFC3339Nano), "attempts": g.Attempts,
		})))
	})
	if err == nil && ok && s.Metrics != nil && r.State == timebox.StateExpired {
		s.Metrics.observeExpiry(r.EndedAt.Sub(since))
	}
	return r, err
}

// recordHanded appends a "grant.handed_over" event listing what a removal that then failed
// had already handed over: the retry finds the login owning nothing, so its final event would
// not list it. A store error is logged; the removal goes on.
func (s *Scheduler) recordHanded(ctx context.Context, id string, res timebox.RevokeResult) {
	_, _, err := s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		principal := ""
		if r.Grant != nil {
			principal = r.Grant.Principal
		}
		return false, tx.AppendEvent(event(now, "grant.handed_over", r, handedDetails(res, map[string]any{"principal": principal})))
	})
	if err != nil {
		s.Logger.Error("scheduler: cannot record what a failed removal handed over", "request", id, "err", err)
	}
}

// handedDetails adds to an event's details what the removal res handed over: "handed_to",
// the role that received it, and "handed", one entry per object (kind, schema, name,
// database and, for a SECURITY DEFINER function or a view, risk). It returns details.
func handedDetails(res timebox.RevokeResult, details map[string]any) map[string]any {
	if len(res.Handed) == 0 {
		return details
	}
	handed := make([]any, len(res.Handed))
	for i, o := range res.Handed {
		m := map[string]any{"kind": o.Kind, "name": o.Name, "database": o.Database}
		if o.Schema != "" {
			m["schema"] = o.Schema
		}
		if o.Risk != "" {
			m["risk"] = o.Risk
		}
		handed[i] = m
	}
	details["handed_to"], details["handed"] = res.HandedTo, handed
	return details
}
