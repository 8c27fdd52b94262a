package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

// Severities of a Finding.
const (
	SeverityOK   = timebox.SeverityOK
	SeverityWarn = timebox.SeverityWarn
	SeverityFail = timebox.SeverityFail
)

// Finding is one result of Doctor (see timebox.Finding).
type Finding = timebox.Finding

// Doctor checks that the admin role can do its work on the given databases (their names on
// the server) and roles, and that the one-time hardening is in place: no database of the
// server is open to PUBLIC, the admin has CONNECT WITH GRANT OPTION on each managed
// database, ADMIN OPTION on each role it hands out, CREATEROLE and pg_signal_backend; that
// each owner role and the quarantine role may receive what removed logins leave (NOLOGIN, no
// superuser, CREATEROLE or privileged membership); and, per database, whether PUBLIC may
// create large objects and what waits in quarantine. It returns EUNAVAILABLE when the server
// cannot be reached.
func (e *Engine) Doctor(ctx context.Context, databases, roles []string) (version string, findings []Finding, err error) {
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return "", nil, e.wrap(err, nil)
	}
	defer conn.Release()
	q := conn.Conn()
	var admin string
	var super, createRole, signal bool
	var versionNum int
	err = q.QueryRow(ctx, `SELECT current_user, rolsuper, rolcreaterole,
		pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'),
		current_setting('server_version'), current_setting('server_version_num')::int
		FROM pg_roles WHERE rolname = current_user`).Scan(&admin, &super, &createRole, &signal, &version, &versionNum)
	if err != nil {
		return "", nil, e.wrap(err, nil)
	}
	add := func(sev, fix, format string, args ...any) {
		findings = append(findings, Finding{Severity: sev, Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	a := QuoteIdent(admin)
	switch {
	case super:
		add(SeverityWarn, "", "admin role %s is a superuser: it works, but holds far more than Timebox needs (see docs/postgres.md)", a)
	case !createRole:
		add(SeverityFail, "ALTER ROLE "+a+" CREATEROLE;", "admin role %s lacks CREATEROLE: it cannot create logins", a)
	default:
		add(SeverityOK, "", "admin role %s has CREATEROLE and is not a superuser", a)
	}
	if !super && !signal {
		add(SeverityFail, "GRANT pg_signal_backend TO "+a+";", "admin role %s is not a member of pg_signal_backend: it cannot end the sessions of expired logins", a)
	}
	if err := e.doctorDatabases(ctx, q, a, databases, add); err != nil {
		return version, findings, e.wrap(err, nil)
	}
	if err := e.doctorRoles(ctx, q, a, roles, versionNum, add); err != nil {
		return version, findings, e.wrap(err, nil)
	}
	if err := e.doctorManaged(ctx, q, a, versionNum, add); err != nil {
		return version, findings, e.wrap(err, nil)
	}
	if err := e.doctorHandover(ctx, q, a, databases, versionNum, add); err != nil {
		return version, findings, e.wrap(err, nil)
	}
	if !super {
		e.doctorTables(ctx, admin, databases, add)
	}
	return version, findings, nil
}

// doctorTables warns, per managed database, about the tables whose privileges the admin
// cannot grant: ad-hoc requests for them are refused (a warning, as ad-hoc requests are
// optional). A database it cannot open was flagged by doctorDatabases already.
func (e *Engine) doctorTables(ctx context.Context, admin string, databases []string, add addFinding) {
	for _, db := range databases {
		pool, err := e.pool(db)
		if err != nil {
			continue
		}
		// A table is out of reach when the admin cannot grant SELECT on it, or a new login
		// could not use its schema (PUBLIC may not) and the admin cannot grant USAGE there.
		var total, lacking int
		var schemas []string
		err = pool.QueryRow(ctx, `WITH t AS (SELECT n.nspname, NOT has_table_privilege(c.oid, 'SELECT WITH GRANT OPTION')
				OR NOT (has_schema_privilege('public', n.oid, 'USAGE') OR has_schema_privilege(n.oid, 'USAGE WITH GRANT OPTION')) AS out
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			AND n.nspname NOT LIKE 'pg\_%')
			SELECT count(*), count(*) FILTER (WHERE out), coalesce(array_agg(DISTINCT nspname ORDER BY nspname) FILTER (WHERE out), '{}') FROM t`).Scan(&total, &lacking, &schemas)
		switch {
		case err != nil:
			continue
		case lacking > 0:
			fix := "-- in database " + commentName(db) + ", for ad-hoc requests:\n" + strings.Join(TableSetupStatements(admin, schemas), ";\n") + ";"
			add(SeverityWarn, fix, "admin role %s cannot grant %d of the %d tables of database %q: ad-hoc requests for them are refused", QuoteIdent(admin), lacking, total, db)
		case total > 0:
			add(SeverityOK, "", "admin role %s can grant every table of database %q (ad-hoc requests)", QuoteIdent(admin), db)
		}
	}
}

// doctorManaged checks the bookkeeping role: missing is fine (the engine creates it on the
// first activation), but when it exists the admin must be able to grant it.
func (e *Engine) doctorManaged(ctx context.Context, q *pgx.Conn, admin string, versionNum int, add addFinding) error {
	var adminOption bool
	var members int
	err := q.QueryRow(ctx, `SELECT pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION'),
		(SELECT count(*) FROM pg_auth_members WHERE roleid = r.oid)
		FROM pg_roles r WHERE rolname = $1`, e.ManagedRole).Scan(&adminOption, &members)
	m := QuoteIdent(e.ManagedRole)
	switch {
	case err == pgx.ErrNoRows:
		add(SeverityOK, "", "bookkeeping role %s does not exist yet: the first activation creates it", m)
	case err != nil:
		return err
	case adminOption:
		add(SeverityOK, "", "bookkeeping role %s: the admin holds it WITH ADMIN OPTION (%d members)", m, members)
	default:
		noAdminOption(add, admin, m, "the bookkeeping role "+m, versionNum)
	}
	return nil
}

type addFinding func(severity, fix, format string, args ...any)

// noAdminOption adds the finding for role (quoted; what describes it) that the admin holds
// without ADMIN OPTION: a failure from PostgreSQL 16, which requires it to grant the role, a
// warning before, where CREATEROLE suffices.
func noAdminOption(add addFinding, admin, role, what string, versionNum int) {
	fix := "GRANT " + role + " TO " + admin + " WITH ADMIN OPTION;"
	if versionNum >= 160000 {
		add(SeverityFail, fix, "admin role %s cannot grant %s: PostgreSQL 16 requires ADMIN OPTION", admin, what)
	} else {
		add(SeverityWarn, fix, "admin role %s holds %s without ADMIN OPTION: CREATEROLE suffices on this version, PostgreSQL 16 will refuse", admin, what)
	}
}

// doctorDatabases flags every database open to PUBLIC, and each managed database that is
// missing or where the admin cannot grant CONNECT.
func (e *Engine) doctorDatabases(ctx context.Context, q *pgx.Conn, admin string, databases []string, add addFinding) error {
	rows, err := q.Query(ctx, `SELECT datname FROM pg_database
		WHERE datallowconn AND has_database_privilege('public', oid, 'CONNECT') ORDER BY datname`)
	if err != nil {
		return err
	}
	open, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, db := range open {
		add(SeverityFail, "REVOKE CONNECT ON DATABASE "+QuoteIdent(db)+" FROM PUBLIC;",
			"database %s is open to every login (PUBLIC has CONNECT), so access to one database opens this one too", QuoteIdent(db))
	}
	if len(open) == 0 {
		add(SeverityOK, "", "no database of the server is open to PUBLIC")
	}
	for _, db := range databases {
		var exists, grant bool
		err := q.QueryRow(ctx, `SELECT true, has_database_privilege(current_user, oid, 'CONNECT WITH GRANT OPTION')
			FROM pg_database WHERE datname = $1`, db).Scan(&exists, &grant)
		switch {
		case err == pgx.ErrNoRows:
			add(SeverityFail, "", "database %s does not exist on the server", QuoteIdent(db))
		case err != nil:
			return err
		case !grant:
			add(SeverityFail, "GRANT CONNECT ON DATABASE "+QuoteIdent(db)+" TO "+admin+" WITH GRANT OPTION;",
				"admin role %s cannot grant CONNECT on database %s", admin, QuoteIdent(db))
		default:
			add(SeverityOK, "", "database %s: the admin can grant CONNECT", QuoteIdent(db))
		}
	}
	return nil
}

// doctorRoles checks each role an access level hands out: it exists and the admin holds it
// WITH ADMIN OPTION (required from PostgreSQL 16; CREATEROLE suffices before).
func (e *Engine) doctorRoles(ctx context.Context, q *pgx.Conn, admin string, roles []string, versionNum int, add addFinding) error {
	for _, r := range slices.Compact(slices.Sorted(slices.Values(roles))) {
		var exists, adminOption bool
		err := q.QueryRow(ctx, `SELECT true, pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION')
			FROM pg_roles WHERE rolname = $1`, r).Scan(&exists, &adminOption)
		switch {
		case err == pgx.ErrNoRows:
			add(SeverityFail, "", "role %s, which an access level grants or unlock_login opens, does not exist", QuoteIdent(r))
		case err != nil:
			return err
		case adminOption:
			add(SeverityOK, "", "role %s: the admin holds it WITH ADMIN OPTION", QuoteIdent(r))
		default:
			noAdminOption(add, admin, QuoteIdent(r), "role "+QuoteIdent(r), versionNum)
		}
	}
	return nil
}
