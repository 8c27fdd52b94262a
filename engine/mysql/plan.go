package mysql

import (
	"slices"

	"github.com/timebox-dev/timebox"
)

// PlanStatements returns the statements Grant runs to create p's principal from nothing, and
// those Revoke runs to remove it while it holds no session, in order, built by the same
// functions as the statements that run: what approvers read is what the server gets. The
// password and its hash never appear: the IDENTIFIED clause reads '<password>'. The loop
// that kills the account's sessions is one comment line (killComment), and the lookups
// (SELECTs) are left out, as is the engine's one-time CREATE ROLE IF NOT EXISTS of the
// bookkeeping role. The backstop event is shown as placed where the event scheduler runs
// (elsewhere Grant leaves it out), and a MariaDB default role as the admin's SET DEFAULT
// ROLE … FOR (where the admin may not, the ephemeral login sets it itself). Statements
// follow the server's flavor once the engine has talked to it, MariaDB's before. It makes no
// connection. p.Password may be empty (a plan shown before its password exists). It returns
// EINVALID for a plan that Grant refuses without looking at the server.
func (e *Engine) PlanStatements(p timebox.GrantPlan) (grant, revoke []string, err error) {
	checked := p
	if checked.Password == "" {
		checked.Password = "planned" // any valid password: the statements show none
	}
	privs, tables, err := e.validateGrant(checked)
	if err != nil {
		return nil, nil, err
	}
	f := e.planFlavor()
	switch p.Method {
	case timebox.MethodUnlockLogin:
		grant, revoke = e.planUnlock(f, p)
	case timebox.MethodRoleMembership:
		return e.planMembership(f, p, privs)
	default:
		grant, revoke = e.planEphemeral(f, p, privs, tables)
	}
	return grant, revoke, nil
}

// planFlavor returns the server's flavor when the engine knows it, else MariaDB's.
func (e *Engine) planFlavor() *flavor {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.flavor != nil {
		return e.flavor
	}
	return &flavor{mariadb: true}
}

// planEphemeral returns the statements of grantEphemeral for a new account, and of Revoke.
func (e *Engine) planEphemeral(f *flavor, p timebox.GrantPlan, privs []string, tables []timebox.TableGrant) (grant, revoke []string) {
	who, identified := account(p.Principal, e.AccountHost), f.identifiedWith(passwordPlaceholder)
	grant = e.ephemeralSQL(identified, p, privs, tables, nil, nil)
	grant = append(grant, e.openSQL(f, p, identified, true)...)
	if want, change := defaultRoles(f, p.Roles, nil); change && !backstopPassed(p.ValidUntil) {
		grant = append(grant, defaultRoleSQL(f, who, want))
	}
	return grant, []string{lockSQL(who), killComment, dropUserSQL(who), e.dropEventSQL(p.Principal)}
}

// planUnlock returns the statements of grantUnlock and revokeUnlock.
func (e *Engine) planUnlock(f *flavor, p timebox.GrantPlan) (grant, revoke []string) {
	who, identified := account(p.Principal, e.AccountHost), f.identifiedWith(passwordPlaceholder)
	grant = e.openSQL(f, p, identified, false)
	return grant, []string{passwordLockSQL(who, identified, true), killComment, e.dropEventSQL(p.Principal)}
}

// planMembership returns the statements of grantMembership for an account without default
// roles, and of revokeMembership once that grant is in place.
func (e *Engine) planMembership(f *flavor, p timebox.GrantPlan, privs []string) (grant, revoke []string, err error) {
	who := account(p.Principal, e.AccountHost)
	grant = grantSQL(who, p, privs)
	defaults := membershipDefaults(f, p.Roles, nil)
	if len(defaults) > 0 {
		grant = append(grant, defaultRoleSQL(f, who, defaults))
	}
	keep, err := normalizePrivileges(p.KeepPrivileges)
	if err != nil {
		return nil, nil, timebox.Errorf(timebox.EINVALID, "server %s: privileges to keep: %v", e.name, err)
	}
	revoke, revoked := membershipRevokeSQL(who, p, privs, keep, p.Roles, privs)
	if len(revoke) == 0 {
		return grant, nil, nil
	}
	if left := slices.DeleteFunc(slices.Clone(defaults), func(r string) bool { return slices.Contains(revoked, r) }); len(left) < len(defaults) {
		revoke = append(revoke, defaultRoleSQL(f, who, left))
	}
	return grant, append(revoke, killComment), nil
}
