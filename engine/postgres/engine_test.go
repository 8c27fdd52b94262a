package postgres

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// nasty are names with quotes, spaces, semicolons, backslashes and non-ASCII characters.
var nasty = names{
	db:     `shop "eu"; DROP DATABASE x; -- ü\ `,
	other:  `other 'o' `,
	reader: `ro 'r' "q"; \ é `,
}

const nastyPrincipal = `tbx "p"; DROP ROLE x; -- ü `

func TestGrantRevokeLifecycle(t *testing.T) {
	pg := testdb.RequirePostgres(t)
	for _, tc := range []struct {
		name      string
		n         names
		principal string
	}{
		{"plain", names{"shop_", "other_", "reader_"}, "tbx_"},
		{"nasty", nasty, nastyPrincipal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, pg, tc.n)
			testLifecycle(t, f, f.plan(tc.principal))
		})
	}
}

func testLifecycle(t *testing.T, f *fixture, p timebox.GrantPlan) {
	ctx := t.Context()
	start := time.Now()
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatalf("grant: %v", err)
	}
	t.Logf("first grant (connects the pool): %v", time.Since(start))

	conn, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatalf("login after grant: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil || n != 1 {
		t.Errorf("select as principal: n=%d err=%v", n, err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO items VALUES (2)")
	wantSQLState(t, err, "42501", "insert as read-only principal")
	_, err = connect(t, f.pg, p.Principal, p.Password, "postgres")
	wantSQLState(t, err, "42501", "connect to postgres")
	_, err = connect(t, f.pg, p.Principal, p.Password, f.other)
	wantSQLState(t, err, "42501", "connect to another hardened database")
	_, err = connect(t, f.pg, p.Principal, p.Password+"x", f.db)
	wantSQLState(t, err, "28P01", "wrong password")

	wantValidUntil(t, f.pg, p.Principal, p.ValidUntil, "rolvaliduntil")
	// Marked by membership in the bookkeeping role; the admin is not a member of the login
	// while it lives (that would make PostgreSQL's privilege checks O(live logins)).
	var marked, adminMember bool
	if err := superQueryRow(t, f.pg, "postgres", `SELECT pg_has_role($1, $2, 'MEMBER'), pg_has_role($3, $1, 'MEMBER')`,
		[]any{p.Principal, ManagedRoleName(f.admin), f.admin}, &marked, &adminMember); err != nil {
		t.Fatal(err)
	}
	if !marked || adminMember {
		t.Errorf("member of the bookkeeping role = %v (want true), admin member of the login = %v (want false)", marked, adminMember)
	}

	// Grant again, unchanged: converges. Then with a new password and a new end.
	start = time.Now()
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatalf("second grant: %v", err)
	}
	t.Logf("grant again (warm pool): %v", time.Since(start))
	old := p.Password
	p.Password = "new-" + p.Password
	p.ValidUntil = p.ValidUntil.Add(time.Minute)
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatalf("grant with a new password: %v", err)
	}
	_, err = connect(t, f.pg, p.Principal, old, f.db)
	wantSQLState(t, err, "28P01", "old password after change")
	if _, err := connect(t, f.pg, p.Principal, p.Password, f.db); err != nil {
		t.Errorf("new password after change: %v", err)
	}
	wantValidUntil(t, f.pg, p.Principal, p.ValidUntil, "rolvaliduntil after second grant")

	// Revoke with a session open in the middle of a query stream.
	session, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	res, err := f.eng.Revoke(ctx, p)
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	t.Logf("revoke with 3 open sessions: %v (%+v)", time.Since(start), res)
	if !res.Dropped || res.SessionsEnded < 1 {
		t.Errorf("revoke result = %+v, want dropped with sessions ended", res)
	}
	if err := session.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err == nil {
		t.Error("a session opened before the revoke can still query")
	}
	if roleExists(t, f.pg, p.Principal) {
		t.Error("role still exists after revoke")
	}
	_, err = connect(t, f.pg, p.Principal, p.Password, f.db)
	wantSQLState(t, err, "28P01", "login after revoke")

	start = time.Now()
	res, err = f.eng.Revoke(ctx, p)
	if err != nil || !res.Dropped || res.SessionsEnded != 0 {
		t.Errorf("second revoke = %+v, %v", res, err)
	}
	t.Logf("revoke of a dropped role: %v", time.Since(start))
}

func TestRevokeNeverCreated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	res, err := f.eng.Revoke(t.Context(), f.plan("tbx_never_"))
	if err != nil || !res.Dropped || res.SessionsEnded != 0 {
		t.Errorf("revoke of a never-created role = %+v, %v", res, err)
	}
}

// TestRevokeOwner revokes a role that created a table through an access role with CREATE on
// the schema: the table goes to the admin and the role is dropped.
func TestRevokeOwner(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), nasty)
	p := f.plan(nastyPrincipal)
	p.Roles = []string{f.reader, f.ddl}
	ctx := t.Context()
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatal(err)
	}
	conn, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE "mine ""x""" (v text); INSERT INTO "mine ""x""" VALUES ('kept')`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := f.eng.Revoke(ctx, p)
	if err != nil || !res.Dropped || res.SessionsEnded != 1 {
		t.Fatalf("revoke of an owner = %+v, %v", res, err)
	}
	t.Logf("revoke of a table owner with one session: %v", time.Since(start))
	var owner, v string
	if err := superQueryRow(t, f.pg, f.db, `SELECT tableowner, (SELECT v FROM "mine ""x""") FROM pg_tables WHERE tablename = 'mine "x"'`, nil, &owner, &v); err != nil {
		t.Fatal(err)
	}
	if q := f.eng.QuarantineRole; owner != q || v != "kept" {
		t.Errorf("table owner = %q, row = %q; want %q and the row kept", owner, v, q)
	}
	want := []timebox.OwnedObject{{Kind: "table", Schema: "public", Name: `"mine ""x"""`, Database: f.db}}
	if res.HandedTo != f.eng.QuarantineRole || !slices.Equal(res.Handed, want) {
		t.Errorf("handed to %q: %+v; want %q: %+v", res.HandedTo, res.Handed, f.eng.QuarantineRole, want)
	}
	if roleExists(t, f.pg, p.Principal) {
		t.Error("role still exists")
	}
}

// TestRevokeForeignPrivilege: a privilege granted to the principal directly by someone the
// admin cannot act for (here the database owner) survives DROP OWNED run by the non-superuser
// admin, so the role is kept disabled, with a detail naming the privilege.
func TestRevokeForeignPrivilege(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	p := f.plan("tbx_")
	ctx := t.Context()
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.pg, f.db, "GRANT CREATE ON SCHEMA public TO "+QuoteIdent(p.Principal))
	res, err := f.eng.Revoke(ctx, p)
	if err != nil || res.Dropped || !strings.Contains(res.Detail, "privileges for schema public") {
		t.Fatalf("revoke = %+v, %v; want kept, naming the schema privilege", res, err)
	}
	t.Logf("detail: %s", res.Detail)
	mustExec(t, f.pg, f.db, "REVOKE CREATE ON SCHEMA public FROM "+QuoteIdent(p.Principal))
	if res, err := f.eng.Revoke(ctx, p); err != nil || !res.Dropped {
		t.Errorf("revoke after unblocking = %+v, %v", res, err)
	}
}

func TestRevokeBlocked(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	p := f.plan("tbx_blocked_")
	ctx := t.Context()
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatal(err)
	}
	// The role owns a table in a database the admin cannot connect to.
	elsewhere := "elsewhere_" + suffix()
	if err := f.pg.CreateDatabase(ctx, elsewhere); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.pg, "postgres", "REVOKE CONNECT ON DATABASE "+QuoteIdent(elsewhere)+" FROM PUBLIC")
	mustExec(t, f.pg, elsewhere, "CREATE TABLE t (x int); ALTER TABLE t OWNER TO "+QuoteIdent(p.Principal))

	res, err := f.eng.Revoke(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped || !strings.Contains(res.Detail, elsewhere) {
		t.Errorf("blocked revoke = %+v, want kept with a detail naming %s", res, elsewhere)
	}
	t.Logf("detail: %s", res.Detail)
	var canLogin, hasPassword bool
	var memberships int
	if err := superQueryRow(t, f.pg, "postgres", `SELECT rolcanlogin, rolpassword IS NOT NULL,
		(SELECT count(*) FROM pg_auth_members WHERE member = a.oid AND roleid <> $2::regrole) FROM pg_authid a WHERE rolname = $1`,
		[]any{p.Principal, QuoteIdent(ManagedRoleName(f.admin))}, &canLogin, &hasPassword, &memberships); err != nil {
		t.Fatal(err)
	}
	if canLogin || hasPassword || memberships != 0 {
		t.Errorf("kept role: login=%v password=%v memberships=%d", canLogin, hasPassword, memberships)
	}
	_, err = connect(t, f.pg, p.Principal, p.Password, f.db)
	wantSQLState(t, err, "28P01", "login to a kept role")

	// Once the blocker is gone, revoking again finishes the job.
	mustExec(t, f.pg, elsewhere, "DROP TABLE t")
	if res, err := f.eng.Revoke(ctx, p); err != nil || !res.Dropped {
		t.Errorf("revoke after unblocking = %+v, %v", res, err)
	}
}

func TestRefusesForeignRoles(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	p := f.plan("unused_")
	p.Principal = f.reader // exists, but not created by timebox
	p.Roles = nil
	err := f.eng.Grant(t.Context(), p)
	wantCode(t, err, timebox.EINVALID, "grant to a foreign role")
	_, err = f.eng.Revoke(t.Context(), p)
	wantCode(t, err, timebox.EINVALID, "revoke of a foreign role")
	if !roleExists(t, f.pg, f.reader) {
		t.Error("foreign role was dropped")
	}
}

func TestGrantInvalid(t *testing.T) {
	t.Parallel()
	eng, err := New("pg-test", "postgres://timebox@127.0.0.1:1/postgres", "pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	good := timebox.GrantPlan{Principal: "tbx_a", Password: "pw", Database: "db", ValidUntil: time.Now().Add(time.Hour)}
	for name, mutate := range map[string]func(*timebox.GrantPlan){
		"empty principal": func(p *timebox.GrantPlan) { p.Principal = "" },
		"NUL in database": func(p *timebox.GrantPlan) { p.Database = "a\x00b" },
		"long role":       func(p *timebox.GrantPlan) { p.Roles = []string{strings.Repeat("r", 64)} },
		"empty password":  func(p *timebox.GrantPlan) { p.Password = "" },
		"zero end":        func(p *timebox.GrantPlan) { p.ValidUntil = time.Time{} },
	} {
		p := good
		mutate(&p)
		wantCode(t, eng.Grant(t.Context(), p), timebox.EINVALID, name)
	}
	_, err = New("pg-test", "postgres://timebox:secret@127.0.0.1/postgres", "pw", 0)
	wantCode(t, err, timebox.EINVALID, "URL with a password")
	_, err = New("pg-test", "postgres://%zz", "pw", 0)
	wantCode(t, err, timebox.EINVALID, "unparsable URL")
	if err != nil && !strings.Contains(err.Error(), "pg-test") {
		t.Errorf("error %q does not name the server", err)
	}
}

func TestGrantErrorHidesPassword(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	p := f.plan("tbx_err_")
	p.Password = "Hunter2-" + p.Password
	p.Database = "no_" + p.Password // the server's message quotes the database name
	err := f.eng.Grant(t.Context(), p)
	wantCode(t, err, timebox.EINTERNAL, "grant on a missing database")
	msg := err.Error()
	if strings.Contains(msg, p.Password) || strings.Contains(msg, "SCRAM-SHA-256$") || !strings.Contains(msg, "3D000") {
		t.Errorf("error message leaks a secret or lacks the SQLSTATE: %s", msg)
	}
	if roleExists(t, f.pg, p.Principal) {
		t.Error("a failed grant left its role behind (not one transaction)")
	}
}

func TestScrub(t *testing.T) {
	e := &Engine{name: "s"}
	for _, err := range []error{
		&pgconn.PgError{Code: "42601", Message: `syntax error at or near "Sekret-123"`},
		&pgconn.PgError{Code: "28P01", Message: `password authentication failed: Sekret-123`},
		errors.New("dial: Sekret-123: connection refused"),
	} {
		got := e.wrap(err, []string{"Sekret-123"})
		if strings.Contains(got.Error(), "Sekret-123") {
			t.Errorf("wrap(%v) = %q leaks the secret", err, got)
		}
	}
}
