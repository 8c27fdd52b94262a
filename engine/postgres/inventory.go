package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

var _ timebox.Inventory = (*Engine)(nil)

// Managed lists the roles that carry Timebox's mark (the role comment written in the same
// transaction as CREATE ROLE), with their login flag, expiry, memberships and a database they
// may connect to. One query, independent of the size of the schemas.
func (e *Engine) Managed(ctx context.Context) ([]timebox.ManagedPrincipal, error) {
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return nil, err
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	rows, err := pool.Query(ctx, `
		SELECT r.rolname, r.rolcanlogin,
			CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL ELSE r.rolvaliduntil END,
			ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
				WHERE m.member = r.oid ORDER BY g.rolname),
			(SELECT d.datname FROM pg_database d, aclexplode(d.datacl) a
				WHERE a.grantee = r.oid AND a.privilege_type = 'CONNECT' ORDER BY d.datname LIMIT 1)
		FROM pg_roles r
		JOIN pg_shdescription s ON s.objoid = r.oid AND s.classoid = 'pg_authid'::regclass
		WHERE s.description = $1
		ORDER BY r.rolname`, roleComment)
	if err != nil {
		return nil, e.wrap(err, nil)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (timebox.ManagedPrincipal, error) {
		var m timebox.ManagedPrincipal
		var until *time.Time
		var db *string
		err := row.Scan(&m.Name, &m.CanLogin, &until, &m.Roles, &db)
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
