package scheduler

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// Reconcile compares, on every server, the principals Timebox created (recognised on the
// database by their mark, see timebox.Inventory) with what the store says should exist, and
// repairs each difference with an audit event "drift.repaired":
//
//   - a principal with no live grant (an orphan: the store lost track of it, or a removal was
//     undone by hand) is removed — login disabled, sessions ended, dropped;
//   - the principal of an active grant that was changed by hand (an extra role, another or no
//     VALID UNTIL, login disabled) or dropped by hand is put back to exactly its plan;
//   - a shared login (method unlock_login) unlocked by hand while no grant holds it is locked
//     again.
//
// A live grant whose request or intent does not verify (edited in the store without the key,
// see timebox.Keyring.CheckRequest) is never repaired: it is failed closed and removed.
//
// The database is listed before the store is read: a principal is created only after its
// intent is stored, so one that the store does not know is a true orphan. A request the
// scheduler is working on is left alone in this pass. A password changed by hand cannot be
// seen without superuser rights and is not detected.
func (s *Scheduler) Reconcile(ctx context.Context) {
	s.reconciling.Lock()
	defer s.reconciling.Unlock()
	// Which grants were settled before the listings: only those can be missing from them; a
	// grant activated during a listing may just not be in it yet. One read of the store
	// before all listings and one after, whatever the number of servers.
	before, err := s.liveGrants(ctx)
	if err != nil {
		s.Logger.Error("reconciler: read the store", "err", err)
		return
	}
	found := map[string][]timebox.ManagedPrincipal{}
	persons := map[string][]string{} // per server: the users' own logins listed
	for _, server := range slices.Sorted(maps.Keys(s.Engines)) {
		inv, ok := s.Engines[server].(timebox.Inventory)
		if !ok {
			continue
		}
		if s.heldBack(server) {
			continue // unreachable: listing it would only wait out StepTimeout; its probe says when it is back
		}
		shared, own := s.namedLogins(server)
		persons[server] = own
		err := s.onServer(ctx, server, func(ctx context.Context, _ timebox.Engine) (err error) {
			found[server], err = inv.Managed(ctx, append(shared, own...))
			return err
		})
		if err != nil {
			delete(found, server)
			if ctx.Err() == nil {
				s.Logger.Warn("reconciler: cannot list the server's principals", "server", server, "err", timebox.ErrorMessage(err))
			}
		}
	}
	if len(found) == 0 {
		return
	}
	after, err := s.liveGrants(ctx)
	if err != nil {
		s.Logger.Error("reconciler: read the store", "err", err)
		return
	}
	s.dropTampered(ctx, after)
	for _, server := range slices.Sorted(maps.Keys(found)) {
		b, a := before[server], after[server]
		if b == nil {
			b = &live{}
		}
		if a == nil {
			a = &live{}
		}
		s.reconcileServer(ctx, server, b, a, found[server], persons[server])
		s.checkPasswords(ctx, server, a.byPrincipal)
	}
}

// namedLogins returns the existing logins the configuration names on server: the shared
// logins of method unlock_login, and, when a database of the server uses method
// role_membership, every user's own login.
func (s *Scheduler) namedLogins(server string) (shared, persons []string) {
	membership := false
	for _, d := range s.Catalog.Databases {
		switch {
		case d.Server != server:
		case d.Method == timebox.MethodUnlockLogin:
			shared = append(shared, d.Login)
		case d.Method == timebox.MethodRoleMembership:
			membership = true
		}
	}
	if membership {
		for _, u := range s.Catalog.People() {
			if !slices.Contains(shared, u.Login()) {
				persons = append(persons, u.Login())
			}
		}
	}
	return shared, persons
}

// handedOut returns the roles that the access levels of server's role_membership databases
// grant: on a person's login, those are Timebox's to give and take.
func (s *Scheduler) handedOut(server string) []string {
	var roles []string
	for i := range s.Catalog.Databases {
		d := &s.Catalog.Databases[i]
		if d.Server != server || d.Method != timebox.MethodRoleMembership {
			continue
		}
		for _, l := range s.Catalog.AccessLevels {
			if rs, err := s.Catalog.Roles(d, l.Name); err == nil {
				roles = append(roles, rs...)
			}
		}
	}
	return roles
}

// passwordCheckMargin keeps password checks away from the end of a window: past VALID
// UNTIL, PostgreSQL refuses the right password exactly as it refuses a wrong one.
const passwordCheckMargin = 30 * time.Second

// checkPasswords logs in with the planned password of up to PasswordChecks settled grants of
// server, taking them in turn from one pass to the next, and puts back the password of each
// that the server refuses: a password changed by hand cannot be read without superuser
// rights, but it can be tried. A login is checked again after every other settled grant of
// its server was, so with n of them a change is found within n/PasswordChecks passes.
func (s *Scheduler) checkPasswords(ctx context.Context, server string, expected map[string]*timebox.Request) {
	inv, ok := s.Engines[server].(timebox.Inventory)
	if !ok || s.PasswordChecks <= 0 || s.Sealer == nil {
		return
	}
	now := s.Now()
	var names []string
	for name, r := range expected {
		if settled(r) && r.Grant.SealedPassword != nil && r.End.After(now.Add(passwordCheckMargin)) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	s.mu.Lock()
	from, _ := slices.BinarySearch(names, s.pwCursor[server]+"\x00") // the first name after the cursor
	s.mu.Unlock()
	for i := range min(s.PasswordChecks, len(names)) {
		name := names[(from+i)%len(names)]
		r := expected[name]
		var works bool
		err := s.call(ctx, r, true, func(ctx context.Context, e timebox.Engine, p timebox.GrantPlan) (err error) {
			works, err = inv.PasswordWorks(ctx, p)
			return err
		})
		s.mu.Lock()
		s.pwCursor[server] = name
		s.mu.Unlock()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				s.Logger.Warn("reconciler: cannot check a password", "request", r.ID, "err", timebox.ErrorMessage(err))
			}
			return
		case !works:
			s.repair(ctx, r.ID, "its password was changed by hand")
		}
	}
}

// dropTampered fails closed every request of l that does not verify (an HMAC each, no store
// round trip for those that do) and takes it out of l: nothing is repaired for it, and its
// removal runs through the normal path.
func (s *Scheduler) dropTampered(ctx context.Context, l map[string]*live) {
	for _, sl := range l {
		for name, r := range sl.byPrincipal {
			if len(s.check(r)) > 0 {
				s.failTampered(ctx, r.ID)
				delete(sl.byPrincipal, name)
				sl.tampered[name], sl.tampered[s.authentic(r.Grant).Principal] = true, true
			}
		}
		for name, rs := range sl.persons {
			sl.persons[name] = slices.DeleteFunc(rs, func(r *timebox.Request) bool {
				if len(s.check(r)) == 0 {
					return false
				}
				s.failTampered(ctx, r.ID)
				return true
			})
		}
	}
}

// failTampered fails request id closed unless the scheduler is working on it (its own
// checks then do it), and wakes the loop for its removal.
func (s *Scheduler) failTampered(ctx context.Context, id string) {
	s.mu.Lock()
	busy := s.inflight[id]
	s.mu.Unlock()
	if busy {
		return
	}
	if _, err := s.failClosed(ctx, id); err != nil {
		s.Logger.Error("reconciler: fail a tampered request closed", "request", id, "err", err)
	}
	s.Wake()
}

// live is what the store says should exist on one server: the grants by principal, and
// the grants of method role_membership by person's login (several may share one).
type live struct {
	byPrincipal map[string]*timebox.Request
	persons     map[string][]*timebox.Request
	// tampered are the principals of requests failed closed in this pass: their own removal
	// takes them off, not the orphan path.
	tampered map[string]bool
}

// liveGrants returns the approved and active requests that have a grant, by server.
func (s *Scheduler) liveGrants(ctx context.Context) (map[string]*live, error) {
	var reqs []*timebox.Request
	err := s.Store.View(ctx, func(tx timebox.Tx) (err error) {
		reqs, err = tx.FindRequests(timebox.RequestFilter{States: []timebox.State{timebox.StateApproved, timebox.StateActive}})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]*live{}
	for _, r := range reqs {
		if r.Grant == nil {
			continue
		}
		l := out[r.Grant.Server]
		if l == nil {
			l = &live{byPrincipal: map[string]*timebox.Request{}, persons: map[string][]*timebox.Request{}, tampered: map[string]bool{}}
			out[r.Grant.Server] = l
		}
		if r.Grant.Method == timebox.MethodRoleMembership {
			l.persons[r.Grant.Principal] = append(l.persons[r.Grant.Principal], r)
		} else {
			l.byPrincipal[r.Grant.Principal] = r
		}
	}
	return out, nil
}

// settled reports whether r's grant is active with nothing under way.
func settled(r *timebox.Request) bool {
	return r.State == timebox.StateActive && r.Ending == timebox.EndingNone && r.Grant.Status == timebox.GrantActive &&
		!r.ExtensionUnsynced() // the expiry is on its way to the extended end
}

// reconcileServer compares what the server has (found, listed after the store snapshot
// before) with the store read after the listing (expected): a principal is created only after
// its intent is stored, so one the store does not know afterwards is an orphan; and one that
// was settled before the listing but is absent from it was dropped by hand.
func (s *Scheduler) reconcileServer(ctx context.Context, server string, beforeAll, after *live, found []timebox.ManagedPrincipal, persons []string) {
	before, expected := beforeAll.byPrincipal, after.byPrincipal
	var handed []string
	onDB := map[string]bool{}
	for _, m := range found {
		onDB[m.Name] = true
		r, ok := expected[m.Name]
		switch {
		case after.tampered[m.Name]: // its removal is under way
		case m.Shared && slices.Contains(persons, m.Name):
			if handed == nil {
				handed = s.handedOut(server)
			}
			s.reconcilePerson(ctx, server, m, beforeAll.persons[m.Name], after.persons[m.Name], handed)
		case !ok && m.Shared && m.CanLogin:
			s.relock(ctx, server, m)
		case !ok && !m.Shared:
			s.removeOrphan(ctx, server, m)
		case ok:
			if drift := driftOf(r, &m); drift != "" {
				s.repair(ctx, r.ID, drift)
			}
		}
	}
	for name, r := range expected {
		if b, ok := before[name]; ok && !onDB[name] && r.Grant.Method == timebox.MethodEphemeralLogin && settled(r) && settled(b) && b.ID == r.ID {
			s.repair(ctx, r.ID, "the login was dropped by hand")
		}
	}
}

// relock locks a shared login again that was unlocked by hand while no grant holds it.
func (s *Scheduler) relock(ctx context.Context, server string, m timebox.ManagedPrincipal) {
	var res timebox.RevokeResult
	err := s.onServer(ctx, server, func(ctx context.Context, e timebox.Engine) (err error) {
		res, err = e.Revoke(ctx, timebox.GrantPlan{Method: timebox.MethodUnlockLogin, Principal: m.Name, Database: m.Database})
		return err
	})
	if err != nil {
		s.Logger.Warn("reconciler: cannot lock a shared login", "server", server, "login", m.Name, "err", timebox.ErrorMessage(err))
		return
	}
	if res.Absent { // locked meanwhile by the grant's own removal
		return
	}
	s.drifted(ctx, server, "login_locked", &timebox.Event{Details: map[string]any{
		"principal": m.Name, "server": server, "found": "a shared login unlocked with no grant holding it",
		"outcome": res.Detail, "sessions_ended": res.SessionsEnded,
	}})
}

// driftOf describes how m differs from the plan of r's active grant ("" when it does not, or
// when the grant is not settled: the scheduler owns creating and revoking grants).
func driftOf(r *timebox.Request, m *timebox.ManagedPrincipal) string {
	g := r.Grant
	if !settled(r) {
		return ""
	}
	switch {
	case !m.CanLogin:
		return "the login was disabled by hand"
	case !m.NoExpiry && !m.ValidUntil.Equal(g.ValidUntil):
		if m.ValidUntil.IsZero() {
			return "its database-side expiry was removed (VALID UNTIL infinity, or the backstop event dropped)"
		}
		return "its database-side expiry was changed to " + m.ValidUntil.Format(time.RFC3339Nano)
	case g.Method != timebox.MethodUnlockLogin && !slices.Equal(slices.Sorted(slices.Values(m.Roles)), slices.Sorted(slices.Values(g.Roles))):
		return "its roles were changed by hand to [" + strings.Join(m.Roles, ", ") + "]"
	case g.Method == timebox.MethodEphemeralLogin && m.Privileges != nil && !samePrivileges(m.Privileges, g):
		var held []string
		for _, db := range slices.Sorted(maps.Keys(m.Privileges)) {
			held = append(held, strings.Join(m.Privileges[db], ", ")+" on "+db)
		}
		return "its privileges were changed by hand to [" + strings.Join(held, "; ") + "]"
	}
	return ""
}

// samePrivileges reports whether held, the privileges a login holds by database, are exactly
// what g grants on its database. A plan of ALL PRIVILEGES is not compared (the server lists
// them one by one, and which ones depends on its version).
func samePrivileges(held map[string][]string, g *timebox.Grant) bool {
	var want []string
	for _, p := range g.Privileges {
		p = strings.ToUpper(strings.Join(strings.Fields(p), " "))
		if p == "ALL" || p == "ALL PRIVILEGES" {
			return true
		}
		if !slices.Contains(want, p) {
			want = append(want, p)
		}
	}
	slices.Sort(want)
	switch {
	case len(want) == 0:
		return len(held) == 0
	case len(held) != 1:
		return false
	}
	return slices.Equal(held[g.TargetDatabase], want)
}

// removeOrphan removes a principal that no live grant accounts for.
func (s *Scheduler) removeOrphan(ctx context.Context, server string, m timebox.ManagedPrincipal) {
	var res timebox.RevokeResult
	err := s.onServer(ctx, server, func(ctx context.Context, e timebox.Engine) (err error) {
		res, err = e.Revoke(ctx, timebox.GrantPlan{Method: timebox.MethodEphemeralLogin, Principal: m.Name, Database: m.Database})
		return err
	})
	if err != nil {
		s.Logger.Warn("reconciler: cannot remove an orphan", "server", server, "principal", m.Name, "err", timebox.ErrorMessage(err))
		return
	}
	if res.Absent { // gone meanwhile: a removal finished between the listing and now
		return
	}
	if !res.Dropped && !m.CanLogin && len(m.Roles) == 0 && res.SessionsEnded == 0 {
		return // kept without login by an earlier pass, and still nothing to undo: no news
	}
	outcome := "dropped"
	if !res.Dropped {
		outcome = "kept without login: " + res.Detail
	}
	s.drifted(ctx, server, "orphan_removed", &timebox.Event{Details: handedDetails(res, map[string]any{
		"principal": m.Name, "server": server, "found": "a Timebox login with no live grant",
		"outcome": outcome, "sessions_ended": res.SessionsEnded,
	})})
}

// repair puts the principal of request id back to its plan, under the request's in-flight
// guard so that it never races the scheduler's own activation or removal.
func (s *Scheduler) repair(ctx context.Context, id, drift string) {
	s.mu.Lock()
	if s.inflight[id] {
		s.mu.Unlock()
		return // being worked on: look again next pass
	}
	s.inflight[id] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, id)
		s.mu.Unlock()
		s.Wake() // work skipped while this held the request (e.g. its end) runs now
	}()
	// Edited in the store, or an ended request's rows written back: never put back, removed
	// instead (a repair re-creates access, so it reads the request's events too).
	if failed, err := s.failClosed(ctx, id); err != nil || failed {
		if err != nil {
			s.Logger.Error("reconciler: fail a tampered request closed", "request", id, "err", err)
		}
		return
	}
	r, err := s.load(ctx, id)
	if err != nil || len(s.check(r)) > 0 { // edited since: the next pass fails it closed
		return
	}
	if r.State != timebox.StateActive || r.Ending != timebox.EndingNone || r.Grant == nil ||
		r.Grant.Status != timebox.GrantActive || !r.End.After(s.Now()) {
		return // it moved on since the listing
	}
	err = s.call(ctx, r, true, func(ctx context.Context, e timebox.Engine, p timebox.GrantPlan) error {
		return e.Grant(ctx, p)
	})
	if err != nil {
		s.Logger.Warn("reconciler: cannot repair a grant", "request", id, "drift", drift, "err", timebox.ErrorMessage(err))
		return
	}
	s.planApplied(ctx, id)
	s.drifted(ctx, r.Grant.Server, "grant_restored", &timebox.Event{RequestID: r.ID, Database: r.Database, Details: map[string]any{
		"principal": r.Grant.Principal, "server": r.Grant.Server, "found": drift, "outcome": "restored to its plan",
	}})
}

// drifted records one repair: an audit event, a log line and a metric.
func (s *Scheduler) drifted(ctx context.Context, server, kind string, e *timebox.Event) {
	e.Time, e.Actor, e.Action = s.Now().UTC(), Actor, "drift.repaired"
	e.Details["kind"] = kind
	if err := s.Store.Update(ctx, func(tx timebox.Tx) error { return tx.AppendEvent(e) }); err != nil {
		s.Logger.Error("reconciler: record a repair", "err", err)
	}
	s.Logger.Warn("reconciler: repaired drift", "server", server, "kind", kind, "principal", e.Details["principal"], "found", e.Details["found"])
	if s.Metrics != nil {
		s.Metrics.DriftRepaired.WithLabelValues(server, kind).Inc()
	}
}

// reconcilePerson compares a person's own login (method role_membership) with its live
// grants: a role that Timebox hands out on this server but that no live grant of the login
// needs (granted by hand: standing access around the review) is revoked, and the login's
// sessions ended; a live grant whose role was revoked by hand is granted again. It acts only
// when the login's live grants did not change during the listing and none is under way.
func (s *Scheduler) reconcilePerson(ctx context.Context, server string, m timebox.ManagedPrincipal, before, after []*timebox.Request, handed []string) {
	ids := func(rs []*timebox.Request) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		slices.Sort(out)
		return out
	}
	unsettled := func(r *timebox.Request) bool { return !settled(r) }
	if !slices.Equal(ids(before), ids(after)) || slices.ContainsFunc(before, unsettled) || slices.ContainsFunc(after, unsettled) {
		return
	}
	needed := map[string]bool{}
	for _, r := range after {
		var missing []string
		for _, role := range r.Grant.Roles {
			needed[role] = true
			if !slices.Contains(m.Roles, role) {
				missing = append(missing, role)
			}
		}
		if len(missing) > 0 {
			s.repair(ctx, r.ID, "role "+strings.Join(missing, ", ")+" was revoked by hand")
		}
	}
	var extra []string
	for _, role := range m.Roles {
		if slices.Contains(handed, role) && !needed[role] && !slices.Contains(extra, role) {
			extra = append(extra, role)
		}
	}
	if len(extra) == 0 {
		return
	}
	// Under the login's lock, with what its live grants need read afresh: a grant that
	// activates meanwhile keeps its roles.
	defer s.lockPrincipal(server, m.Name)()
	keep, _, _, err := s.keep(ctx, &timebox.Request{Grant: &timebox.Grant{Server: server, Principal: m.Name}})
	if err != nil {
		return
	}
	extra = slices.DeleteFunc(extra, func(role string) bool { return slices.Contains(keep, role) })
	if len(extra) == 0 {
		return
	}
	var res timebox.RevokeResult
	err = s.onServer(ctx, server, func(ctx context.Context, e timebox.Engine) (err error) {
		res, err = e.Revoke(ctx, timebox.GrantPlan{Method: timebox.MethodRoleMembership, Principal: m.Name,
			Database: m.Database, Roles: extra, KeepDatabases: []string{m.Database}})
		return err
	})
	if err != nil {
		s.Logger.Warn("reconciler: cannot revoke roles granted by hand", "server", server, "login", m.Name, "err", timebox.ErrorMessage(err))
		return
	}
	s.drifted(ctx, server, "membership_revoked", &timebox.Event{Details: map[string]any{
		"principal": m.Name, "server": server, "found": "roles granted by hand that no live grant needs: " + strings.Join(extra, ", "),
		"outcome": res.Detail, "sessions_ended": res.SessionsEnded,
	}})
}
