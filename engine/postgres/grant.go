package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

// roleComment marks the roles this engine created, so that it never alters or drops a role
// that happens to have a principal's name but belongs to someone else.
const roleComment = "timebox ephemeral login"

// validUntilLayout formats VALID UNTIL: RFC 3339 in UTC with microseconds, the precision of
// PostgreSQL's timestamptz.
const validUntilLayout = "2006-01-02T15:04:05.000000Z07:00"

// validatePlan checks the names and, when withSecret, the password and expiry of p.
func (e *Engine) validatePlan(p timebox.GrantPlan, withSecret bool) error {
	check := func(what, s string) error {
		if err := ValidIdent(s); err != nil {
			return timebox.Errorf(timebox.EINVALID, "server %s: %s %q: %v", e.name, what, s, err)
		}
		return nil
	}
	if err := check("principal", p.Principal); err != nil {
		return err
	}
	if err := check("database", p.Database); err != nil {
		return err
	}
	for _, r := range p.Roles {
		if err := check("role", r); err != nil {
			return err
		}
		if r == p.Principal {
			return timebox.Errorf(timebox.EINVALID, "server %s: principal %q cannot be one of its own roles", e.name, r)
		}
	}
	if !withSecret {
		return nil
	}
	if err := validPassword(p.Password); err != nil {
		return timebox.Errorf(timebox.EINVALID, "server %s: principal %q: %v", e.name, p.Principal, err)
	}
	return e.validEnd(p)
}

// validEnd checks that p's expiry is set and fits a PostgreSQL timestamptz.
func (e *Engine) validEnd(p timebox.GrantPlan) error {
	if y := p.ValidUntil.UTC().Year(); p.ValidUntil.IsZero() || y < 1 || y > 9999 {
		return timebox.Errorf(timebox.EINVALID, "server %s: principal %q: missing or out-of-range valid-until time", e.name, p.Principal)
	}
	return nil
}

// validUntilLiteral returns t, truncated to the microsecond (never later than t), as an SQL
// literal.
func validUntilLiteral(t time.Time) string {
	return QuoteLiteral(t.UTC().Truncate(time.Microsecond).Format(validUntilLayout))
}

// roleInfo is what the engine needs to know about an existing role.
type roleInfo struct {
	oid    uint32
	ours   bool     // carries roleComment
	member []string // the roles it is a member of, the bookkeeping role left out
}

// querier is a pool, a connection or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// lookupRole returns the role called name, or nil when it does not exist. Its memberships
// leave out the bookkeeping role and the connect role of database db (the plan's).
func (e *Engine) lookupRole(ctx context.Context, q querier, name, db string) (*roleInfo, error) {
	var r roleInfo
	var comment string
	err := q.QueryRow(ctx, `
		SELECT r.oid, coalesce(shobj_description(r.oid, 'pg_authid'), ''),
		       coalesce(array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
		                      WHERE m.member = r.oid AND g.rolname <> $2 AND g.rolname <> $3 ORDER BY 1), '{}')
		FROM pg_roles r WHERE r.rolname = $1`, name, e.ManagedRole, e.connectRole(db)).Scan(&r.oid, &comment, &r.member)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	r.ours = comment == roleComment
	return &r, nil
}

// Grant makes p's principal exist with exactly p's password, expiry, CONNECT on p's database,
// memberships in p's roles and, for an ad-hoc request, privileges on p's tables, in one
// transaction. It creates the role when it is missing and otherwise brings it back in line, so
// running it again after a crash converges. The password travels as a SCRAM-SHA-256 verifier,
// never in clear. It returns EINVALID for a bad plan, a principal name taken by a role Timebox
// did not create, a missing table or column or a table the admin cannot hand out, EUNAVAILABLE
// when the server cannot be reached, and EINTERNAL for an SQL error.
func (e *Engine) Grant(ctx context.Context, p timebox.GrantPlan) error {
	if err := e.validatePlan(p, p.Method != timebox.MethodRoleMembership); err != nil {
		return err
	}
	tables, err := e.planTables(p)
	if err != nil {
		return err
	}
	switch p.Method {
	case timebox.MethodUnlockLogin:
		return e.grantUnlock(ctx, p)
	case timebox.MethodRoleMembership:
		return e.grantMembership(ctx, p)
	}
	return e.grantEphemeral(ctx, p, tables)
}

// grantEphemeral creates or updates the ephemeral login of p. Without tables it works in the
// admin's database; with tables the whole transaction runs in the target database (roles are
// cluster-wide, table privileges are not), so that a table that cannot be granted leaves no
// login behind. Table privileges left from an earlier plan are revoked in either case.
func (e *Engine) grantEphemeral(ctx context.Context, p timebox.GrantPlan, tables []timebox.TableGrant) error {
	v, err := newVerifier(p.Password)
	if err != nil {
		return timebox.WrapError(timebox.EINTERNAL, err, "server %s: compute password verifier", e.name)
	}
	secrets := []string{p.Password, v.String(), v.salt, v.storedKey, v.serverKey}
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return err
	}
	if err := e.ensureRoles(ctx, pool, p.Database); err != nil {
		return e.wrap(err, secrets)
	}
	if len(tables) > 0 {
		if pool, err = e.pool(p.Database); err != nil {
			return err
		}
		defer e.lockDatabase(p.Database)() // table GRANTs race on pg_class rows like DROP OWNED
	}
	var stale bool
	err = retryConcurrent(ctx, func() error {
		ctx, cancel := e.callContext(ctx)
		defer cancel()
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
			stale, err = e.grantTx(ctx, tx, p, QuoteLiteral(v.String()), tables)
			return err
		})
	})
	if err == nil && stale {
		err = e.clearTables(ctx, p)
	}
	return e.wrap(err, secrets)
}

// grantTx creates or updates p's login in tx with the password literal and, when tables are
// planned, converges its table privileges (tx is then in p's database). Without tables it
// reports whether the login holds table privileges in p's database from an earlier plan.
func (e *Engine) grantTx(ctx context.Context, tx pgx.Tx, p timebox.GrantPlan, password string, tables []timebox.TableGrant) (stale bool, err error) {
	role, err := e.lookupRole(ctx, tx, p.Principal, p.Database)
	if err != nil {
		return false, err
	}
	if role != nil && !role.ours {
		return false, timebox.Errorf(timebox.EINVALID, "server %s: role %q exists and was not created by timebox", e.name, p.Principal)
	}
	stmts := grantStatements(p, password, role, e.ManagedRole, e.connectRole(p.Database))
	if _, err := tx.Exec(ctx, strings.Join(stmts, ";\n")); err != nil {
		return false, err
	}
	if len(tables) > 0 {
		return false, e.convergeTables(ctx, tx, p, tables, role == nil)
	}
	if role == nil {
		return false, nil
	}
	return holdsTablePrivileges(ctx, tx, role.oid, p.Database)
}

// grantStatements returns the statements that create or update the principal. password is
// the SQL literal after PASSWORD (the verifier, or a placeholder in PlanStatements); role is
// nil when the principal does not exist yet; managed is the bookkeeping role and connect the
// role that holds CONNECT on p's database.
func grantStatements(p timebox.GrantPlan, password string, role *roleInfo, managed, connect string) []string {
	who := QuoteIdent(p.Principal)
	auth := " LOGIN PASSWORD " + password + " VALID UNTIL " + validUntilLiteral(p.ValidUntil)
	var stmts []string
	if role == nil {
		stmts = append(stmts,
			"CREATE ROLE "+who+" WITH"+auth,
			"COMMENT ON ROLE "+who+" IS "+QuoteLiteral(roleComment))
	} else {
		stmts = append(stmts, "ALTER ROLE "+who+" WITH"+auth)
	}
	// Membership in the bookkeeping role is the second half of Timebox's mark (see Managed).
	// The admin does not become a member of the principal here but only just before removal:
	// PostgreSQL recomputes a role's memberships after every role change, in time quadratic
	// in their number, so an admin holding thousands of live logins slows every statement.
	stmts = append(stmts,
		"GRANT "+QuoteIdent(managed)+" TO "+who,
		"GRANT "+QuoteIdent(connect)+" TO "+who)
	for _, r := range p.Roles {
		stmts = append(stmts, "GRANT "+QuoteIdent(r)+" TO "+who)
	}
	if role != nil {
		for _, r := range role.member {
			if !slices.Contains(p.Roles, r) {
				stmts = append(stmts, "REVOKE "+QuoteIdent(r)+" FROM "+who)
			}
		}
	}
	return stmts
}
