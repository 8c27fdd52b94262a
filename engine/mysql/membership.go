package mysql

import (
	"context"
	"slices"
	"strings"

	"github.com/timebox-dev/timebox"
)

// needPerson explains, in errors, what method role_membership needs.
const needPerson = "role_membership grants roles to the person's own login"

// grantMembership grants p's privileges on p's database and p's roles to the person's own
// account p.Principal@AccountHost, which must exist and must not be one of Timebox's
// ephemeral logins. The account keeps its password. On MySQL p's roles are added to its
// default roles. On MariaDB the first of p's roles becomes its default role when it has none
// yet and the admin may set it (see setDefaultRoles); otherwise the person enables the role
// with SET ROLE.
func (e *Engine) grantMembership(ctx context.Context, p timebox.GrantPlan, privs []string) error {
	db, f, err := e.admin(ctx)
	if err != nil {
		return err
	}
	a, err := e.checkOwnAccount(ctx, db, f, p.Principal, needPerson)
	if err != nil {
		return e.wrap(err, nil)
	}
	if err := e.run(ctx, db, grantSQL(account(p.Principal, e.AccountHost), p, privs)); err != nil {
		return e.wrap(err, nil)
	}
	defaults := membershipDefaults(f, p.Roles, a.defaults)
	if len(defaults) == len(a.defaults) {
		return nil
	}
	person := p
	person.Password = "" // never log in as a person
	return e.wrap(e.setDefaultRoles(ctx, db, f, person, defaults), nil)
}

// membershipDefaults returns the default roles of a person's account whose default roles are
// current once it was granted roles: on MySQL current and roles; on MariaDB, which knows one
// default role, current, or the first of roles when current is empty.
func membershipDefaults(f *flavor, roles, current []string) []string {
	defaults := current
	switch {
	case f.mariadb && len(defaults) == 0 && len(roles) > 0:
		defaults = roles[:1]
	case !f.mariadb:
		for _, r := range roles {
			if !slices.Contains(defaults, r) {
				defaults = append(slices.Clone(defaults), r)
			}
		}
	}
	return defaults
}

// revokeMembership revokes from the account p's roles and p's privileges on p's database,
// except the roles in p.Keep and the privileges in p.KeepPrivileges (still needed by the
// account's other live grants), then kills the account's sessions: one may hold a revoked
// role through SET ROLE. A default role that was revoked is unset. The account stays. An
// account that no longer exists has only its sessions killed (see revokeAbsent).
func (e *Engine) revokeMembership(ctx context.Context, p timebox.GrantPlan, privs []string) (timebox.RevokeResult, error) {
	var res timebox.RevokeResult
	db, f, err := e.admin(ctx)
	if err != nil {
		return res, err
	}
	a, err := e.lookupAccount(ctx, db, f, p.Principal)
	switch {
	case err != nil:
		return res, e.wrap(err, nil)
	case a == nil:
		res, err = e.revokeAbsent(ctx, db, p.Principal)
		return res, e.wrap(err, nil)
	}
	keep, err := normalizePrivileges(p.KeepPrivileges)
	if err != nil {
		return res, timebox.Errorf(timebox.EINVALID, "server %s: privileges to keep: %v", e.name, err)
	}
	stmts, revoked := membershipRevokeSQL(account(p.Principal, e.AccountHost), p, privs, keep, a.roles, a.dbs[dbPattern(p.Database)])
	if len(stmts) == 0 {
		res.Detail = "nothing revoked: the login holds none of it, or other live grants of " + p.Principal + " still need it"
		return res, nil
	}
	if err := e.run(ctx, db, stmts); err != nil {
		return res, e.wrap(err, nil)
	}
	// A revoked default role left in place is harmless (MariaDB skips it at login), but it
	// would come back with a later grant of the role: unset it where the admin may.
	person := p
	person.Password = ""
	if defaults := slices.DeleteFunc(slices.Clone(a.defaults), func(r string) bool { return slices.Contains(revoked, r) }); len(defaults) < len(a.defaults) {
		if err := e.setDefaultRoles(ctx, db, f, person, defaults); err != nil {
			return res, e.wrap(err, nil)
		}
	}
	if res.SessionsEnded, err = e.killSessions(ctx, db, p.Principal); err != nil {
		return res, e.wrap(err, nil)
	}
	res.Detail = "revoked " + strings.Join(revoked, "; ")
	if len(p.Keep) > 0 || len(p.KeepPrivileges) > 0 {
		res.Detail += "; kept what other live grants of the login still need"
	}
	return res, nil
}

// membershipRevokeSQL returns the statements that revoke from account who p's roles and
// privs on p's database, but for those other live grants still need (p.Keep, and keep, the
// normalised p.KeepPrivileges), and only what the account holds (heldRoles, and heldPrivs on
// p's database); and, for Detail, what they revoke.
func membershipRevokeSQL(who string, p timebox.GrantPlan, privs, keep, heldRoles, heldPrivs []string) (stmts, revoked []string) {
	for _, r := range p.Roles {
		if !slices.Contains(p.Keep, r) && slices.Contains(heldRoles, r) {
			stmts, revoked = append(stmts, revokeRoleSQL(r, who)), append(revoked, r)
		}
	}
	if p.Database == "" {
		return stmts, revoked
	}
	// What the account's other live grants on this database still need stays; the rest of
	// this plan's privileges goes, even when another grant keeps the database.
	held := slices.DeleteFunc(slices.Clone(heldPrivs), func(h string) bool { return !covers(privs, h) || covers(keep, h) })
	if len(held) > 0 {
		stmts = append(stmts, revokeDBSQL(held, dbPattern(p.Database), who))
		revoked = append(revoked, strings.Join(held, ", ")+" on "+QuoteIdent(p.Database))
	}
	return stmts, revoked
}

// covers reports whether privs, normalised, grant the database privilege held: they name it,
// or they are ALL PRIVILEGES and it is not GRANT OPTION.
func covers(privs []string, held string) bool {
	return slices.Contains(privs, held) || (held != "GRANT OPTION" && slices.Contains(privs, allPrivileges))
}
