package scheduler

import (
	"context"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// planOf is what the engine must make exist, or remove, for g, without the password. It comes
// from the grant alone, so a removal never depends on the current configuration.
func planOf(g *timebox.Grant) timebox.GrantPlan {
	return timebox.GrantPlan{
		Method: g.Method, Principal: g.Principal, Database: g.TargetDatabase,
		Roles: g.Roles, Privileges: g.Privileges, Tables: g.Tables, ValidUntil: g.ValidUntil,
	}
}

// plan is planOf r's grant, with its password when granting. The password is opened only
// then: a removal does not need it, and must not fail for want of the key.
func (s *Scheduler) plan(r *timebox.Request, granting bool) (timebox.GrantPlan, error) {
	p := planOf(s.authentic(r.Grant))
	if granting && r.Grant.SealedPassword != nil { // role_membership grants carry no password
		password, err := s.Sealer.Open(r.Grant.SealedPassword, r.ID)
		if err != nil {
			return timebox.GrantPlan{}, err
		}
		p.Password = password
	}
	return p, nil
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
	p := planOf(g)
	p.ValidUntil, p.Password = r.End, "<password>"
	return pl.PlanStatements(p)
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

// planFailed records on the active grant of request id that its plan cannot be applied
// (its sealed password cannot be opened, say): the grant's last error, which `show` and the
// request's status line carry and Status counts, and a "grant.plan_failed" event the first
// time. Nothing on the database changes; the access stays until its end, as planned.
func (s *Scheduler) planFailed(ctx context.Context, id string, cause error) {
	msg := timebox.PlanFailure + ": " + timebox.ErrorMessage(cause)
	s.Logger.Warn("scheduler: a grant's plan cannot be applied", "request", id, "err", timebox.ErrorMessage(cause))
	_, _, err := s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		g := r.Grant
		if r.State != timebox.StateActive || g == nil || g.Status != timebox.GrantActive || g.LastError == msg {
			return false, nil
		}
		g.LastError, g.UpdatedAt = msg, now
		if err := tx.PutGrant(g); err != nil {
			return false, err
		}
		return true, tx.AppendEvent(event(now, "grant.plan_failed", r, map[string]any{"principal": g.Principal, "error": msg}))
	})
	if err != nil && ctx.Err() == nil {
		s.Logger.Error("scheduler: record a grant whose plan cannot be applied", "request", id, "err", err)
	}
}

// planApplied clears what planFailed recorded on request id, once its plan was applied.
func (s *Scheduler) planApplied(ctx context.Context, id string) {
	s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		g := r.Grant
		if r.State != timebox.StateActive || g == nil || g.Status != timebox.GrantActive || !strings.HasPrefix(g.LastError, timebox.PlanFailure) {
			return false, nil
		}
		g.LastError, g.UpdatedAt = "", now
		return true, tx.PutGrant(g)
	})
}
