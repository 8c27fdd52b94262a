package scheduler

import (
	"context"

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
