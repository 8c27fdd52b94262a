package postgres

import (
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// An admin URL cannot choose its own search_path, whichever way it spells it; and a
// search_path set on the admin role or the database does not reach the engine's sessions.
func TestSearchPathPinned(t *testing.T) {
	for _, q := range []string{"search_path=public", "Search_Path=public", "options=-c%20search_path%3Dpublic",
		"options=--search-path%3Dpublic", "options=-c%20SEARCH_PATH%3D%22%24user%22"} {
		_, err := New("pg", "postgres://timebox@127.0.0.1:1/postgres?"+q, "pw", 0)
		wantCode(t, err, timebox.EINVALID, q)
		if err != nil && !strings.Contains(err.Error(), "search_path") {
			t.Errorf("%s: %v does not name search_path", q, err)
		}
	}
	f := newFixture(t, testdb.RequirePostgres(t), names{"pin_", "pother_", "preader_"})
	mustExec(t, f.pg, "postgres", "ALTER ROLE "+QuoteIdent(f.admin)+" SET search_path = public")
	mustExec(t, f.pg, "postgres", "ALTER DATABASE "+QuoteIdent(f.db)+" SET search_path = public")
	for _, db := range []string{f.eng.adminDB, f.db} {
		pool, err := f.eng.pool(db)
		if err != nil {
			t.Fatal(err)
		}
		var sp string
		if err := pool.QueryRow(t.Context(), "SHOW search_path").Scan(&sp); err != nil {
			t.Fatal(err)
		}
		if sp != adminSearchPath {
			t.Errorf("database %s: search_path = %q, want %q", db, sp, adminSearchPath)
		}
	}
}

// ownedByLogin grants p (with the ddl role) and has its login create a function and a table
// with a row.
func ownedByLogin(t *testing.T, f *fixture, p timebox.GrantPlan) {
	t.Helper()
	if err := f.eng.Grant(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	conn, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(t.Context(), `CREATE TABLE public.made (v text); INSERT INTO public.made VALUES ('row');
		CREATE FUNCTION public.made_fn() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'`)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
}

// A database's owner role receives what a removed login made there, though it lacks CREATE
// on the schema (it holds the login's roles inside the removal's transaction only); an owner
// role that can log in or create roles is refused by the engine and flagged by doctor, and
// the removal goes through once it is fixed.
func TestOwnerRole(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"own_", "oother_", "oreader_"})
	ctx := t.Context()
	owner := "app_owner_" + suffix()
	mustExec(t, f.pg, "postgres", "CREATE ROLE "+QuoteIdent(owner)+" LOGIN CREATEROLE")
	f.eng.OwnerRoles = map[string]string{f.db: owner}
	p := f.plan("tbx_o")
	p.Roles = []string{f.ddl}
	ownedByLogin(t, f, p)
	_, err := f.eng.Revoke(ctx, p)
	wantCode(t, err, timebox.EINVALID, "removal handing to a role with LOGIN and CREATEROLE")
	if err == nil || !strings.Contains(err.Error(), "can log in, has CREATEROLE") || !strings.Contains(err.Error(), owner) {
		t.Errorf("refusal = %v, want it to name %s and what is wrong", err, owner)
	}
	var canLogin bool
	if err := superQueryRow(t, f.pg, "postgres", "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", []any{p.Principal}, &canLogin); err != nil || canLogin {
		t.Errorf("the refused removal left the login able to log in (%v, %v)", canLogin, err)
	}
	_, findings, err := f.eng.Doctor(ctx, []string{f.db}, []string{f.ddl})
	if err != nil {
		t.Fatal(err)
	}
	flagged := false
	for _, fd := range findings {
		flagged = flagged || fd.Severity == SeverityFail && strings.Contains(fd.Message, "owner role "+QuoteIdent(owner)+" can log in, has CREATEROLE") &&
			strings.Contains(fd.Fix, "NOLOGIN") && strings.Contains(fd.Fix, "NOCREATEROLE")
	}
	if !flagged {
		t.Errorf("doctor does not flag the owner role: %+v", findings)
	}
	mustExec(t, f.pg, "postgres", "ALTER ROLE "+QuoteIdent(owner)+" NOLOGIN NOCREATEROLE")
	res, err := f.eng.Revoke(ctx, p)
	if err != nil || !res.Dropped || res.HandedTo != owner || len(res.Handed) != 2 {
		t.Fatalf("removal = %+v, %v; want dropped, two objects handed to %s", res, err, owner)
	}
	var fnOwner, tableOwner, row string
	var memberships int
	var definer, ownerReads bool
	err = superQueryRow(t, f.pg, f.db, `SELECT (SELECT proowner::regrole::text FROM pg_proc WHERE proname = 'made_fn'),
		(SELECT prosecdef FROM pg_proc WHERE proname = 'made_fn'),
		(SELECT tableowner FROM pg_tables WHERE tablename = 'made'), (SELECT v FROM public.made),
		has_table_privilege($1, 'public.made', 'SELECT'),
		(SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1)`, []any{owner},
		&fnOwner, &definer, &tableOwner, &row, &ownerReads, &memberships)
	if err != nil {
		t.Fatal(err)
	}
	if fnOwner != owner || tableOwner != owner || row != "row" || memberships != 0 {
		t.Errorf("function owner %q, table owner %q, row %q, %d memberships of the owner role; want %s, %s, row, 0", fnOwner, tableOwner, row, memberships, owner, owner)
	}
	// The owner role may own the application's tables: the requester's SECURITY DEFINER
	// function must not run with its rights, while the table stays usable by its new owner.
	if definer || !ownerReads {
		t.Errorf("after the hand-over to the owner role: SECURITY DEFINER %v (want false), owner reads the table %v (want true)", definer, ownerReads)
	}
}

// The engine never hands anything to one of Timebox's own roles or a predefined role.
func TestOwnerRoleNames(t *testing.T) {
	e, err := New("pg", "postgres://timebox@127.0.0.1:1/postgres", "pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"timebox", "timebox_managed", "timebox_quarantine", e.connectRole("shop"), "pg_read_all_data", ""} {
		wantCode(t, e.CheckOwnerRoleName(r), timebox.EINVALID, "owner role "+r)
	}
	if err := e.CheckOwnerRoleName("app_owner"); err != nil {
		t.Errorf("app_owner: %v", err)
	}
}

// A quarantine role someone gave a membership is refused until the membership is revoked.
func TestQuarantineWithMembership(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"qm_", "qmother_", "qmreader_"})
	q := QuoteIdent(f.eng.QuarantineRole)
	mustExec(t, f.pg, "postgres", "CREATE ROLE "+q+" NOLOGIN; GRANT "+QuoteIdent(f.reader)+" TO "+q)
	p := f.plan("tbx_q")
	p.Roles = []string{f.ddl}
	ownedByLogin(t, f, p)
	_, err := f.eng.Revoke(t.Context(), p)
	if timebox.ErrorCode(err) != timebox.EINVALID || !strings.Contains(err.Error(), "is a member of "+f.reader) {
		t.Errorf("removal to a quarantine role with a membership = %v", err)
	}
	mustExec(t, f.pg, "postgres", "REVOKE "+QuoteIdent(f.reader)+" FROM "+q)
	if res, err := f.eng.Revoke(t.Context(), p); err != nil || res.HandedTo != f.eng.QuarantineRole {
		t.Errorf("removal after the fix = %+v, %v", res, err)
	}
}

// doctor warns where PUBLIC may create large objects and prints the fix; once it ran, a
// read-only login can no longer store data as large objects and doctor says so.
func TestDoctorLargeObjects(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"lo_", "loother_", "loreader_"})
	ctx := t.Context()
	finding := func() timebox.Finding {
		t.Helper()
		_, findings, err := f.eng.Doctor(ctx, []string{f.db}, []string{f.reader})
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range findings {
			if strings.Contains(fd.Message, "large objects") {
				return fd
			}
		}
		t.Fatalf("no large-object finding: %+v", findings)
		return timebox.Finding{}
	}
	fd := finding()
	if fd.Severity != SeverityWarn || !strings.Contains(fd.Fix, "REVOKE EXECUTE ON FUNCTION pg_catalog.lo_creat(integer), pg_catalog.lo_create(oid), pg_catalog.lo_from_bytea(oid,bytea) FROM PUBLIC;") {
		t.Fatalf("finding = %+v", fd)
	}
	mustExec(t, f.pg, f.db, fd.Fix)
	if fd := finding(); fd.Severity != SeverityOK {
		t.Errorf("after the fix: %+v", fd)
	}
	p := f.plan("tbx_lo")
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatal(err)
	}
	conn, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "SELECT lo_from_bytea(0, 'stored')")
	wantSQLState(t, err, "42501", "a read-only login creating a large object after the fix")
}
