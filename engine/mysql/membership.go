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
	who := account(p.Principal, e.AccountHost)
	var stmts []string
	if len(privs) > 0 {
		stmts = append(stmts, "GRANT "+strings.Join(privs, ", ")+" ON "+onDB(p.Database)+" TO "+who)
	}
	for _, r := range p.Roles {
		stmts = append(stmts, "GRANT "+QuoteString(r)+" TO "+who)
	}
	if err := e.run(ctx, db, stmts); err != nil {
		return e.wrap(err, nil)
	}
	defaults := a.defaults
	switch {
	case f.mariadb && len(defaults) == 0 && len(p.Roles) > 0:
		defaults = p.Roles[:1]
	case !f.mariadb:
		for _, r := range p.Roles {
			if !slices.Contains(defaults, r) {
				defaults = append(slices.Clone(defaults), r)
			}
		}
	}
	if len(defaults) == len(a.defaults) {
		return nil
	}
	person := p
	person.Password = "" // never log in as a person
	return e.wrap(e.setDefaultRoles(ctx, db, f, person, defaults), nil)
}

// revokeMembership revokes from the account p's roles and p's privileges on p's database,
// except the roles in p.Keep and the privileges in p.KeepPrivileges (still needed by the
// account's other live grants), then kills the account's sessions: one may hold a revoked
// role through SET ROLE. A default role that was revoked is unset. The account stays.
func (e *Engine) revokeMembership(ctx context.Context, p timebox.GrantPlan, privs []string) (timebox.RevokeResult, error) {
	var res timebox.RevokeResult
	db, f, err := e.admin(ctx)
	if err != nil {
		return res, err
	}
	a, err := e.lookupAccount(ctx, db, f, p.Principal, e.AccountHost)
	if err != nil || a == nil {
		res.Absent = err == nil
		return res, e.wrap(err, nil)
	}
	who := account(p.Principal, e.AccountHost)
	var stmts, revoked []string
	for _, r := range p.Roles {
		if !slices.Contains(p.Keep, r) && slices.Contains(a.roles, r) {
			stmts, revoked = append(stmts, "REVOKE "+QuoteString(r)+" FROM "+who), append(revoked, r)
		}
	}
	if p.Database != "" {
		// What the account's other live grants on this database still need stays; the rest of
		// this plan's privileges goes, even when another grant keeps the database.
		keep, err := normalizePrivileges(p.KeepPrivileges)
		if err != nil {
			return res, timebox.Errorf(timebox.EINVALID, "server %s: privileges to keep: %v", e.name, err)
		}
		held := slices.DeleteFunc(dbRevoke(privs, a.dbs[dbPattern(p.Database)]), func(h string) bool {
			return slices.Contains(keep, h) || slices.Contains(keep, allPrivileges)
		})
		if len(held) > 0 {
			stmts = append(stmts, "REVOKE "+strings.Join(held, ", ")+" ON "+onDB(p.Database)+" FROM "+who)
			revoked = append(revoked, strings.Join(held, ", ")+" on "+QuoteIdent(p.Database))
		}
	}
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

// dbRevoke returns which of the privileges held on a database to revoke for a plan of privs:
// those the plan granted (every one but GRANT OPTION for ALL PRIVILEGES).
func dbRevoke(privs, held []string) []string {
	var out []string
	for _, h := range held {
		if slices.Contains(privs, h) || (h != "GRANT OPTION" && slices.Contains(privs, allPrivileges)) {
			out = append(out, h)
		}
	}
	return out
}
