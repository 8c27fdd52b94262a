package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/timebox-dev/timebox"
)

// flavor is what the engine knows of the server's kind and version.
type flavor struct {
	mariadb      bool
	version      string // VERSION()
	major, minor int
}

// versionRE finds the leading major.minor of VERSION().
var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

// parseFlavor reads VERSION(), e.g. "10.11.6-MariaDB-0+deb12u1" or "8.0.36".
func parseFlavor(v string) *flavor {
	f := &flavor{version: v, mariadb: strings.Contains(strings.ToLower(v), "mariadb")}
	if m := versionRE.FindStringSubmatch(v); m != nil {
		f.major, _ = strconv.Atoi(m[1])
		f.minor, _ = strconv.Atoi(m[2])
	}
	return f
}

// nativePasswords reports whether the server takes mysql_native_password hashes: MariaDB, and
// MySQL before 8.4.
func (f *flavor) nativePasswords() bool {
	return f.mariadb || f.major < 8 || f.major == 8 && f.minor < 4
}

// connectionAdmin is the privilege that allows killing other accounts' sessions without
// SUPER.
func (f *flavor) connectionAdmin() string {
	if f.mariadb {
		return "CONNECTION ADMIN"
	}
	return "CONNECTION_ADMIN"
}

// grantTables are the grant tables the admin reads (SELECT) to know the accounts.
func (f *flavor) grantTables() []string {
	if f.mariadb {
		return []string{"global_priv", "roles_mapping", "db", "tables_priv", "columns_priv"}
	}
	return []string{"user", "role_edges", "default_roles", "db", "tables_priv", "columns_priv"}
}

// flavorOf returns the server's flavor, asking it once per engine.
func (e *Engine) flavorOf(ctx context.Context, db *sql.DB) (*flavor, error) {
	e.mu.Lock()
	f := e.flavor
	e.mu.Unlock()
	if f != nil {
		return f, nil
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return nil, err
	}
	f = parseFlavor(v)
	e.mu.Lock()
	e.flavor = f
	e.mu.Unlock()
	return f, nil
}

// accountInfo is what the engine needs to know about an existing account.
type accountInfo struct {
	locked   bool
	authHash string              // the stored password hash
	ours     bool                // holds the bookkeeping role, without ADMIN OPTION
	roles    []string            // roles granted to it, the bookkeeping role left out
	defaults []string            // its default roles (one at most on MariaDB)
	dbs      map[string][]string // database pattern → the database-level privileges held there
}

// madeBy reports whether the account is an ephemeral login of this installation: it holds the
// bookkeeping role, or it is what a Grant interrupted right after CREATE USER left behind —
// locked, without roles or database privileges, with exactly the plan's password hash
// (random for each request, so nobody else's account has it).
func (a *accountInfo) madeBy(password string) bool {
	if a.ours {
		return true
	}
	return password != "" && a.locked && len(a.roles) == 0 && len(a.dbs) == 0 && a.authHash == nativeHash(password)
}

// lookupAccount returns what the grant tables hold for user@host, or nil when the account
// does not exist. It reads mysql.global_priv and mysql.roles_mapping on MariaDB, mysql.user,
// mysql.role_edges and mysql.default_roles on MySQL, and mysql.db on both.
func (e *Engine) lookupAccount(ctx context.Context, db *sql.DB, f *flavor, user, host string) (*accountInfo, error) {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	a := &accountInfo{dbs: map[string][]string{}}
	var locked, def string
	var err error
	if f.mariadb {
		err = db.QueryRowContext(ctx, `SELECT COALESCE(JSON_VALUE(Priv, '$.account_locked'), 'false'),
			COALESCE(JSON_VALUE(Priv, '$.authentication_string'), ''), COALESCE(JSON_VALUE(Priv, '$.default_role'), '')
			FROM mysql.global_priv WHERE User = ? AND Host = ?`, user, host).Scan(&locked, &a.authHash, &def)
		a.locked = locked == "true" || locked == "1"
		if def != "" {
			a.defaults = []string{def}
		}
	} else {
		err = db.QueryRowContext(ctx, `SELECT account_locked, authentication_string FROM mysql.user WHERE User = ? AND Host = ?`,
			user, host).Scan(&locked, &a.authHash)
		a.locked = locked == "Y"
	}
	if err == sql.ErrNoRows {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if !f.mariadb {
		if a.defaults, err = queryStrings(ctx, db, `SELECT DEFAULT_ROLE_USER FROM mysql.default_roles
			WHERE USER = ? AND HOST = ? ORDER BY 1`, user, host); err != nil {
			return nil, err
		}
	}
	if err := e.accountRoles(ctx, db, f, a, user, host); err != nil {
		return nil, err
	}
	return a, e.accountDatabases(ctx, db, a, user, host)
}

// accountRoles fills a.roles and a.ours.
func (e *Engine) accountRoles(ctx context.Context, db *sql.DB, f *flavor, a *accountInfo, user, host string) error {
	q := `SELECT Role, Admin_option = 'Y' FROM mysql.roles_mapping WHERE User = ? AND Host = ? ORDER BY 1`
	if !f.mariadb {
		q = `SELECT FROM_USER, WITH_ADMIN_OPTION = 'Y' FROM mysql.role_edges WHERE TO_USER = ? AND TO_HOST = ? ORDER BY 1`
	}
	rows, err := db.QueryContext(ctx, q, user, host)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var role string
		var admin bool
		if err := rows.Scan(&role, &admin); err != nil {
			return err
		}
		if role == e.ManagedRole {
			a.ours = a.ours || !admin
			continue
		}
		a.roles = append(a.roles, role)
	}
	return rows.Err()
}

// accountDatabases fills a.dbs from mysql.db.
func (e *Engine) accountDatabases(ctx context.Context, db *sql.DB, a *accountInfo, user, host string) error {
	rows, err := db.QueryContext(ctx, "SELECT * FROM mysql.db WHERE User = ? AND Host = ?", user, host)
	if err != nil {
		return err
	}
	return eachDBGrant(rows, func(_, pattern string, privs []string) { a.dbs[pattern] = privs })
}

// eachDBGrant calls f with the user, database pattern and privileges of each row of rows, a
// SELECT * FROM mysql.db: it maps the privilege columns (Select_priv…) to privilege names,
// reading every column so that it works whatever the server's version. It closes rows.
func eachDBGrant(rows *sql.Rows, f func(user, pattern string, privs []string)) error {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		var user, pattern string
		var privs []string
		for i, c := range cols {
			switch {
			case strings.EqualFold(c, "User"):
				user = string(vals[i])
			case strings.EqualFold(c, "Db"):
				pattern = string(vals[i])
			case string(vals[i]) == "Y":
				if p, ok := privilegeColumns[strings.ToLower(c)]; ok {
					privs = append(privs, p)
				}
			}
		}
		f(user, pattern, privs)
	}
	return rows.Err()
}

// queryStrings runs a query of one string column and returns its values.
func queryStrings(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// privilegeColumns maps the privilege columns of mysql.db to the privilege names of GRANT.
var privilegeColumns = map[string]string{
	"select_priv":              "SELECT",
	"insert_priv":              "INSERT",
	"update_priv":              "UPDATE",
	"delete_priv":              "DELETE",
	"create_priv":              "CREATE",
	"drop_priv":                "DROP",
	"grant_priv":               "GRANT OPTION",
	"references_priv":          "REFERENCES",
	"index_priv":               "INDEX",
	"alter_priv":               "ALTER",
	"create_tmp_table_priv":    "CREATE TEMPORARY TABLES",
	"lock_tables_priv":         "LOCK TABLES",
	"create_view_priv":         "CREATE VIEW",
	"show_view_priv":           "SHOW VIEW",
	"create_routine_priv":      "CREATE ROUTINE",
	"alter_routine_priv":       "ALTER ROUTINE",
	"execute_priv":             "EXECUTE",
	"event_priv":               "EVENT",
	"trigger_priv":             "TRIGGER",
	"delete_history_priv":      "DELETE HISTORY",      // MariaDB
	"show_create_routine_priv": "SHOW CREATE ROUTINE", // MariaDB 11.3
}

// allPrivileges is how a plan asks for every database-level privilege but GRANT OPTION.
const allPrivileges = "ALL PRIVILEGES"

// normalizePrivileges validates privileges against the database-level privileges of MySQL and
// MariaDB and returns them upper-cased, single-spaced, sorted and without duplicates ("ALL"
// becomes ALL PRIVILEGES). GRANT OPTION and anything unknown is refused.
func normalizePrivileges(privileges []string) ([]string, error) {
	var out []string
	for _, p := range privileges {
		n := strings.ToUpper(strings.Join(strings.Fields(p), " "))
		if n == "ALL" {
			n = allPrivileges
		}
		ok := n == allPrivileges
		for _, known := range privilegeColumns {
			ok = ok || (n == known && n != "GRANT OPTION")
		}
		if !ok {
			return nil, fmt.Errorf("unknown or refused database privilege %q", timebox.Clip(p))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}
