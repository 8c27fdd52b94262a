package postgres

import (
	"strconv"

	"github.com/timebox-dev/timebox"
)

// passwordPlaceholder stands for the password in the statements PlanStatements shows.
const passwordPlaceholder = "'<password>'"

// PlanStatements returns, without connecting, the statements Grant runs to create p's
// principal when it does not exist yet and those Revoke runs to remove it when it has no
// session and owns nothing, in order. They come from the builders Grant and Revoke use, so
// what is shown is what runs; the password is replaced by '<password>'. A statement that runs
// only in some cases ends with an SQL comment saying when ("-- only if …"), as does one that
// runs in the target database rather than the admin's. The one-time creation of the
// bookkeeping and connect roles (see ensureRoles) is left out. It returns EINVALID for a plan
// Grant would refuse (the password is not checked).
func (e *Engine) PlanStatements(p timebox.GrantPlan) (grant, revoke []string, err error) {
	if err := e.validatePlan(p, false); err != nil {
		return nil, nil, err
	}
	if err := e.checkGrantable(p); err != nil {
		return nil, nil, err
	}
	tables, err := e.planTables(p)
	if err != nil {
		return nil, nil, err
	}
	if p.Method != timebox.MethodRoleMembership {
		if err := e.validEnd(p); err != nil {
			return nil, nil, err
		}
	}
	switch p.Method {
	case timebox.MethodUnlockLogin:
		grant, revoke = planUnlock(p)
	case timebox.MethodRoleMembership:
		grant, revoke = planMembership(p)
	default:
		grant, revoke = e.planEphemeral(p, tables)
	}
	return grant, revoke, nil
}

// planEphemeral returns the statements of an ephemeral login: its creation and, with
// tables, their grants in the target database (in the same transaction); its removal.
func (e *Engine) planEphemeral(p timebox.GrantPlan, tables []timebox.TableGrant) (grant, revoke []string) {
	who := QuoteIdent(p.Principal)
	grant = grantStatements(p, passwordPlaceholder, nil, e.ManagedRole, e.connectRole(p.Database))
	usage := map[string]bool{}
	for _, t := range tables {
		if !usage[t.Schema] {
			usage[t.Schema] = true
			grant = append(grant, usageSQL(who, t.Schema)+" -- only if the login lacks USAGE on the schema (PUBLIC has it on public by default)")
		}
	}
	for _, t := range tables {
		grant = append(grant, tableGrantSQL(who, t))
	}
	revoke = append(disableSQL(p.Principal), signalByOID+" -- $1: the role's oid; repeated until no session is left")
	where := " -- in database " + commentName(p.Database) + ", only if the login owns objects or holds privileges there"
	if len(tables) > 0 {
		where = " -- in database " + commentName(p.Database) + ", where it holds the table privileges"
	}
	owned := ownedSQL(p.Principal, e.ownerOf(p.Database))
	revoke = append(revoke, owned[0]+" -- in database "+commentName(p.Database)+", only if the login owns objects there (never to the admin)",
		owned[1]+where)
	return grant, append(revoke, dropRoleSQL(p.Principal),
		signalByOID+" -- again, for a session that began just before NOLOGIN")
}

// planUnlock returns the statements that open and lock a shared login.
func planUnlock(p timebox.GrantPlan) (grant, revoke []string) {
	return []string{unlockSQL(p, passwordPlaceholder)},
		[]string{lockSQL(p.Principal), signalByName + " -- $1: " + commentName(p.Principal) + "; repeated until no session is left"}
}

// planMembership returns the statements that grant roles to a person's login and revoke
// them. Roles and databases other live grants of the login still need are not revoked.
func planMembership(p timebox.GrantPlan) (grant, revoke []string) {
	revoke, _ = membershipRevokeSQL(p)
	if len(revoke) > 0 {
		revoke = append(revoke, signalByName+" -- $1: "+commentName(p.Principal)+"; repeated until no session is left")
	}
	return membershipGrantSQL(p), revoke
}

// commentName returns name for an SQL comment: double-quoted with Go's escapes, so that no
// newline in a name can end the comment and turn the rest into a statement.
func commentName(name string) string { return strconv.Quote(name) }
