package postgres

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// awkward are identifiers and literals that break naive quoting.
var awkward = []string{
	`"; DROP ROLE x; --`, `a"b`, `"`, `""`, `with space`, `semi;colon`, `back\slash`, `\`,
	`'single'`, `$$dollar$$`, `-- comment`, `/* c */`, `Upper`, `ünïcödé 名前`, "tab\tand\nnewline",
	strings.Repeat("x", 63),
}

// TestQuoteIdentRealDatabase creates a role per awkward name and finds it by that exact name.
func TestQuoteIdentRealDatabase(t *testing.T) {
	t.Parallel()
	pg := testdb.RequirePostgres(t)
	for i, name := range awkward {
		name := name
		if len(name) < 60 {
			name += fmt.Sprint(i) + suffix()[:2]
		}
		mustExec(t, pg, "postgres", "CREATE ROLE "+QuoteIdent(name))
		if !roleExists(t, pg, name) {
			t.Errorf("CREATE ROLE %s did not create a role named %q", QuoteIdent(name), name)
		}
		mustExec(t, pg, "postgres", "DROP ROLE "+QuoteIdent(name))
	}
}

// TestQuoteLiteralRealDatabase reads every awkward literal back through the server, with
// standard_conforming_strings on and off.
func TestQuoteLiteralRealDatabase(t *testing.T) {
	t.Parallel()
	pg := testdb.RequirePostgres(t)
	conn, err := connect(t, pg, pg.SuperUser, pg.SuperPassword, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	for _, scs := range []string{"on", "off"} {
		if _, err := conn.Exec(t.Context(), "SET standard_conforming_strings = "+scs); err != nil {
			t.Fatal(err)
		}
		for _, s := range append(awkward, "it's", `\'`, `'\`, `\\'\`) {
			var got string
			if err := conn.QueryRow(t.Context(), "SELECT "+QuoteLiteral(s)).Scan(&got); err != nil || got != s {
				t.Errorf("standard_conforming_strings=%s: SELECT %s = %q, %v; want %q", scs, QuoteLiteral(s), got, err, s)
			}
		}
	}
}

// TestVerifierMatchesPostgres compares our verifier with the one PostgreSQL computes itself
// for the same password and salt.
func TestVerifierMatchesPostgres(t *testing.T) {
	t.Parallel()
	pg := testdb.RequirePostgres(t)
	name, password := "tbx_verifier_"+suffix(), `p@ss w0rd'"\;`
	mustExec(t, pg, "postgres", "CREATE ROLE "+QuoteIdent(name)+" PASSWORD "+QuoteLiteral(password))
	defer mustExec(t, pg, "postgres", "DROP ROLE "+QuoteIdent(name))
	var stored string
	if err := superQueryRow(t, pg, "postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = $1", []any{name}, &stored); err != nil {
		t.Fatal(err)
	}
	var iter int
	var salt64, rest string
	if _, err := fmt.Sscanf(strings.NewReplacer("$", " ", ":", " ").Replace(stored), "SCRAM-SHA-256 %d %s %s", &iter, &salt64, &rest); err != nil {
		t.Fatalf("parse %q: %v", stored, err)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		t.Fatal(err)
	}
	v, err := computeVerifier(password, salt, iter)
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != stored {
		t.Errorf("verifier = %s, PostgreSQL stored %s", v, stored)
	}
}

// TestGrantConverges checks that a second Grant with fewer roles removes the extra membership.
func TestGrantConverges(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	p := f.plan("tbx_")
	p.Roles = []string{f.reader, f.ddl}
	ctx := t.Context()
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Roles = []string{f.reader}
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatal(err)
	}
	var roles []string
	if err := superQueryRow(t, f.pg, "postgres", `SELECT array(SELECT r.rolname FROM pg_auth_members m
		JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = $1) AND r.rolname <> $2
		AND strpos(r.rolname, '_connect_') = 0)`,
		[]any{p.Principal, ManagedRoleName(f.admin)}, &roles); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(roles, []string{f.reader}) {
		t.Errorf("memberships = %q, want only %q", roles, f.reader)
	}
	if err := f.eng.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
	if _, err := f.eng.Revoke(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentSameDatabase grants and revokes many principals on one database at once, from
// two engines (two Timebox replicas), which makes PostgreSQL race on the database's access list.
func TestConcurrentSameDatabase(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	eng2, err := New("pg-test", adminURL(f.pg, f.admin), f.password, 4) // a second engine as the same admin
	if err != nil {
		t.Fatal(err)
	}
	defer eng2.Close()
	engines := []*Engine{f.eng, eng2}
	plans := make([]timebox.GrantPlan, 24)
	for i := range plans {
		plans[i] = f.plan(fmt.Sprintf("tbx_c%d_", i))
	}
	run := func(what string, op func(*Engine, timebox.GrantPlan) error) {
		start := time.Now()
		var wg sync.WaitGroup
		for i, p := range plans {
			wg.Go(func() {
				if err := op(engines[i%2], p); err != nil {
					t.Errorf("%s %s: %v", what, p.Principal, err)
				}
			})
		}
		wg.Wait()
		t.Logf("%d concurrent %s on one database from 2 engines: %v", len(plans), what, time.Since(start))
	}
	ctx := t.Context()
	run("grants", func(e *Engine, p timebox.GrantPlan) error { return e.Grant(ctx, p) })
	run("revokes", func(e *Engine, p timebox.GrantPlan) error {
		res, err := e.Revoke(ctx, p)
		if err == nil && !res.Dropped {
			err = fmt.Errorf("not dropped: %s", res.Detail)
		}
		return err
	})
	var left int
	if err := superQueryRow(t, f.pg, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tbx\\_c%'", nil, &left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d roles left", left)
	}
}

// TestServerDown stops a private cluster: Grant, Revoke and Ping report EUNAVAILABLE, and
// succeed again once it is back.
func TestServerDown(t *testing.T) {
	t.Parallel()
	testdb.RequirePostgres(t) // skips when PostgreSQL is not installed
	pg, err := testdb.StartPostgres(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	f := newFixture(t, pg, names{"shop_", "other_", "reader_"})
	ctx := t.Context()
	granted, later := f.plan("tbx_up_"), f.plan("tbx_later_")
	if err := f.eng.Grant(ctx, granted); err != nil {
		t.Fatal(err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			pg.Start()
		}
	})
	start := time.Now()
	err = f.eng.Grant(ctx, later)
	wantCode(t, err, timebox.EUNAVAILABLE, "grant while down")
	if err != nil && (!strings.Contains(err.Error(), "server pg-test unreachable: ") || strings.Contains(err.Error(), later.Password)) {
		t.Errorf("grant while down: message %q", err)
	}
	t.Logf("grant while down failed in %v: %v", time.Since(start), err)
	_, err = f.eng.Revoke(ctx, granted)
	wantCode(t, err, timebox.EUNAVAILABLE, "revoke while down")
	t.Logf("revoke while down: %v", err)
	wantCode(t, f.eng.Ping(ctx), timebox.EUNAVAILABLE, "ping while down")
	wantCode(t, f.eng.Extend(ctx, granted), timebox.EUNAVAILABLE, "extend while down")

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	stopped = false
	if err := f.eng.Grant(ctx, later); err != nil {
		t.Errorf("grant after restart: %v", err)
	}
	for _, p := range []timebox.GrantPlan{granted, later} {
		if res, err := f.eng.Revoke(ctx, p); err != nil || !res.Dropped {
			t.Errorf("revoke after restart = %+v, %v", res, err)
		}
	}
}

func TestSetupStatements(t *testing.T) {
	got := SetupStatements(`adm"in`, "pw'x", []string{"shop", `we"ird`, "shop"}, []string{"ro"})
	want := []string{
		`GRANT pg_signal_backend TO "adm""in"`,
		`REVOKE CONNECT ON DATABASE postgres FROM PUBLIC`,
		`REVOKE CONNECT ON DATABASE template1 FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE postgres TO "adm""in"`,
		`REVOKE CONNECT ON DATABASE "shop" FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE "shop" TO "adm""in" WITH GRANT OPTION`,
		`REVOKE CONNECT ON DATABASE "we""ird" FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE "we""ird" TO "adm""in" WITH GRANT OPTION`,
		`GRANT "ro" TO "adm""in" WITH ADMIN OPTION`,
		`CREATE ROLE "adm""in_managed" NOLOGIN`,
		`COMMENT ON ROLE "adm""in_managed" IS 'timebox: every ephemeral login this installation created is a member'`,
		`GRANT "adm""in_managed" TO "adm""in" WITH ADMIN OPTION`,
	}
	if !strings.HasPrefix(got[0], `CREATE ROLE "adm""in" WITH LOGIN CREATEROLE PASSWORD 'SCRAM-SHA-256$4096:`) || strings.Contains(got[0], "pw'x") {
		t.Errorf("create statement = %s", got[0])
	}
	if !slices.Equal(got[1:], want) {
		t.Errorf("statements:\n%s\nwant:\n%s", strings.Join(got[1:], "\n"), strings.Join(want, "\n"))
	}
}

func TestManagedRoleName(t *testing.T) {
	long := strings.Repeat("é", 40) // 80 bytes
	for _, admin := range []string{"timebox", long, strings.Repeat("a", 63)} {
		got := ManagedRoleName(admin)
		if len(got) > 63 || !strings.HasSuffix(got, "_managed") || !utf8.ValidString(got) || ValidIdent(got) != nil {
			t.Errorf("ManagedRoleName(%q) = %q", admin, got)
		}
	}
	if got := ManagedRoleName("timebox"); got != "timebox_managed" {
		t.Errorf("ManagedRoleName(timebox) = %q", got)
	}
}

// TestManagedRoleCreated checks that the engine creates a missing bookkeeping role on its
// first grant, and that Managed lists only the logins in it.
func TestManagedRoleCreated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	ctx := t.Context()
	f.eng.ManagedRole = "bk 'x' " + suffix()
	p := f.plan("tbx_")
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatal(err)
	}
	if !roleExists(t, f.pg, f.eng.ManagedRole) {
		t.Fatal("the bookkeeping role was not created")
	}
	found, err := f.eng.Managed(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Name != p.Principal || found[0].Database != f.db || !slices.Equal(found[0].Roles, p.Roles) {
		t.Fatalf("Managed = %+v, want only %s on %s with %v", found, p.Principal, f.db, p.Roles)
	}
	// Another engine with the default bookkeeping role does not see it.
	other, err := New("other", adminURL(f.pg, f.admin), f.password, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if found, err := other.Managed(ctx, nil); err != nil || len(found) != 0 {
		t.Fatalf("another installation's Managed = %+v, %v; want nothing", found, err)
	}
	if _, err := f.eng.Revoke(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// TestPasswordWorks: the planned password logs in, another is refused (false, no error), and
// a login refused for another reason is an error, not a changed password.
func TestPasswordWorks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	ctx := t.Context()
	p := f.plan("tbx_")
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.eng.PasswordWorks(ctx, p); !ok || err != nil {
		t.Fatalf("planned password: %v, %v; want true", ok, err)
	}
	wrong := p
	wrong.Password = "not-" + p.Password
	if ok, err := f.eng.PasswordWorks(ctx, wrong); ok || err != nil {
		t.Fatalf("another password: %v, %v; want false, no error", ok, err)
	}
	mustExec(t, f.pg, "postgres", "ALTER ROLE "+QuoteIdent(p.Principal)+" NOLOGIN")
	if ok, err := f.eng.PasswordWorks(ctx, p); ok || err == nil || strings.Contains(err.Error(), p.Password) {
		t.Fatalf("login disabled: %v, %v; want an error without the password", ok, err)
	}
	if _, err := f.eng.Revoke(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// TestRevokeLegacyConnect: a login made before connect roles, with CONNECT granted directly
// on a database whose connect role does not exist, is still dropped (the blocked drop revokes
// CONNECT, the missing connect role is no error).
func TestRevokeLegacyConnect(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	ctx := t.Context()
	if err := f.eng.Grant(ctx, f.plan("tbx_first_")); err != nil { // creates the bookkeeping role
		t.Fatal(err)
	}
	p := f.plan("tbx_legacy_")
	p.Database = f.other
	who := QuoteIdent(p.Principal)
	mustExec(t, f.pg, "postgres", "SET ROLE "+QuoteIdent(f.admin)+"; CREATE ROLE "+who+" LOGIN; COMMENT ON ROLE "+who+" IS "+
		QuoteLiteral(roleComment)+"; GRANT "+QuoteIdent(ManagedRoleName(f.admin))+" TO "+who+"; GRANT CONNECT ON DATABASE "+QuoteIdent(f.other)+" TO "+who)
	res, err := f.eng.Revoke(ctx, p)
	if err != nil || !res.Dropped {
		t.Fatalf("revoke of a legacy login = %+v, %v; want dropped", res, err)
	}
	if roleExists(t, f.pg, p.Principal) {
		t.Fatal("the legacy login is still there")
	}
}
