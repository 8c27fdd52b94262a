package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/timebox-dev/timebox"
)

// passwordLength is the length of generated database passwords (about 190 bits).
const passwordLength = 32

// activate records the intent, creates the access on the database, then marks the request
// active. A crash between any two steps is finished by the next run: the intent keeps the
// principal name and password, and the engine's Grant is idempotent.
func (s *Scheduler) activate(ctx context.Context, id string) (*timebox.Request, error) {
	var bad []string
	r, ok, err := s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		if r.State != timebox.StateApproved || r.Ending != timebox.EndingNone || r.Start.After(now) || !r.End.After(now) {
			return false, nil
		}
		if bad = s.check(r); len(bad) > 0 { // no valid decision, or edited since: nothing is applied
			return true, s.tampered(tx, r, bad, now)
		}
		if r.Grant == nil {
			var err error
			if bad, err = s.replayed(tx, r); err != nil {
				return false, err
			} else if len(bad) > 0 { // an ended request's rows written back
				return true, s.tampered(tx, r, bad, now)
			}
			g, err := s.newGrant(r, now)
			if err != nil {
				return false, err
			}
			r.Grant = g
			details := map[string]any{
				"principal": g.Principal, "server": g.Server, "roles": g.Roles, "valid_until": g.ValidUntil.Format(time.RFC3339Nano),
			}
			if len(g.Privileges) > 0 { // what is granted besides roles is in the audit log too
				details["privileges"] = g.Privileges
			}
			if len(g.Tables) > 0 {
				details["tables"] = timebox.DescribeTables(g.Tables)
			}
			if err := tx.AppendEvent(event(now, "grant.create_intent", r, details)); err != nil {
				return false, err
			}
		}
		r.Grant.Attempts++
		r.Grant.LastAttemptAt, r.Grant.UpdatedAt = now, now
		return true, tx.PutGrant(r.Grant)
	})
	if err != nil || !ok || len(bad) > 0 {
		return r, err
	}
	s.hook(StepActivateIntent)
	err = s.call(ctx, r, true, func(ctx context.Context, e timebox.Engine, p timebox.GrantPlan) error {
		return e.Grant(ctx, p)
	})
	s.hook(StepActivateDB)
	if err != nil {
		return s.failed(ctx, id, timebox.GrantCreating, "grant.create_failed", "activate", err)
	}
	noBackstop := s.noBackstop(ctx, r)
	r, ok, err = s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		if r.State != timebox.StateApproved || r.Ending != timebox.EndingNone || r.Grant == nil || !r.End.After(now) {
			return false, nil // revoked, cancelled or ended meanwhile: the next pass removes it
		}
		to, err := timebox.Transition(r.State, timebox.ActionActivate)
		if err != nil {
			return false, err
		}
		r.State, r.ActivatedAt = to, now
		if r.UnusedAfter > 0 { // the credentials are available from now on
			if by := now.Add(time.Duration(r.UnusedAfter)); by.Before(r.End) {
				r.UnusedBy = by
			}
		}
		r.Grant.Status, r.Grant.LastError, r.Grant.NextAttemptAt, r.Grant.UpdatedAt = timebox.GrantActive, "", time.Time{}, now
		details := map[string]any{
			"principal": r.Grant.Principal, "valid_until": r.Grant.ValidUntil.Format(time.RFC3339Nano),
			"attempts": r.Grant.Attempts,
		}
		if r.Grant.Outcome = ""; noBackstop != "" {
			r.Grant.Outcome, details["backstop"] = timebox.NoBackstopPrefix+noBackstop, "none: "+noBackstop
		}
		if err := tx.PutGrant(r.Grant); err != nil {
			return false, err
		}
		return true, tx.AppendEvent(event(now, "request.activated", r, details))
	})
	if err == nil && ok && s.Metrics != nil {
		from := r.Start // or the approval, when it came later
		for _, rv := range r.Reviews {
			if rv.Decision == timebox.ActionApprove && rv.At.After(from) {
				from = rv.At
			}
		}
		s.Metrics.observeActivation(r.ActivatedAt.Sub(from))
	}
	return r, err
}

// noBackstop asks the engine of r's grant, when it is a timebox.BackstopReporter, why the
// access has no database-side end; "" when it has one, or when the engine cannot tell (the
// failure is logged: the activation itself succeeded).
func (s *Scheduler) noBackstop(ctx context.Context, r *timebox.Request) string {
	e, err := s.engine(r.Grant.Server)
	br, ok := e.(timebox.BackstopReporter)
	if err != nil || !ok {
		return ""
	}
	p, err := s.plan(r, true)
	var why string
	if err == nil {
		stepCtx, cancel := context.WithTimeout(ctx, s.StepTimeout)
		why, err = br.Backstop(stepCtx, p)
		cancel()
	}
	if err != nil {
		s.Logger.Warn("scheduler: cannot tell whether the access has a backstop", "request", r.ID, "err", timebox.ErrorMessage(err))
	}
	return why
}

// newGrant plans the principal of r: its name, roles, expiry and a fresh sealed password.
func (s *Scheduler) newGrant(r *timebox.Request, now time.Time) (*timebox.Grant, error) {
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return nil, err
	}
	var grants timebox.EngineRoles // an ad-hoc request grants its tables only
	if len(r.Tables) > 0 && db.Method != timebox.MethodEphemeralLogin {
		return nil, timebox.Errorf(timebox.EINVALID, "database %s uses method %s: ad-hoc table grants need a login of their own", db.Name, db.Method)
	} else if r.Access != timebox.AdHocAccess {
		if grants, err = s.Catalog.Grants(db, r.Access); err != nil {
			return nil, err
		}
	}
	principal, err := s.principal(db, r.Requester, r.ID)
	if err != nil {
		return nil, err
	}
	g := &timebox.Grant{
		RequestID: r.ID, Server: db.Server, Principal: principal,
		TargetDatabase: db.Database, Method: db.Method, Status: timebox.GrantCreating, Roles: grants.Roles,
		Privileges: grants.Privileges, Tables: r.Tables, ValidUntil: r.End,
		CreatedAt: now, UpdatedAt: now,
	}
	if db.Method == timebox.MethodUnlockLogin {
		g.Roles, g.Privileges = nil, nil // the shared login carries its own privileges
	}
	if db.Method != timebox.MethodRoleMembership { // a person logs in with their own password
		g.SealedPassword = s.Sealer.Seal(timebox.RandomPassword(passwordLength), r.ID)
	}
	if s.Keys != nil { // what may be created on the database, authenticated with the intent
		s.Keys.SealIntent(g)
	}
	return g, nil
}

// principal returns the login a request on db uses: a new ephemeral one, the shared login
// (unlock_login) or the requester's own (role_membership).
func (s *Scheduler) principal(db *timebox.Database, requester, id string) (string, error) {
	switch db.Method {
	case timebox.MethodUnlockLogin:
		return db.Login, nil
	case timebox.MethodRoleMembership:
		u, err := s.Catalog.User(requester)
		if err != nil {
			return "", err
		}
		return u.Login(), nil
	}
	if srv, err := s.Catalog.Server(db.Server); err == nil && srv.Engine == timebox.EngineMySQL {
		return principalName(requester, id, 32), nil // MySQL's longest user name
	}
	return PrincipalName(requester, id), nil
}

// call runs one engine operation for r's grant, bounded by the server's slots and StepTimeout.
func (s *Scheduler) call(ctx context.Context, r *timebox.Request, granting bool, op func(context.Context, timebox.Engine, timebox.GrantPlan) error) error {
	p, err := s.plan(r, granting)
	if err != nil {
		if r.State == timebox.StateActive { // a repair or a password check: shown on the request
			s.planFailed(ctx, r.ID, err)
		} // an activation records its failure itself
		return err
	}
	g := s.authentic(r.Grant) // the server and principal as authenticated, not as stored
	if g.Method == timebox.MethodRoleMembership {
		// One change at a time to a person's login, and a removal keeps what the login's
		// other live grants need, computed under the same lock: no gap, no early revoke.
		defer s.lockPrincipal(g.Server, g.Principal)()
		if !granting {
			if p.Keep, p.KeepDatabases, p.KeepPrivileges, err = s.keep(ctx, r); err != nil {
				return err
			}
		}
	}
	return s.onServer(ctx, g.Server, func(ctx context.Context, e timebox.Engine) error { return op(ctx, e, p) })
}

// lockPrincipal serialises the engine calls on one login of one server; it returns the unlock.
func (s *Scheduler) lockPrincipal(server, principal string) func() {
	s.mu.Lock()
	key := server + "\x00" + principal
	m, ok := s.principals[key]
	if !ok {
		m = &sync.Mutex{}
		s.principals[key] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// keep returns the roles and databases that the other live grants of r's login still need,
// and the privileges they need on r's database: active ones, and approved ones whose window
// has started (so a back-to-back request never sees a gap while its activation is on its way).
// It reads only the requests of the users whose own login that is (usually one), through the
// store's requester index, not every live request.
func (s *Scheduler) keep(ctx context.Context, r *timebox.Request) (roles, dbs, privileges []string, err error) {
	var live []*timebox.Request
	err = s.Store.View(ctx, func(tx timebox.Tx) error {
		for _, u := range s.Catalog.People() {
			if u.Login() == r.Grant.Principal {
				hs, err := tx.FindRequests(timebox.RequestFilter{States: []timebox.State{timebox.StateApproved, timebox.StateActive}, Requester: u.Name})
				if err != nil {
					return err
				}
				live = append(live, hs...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	now := s.Now()
	for _, h := range live {
		if h.ID == r.ID || h.Ending != timebox.EndingNone || h.Start.After(now) || !h.End.After(now) {
			continue
		} else if len(s.check(h)) > 0 { // edited in the store: it keeps nothing on the login
			continue
		}
		db, err := s.Catalog.Database(h.Database)
		if err != nil || db.Server != r.Grant.Server || db.Method != timebox.MethodRoleMembership {
			continue
		}
		g, err := s.Catalog.Grants(db, h.Access)
		if err != nil {
			continue
		}
		roles, dbs = append(roles, g.Roles...), append(dbs, db.Database)
		if db.Database == r.Grant.TargetDatabase {
			privileges = append(privileges, g.Privileges...)
		}
	}
	return roles, dbs, privileges, nil
}

// onServer runs op with the engine of server, within the server's slots and StepTimeout.
func (s *Scheduler) onServer(ctx context.Context, server string, op func(context.Context, timebox.Engine) error) error {
	e, err := s.engine(server)
	if err != nil {
		return err
	}
	slot := s.slot(server)
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-slot }()
	stepCtx, cancel := context.WithTimeout(ctx, s.StepTimeout)
	defer cancel()
	err = op(stepCtx, e)
	if ctx.Err() == nil { // not a shutdown: what the server said (a timeout counts)
		s.observe(server, err)
		if timebox.ErrorCode(err) == timebox.EUNAVAILABLE {
			s.down(server)
		}
	}
	return err
}

// failed records a failed engine call on the grant of request id, made in phase (creating,
// revoking, or active for an extension), and schedules the next attempt. The first failure
// of a phase is an audit event; later ones update the request only. A grant that left the
// phase meanwhile is left alone: its new phase keeps its own retry state.
func (s *Scheduler) failed(ctx context.Context, id string, phase timebox.GrantStatus, action, op string, cause error) (*timebox.Request, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err() // shutting down: not a failure of the database
	}
	msg := timebox.ErrorMessage(cause)
	var server string
	r, _, err := s.update(ctx, id, func(tx timebox.Tx, r *timebox.Request, now time.Time) (bool, error) {
		g := r.Grant
		if g == nil || g.Status != phase || (phase == timebox.GrantActive && !r.ExtensionUnsynced()) {
			return false, nil
		}
		server = g.Server
		first := g.LastError == ""
		if phase == timebox.GrantActive { // an extension stores no intent: its attempts are counted here
			if first {
				g.Attempts = 0
			}
			g.Attempts++
		}
		g.LastError, g.NextAttemptAt, g.UpdatedAt = msg, now.Add(s.backoff(g.Attempts)), now
		if err := tx.PutGrant(g); err != nil {
			return false, err
		}
		if first {
			return true, tx.AppendEvent(event(now, action, r, map[string]any{"error": msg, "next_attempt_at": g.NextAttemptAt.Format(time.RFC3339Nano)}))
		}
		return true, nil
	})
	if s.Metrics != nil {
		s.Metrics.EngineErrors.WithLabelValues(server, op).Inc()
	}
	s.Logger.Warn("scheduler: database step failed; will retry", "request", id, "op", op, "err", msg)
	return r, err
}
