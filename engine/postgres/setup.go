package postgres

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SetupStatements returns the one-time hardening a superuser runs on a server before Timebox
// manages it (see DESIGN.md, "Enforcement on the target database"):
//
//   - the admin role, LOGIN CREATEROLE with adminPassword (sent as a SCRAM-SHA-256 verifier
//     when the password is printable ASCII, so the plaintext stays out of the server's logs);
//   - membership in pg_signal_backend, to end the sessions of revoked roles;
//   - CONNECT revoked from PUBLIC on postgres, template1 and every managed database, so that a
//     login for one database opens no other; CONNECT on postgres for the admin itself, and on
//     each managed database WITH GRANT OPTION, to hand it out;
//   - each role an access level hands out, granted to the admin WITH ADMIN OPTION;
//   - the bookkeeping role (ManagedRoleName), NOLOGIN and without privileges, granted to the
//     admin WITH ADMIN OPTION: each ephemeral login is made a member, which is how the
//     reconciler recognises the logins this installation created.
//
// It only builds the statements (every name quoted by QuoteIdent, the password by
// QuoteLiteral); running them is the caller's job. The CREATE ROLE fails if the admin exists.
func SetupStatements(admin, adminPassword string, databases []string, roles []string) []string {
	a := QuoteIdent(admin)
	create := "CREATE ROLE " + a + " WITH LOGIN CREATEROLE"
	if adminPassword != "" {
		create += " PASSWORD " + passwordLiteral(adminPassword)
	}
	stmts := []string{
		create,
		"GRANT pg_signal_backend TO " + a,
		"REVOKE CONNECT ON DATABASE postgres FROM PUBLIC",
		"REVOKE CONNECT ON DATABASE template1 FROM PUBLIC",
		"GRANT CONNECT ON DATABASE postgres TO " + a,
	}
	var seen []string
	for _, d := range databases {
		if slices.Contains(seen, d) {
			continue
		}
		seen = append(seen, d)
		db := QuoteIdent(d)
		stmts = append(stmts,
			"REVOKE CONNECT ON DATABASE "+db+" FROM PUBLIC",
			"GRANT CONNECT ON DATABASE "+db+" TO "+a+" WITH GRANT OPTION")
	}
	for _, r := range roles {
		stmts = append(stmts, "GRANT "+QuoteIdent(r)+" TO "+a+" WITH ADMIN OPTION")
	}
	m := QuoteIdent(ManagedRoleName(admin))
	stmts = append(stmts,
		"CREATE ROLE "+m+" NOLOGIN",
		"COMMENT ON ROLE "+m+" IS "+QuoteLiteral(managedComment),
		"GRANT "+m+" TO "+a+" WITH ADMIN OPTION")
	return stmts
}

// passwordLiteral returns the literal to put after PASSWORD: the password's SCRAM-SHA-256
// verifier, or the quoted plaintext when PostgreSQL must normalise it itself (non-ASCII).
func passwordLiteral(password string) string {
	if validPassword(password) == nil {
		if v, err := newVerifier(password); err == nil {
			return QuoteLiteral(v.String())
		}
	}
	return QuoteLiteral(password)
}

// ManagedRoleName returns the default bookkeeping role of the installation whose admin role
// is admin: admin + "_managed", the admin part cut to fit PostgreSQL's 63-byte names. Each
// admin role thus has its own, so two installations sharing a server never take each
// other's logins for orphans.
func ManagedRoleName(admin string) string {
	const suffix = "_managed"
	if len(admin) > 63-len(suffix) {
		admin = strings.ToValidUTF8(admin[:63-len(suffix)], "")
	}
	return admin + suffix
}

// managedComment marks the bookkeeping role.
const managedComment = "timebox: every ephemeral login this installation created is a member"

// ensureManagedRole creates the bookkeeping role when it does not exist yet (the admin's
// CREATEROLE suffices; on PostgreSQL 16 the creator holds it WITH ADMIN OPTION). It looks
// once per engine; a failed look is repeated on the next call.
func (e *Engine) ensureManagedRole(ctx context.Context, pool *pgxpool.Pool) error {
	e.mu.Lock()
	done := e.managed
	e.mu.Unlock()
	if done {
		return nil
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", e.ManagedRole).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		r := QuoteIdent(e.ManagedRole)
		_, err := pool.Exec(ctx, "CREATE ROLE "+r+" NOLOGIN;\nCOMMENT ON ROLE "+r+" IS "+QuoteLiteral(managedComment))
		if code := sqlState(err); err != nil && code != "42710" && code != "23505" { // created meanwhile
			return err
		}
	}
	e.mu.Lock()
	e.managed = true
	e.mu.Unlock()
	return nil
}
