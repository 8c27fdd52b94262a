package mysql

import (
	"context"
	"database/sql"
	"slices"
	"strings"
)

// SetupStatements returns the one-time setup a DBA runs as root on a MariaDB server before
// Timebox manages it (see DESIGN.md, "Enforcement on the target database"). It grants the
// admin account adminName@accountHost only what the engine uses:
//
//   - CREATE USER (create, alter, lock and drop accounts and roles), PROCESS (see every
//     session in the process list) and CONNECTION ADMIN (KILL other accounts' sessions
//     without SUPER);
//   - SELECT on the grant tables it reads: mysql.global_priv, mysql.roles_mapping and mysql.db,
//     and mysql.tables_priv and mysql.columns_priv (the table and column privileges of an
//     ephemeral login, revoked when a Grant run again narrows its ad-hoc table grants);
//   - every privilege on each managed database WITH GRANT OPTION, to hand privileges out (the
//     name escaped for GRANT, where _ and % are wildcards);
//   - each role an access level hands out, WITH ADMIN OPTION;
//   - the schema DefaultEventSchema for the backstop events, with EVENT on it;
//   - the bookkeeping role (ManagedRoleName), administered by the admin alone: each
//     ephemeral login is granted it, which is how the reconciler recognises them.
//
// The backstop events also need the event scheduler on: SET GLOBAL event_scheduler=ON, and
// event_scheduler=ON in my.cnf.
//
// Deliberately left out: UPDATE on the mysql schema, which MariaDB requires for SET DEFAULT
// ROLE … FOR another account but which would let the admin rewrite its own privileges. The
// engine sets an ephemeral login's default role by logging in as it instead (so AccountHost
// must match the host Timebox connects from), and leaves a person's default role to the
// person (role_membership: SET ROLE, or SET DEFAULT ROLE for oneself). A DBA who grants it
// anyway gets default roles set by the admin.
//
// On MySQL 8 use CONNECTION_ADMIN instead of CONNECTION ADMIN; SELECT on mysql.user,
// mysql.role_edges, mysql.default_roles, mysql.db, mysql.tables_priv and mysql.columns_priv
// instead of the MariaDB tables; and
// CREATE ROLE m followed by GRANT m TO admin WITH ADMIN OPTION for the bookkeeping role (MySQL
// has no CREATE ROLE … WITH ADMIN). On MySQL 8.4+ replace the admin's IDENTIFIED WITH
// mysql_native_password AS clause by IDENTIFIED BY.
//
// It only builds the statements (names quoted by QuoteIdent and QuoteString; the password
// sent as its mysql_native_password hash); running them is the caller's job. CREATE USER
// fails if the admin exists.
func SetupStatements(admin, adminPassword, accountHost string, databases, roles []string) []string {
	a := account(admin, accountHost)
	create := "CREATE USER " + a
	if adminPassword != "" {
		create += " IDENTIFIED WITH mysql_native_password AS " + QuoteString(nativeHash(adminPassword))
	}
	stmts := []string{
		create,
		"GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO " + a,
		"GRANT SELECT ON mysql.global_priv TO " + a,
		"GRANT SELECT ON mysql.roles_mapping TO " + a,
		"GRANT SELECT ON mysql.db TO " + a,
		"GRANT SELECT ON mysql.tables_priv TO " + a,
		"GRANT SELECT ON mysql.columns_priv TO " + a,
	}
	var seen []string
	for _, d := range databases {
		if !slices.Contains(seen, d) {
			seen = append(seen, d)
			stmts = append(stmts, "GRANT ALL PRIVILEGES ON "+onDB(d)+" TO "+a+" WITH GRANT OPTION")
		}
	}
	for _, r := range slices.Compact(slices.Sorted(slices.Values(roles))) {
		stmts = append(stmts, "GRANT "+QuoteString(r)+" TO "+a+" WITH ADMIN OPTION")
	}
	return append(stmts,
		"CREATE DATABASE IF NOT EXISTS "+QuoteIdent(DefaultEventSchema),
		"GRANT EVENT ON "+onDB(DefaultEventSchema)+" TO "+a,
		"CREATE ROLE IF NOT EXISTS "+QuoteString(ManagedRoleName(admin))+" WITH ADMIN "+a)
}

// ManagedRoleName returns the default bookkeeping role of the installation whose admin user is
// admin: admin + "_managed", the admin part cut to fit 32 bytes (MySQL's limit for role
// names). Each admin thus has its own, so two installations sharing a server never take each
// other's logins for orphans.
func ManagedRoleName(admin string) string {
	const suffix = "_managed"
	if len(admin) > maxUserLen-len(suffix) {
		admin = strings.ToValidUTF8(admin[:maxUserLen-len(suffix)], "")
	}
	return strings.TrimRight(admin, " ") + suffix
}

// ensureManagedRole creates the bookkeeping role when it does not exist yet. On MariaDB its
// creator, the admin, holds it WITH ADMIN OPTION; on MySQL the admin also needs ROLE_ADMIN
// or SetupStatements' grant. It runs once per engine; a failure is repeated on the next call.
func (e *Engine) ensureManagedRole(ctx context.Context, db *sql.DB) error {
	e.mu.Lock()
	done := e.managed
	e.mu.Unlock()
	if done {
		return nil
	}
	if err := e.exec(ctx, db, "CREATE ROLE IF NOT EXISTS "+QuoteString(e.ManagedRole)); err != nil {
		return err
	}
	e.mu.Lock()
	e.managed = true
	e.mu.Unlock()
	return nil
}
