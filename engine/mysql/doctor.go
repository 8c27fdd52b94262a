package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

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

// addFinding adds one finding to Doctor's.
type addFinding func(severity, fix, format string, args ...any)

// Doctor checks that the admin account can do its work on the given databases (their names on
// the server) and roles: its global privileges (CREATE USER, PROCESS, CONNECTION ADMIN), read
// access to the grant tables, every privilege WITH GRANT OPTION on each managed database, each
// role WITH ADMIN OPTION, the bookkeeping role; that backstop events can run (event scheduler
// ON, EventSchema with EVENT); that no anonymous account shadows Timebox's accounts for
// local connections; and that no role an access level hands out, and no account but the
// admin and SUPER holders, may change the backstop events (see doctorEventSchema). It returns the server's version, and EUNAVAILABLE when the server cannot
// be reached.
func (e *Engine) Doctor(ctx context.Context, databases, roles []string) (version string, findings []Finding, err error) {
	db, f, err := e.admin(ctx)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	add := func(sev, fix, format string, args ...any) {
		findings = append(findings, Finding{Severity: sev, Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	a := account(f.adminUser, f.adminHost)
	for _, check := range []func() error{
		func() error { return e.doctorGlobal(ctx, db, f, a, add) },
		func() error { return e.doctorGrantTables(ctx, db, f, a, add) },
		func() error { return e.doctorDatabases(ctx, db, f, a, databases, add) },
		func() error { return e.doctorRoles(ctx, db, f, a, roles, add) },
		func() error { return e.doctorBackstop(ctx, db, f, a, add) },
		func() error { return e.doctorAnonymous(ctx, db, f, add) },
		func() error { return e.doctorEventSchema(ctx, db, f, roles, add) },
		func() error { return e.doctorInitConnect(ctx, db, add) },
	} {
		if err := check(); err != nil {
			return f.version, findings, e.wrap(err, nil)
		}
	}
	if !f.nativePasswords() {
		add(SeverityWarn, "", "MySQL %s disables mysql_native_password: passwords are sent in clear over the admin connection (use tls=true)", f.version)
	}
	return f.version, findings, nil
}

// doctorGlobal checks the admin's global privileges.
func (e *Engine) doctorGlobal(ctx context.Context, db *sql.DB, f *flavor, a string, add addFinding) error {
	held, err := queryStrings(ctx, db, "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?", f.grantee())
	if err != nil {
		return err
	}
	if slices.Contains(held, "SUPER") || len(held) > 20 {
		add(SeverityWarn, "", "admin %s holds SUPER or most global privileges: it works, but holds far more than Timebox needs (see SetupStatements)", a)
	}
	var missing []string
	for _, p := range []string{"CREATE USER", "PROCESS", f.connectionAdmin()} {
		if !slices.Contains(held, p) && !(p == f.connectionAdmin() && slices.Contains(held, "SUPER")) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		add(SeverityFail, "GRANT "+strings.Join(missing, ", ")+" ON *.* TO "+a+";",
			"admin %s lacks %s: it needs CREATE USER to manage accounts, PROCESS to see their sessions and %s to kill them",
			a, strings.Join(missing, ", "), f.connectionAdmin())
	} else {
		add(SeverityOK, "", "admin %s holds CREATE USER, PROCESS and %s", a, f.connectionAdmin())
	}
	return nil
}

// doctorGrantTables checks that the admin can read the grant tables the engine queries.
func (e *Engine) doctorGrantTables(ctx context.Context, db *sql.DB, f *flavor, a string, add addFinding) error {
	var missing []string
	for _, t := range f.grantTables() {
		rows, err := db.QueryContext(ctx, "SELECT 1 FROM mysql."+QuoteIdent(t)+" LIMIT 0")
		if err == nil {
			rows.Close()
			continue
		}
		if n := errNumber(err); n != erTableAccessDenied && n != erDBAccessDenied {
			return err
		}
		missing = append(missing, t)
	}
	for _, t := range missing {
		if t == "tables_priv" || t == "columns_priv" { // only ad-hoc table grants need them
			add(SeverityWarn, "GRANT SELECT ON mysql."+QuoteIdent(t)+" TO "+a+";", "admin %s cannot read mysql.%s: ad-hoc table grants cannot be narrowed on a re-run", a, t)
			continue
		}
		add(SeverityFail, "GRANT SELECT ON mysql."+QuoteIdent(t)+" TO "+a+";", "admin %s cannot read mysql.%s", a, t)
	}
	if len(missing) == 0 {
		add(SeverityOK, "", "admin %s can read the grant tables", a)
	}
	return nil
}

// doctorDatabases checks that each managed database exists and that the admin holds
// privileges on it WITH GRANT OPTION.
func (e *Engine) doctorDatabases(ctx context.Context, db *sql.DB, f *flavor, a string, databases []string, add addFinding) error {
	for _, d := range slices.Compact(slices.Sorted(slices.Values(databases))) {
		if e.protectedDatabase(d) {
			add(SeverityFail, "", "database %s is the event schema or the mysql schema: Grant refuses every access to it (its backstop events run as the admin)", QuoteIdent(d))
			continue
		}
		var exists, grantable int
		err := db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?),
			(SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ? AND TABLE_SCHEMA = ? AND IS_GRANTABLE = 'YES')`,
			d, f.grantee(), dbPattern(d)).Scan(&exists, &grantable)
		switch {
		case err != nil:
			return err
		case exists == 0:
			// information_schema shows the admin only the databases it holds a privilege on.
			add(SeverityFail, "GRANT ALL PRIVILEGES ON "+onDB(d)+" TO "+a+" WITH GRANT OPTION;",
				"database %s does not exist on the server, or the admin holds no privilege on it", QuoteIdent(d))
		case grantable == 0:
			add(SeverityFail, "GRANT ALL PRIVILEGES ON "+onDB(d)+" TO "+a+" WITH GRANT OPTION;",
				"admin %s cannot grant privileges on database %s", a, QuoteIdent(d))
		default:
			add(SeverityOK, "", "database %s: the admin can grant privileges on it", QuoteIdent(d))
		}
	}
	return nil
}

// doctorRoles checks each role an access level hands out, and the bookkeeping role: it
// exists and the admin holds it WITH ADMIN OPTION.
func (e *Engine) doctorRoles(ctx context.Context, db *sql.DB, f *flavor, a string, roles []string, add addFinding) error {
	held := map[string]bool{} // role → WITH ADMIN OPTION
	// MariaDB writes the grantee of APPLICABLE_ROLES as CURRENT_USER() does: user@host.
	q, args := "SELECT ROLE_NAME, IS_GRANTABLE = 'YES' FROM information_schema.APPLICABLE_ROLES WHERE GRANTEE = ?", []any{f.adminUser + "@" + f.adminHost}
	if !f.mariadb {
		q, args = q+" AND GRANTEE_HOST = ?", []any{f.adminUser, f.adminHost}
	}
	rows, err := db.QueryContext(ctx, q, args...)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var r string
		var adm bool
		err := scan(&r, &adm)
		held[r] = adm
		return err
	})
	if err != nil {
		return err
	}
	exists := func(r string) (bool, error) {
		q := "SELECT COUNT(*) FROM mysql.global_priv WHERE User = ? AND Host = ''"
		if !f.mariadb {
			q = "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = '%'"
		}
		var n int
		err := db.QueryRowContext(ctx, q, r).Scan(&n)
		if no := errNumber(err); no == erTableAccessDenied || no == erDBAccessDenied {
			_, has := held[r] // cannot read the grant tables (flagged above): judge by what the admin holds
			return has, nil
		}
		return n > 0, err
	}
	for _, r := range slices.Compact(slices.Sorted(slices.Values(roles))) {
		ok, err := exists(r)
		switch adm, has := held[r]; {
		case err != nil:
			return err
		case !ok:
			add(SeverityFail, "", "role %s, which an access level grants, does not exist", QuoteString(r))
		case !has || !adm:
			add(SeverityFail, "GRANT "+QuoteString(r)+" TO "+a+" WITH ADMIN OPTION;", "admin %s cannot grant role %s: it needs it WITH ADMIN OPTION", a, QuoteString(r))
		default:
			add(SeverityOK, "", "role %s: the admin holds it WITH ADMIN OPTION", QuoteString(r))
		}
	}
	m := QuoteString(e.ManagedRole)
	ok, err := exists(e.ManagedRole)
	switch adm := held[e.ManagedRole]; {
	case err != nil:
		return err
	case !ok && f.mariadb:
		add(SeverityOK, "", "bookkeeping role %s does not exist yet: the first activation creates it", m)
	case !ok:
		add(SeverityFail, "CREATE ROLE "+m+"; GRANT "+m+" TO "+a+" WITH ADMIN OPTION;", "bookkeeping role %s does not exist", m)
	case !adm:
		add(SeverityFail, "GRANT "+m+" TO "+a+" WITH ADMIN OPTION;", "admin %s cannot grant the bookkeeping role %s", a, m)
	default:
		add(SeverityOK, "", "bookkeeping role %s: the admin holds it WITH ADMIN OPTION", m)
	}
	return nil
}

// doctorBackstop checks that backstop events can run.
func (e *Engine) doctorBackstop(ctx context.Context, db *sql.DB, f *flavor, a string, add addFinding) error {
	s, err := e.backstop(ctx, db, f)
	switch {
	case err != nil:
		return err
	case s.ok:
		add(SeverityOK, "", "backstop events: the event scheduler is ON and the admin can create events in %s", QuoteIdent(e.EventSchema))
	case !strings.EqualFold(s.scheduler, "ON"):
		add(SeverityWarn, "SET GLOBAL event_scheduler=ON;",
			"backstop unavailable: SET GLOBAL event_scheduler=ON and event_scheduler=ON in my.cnf (it is %s): without it an access outlives a Timebox outage", s.scheduler)
	default:
		add(SeverityFail, "CREATE DATABASE IF NOT EXISTS "+QuoteIdent(e.EventSchema)+"; GRANT EVENT ON "+onDB(e.EventSchema)+" TO "+a+";",
			"backstop unavailable: %s", s.why)
	}
	return nil
}

// doctorAnonymous flags anonymous accounts, which shadow 'user'@'%' for connections from the
// hosts they name (mariadb-install-db leaves ”@'localhost').
func (e *Engine) doctorAnonymous(ctx context.Context, db *sql.DB, f *flavor, add addFinding) error {
	q := "SELECT Host FROM mysql.global_priv WHERE User = '' AND Host <> '' ORDER BY 1"
	if !f.mariadb {
		q = "SELECT Host FROM mysql.user WHERE User = '' ORDER BY 1"
	}
	hosts, err := queryStrings(ctx, db, q)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		add(SeverityFail, "DROP USER ''@"+QuoteString(h)+";",
			"anonymous account ''@%s exists: it shadows Timebox's accounts for connections from %s (\"Access denied for user\")", QuoteString(h), h)
	}
	if len(hosts) == 0 {
		add(SeverityOK, "", "no anonymous account")
	}
	return nil
}
