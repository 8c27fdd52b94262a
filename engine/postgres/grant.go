package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
	if err := timebox.CheckPassword(p.Password); err != nil {
		return timebox.Errorf(timebox.EINVALID, "server %s: principal %q: %v", e.name, p.Principal, err)
	}
	return e.validEnd(p)
}

// checkGrantable refuses, before anything is granted, a bookkeeping role PostgreSQL would
// truncate and roles that are Timebox's own: the admin (whose CONNECT WITH GRANT OPTION opens
// every managed database), the bookkeeping role and the connect roles (each opens its
// database). Revoke does not check this, so that it can remove whatever was granted.
func (e *Engine) checkGrantable(p timebox.GrantPlan) error {
	if err := ValidIdent(e.ManagedRole); err != nil {
		return timebox.Errorf(timebox.EINVALID, "server %s: bookkeeping role %q: %v", e.name, e.ManagedRole, err)
	}
	for _, r := range p.Roles {
		if r == e.config.ConnConfig.User || r == e.ManagedRole || r == e.QuarantineRole || strings.HasPrefix(r, e.connectPrefix()) {
			return timebox.Errorf(timebox.EINVALID, "server %s: role %q is Timebox's own (admin, bookkeeping, quarantine or connect role) and is never handed out", e.name, r)
		}
	}
	return nil
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
	oid      uint32
	ours     bool     // carries roleComment
	member   []string // the roles it is a member of, the bookkeeping role left out
	canLogin bool     // rolcanlogin
	expired  bool     // its VALID UNTIL has passed
}

// querier is a pool, a connection or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// lookupRole returns the role called name, or nil when it does not exist. Its memberships
// leave out the bookkeeping role.
func (e *Engine) lookupRole(ctx context.Context, q querier, name string) (*roleInfo, error) {
	var r roleInfo
	var comment string
	err := q.QueryRow(ctx, `
		SELECT r.oid, coalesce(shobj_description(r.oid, 'pg_authid'), ''),
		       coalesce(array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
		                      WHERE m.member = r.oid AND g.rolname <> $2 ORDER BY 1), '{}'),
		       r.rolcanlogin, coalesce(r.rolvaliduntil <= now(), false)
		FROM pg_roles r WHERE r.rolname = $1`, name, e.ManagedRole).Scan(&r.oid, &comment, &r.member, &r.canLogin, &r.expired)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	r.ours = comment == roleComment
	return &r, nil
}

// existingLogin looks up p's principal, an existing login that Grant, Revoke or Extend of
// p's method works on, and refuses it with an error of code missing when it does not exist,
// and with EINVALID when it is not of the kind p's method handles: an ephemeral login must
// carry Timebox's mark, the login of unlock_login or role_membership must not.
func (e *Engine) existingLogin(ctx context.Context, q querier, p timebox.GrantPlan, missing string) (*roleInfo, error) {
	role, err := e.lookupRole(ctx, q, p.Principal)
	ephemeral := p.Method != timebox.MethodUnlockLogin && p.Method != timebox.MethodRoleMembership
	switch {
	case err != nil:
		return nil, err
	case role == nil && ephemeral:
		return nil, timebox.Errorf(missing, "server %s: login %q does not exist", e.name, p.Principal)
	case role == nil:
		return nil, timebox.Errorf(missing, "server %s: login %q does not exist (method %s works on an existing login)", e.name, p.Principal, p.Method)
	case ephemeral && !role.ours:
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: role %q was not created by timebox", e.name, p.Principal)
	case !ephemeral && role.ours:
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: login %q is an ephemeral Timebox login, not one method %s works on", e.name, p.Principal, p.Method)
	}
	return role, nil
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
	if err := e.checkGrantable(p); err != nil {
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
// login behind. Table privileges left from an earlier plan, in any database, are revoked.
func (e *Engine) grantEphemeral(ctx context.Context, p timebox.GrantPlan, tables []timebox.TableGrant) error {
	v, err := newVerifier(p.Password)
	if err != nil {
		return timebox.WrapError(timebox.EINTERNAL, err, "server %s: compute password verifier", e.name)
	}
	secrets := v.secrets(p.Password)
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return err
	}
	if err := e.ensureRoles(ctx, pool, p.Database); err != nil {
		return e.wrap(err, secrets)
	}
	stale, err := e.grantLogin(ctx, pool, p, QuoteLiteral(v.String()), tables)
	if err != nil {
		return e.wrap(err, secrets)
	}
	for _, db := range stale {
		q := p
		q.Database = db
		if err := e.clearTables(ctx, q); err != nil {
			return e.wrap(err, secrets)
		}
	}
	return nil
}

// grantLogin runs grantTx in a transaction: in the admin's database (pool) without tables, in
// p's database with them, serialised with the engine's other changes to that database's
// access lists (table GRANTs race on pg_class rows like DROP OWNED). It returns the databases
// where the login holds table privileges it should not.
func (e *Engine) grantLogin(ctx context.Context, pool *pgxpool.Pool, p timebox.GrantPlan, password string, tables []timebox.TableGrant) (stale []string, err error) {
	if len(tables) > 0 {
		if pool, err = e.pool(p.Database); err != nil {
			return nil, err
		}
		defer e.lockDatabase(p.Database)()
	}
	err = retryConcurrent(ctx, func() error {
		ctx, cancel := e.callContext(ctx)
		defer cancel()
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
			stale, err = e.grantTx(ctx, tx, p, password, tables)
			return err
		})
	})
	return stale, err
}

// grantTx creates or updates p's login in tx with the password literal and, when tables are
// planned, converges its table privileges (tx is then in p's database). It returns the other
// databases where the login holds table privileges, from an earlier plan.
func (e *Engine) grantTx(ctx context.Context, tx pgx.Tx, p timebox.GrantPlan, password string, tables []timebox.TableGrant) (stale []string, err error) {
	role, err := e.lookupRole(ctx, tx, p.Principal)
	if err != nil {
		return nil, err
	}
	if role != nil && !role.ours {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: role %q exists and was not created by timebox", e.name, p.Principal)
	}
	stmts := grantStatements(p, password, role, e.ManagedRole, e.connectRole(p.Database))
	if _, err := tx.Exec(ctx, strings.Join(stmts, ";\n")); err != nil {
		return nil, err
	}
	if len(tables) > 0 {
		if err := e.convergeTables(ctx, tx, p, tables, role == nil); err != nil {
			return nil, err
		}
	}
	if role == nil {
		return nil, nil
	}
	converged := ""
	if len(tables) > 0 {
		converged = p.Database
	}
	return tableDatabases(ctx, tx, role.oid, converged)
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
			if r != connect && !slices.Contains(p.Roles, r) {
				stmts = append(stmts, "REVOKE "+QuoteIdent(r)+" FROM "+who)
			}
		}
	}
	return stmts
}
