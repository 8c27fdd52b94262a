package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/timebox-dev/timebox"
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
// Ad-hoc table requests need more, in each database itself: see TableSetupStatements.
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

// TableSetupStatements returns the optional statements that let the admin hand out ad-hoc
// table grants (GrantPlan.Tables) in one managed database: USAGE on each of schemas (default
// public) and SELECT, INSERT, UPDATE and DELETE on all their existing tables, WITH GRANT
// OPTION. Only databases where ad-hoc requests are allowed need them. Unlike SetupStatements
// they must run in that database (privileges on schemas and tables are per database), as a
// superuser or the tables' owner; tables created later need them again, or an ALTER DEFAULT
// PRIVILEGES by their owner.
func TableSetupStatements(admin string, schemas []string) []string {
	if len(schemas) == 0 {
		schemas = []string{defaultSchema}
	}
	a := QuoteIdent(admin)
	var stmts []string
	for _, s := range slices.Compact(slices.Sorted(slices.Values(schemas))) {
		stmts = append(stmts,
			"GRANT USAGE ON SCHEMA "+QuoteIdent(s)+" TO "+a+" WITH GRANT OPTION",
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+QuoteIdent(s)+" TO "+a+" WITH GRANT OPTION")
	}
	return stmts
}

// passwordLiteral returns the literal to put after PASSWORD: the password's SCRAM-SHA-256
// verifier, or the quoted plaintext when PostgreSQL must normalise it itself (non-ASCII).
func passwordLiteral(password string) string {
	if timebox.CheckPassword(password) == nil {
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

// connectComment marks the roles that carry CONNECT on one database for the logins.
const connectComment = "timebox: members may connect to database "

// connectPrefix is the start of the names of the installation's connect roles.
func (e *Engine) connectPrefix() string {
	admin := strings.TrimSuffix(e.ManagedRole, "_managed")
	const suffix = "_connect_"
	if len(admin) > 63-len(suffix)-16 {
		admin = strings.ToValidUTF8(admin[:63-len(suffix)-16], "")
	}
	return admin + suffix
}

// connectRole returns the name of the role that holds CONNECT on database db for the logins
// of this installation: the connect prefix and a hash of the database's name.
func (e *Engine) connectRole(db string) string {
	h := sha256.Sum256([]byte(db))
	return e.connectPrefix() + hex.EncodeToString(h[:8])
}

// ensureRoles creates, when missing, the bookkeeping role and the connect role of database
// db, which holds CONNECT on it: a login gets CONNECT by membership, so activating or removing
// one never rewrites the database's access list (a row every login would otherwise update:
// PostgreSQL fails concurrent updates of it with "tuple concurrently updated", and thousands
// of them bloat pg_database). The admin's CREATEROLE and CONNECT WITH GRANT OPTION suffice;
// on PostgreSQL 16 the creator holds what it creates WITH ADMIN OPTION. Each is looked up once
// per engine (the bookkeeping role along with the first database); a failed look is repeated
// on the next call.
func (e *Engine) ensureRoles(ctx context.Context, pool *pgxpool.Pool, db string) error {
	e.mu.Lock()
	done, first := e.connect[db], len(e.connect) == 0
	e.mu.Unlock()
	if done {
		return nil
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	create := func(role, comment string) error {
		var exists bool
		if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil || exists {
			return err
		}
		r := QuoteIdent(role)
		_, err := pool.Exec(ctx, "CREATE ROLE "+r+" NOLOGIN;\nCOMMENT ON ROLE "+r+" IS "+QuoteLiteral(comment))
		if code := sqlState(err); err != nil && code != "42710" && code != "23505" { // created meanwhile
			return err
		}
		return nil
	}
	if first {
		if err := create(e.ManagedRole, managedComment); err != nil {
			return err
		}
	}
	c := e.connectRole(db)
	if err := create(c, connectComment+db); err != nil {
		return err
	}
	// Granted every time the role is first looked at, in case it was made but the grant
	// failed: a no-op when it holds CONNECT already.
	defer e.lockDatabase(db)()
	err := retryConcurrent(ctx, func() error {
		_, err := pool.Exec(ctx, "GRANT CONNECT ON DATABASE "+QuoteIdent(db)+" TO "+QuoteIdent(c))
		return err
	})
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.connect[db] = true
	e.mu.Unlock()
	return nil
}
