package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

var _ timebox.Inventory = (*Engine)(nil)

// Managed lists the roles that carry Timebox's mark — the role comment written in the same
// transaction as CREATE ROLE, and membership in this installation's bookkeeping role
// (ManagedRole), so that two Timebox installations sharing a server never take each other's
// logins for orphans — and the shared logins named in shared, with their login flag, expiry,
// memberships (the bookkeeping and connect roles left out) and a database they may connect
// to, directly or through a connect role. One query, independent of the size of the schemas;
// the access lists of the databases are read once, not once per role.
func (e *Engine) Managed(ctx context.Context, shared []string) ([]timebox.ManagedPrincipal, error) {
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return nil, err
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	rows, err := pool.Query(ctx, `
		WITH bk AS (SELECT oid FROM pg_roles WHERE rolname = $3),
		connect AS (SELECT a.grantee, min(d.datname::text) AS datname
			FROM pg_database d, aclexplode(d.datacl) a
			WHERE a.privilege_type = 'CONNECT' GROUP BY a.grantee),
		marked AS (SELECT m.member AS oid FROM pg_auth_members m, bk WHERE m.roleid = bk.oid)
		SELECT r.rolname, r.rolcanlogin, s.objoid IS NULL,
			CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL
				WHEN r.rolvaliduntil = '-infinity' THEN 'epoch'::timestamptz ELSE r.rolvaliduntil END,
			ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
				WHERE m.member = r.oid AND g.rolname <> $3 AND left(g.rolname, length($4)) <> $4 ORDER BY g.rolname),
			(SELECT min(c.datname) FROM connect c WHERE c.grantee = r.oid
				OR c.grantee IN (SELECT m.roleid FROM pg_auth_members m WHERE m.member = r.oid))
		FROM pg_roles r
		LEFT JOIN pg_shdescription s ON s.objoid = r.oid AND s.classoid = 'pg_authid'::regclass AND s.description = $1
		WHERE (s.objoid IS NOT NULL AND r.oid IN (SELECT oid FROM marked)) OR r.rolname = ANY($2)
		ORDER BY r.rolname`, roleComment, shared, e.ManagedRole, e.connectPrefix())
	if err != nil {
		return nil, e.wrap(err, nil)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (timebox.ManagedPrincipal, error) {
		var m timebox.ManagedPrincipal
		var until *time.Time
		var db *string
		err := row.Scan(&m.Name, &m.CanLogin, &m.Shared, &until, &m.Roles, &db)
		if until != nil {
			m.ValidUntil = until.UTC()
		}
		m.Database = e.adminDB // an orphan without CONNECT anywhere is removed from there
		if db != nil {
			m.Database = *db
		}
		return m, err
	})
	return out, e.wrap(err, nil)
}

// PasswordWorks logs in as p's principal to p's database with p's password and reports
// whether the server accepted it (false for SQLSTATE 28P01, which is also what an expired
// VALID UNTIL gives: check only logins well inside their window). The session is closed at
// once; it shows in pg_stat_activity as application "timebox password check".
func (e *Engine) PasswordWorks(ctx context.Context, p timebox.GrantPlan) (bool, error) {
	if err := e.validatePlan(p, true); err != nil {
		return false, err
	}
	cfg := e.config.ConnConfig.Copy()
	cfg.User, cfg.Password, cfg.Database = p.Principal, p.Password, p.Database
	cfg.ConnectTimeout = e.ConnectTimeout
	// The session runs as the login, not the admin, and issues no statement; its
	// search_path is pinned all the same, and the URL's options are not sent.
	cfg.RuntimeParams = map[string]string{"application_name": "timebox password check", "search_path": adminSearchPath}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return true, conn.Close(ctx)
	}
	if sqlState(err) == "28P01" { // invalid_password
		return false, nil
	}
	return false, e.wrap(err, []string{p.Password})
}
