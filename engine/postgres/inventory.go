package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

var _ timebox.Inventory = (*Engine)(nil)

// Managed lists the roles that carry Timebox's mark (the role comment written in the same
// transaction as CREATE ROLE) and that this admin role made (it is a member of each: the
// engine grants that right after CREATE ROLE), so that two Timebox installations sharing a
// server never take each other's logins for orphans; and the shared logins named in shared, with their login flag,
// expiry, memberships and a database they may connect to. One query, independent of the size
// of the schemas.
func (e *Engine) Managed(ctx context.Context, shared []string) ([]timebox.ManagedPrincipal, error) {
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return nil, err
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	rows, err := pool.Query(ctx, `
		SELECT r.rolname, r.rolcanlogin, s.objoid IS NULL,
			CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL
				WHEN r.rolvaliduntil = '-infinity' THEN 'epoch'::timestamptz ELSE r.rolvaliduntil END,
			ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
				WHERE m.member = r.oid ORDER BY g.rolname),
			(SELECT d.datname FROM pg_database d, aclexplode(d.datacl) a
				WHERE a.grantee = r.oid AND a.privilege_type = 'CONNECT' ORDER BY d.datname LIMIT 1)
		FROM pg_roles r
		LEFT JOIN pg_shdescription s ON s.objoid = r.oid AND s.classoid = 'pg_authid'::regclass AND s.description = $1
		WHERE (s.objoid IS NOT NULL AND EXISTS (SELECT 1 FROM pg_auth_members am
				WHERE am.roleid = r.oid AND am.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)))
			OR r.rolname = ANY($2)
		ORDER BY r.rolname`, roleComment, shared)
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
