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

// flavor is what the engine knows of the server's kind and version, and of the admin's
// account on it: both are asked once per engine (flavorOf).
type flavor struct {
	mariadb      bool
	version      string // VERSION()
	major, minor int
	// adminUser and adminHost are the admin's account as CURRENT_USER() names it.
	adminUser, adminHost string
}

// versionRE finds the leading major.minor of VERSION().
var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

// parseFlavor reads VERSION(), e.g. "10.11.6-MariaDB-0+deb12u1" or "8.0.36", and
// CURRENT_USER(), e.g. "timebox@%".
func parseFlavor(version, current string) *flavor {
	f := &flavor{version: version, mariadb: strings.Contains(strings.ToLower(version), "mariadb")}
	if m := versionRE.FindStringSubmatch(version); m != nil {
		f.major, _ = strconv.Atoi(m[1])
		f.minor, _ = strconv.Atoi(m[2])
	}
	f.adminUser, f.adminHost = current, "%"
	if i := strings.LastIndexByte(current, '@'); i >= 0 {
		f.adminUser, f.adminHost = current[:i], current[i+1:]
	}
	return f
}

// grantee returns the admin's account as information_schema writes grantees, e.g.
// 'timebox'@'%'.
func (f *flavor) grantee() string {
	return "'" + f.adminUser + "'@'" + f.adminHost + "'"
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
	var version, current string
	if err := db.QueryRowContext(ctx, "SELECT VERSION(), CURRENT_USER()").Scan(&version, &current); err != nil {
		return nil, err
	}
	f = parseFlavor(version, current)
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

// lookupAccount returns what the grant tables hold for user@AccountHost, or nil when the
// account does not exist. It reads mysql.global_priv and mysql.roles_mapping on MariaDB, mysql.user,
// mysql.role_edges and mysql.default_roles on MySQL, and mysql.db on both, with statements
// prepared once per engine (Grant runs it each time).
func (e *Engine) lookupAccount(ctx context.Context, db *sql.DB, f *flavor, user string) (*accountInfo, error) {
	host := e.AccountHost
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	s := f.schema()
	q := `SELECT ` + s.locked + `, authentication_string, '' FROM mysql.user u WHERE User = ? AND Host = ?`
	if f.mariadb {
		q = `SELECT ` + s.locked + `, COALESCE(JSON_VALUE(Priv, '$.authentication_string'), ''),
			COALESCE(JSON_VALUE(Priv, '$.default_role'), '') FROM mysql.global_priv u WHERE User = ? AND Host = ?`
	}
	st, err := e.prepared(ctx, db, q)
	if err != nil {
		return nil, err
	}
	a := &accountInfo{dbs: map[string][]string{}}
	var def string
	if err := st.QueryRowContext(ctx, user, host).Scan(&a.locked, &a.authHash, &def); err == sql.ErrNoRows {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if def != "" {
		a.defaults = []string{def}
	}
	if !f.mariadb {
		rows, err := e.queryPrepared(ctx, db, `SELECT DEFAULT_ROLE_USER FROM mysql.default_roles
			WHERE USER = ? AND HOST = ? ORDER BY 1`, user, host)
		err = scanRows(rows, err, func(scan func(...any) error) error {
			var r string
			err := scan(&r)
			a.defaults = append(a.defaults, r)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	rows, err := e.queryPrepared(ctx, db, `SELECT m.`+s.role+`, m.`+s.adminOption+` = 'Y' FROM `+s.roles+` m
		WHERE m.`+s.member+` = ? AND m.`+s.host+` = ? ORDER BY 1`, user, host)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var role string
		var admin bool
		if err := scan(&role, &admin); err != nil {
			return err
		}
		if role == e.ManagedRole {
			a.ours = a.ours || !admin
		} else {
			a.roles = append(a.roles, role)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rows, err = e.queryPrepared(ctx, db, "SELECT * FROM mysql.db WHERE User = ? AND Host = ?", user, host)
	return a, eachDBGrant(rows, err, func(_, pattern string, privs []string) { a.dbs[pattern] = privs })
}

// eachDBGrant calls f with the user, database pattern and privileges of each row of rows, a
// SELECT * FROM mysql.db: it maps the privilege columns (Select_priv…) to privilege names,
// reading every column so that it works whatever the server's version. It closes rows; err,
// the error of the query, is returned as it is.
func eachDBGrant(rows *sql.Rows, err error, f func(user, pattern string, privs []string)) error {
	if err != nil {
		return err
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return err
	}
	return scanRows(rows, nil, func(scan func(...any) error) error {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := scan(ptrs...); err != nil {
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
		return nil
	})
}

// queryStrings runs a query of one string column and returns its values.
func queryStrings(ctx context.Context, db *sql.DB, q string, args ...any) ([]string, error) {
	var out []string
	rows, err := db.QueryContext(ctx, q, args...)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var s string
		err := scan(&s)
		out = append(out, s)
		return err
	})
	return out, err
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
