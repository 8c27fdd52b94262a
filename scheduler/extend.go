package scheduler

import (
	"context"
	"time"

	"github.com/timebox-dev/timebox"
)

// extend moves the database-side expiry of r's active grant to r's end after an approved
// extension: the engine's Extend touches nothing else (same login, same password, sessions
// untouched). A failure is retried with backoff, never past the end.
func (s *Scheduler) extend(ctx context.Context, id string) error {
	var r *timebox.Request
	if err := s.Store.View(ctx, func(tx timebox.Tx) (err error) {
		r, err = tx.FindRequest(id)
		return err
	}); err != nil || !r.ExtensionUnsynced() || !r.End.After(s.Now()) {
		return err
	}
	g, end := r.Grant, r.End
	// No password: Extend changes the expiry only, and must not fail for want of the key.
	p := timebox.GrantPlan{Method: g.Method, Principal: g.Principal, Database: g.TargetDatabase,
		Roles: g.Roles, Privileges: g.Privileges, Tables: g.Tables, ValidUntil: end}
	if g.Method == timebox.MethodRoleMembership {
		defer s.lockPrincipal(g.Server, g.Principal)()
	}
	err := s.onServer(ctx, g.Server, func(ctx context.Context, e timebox.Engine) error { return e.Extend(ctx, p) })
	if err != nil && ctx.Err() != nil {
		return ctx.Err() // shutting down: not a failure of the database
	}
	_, _, uerr := s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		g := r.Grant
		if !r.ExtensionUnsynced() {
			return false, nil
		}
		if err != nil {
			first := g.LastError == ""
			g.Attempts++
			g.LastError, g.NextAttemptAt, g.UpdatedAt = timebox.ErrorMessage(err), now.Add(s.backoff(g.Attempts)), now
			if perr := tx.PutGrant(g); perr != nil || !first {
				return true, perr
			}
			return true, tx.AppendEvent(event(now, "grant.extend_failed", r, map[string]any{"error": g.LastError}))
		}
		old := g.ValidUntil
		g.ValidUntil, g.LastError, g.NextAttemptAt, g.UpdatedAt = end, "", time.Time{}, now
		if perr := tx.PutGrant(g); perr != nil {
			return false, perr
		}
		return true, tx.AppendEvent(event(now, "grant.extended", r, map[string]any{
			"principal": g.Principal, "valid_until": end.Format(time.RFC3339Nano), "previous": old.Format(time.RFC3339Nano),
		}))
	})
	if err != nil { // recorded with its next attempt; no cooldown, which could delay the expiry
		s.Logger.Warn("scheduler: extension failed; will retry", "request", id, "err", timebox.ErrorMessage(err))
	}
	return uerr
}

// PlanStatements returns the statements r's server will run for r: to create its access and,
// at the end, to remove it (see timebox.Planner), from r's grant when it has one, else from
// the grant the scheduler would make now. EUNAVAILABLE when the engine cannot show them.
func (s *Scheduler) PlanStatements(r *timebox.Request) (grant, revoke []string, err error) {
	g := r.Grant
	if g == nil {
		if g, err = s.newGrant(r, s.Now()); err != nil {
			return nil, nil, err
		}
	}
	e, err := s.engine(g.Server)
	if err != nil {
		return nil, nil, err
	}
	pl, ok := e.(timebox.Planner)
	if !ok {
		return nil, nil, timebox.Errorf(timebox.EUNAVAILABLE, "the engine of server %s cannot show its statements", g.Server)
	}
	return pl.PlanStatements(timebox.GrantPlan{
		Method: g.Method, Principal: g.Principal, Database: g.TargetDatabase, Roles: g.Roles,
		Privileges: g.Privileges, Tables: g.Tables, ValidUntil: r.End, Password: "<password>",
	})
}

// CheckTables checks an ad-hoc request's tables on its database before the request is
// stored (see timebox.TableChecker): nil when the engine cannot check.
func (s *Scheduler) CheckTables(ctx context.Context, r *timebox.Request) error {
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return err
	}
	e, err := s.engine(db.Server)
	if err != nil {
		return err
	}
	tc, ok := e.(timebox.TableChecker)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.StepTimeout)
	defer cancel()
	return tc.CheckTables(ctx, timebox.GrantPlan{Method: db.Method, Database: db.Database, Tables: r.Tables})
}
