package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/timebox-dev/timebox"
)

// grantSchema names the tables and columns that hold accounts and role grants.
type grantSchema struct {
	users, locked             string // accounts table u, and the SQL that is true when u is locked
	roles, member, host, role string // role grants table m and its columns
	adminOption               string // column of m, 'Y' when granted WITH ADMIN OPTION
}

// schema returns the grant tables of the flavor.
func (f *flavor) schema() grantSchema {
	if f.mariadb {
		return grantSchema{
			users: "mysql.global_priv", locked: "COALESCE(JSON_VALUE(u.Priv, '$.account_locked'), 'false') IN ('true', '1')",
			roles: "mysql.roles_mapping", member: "User", host: "Host", role: "Role", adminOption: "Admin_option",
		}
	}
	return grantSchema{
		users: "mysql.user", locked: "u.account_locked = 'Y'",
		roles: "mysql.role_edges", member: "TO_USER", host: "TO_HOST", role: "FROM_USER", adminOption: "WITH_ADMIN_OPTION",
	}
}

// Managed lists the accounts on AccountHost that hold this installation's bookkeeping role
// (without ADMIN OPTION, which only the admin has), and the existing accounts named in shared
// (Shared set), with their lock state (CanLogin is false when locked), their roles (the
// bookkeeping role left out), a database they hold privileges on (else EventSchema) and,
// as ValidUntil, the time of their backstop event. NoExpiry
// is set on all of them when backstops are unavailable on the server (see Doctor); where they
// are available, an account without an event has a zero ValidUntil. A handful of queries on
// the grant tables, independent of the size of the schemas.
func (e *Engine) Managed(ctx context.Context, shared []string) ([]timebox.ManagedPrincipal, error) {
	db, f, err := e.admin(ctx)
	if err != nil {
		return nil, err
	}
	bs, err := e.backstop(ctx, db, f)
	if err != nil {
		return nil, e.wrap(err, nil)
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	s := f.schema()
	who, args := e.managedWhere(s, "u.User", shared)
	rows, err := db.QueryContext(ctx, `SELECT u.User, `+s.locked+`,
		EXISTS (SELECT 1 FROM `+s.roles+` m WHERE m.`+s.member+` = u.User AND m.`+s.host+` = u.Host AND m.`+s.role+` = ? AND m.`+s.adminOption+` <> 'Y')
		FROM `+s.users+` u WHERE u.Host = ? AND `+who+` ORDER BY u.User`,
		append([]any{e.ManagedRole, e.AccountHost}, args...)...)
	var out []timebox.ManagedPrincipal
	index := map[string]int{}
	err = scanRows(rows, err, func(scan func(...any) error) error {
		m := timebox.ManagedPrincipal{Roles: []string{}, Privileges: map[string][]string{}, NoExpiry: !bs.ok}
		var locked, ours bool
		if err := scan(&m.Name, &locked, &ours); err != nil {
			return err
		}
		m.CanLogin, m.Shared = !locked, !ours
		index[m.Name] = len(out)
		out = append(out, m)
		return nil
	})
	if err == nil && len(out) > 0 {
		err = e.managedDetails(ctx, db, s, shared, out, index)
	}
	if err != nil {
		return nil, e.wrap(err, nil)
	}
	return out, nil
}

// managedWhere returns the condition, on the user name column col, that selects the accounts
// Managed lists (members of the bookkeeping role, or named in shared), and its arguments.
func (e *Engine) managedWhere(s grantSchema, col string, shared []string) (string, []any) {
	where := "(" + col + " IN (SELECT m." + s.member + " FROM " + s.roles + " m WHERE m." + s.host + " = ? AND m." + s.role +
		" = ? AND m." + s.adminOption + " <> 'Y')"
	args := []any{e.AccountHost, e.ManagedRole}
	if len(shared) > 0 {
		where += " OR " + col + " IN (?" + strings.Repeat(", ?", len(shared)-1) + ")"
		for _, name := range shared {
			args = append(args, name)
		}
	}
	return where + ")", args
}

// managedDetails fills the roles, privileges, database and backstop time of the principals
// in out, found by name through index; shared is Managed's.
func (e *Engine) managedDetails(ctx context.Context, db *sql.DB, s grantSchema, shared []string,
	out []timebox.ManagedPrincipal, index map[string]int) error {
	who, args := e.managedWhere(s, "u."+s.member, shared)
	rows, err := db.QueryContext(ctx, `SELECT u.`+s.member+`, u.`+s.role+` FROM `+s.roles+` u WHERE u.`+s.host+` = ? AND u.`+s.role+` <> ? AND `+
		who+` ORDER BY 1, 2`, append([]any{e.AccountHost, e.ManagedRole}, args...)...)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var name, role string
		if err := scan(&name, &role); err != nil {
			return err
		}
		if i, ok := index[name]; ok {
			out[i].Roles = append(out[i].Roles, role)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := e.managedPrivileges(ctx, db, s, shared, out, index); err != nil {
		return err
	}
	ends, err := e.backstopEnds(ctx, db)
	if err != nil {
		return err
	}
	for i := range out {
		out[i].Database = cmp.Or(out[i].Database, e.EventSchema)
		if t, ok := ends[eventName(out[i].Name)]; ok {
			out[i].ValidUntil = t
		}
	}
	return nil
}

// backstopEnds returns the end of the window of every backstop event in EventSchema, by
// event name: the exact end kept in the event's comment, unless the event was moved since
// (then the time it runs at).
func (e *Engine) backstopEnds(ctx context.Context, db *sql.DB) (map[string]time.Time, error) {
	ends := map[string]time.Time{}
	rows, err := db.QueryContext(ctx, `SELECT EVENT_NAME, EXECUTE_AT, EVENT_COMMENT FROM information_schema.EVENTS
		WHERE EVENT_SCHEMA = ? AND EVENT_NAME LIKE 'tbx\_end%' AND EXECUTE_AT IS NOT NULL`, e.EventSchema)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var name, comment string
		var at time.Time
		if err := scan(&name, &at, &comment); err != nil {
			return err
		}
		// EXECUTE_AT is in the event's time zone, which is the engine's session zone, UTC.
		at = time.Date(at.Year(), at.Month(), at.Day(), at.Hour(), at.Minute(), at.Second(), 0, time.UTC)
		if rest, ok := strings.CutPrefix(comment, commentPrefix); ok {
			if until, err := time.Parse(time.RFC3339Nano, rest); err == nil && backstopTime(until).Equal(at) {
				at = until.UTC()
			}
		}
		ends[name] = at
		return nil
	})
	return ends, err
}

// PasswordWorks logs in as p's principal to p's database with p's password and reports
// whether the server accepted the password: false for "access denied" (error 1045), true
// also when the server then refuses the database (error 1044: the password was right). A
// locked account or any other failure is an error (EUNAVAILABLE when the server cannot be
// reached). The connection is closed at once.
func (e *Engine) PasswordWorks(ctx context.Context, p timebox.GrantPlan) (bool, error) {
	if _, err := e.validatePlan(p, true, true); err != nil {
		return false, err
	}
	cfg := e.connConfig()
	cfg.User, cfg.Passwd, cfg.DBName = p.Principal, p.Password, p.Database
	cfg.Params = nil
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return false, timebox.WrapError(timebox.EINVALID, err, "server %s: connection settings", e.name)
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	conn, err := connector.Connect(ctx)
	switch errNumber(err) {
	case 0:
		if err != nil {
			return false, e.wrap(err, secretsOf(p.Password))
		}
		return true, conn.Close()
	case erAccessDenied:
		return false, nil
	case erDBAccessDenied:
		return true, nil
	case erAccountLocked, erMariaAccountLocked:
		return false, timebox.Errorf(timebox.EINTERNAL, "server %s: account %s is locked", e.name, account(p.Principal, e.AccountHost))
	}
	return false, e.wrap(err, secretsOf(p.Password))
}

// managedPrivileges fills the database-level privileges of the principals in out from
// mysql.db, and their Database: the first database they hold privileges on.
func (e *Engine) managedPrivileges(ctx context.Context, db *sql.DB, s grantSchema, shared []string,
	out []timebox.ManagedPrincipal, index map[string]int) error {
	who, args := e.managedWhere(s, "u.User", shared)
	rows, err := db.QueryContext(ctx, "SELECT * FROM mysql.db u WHERE u.Host = ? AND "+who+" ORDER BY u.User, u.Db",
		append([]any{e.AccountHost}, args...)...)
	return eachDBGrant(rows, err, func(user, pattern string, privs []string) {
		i, ok := index[user]
		if !ok || len(privs) == 0 {
			return
		}
		name := dbFromPattern(pattern)
		key := name
		if dbPattern(name) != pattern { // a wildcard pattern (granted by hand, unescaped)
			key = "pattern " + pattern
		}
		slices.Sort(privs)
		out[i].Privileges[key] = privs
		if out[i].Database == "" {
			out[i].Database = name
		}
	})
}
