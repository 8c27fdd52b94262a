package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/timebox-dev/timebox"
)

// maxTerminateRounds bounds the loop that ends a principal's sessions.
const maxTerminateRounds = 10

// terminateWait is how long to wait for signalled backends to exit before signalling again.
const terminateWait = 5 * time.Second

// Revoke removes p's principal in an order that leaves no access behind at any step:
// it disables the login, ends every session of the role (waiting until each backend is gone),
// hands what the role owns to the database's owner role or the quarantine role (never the
// admin; RevokeResult.Handed lists it) and drops its privileges in every database where it
// has any, revokes CONNECT and memberships, and drops the role. When the drop is blocked
// (for example by objects in a database the admin cannot reach), the role is kept with NOLOGIN,
// no password and no memberships, and the result says why; that is not an error. Revoking a
// role that does not exist ends any session under its name and reports it dropped.
// It returns EINVALID for a bad plan or a role Timebox did not create, EUNAVAILABLE when the
// server cannot be reached, and EINTERNAL for an SQL error.
func (e *Engine) Revoke(ctx context.Context, p timebox.GrantPlan) (timebox.RevokeResult, error) {
	var res timebox.RevokeResult
	if err := e.validatePlan(p, false); err != nil {
		return res, err
	}
	switch p.Method {
	case timebox.MethodUnlockLogin:
		return e.revokeUnlock(ctx, p)
	case timebox.MethodRoleMembership:
		return e.revokeMembership(ctx, p)
	}
	secrets := []string{p.Password}
	admin, err := e.pool(e.adminDB)
	if err != nil {
		return res, err
	}
	role, err := e.disable(ctx, admin, p.Principal)
	if err != nil {
		return res, e.wrap(err, secrets)
	}
	var oid uint32
	if role != nil {
		oid = role.oid
	}
	n, err := e.terminate(ctx, admin, p.Principal, oid)
	res.SessionsEnded += n
	if err != nil || role == nil {
		res.Dropped, res.Absent = err == nil, err == nil && res.SessionsEnded == 0
		return res, e.wrap(err, secrets)
	}
	t, err := e.dropOwned(ctx, admin, p, role)
	// What was handed over is committed even when a later step fails: the result says so
	// then too, so that the failure's event keeps the list (a retry finds nothing owned).
	res.HandedTo, res.Handed = strings.Join(t.handedTo, ", "), t.handed
	if err != nil {
		return res, e.wrap(err, secrets)
	}
	kept, err := e.drop(ctx, p, role, t)
	if err != nil {
		return res, e.wrap(err, secrets)
	}
	// A backend that passed the login check just before NOLOGIN committed may have become
	// visible only now; after the drop it has no user name any more, so look for its oid.
	n, err = e.terminate(ctx, admin, "", oid)
	res.SessionsEnded += n
	if err != nil {
		return res, e.wrap(err, secrets)
	}
	if kept != "" {
		res.Detail = "kept without login, password or memberships: " + strings.Join(append(t.blocked, kept), "; ")
		return res, nil
	}
	res.Dropped = true
	return res, nil
}

// disable looks the role up and sets NOLOGIN, so that no new session can start. It returns
// nil when the role does not exist.
func (e *Engine) disable(ctx context.Context, admin *pgxpool.Pool, name string) (*roleInfo, error) {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	role, err := e.lookupRole(ctx, admin, name)
	if err != nil || role == nil {
		return nil, err
	}
	if !role.ours {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: role %q was not created by timebox; not revoking it", e.name, name)
	}
	// The admin joins the role only now, to be allowed to REASSIGN and DROP OWNED (see
	// grantStatements); DROP ROLE ends the membership. On PostgreSQL 16, where the creator holds the
	// role with ADMIN OPTION but without inheritance, this adds the inheritance.
	if _, err := admin.Exec(ctx, strings.Join(disableSQL(name), ";\n")); err != nil {
		if sqlState(err) == "42704" { // undefined_object: dropped meanwhile
			return nil, nil
		}
		return nil, err
	}
	return role, nil
}

// disableSQL returns the statements that disable the role called name and make the admin a
// member of it.
func disableSQL(name string) []string {
	who := QuoteIdent(name)
	return []string{"ALTER ROLE " + who + " NOLOGIN", "GRANT " + who + " TO CURRENT_USER"}
}

// The queries that end a role's sessions, by oid or by name ($1). The function is in the
// select list, so it runs only for the rows the WHERE kept. With the oid known, the view's
// join with pg_authid (a scan of every role when the planner hashes it) is left out:
// PostgreSQL removes a LEFT JOIN whose columns are not used.
const (
	signalByOID  = `SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE usesysid = $1 AND pid <> pg_backend_pid()`
	signalByName = `SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()`
)

// terminate ends every session of the role called name or with the given oid and waits until
// each backend is gone, repeating until none is left. It returns how many sessions it ended.
//
// It signals all the backends first and then polls pg_stat_activity, rather than calling
// pg_terminate_backend(pid, timeout) for each: that form checks every 100 ms, so it costs at
// least 100 ms per session, one after the other.
func (e *Engine) terminate(ctx context.Context, admin *pgxpool.Pool, name string, oid uint32) (int, error) {
	ended := map[int32]bool{}
	for range maxTerminateRounds {
		pids, err := e.signal(ctx, admin, name, oid)
		if err != nil || len(pids) == 0 {
			return len(ended), err
		}
		for _, pid := range pids {
			ended[pid] = true
		}
		if err := e.waitGone(ctx, admin, pids); err != nil {
			return len(ended), err
		}
	}
	return len(ended), timebox.Errorf(timebox.EINTERNAL, "server %s: sessions of %q still running after %d attempts to end them",
		e.name, name, maxTerminateRounds)
}

// signal sends SIGTERM to every backend of the role and returns their pids.
func (e *Engine) signal(ctx context.Context, admin *pgxpool.Pool, name string, oid uint32) ([]int32, error) {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	query, args := signalByOID, []any{oid}
	if oid == 0 {
		query, args = signalByName, []any{name}
	}
	rows, err := admin.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var pids []int32
	for rows.Next() {
		var pid int32
		var ok bool
		if err := rows.Scan(&pid, &ok); err != nil {
			rows.Close()
			return nil, err
		}
		pids = append(pids, pid)
	}
	return pids, rows.Err()
}

// waitGone polls until none of pids is a live backend, for at most terminateWait. It returns
// nil also when some are still there: the caller signals them again.
func (e *Engine) waitGone(ctx context.Context, admin *pgxpool.Pool, pids []int32) error {
	deadline := time.Now().Add(terminateWait)
	for delay := time.Millisecond; ; delay = min(2*delay, 8*time.Millisecond) {
		var left int
		err := func() error {
			ctx, cancel := e.callContext(ctx)
			defer cancel()
			return admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&left)
		}()
		if err != nil || left == 0 || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// ownedResult is what dropOwned found.
type ownedResult struct {
	cleaned  bool     // REASSIGN and DROP OWNED ran in the target database
	blocked  []string // why they failed in some databases
	handedTo []string // the roles that received objects, once each
	handed   []timebox.OwnedObject
}

// dropOwned hands what the role owns to the owner or quarantine role and runs DROP OWNED in
// every database where the role owns objects or holds privileges (found through the indexed
// pg_shdepend, whatever the size of the schemas; usually none: a login that created nothing
// needs no visit to its database). Databases where that fails for a lasting reason are
// returned as blocked; the drop will then be refused and the role kept disabled. An owner
// role that fails its checks is an EINVALID error: the removal is retried once it is fixed.
func (e *Engine) dropOwned(ctx context.Context, admin *pgxpool.Pool, p timebox.GrantPlan, role *roleInfo) (ownedResult, error) {
	var r ownedResult
	dbs, err := e.roleDatabases(ctx, admin, role.oid)
	if err != nil {
		return r, err
	}
	var memberOf []string
	for _, m := range role.member {
		if !strings.HasPrefix(m, e.connectPrefix()) {
			memberOf = append(memberOf, m)
		}
	}
	for _, db := range dbs {
		owner, objs, err := e.handoverIn(ctx, db, p.Principal, role.oid, memberOf)
		switch {
		case err == nil:
			r.cleaned = r.cleaned || db == p.Database
			if owner != "" && !slices.Contains(r.handedTo, owner) {
				r.handedTo = append(r.handedTo, owner)
			}
			r.handed = append(r.handed, objs...)
		case sqlState(err) == "3D000": // invalid_catalog_name: database dropped meanwhile
		case transient(err):
			return r, err
		default:
			r.blocked = append(r.blocked, fmt.Sprintf("database %q: %s", db, e.reason(err)))
		}
	}
	return r, nil
}

// handoverIn runs handover in a transaction in database db, serialised with the engine's
// other changes to that database's access list and, when the login owns objects, with the
// engine's other handovers (which grant and revoke memberships of the same owner role) until
// the commit. A quarantine role created meanwhile by another process is retried once.
func (e *Engine) handoverIn(ctx context.Context, db, name string, oid uint32, memberOf []string) (owner string, objs []timebox.OwnedObject, err error) {
	pool, err := e.pool(db)
	if err != nil {
		return "", nil, err
	}
	defer e.lockDatabase(db)()
	for attempt := 0; ; attempt++ {
		err = retryConcurrent(ctx, func() error {
			ctx, cancel := e.callContext(ctx)
			defer cancel()
			unlock := func() {}
			defer func() { unlock() }() // after the commit
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
				owner, objs, err = e.handover(ctx, tx, db, name, oid, memberOf, func() {
					unlock = e.lockDatabase("") // no database has an empty name: the handover lock
				})
				return err
			})
		})
		if code := sqlState(err); attempt > 0 || code != "42710" && code != "23505" {
			return owner, objs, err
		}
	}
}

// ownedSQL returns the statements that give what the role called name owns in the current
// database to owner and revoke its privileges there, as PlanStatements shows them.
func ownedSQL(name, owner string) []string {
	who := QuoteIdent(name)
	return []string{"REASSIGN OWNED BY " + who + " TO " + QuoteIdent(owner), "DROP OWNED BY " + who}
}

// roleDatabases lists the databases where the role with oid has dependencies.
func (e *Engine) roleDatabases(ctx context.Context, admin *pgxpool.Pool, oid uint32) ([]string, error) {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	rows, err := admin.Query(ctx, `
		SELECT d.datname FROM pg_database d
		WHERE d.oid IN (SELECT s.dbid FROM pg_shdepend s
			WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1)
		ORDER BY d.datname`, oid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// execIn runs sql (one or several statements, in one implicit transaction) in database db.
// When the statements rewrite a database's access list, aclOf names that database: the engine
// then serialises them with its other changes to that list.
func (e *Engine) execIn(ctx context.Context, db, aclOf, sql string) error {
	pool, err := e.pool(db)
	if err != nil {
		return err
	}
	if aclOf != "" {
		defer e.lockDatabase(aclOf)()
	}
	return retryConcurrent(ctx, func() error {
		ctx, cancel := e.callContext(ctx)
		defer cancel()
		_, err := pool.Exec(ctx, sql)
		return err
	})
}

// drop drops the role. When something still depends on it, it revokes what it can —
// CONNECT on the target database (granted directly by earlier versions) and every membership
// but the bookkeeping one, which keeps the role recognisable — and tries again; when the drop
// is still refused it removes the role's password and returns why it was kept. It works in
// the target database when it cleaned it, so that PostgreSQL names the objects of that
// database that block the drop.
func (e *Engine) drop(ctx context.Context, p timebox.GrantPlan, role *roleInfo, t ownedResult) (kept string, err error) {
	db := e.adminDB
	if t.cleaned {
		db = p.Database
	}
	who := QuoteIdent(p.Principal)
	dropRole := func() (blocked bool, err error) {
		err = e.execIn(ctx, db, "", dropRoleSQL(p.Principal))
		switch code := sqlState(err); {
		case code == "2BP01", code == "42501": // dependent_objects_still_exist, insufficient_privilege
			return true, err
		}
		return false, err
	}
	blocked, err := dropRole()
	if !blocked {
		return "", err
	}
	err = e.execIn(ctx, e.adminDB, p.Database, "REVOKE CONNECT ON DATABASE "+QuoteIdent(p.Database)+" FROM "+who)
	if err != nil && sqlState(err) != "3D000" {
		return "", err
	}
	if len(role.member) > 0 {
		var stmts []string
		for _, r := range role.member {
			stmts = append(stmts, "REVOKE "+QuoteIdent(r)+" FROM "+who)
		}
		if err := e.execIn(ctx, e.adminDB, "", strings.Join(stmts, ";\n")); err != nil {
			return "", err
		}
	}
	if blocked, err = dropRole(); !blocked {
		return "", err
	}
	why := e.reason(err)
	if err := e.execIn(ctx, db, "", "ALTER ROLE "+who+" NOLOGIN PASSWORD NULL"); err != nil {
		return "", err
	}
	return why, nil
}

// dropRoleSQL returns the statement that drops the role called name.
func dropRoleSQL(name string) string { return "DROP ROLE IF EXISTS " + QuoteIdent(name) }

// reason describes an SQL error for a RevokeResult's Detail, including the server's detail
// lines (which list what blocks a DROP ROLE).
func (e *Engine) reason(err error) string {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return timebox.ErrorMessage(e.wrap(err, nil))
	}
	s := pgErr.Message
	if pgErr.Detail != "" {
		s += " (" + strings.ReplaceAll(strings.TrimSpace(pgErr.Detail), "\n", ", ") + ")"
	}
	return s
}

// transient reports whether err is worth retrying rather than recording as a blocker: the
// server is unreachable, or a lock or statement timeout, deadlock or serialization failure.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return true
	}
	switch pgErr.Code {
	case "55P03", "57014", "40P01", "40001":
		return true
	}
	return unavailableCode(pgErr.Code)
}
