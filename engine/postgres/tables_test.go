package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// Names of the ad-hoc test tables, with quotes and spaces where it hurts.
const (
	tasksTable  = `tasks "q" x`
	statusCol   = `st "a" tus`
	salesSchema = "sales"
)

// adhocTables creates the ad-hoc test tables in the fixture's database and runs
// TableSetupStatements there for the public and sales schemas.
func adhocTables(t *testing.T, f *fixture) {
	t.Helper()
	mustExec(t, f.pg, f.db, `CREATE TABLE orders (id int, total numeric, secret text);
		INSERT INTO orders VALUES (1, 9.5, 's');
		CREATE TABLE `+QuoteIdent(tasksTable)+` (id int, `+QuoteIdent(statusCol)+` text, note text);
		INSERT INTO `+QuoteIdent(tasksTable)+` VALUES (1, 'new', 'n');
		CREATE TABLE events (id int); INSERT INTO events VALUES (1), (2);
		CREATE SCHEMA `+salesSchema+`; CREATE TABLE `+salesSchema+`.leads (id int); INSERT INTO `+salesSchema+`.leads VALUES (7)`)
	for _, stmt := range TableSetupStatements(f.admin, []string{"public", salesSchema}) {
		mustExec(t, f.pg, f.db, stmt)
	}
}

// recordTables makes the engine record the statements of its ad-hoc table grants.
func recordTables(e *Engine) (take func() []string) {
	var mu sync.Mutex
	var got []string
	e.tableHook = func(sql string) {
		mu.Lock()
		got = append(got, sql)
		mu.Unlock()
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := got
		got = nil
		return out
	}
}

// wantQuery runs sql on conn and fails unless it succeeds (code "") or fails with SQLSTATE code.
func wantQuery(t *testing.T, conn *pgx.Conn, sql, code string) {
	t.Helper()
	_, err := conn.Exec(t.Context(), sql)
	if code == "" && err != nil {
		t.Errorf("%s: %v", sql, err)
	} else if code != "" {
		wantSQLState(t, err, code, sql)
	}
}

// wantQueries runs each statement of want on conn and fails unless it succeeds (code "") or
// fails with the SQLSTATE given.
func wantQueries(t *testing.T, conn *pgx.Conn, want map[string]string) {
	t.Helper()
	for sql, code := range want {
		wantQuery(t, conn, sql, code)
	}
}

// adhocPlan returns a plan granting columns of orders, one column of the tasks table, DELETE
// on events and a table of the sales schema, and no role.
func adhocPlan(f *fixture) timebox.GrantPlan {
	p := f.plan("tbx_adhoc_")
	p.Roles = nil
	p.Tables = []timebox.TableGrant{
		{Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"id", "total"}},
		{Table: tasksTable, Operations: []string{"UPDATE"}, Columns: []string{statusCol}},
		{Table: "events", Operations: []string{"SELECT", "DELETE"}},
		{Schema: salesSchema, Table: "leads", Operations: []string{"SELECT"}},
	}
	return p
}

// TestTableGrants grants columns and tables ad hoc and checks on the real server what the
// login can and cannot do, that Grant runs exactly the table statements PlanStatements
// shows, that a re-run changes nothing, that narrower plans converge, and that Revoke
// leaves no privilege behind.
func TestTableGrants(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	adhocTables(t, f)
	ctx := t.Context()
	executed := recordTables(f.eng)
	p := adhocPlan(f)
	planned, _, err := f.eng.PlanStatements(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatalf("grant: %v", err)
	}
	who := QuoteIdent(p.Principal)
	ran := executed()
	// PUBLIC may use public, so only sales needs USAGE; then the four GRANTs, as planned.
	if want := append([]string{usageSQL(who, salesSchema)}, planned[len(planned)-4:]...); !slices.Equal(ran, want) {
		t.Errorf("grant ran:\n%s\nwant (from PlanStatements):\n%s", strings.Join(ran, "\n"), strings.Join(want, "\n"))
	}
	usage, _, _ := strings.Cut(planned[len(planned)-5], " -- only if")
	if usage != usageSQL(who, salesSchema) {
		t.Errorf("planned USAGE statement = %q", planned[len(planned)-5])
	}
	checkWide(t, f, p)

	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatalf("grant again: %v", err)
	}
	if ran := executed(); len(ran) != 0 {
		t.Errorf("grant of an unchanged plan ran %q, want nothing", ran)
	}
	testNarrower(t, f, p, executed)
	testRevokeTables(t, f, p)
}

// checkWide checks what the login of adhocPlan can do.
func checkWide(t *testing.T, f *fixture, p timebox.GrantPlan) {
	t.Helper()
	conn, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatal(err)
	}
	var id int
	var total float64
	if err := conn.QueryRow(t.Context(), "SELECT id, total::float8 FROM orders").Scan(&id, &total); err != nil || id != 1 || total != 9.5 {
		t.Errorf("SELECT id, total FROM orders = %d, %v, %v", id, total, err)
	}
	tasks := QuoteIdent(tasksTable)
	wantQueries(t, conn, map[string]string{
		"SELECT secret FROM orders":          "42501",
		"SELECT * FROM orders":               "42501",
		"INSERT INTO orders (id) VALUES (2)": "42501",
		"DELETE FROM orders":                 "42501",
		"SELECT id FROM items":               "42501",
		"UPDATE " + tasks + " SET " + QuoteIdent(statusCol) + " = 'done'": "",
		"UPDATE " + tasks + " SET note = 'x'":                             "42501",
		"SELECT id FROM " + tasks:                                         "42501",
		"SELECT id FROM " + salesSchema + ".leads":                        "",
		"DELETE FROM events WHERE id = 2":                                 "",
	})
}

// testNarrower grants p with fewer tables and columns, then without tables, and checks that
// the privileges left out are gone.
func testNarrower(t *testing.T, f *fixture, p timebox.GrantPlan, executed func() []string) {
	t.Helper()
	ctx := t.Context()
	narrow := p
	narrow.Tables = []timebox.TableGrant{{Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"id"}}}
	if err := f.eng.Grant(ctx, narrow); err != nil {
		t.Fatalf("narrower grant: %v", err)
	}
	t.Logf("narrower grant ran:\n%s", strings.Join(executed(), "\n"))
	conn, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatal(err)
	}
	wantQueries(t, conn, map[string]string{
		"SELECT id FROM orders":                                "",
		"SELECT total FROM orders":                             "42501",
		"UPDATE " + QuoteIdent(tasksTable) + " SET note = 'x'": "42501",
		"SELECT id FROM events":                                "42501",
		"SELECT id FROM " + salesSchema + ".leads":             "42501",
	})
	var usage bool
	if err := superQueryRow(t, f.pg, f.db, "SELECT has_schema_privilege($1, $2, 'USAGE')", []any{p.Principal, salesSchema}, &usage); err != nil || usage {
		t.Errorf("USAGE on schema %s after the narrower grant: %v, %v", salesSchema, usage, err)
	}
	none := p
	none.Tables = nil
	if err := f.eng.Grant(ctx, none); err != nil {
		t.Fatalf("grant without tables: %v", err)
	}
	wantQuery(t, conn, "SELECT id FROM orders", "42501")
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Fatalf("wide grant again: %v", err)
	}
	executed()
}

// testRevokeTables revokes p's login, which holds table, column and schema privileges and
// has a session open, and checks that it is dropped and no access list mentions it.
func testRevokeTables(t *testing.T, f *fixture, p timebox.GrantPlan) {
	t.Helper()
	session, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatal(err)
	}
	var oid uint32
	if err := superQueryRow(t, f.pg, f.db, "SELECT oid FROM pg_roles WHERE rolname = $1", []any{p.Principal}, &oid); err != nil {
		t.Fatal(err)
	}
	if n := aclMentions(t, f, oid); n < 5 {
		t.Fatalf("before revoke, %d access-list entries and dependencies mention the login; want several", n)
	}
	res, err := f.eng.Revoke(t.Context(), p)
	if err != nil || !res.Dropped || res.SessionsEnded < 1 {
		t.Fatalf("revoke = %+v, %v; want dropped with its sessions ended", res, err)
	}
	wantQuery(t, session, "SELECT 1", "57P01")
	if roleExists(t, f.pg, p.Principal) {
		t.Error("role still exists")
	}
	if n := aclMentions(t, f, oid); n != 0 {
		t.Errorf("after revoke, %d access-list entries or dependencies still mention the login's oid", n)
	}
}

// aclMentions counts the entries of the fixture database's access lists (tables, columns,
// schemas) and the shared dependencies that name the role with oid.
func aclMentions(t *testing.T, f *fixture, oid uint32) int {
	t.Helper()
	var n int
	if err := superQueryRow(t, f.pg, f.db, `SELECT
		(SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a WHERE a.grantee = $1::oid)
		+ (SELECT count(*) FROM pg_attribute c, aclexplode(c.attacl) a WHERE a.grantee = $1::oid)
		+ (SELECT count(*) FROM pg_namespace c, aclexplode(c.nspacl) a WHERE a.grantee = $1::oid)
		+ (SELECT count(*) FROM pg_shdepend WHERE refclassid = 'pg_authid'::regclass AND refobjid = $1::oid)`,
		[]any{int64(oid)}, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTableGrantRefused: a missing table, a missing column, a table or schema the admin
// cannot hand out each give an EINVALID error naming it, without a driver string, and leave
// no login behind.
func TestTableGrantRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	adhocTables(t, f)
	mustExec(t, f.pg, f.db, "CREATE TABLE later (id int); CREATE SCHEMA hidden; CREATE TABLE hidden.t (id int)")
	for _, tc := range []struct {
		table timebox.TableGrant
		want  string
	}{
		{timebox.TableGrant{Table: "nope", Operations: []string{"SELECT"}},
			fmt.Sprintf(`server pg-test: table "public"."nope" does not exist in database %q`, f.db)},
		{timebox.TableGrant{Schema: "nowhere", Table: "orders", Operations: []string{"SELECT"}},
			`table "nowhere"."orders" does not exist`},
		{timebox.TableGrant{Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"id", "nope"}},
			`column "nope" of table "public"."orders" does not exist`},
		{timebox.TableGrant{Table: "later", Operations: []string{"SELECT", "UPDATE"}},
			`the admin lacks SELECT, UPDATE WITH GRANT OPTION on table "public"."later"`},
		{timebox.TableGrant{Schema: "hidden", Table: "t", Operations: []string{"SELECT"}},
			`the admin lacks USAGE WITH GRANT OPTION on schema "hidden"`},
	} {
		p := adhocPlan(f)
		p.Tables = append(p.Tables[1:2:2], tc.table) // a good table, then the bad one
		err := f.eng.Grant(t.Context(), p)
		wantCode(t, err, timebox.EINVALID, tc.want)
		if err != nil && (!strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "SQLSTATE")) {
			t.Errorf("error %q, want it to contain %q and no driver string", err, tc.want)
		}
		if roleExists(t, f.pg, p.Principal) {
			t.Errorf("%s: the refused grant left its login behind", tc.want)
		}
	}
}

// TestTableStatementRefused: when the server itself refuses a statement of an ad-hoc grant
// (the checks before it passed, then something changed), the error names the statement's
// table, not the driver's message, and says which GRANT OPTION is missing.
func TestTableStatementRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	adhocTables(t, f)
	mustExec(t, f.pg, f.db, "CREATE TABLE later (id int)")
	pool, err := f.eng.pool(f.db)
	if err != nil {
		t.Fatal(err)
	}
	who := QuoteIdent(f.reader)
	stmts := []tableStmt{
		{"GRANT SELECT ON public.orders TO " + who, `table "public"."orders"`},
		{"GRANT SELECT ON public.later TO " + who, `table "public"."later"`},
		{"GRANT SELECT ON public.events TO " + who, `table "public"."events"`},
	}
	err = pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		return f.eng.runTableStatements(t.Context(), tx, timebox.GrantPlan{Database: f.db}, stmts)
	})
	wantCode(t, err, timebox.EINVALID, "refused GRANT")
	if want := `the admin lacks GRANT OPTION on table "public"."later"`; err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "SQLSTATE") {
		t.Errorf("error %v, want it to contain %q and no driver string", err, want)
	}
}

// TestTableGrantsConcurrent grants and revokes logins with privileges on the same table
// from two engines at once: PostgreSQL fails concurrent changes of one table's access list
// with "tuple concurrently updated", which the engine must absorb.
func TestTableGrantsConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	adhocTables(t, f)
	eng2, err := New("pg-test", adminURL(f.pg, f.admin), f.password, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer eng2.Close()
	ctx := t.Context()
	plans := make([]timebox.GrantPlan, 12)
	for i := range plans {
		plans[i] = adhocPlan(f)
	}
	run := func(op func(*Engine, timebox.GrantPlan) error) {
		var wg sync.WaitGroup
		for i, p := range plans {
			wg.Go(func() {
				if err := op([]*Engine{f.eng, eng2}[i%2], p); err != nil {
					t.Errorf("%s: %v", p.Principal, err)
				}
			})
		}
		wg.Wait()
	}
	run(func(e *Engine, p timebox.GrantPlan) error { return e.Grant(ctx, p) })
	run(func(e *Engine, p timebox.GrantPlan) error {
		res, err := e.Revoke(context.WithoutCancel(ctx), p)
		if err == nil && !res.Dropped {
			err = fmt.Errorf("not dropped: %s", res.Detail)
		}
		return err
	})
}

func TestTableSetupStatements(t *testing.T) {
	got := TableSetupStatements(`adm"in`, []string{"sales", "public", "sales"})
	want := []string{
		`GRANT USAGE ON SCHEMA "public" TO "adm""in" WITH GRANT OPTION`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "public" TO "adm""in" WITH GRANT OPTION`,
		`GRANT USAGE ON SCHEMA "sales" TO "adm""in" WITH GRANT OPTION`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "sales" TO "adm""in" WITH GRANT OPTION`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("statements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := TableSetupStatements("a", nil); len(got) != 2 || !strings.Contains(got[1], `SCHEMA "public"`) {
		t.Errorf("default schema: %q", got)
	}
}

// TestGrantClearsOtherDatabase: a login that holds table privileges in one database from an
// earlier plan loses them when it is granted again on another database, with or without
// tables: Grant leaves no table privilege outside its plan, in any database.
func TestGrantClearsOtherDatabase(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	adhocTables(t, f)
	mustExec(t, f.pg, f.other, "CREATE TABLE notes (id int)")
	for _, stmt := range TableSetupStatements(f.admin, nil) {
		mustExec(t, f.pg, f.other, stmt)
	}
	ctx := t.Context()
	for _, moved := range [][]timebox.TableGrant{nil, {{Table: "notes", Operations: []string{"SELECT"}}}} {
		p := adhocPlan(f)
		if err := f.eng.Grant(ctx, p); err != nil {
			t.Fatal(err)
		}
		var oid uint32
		if err := superQueryRow(t, f.pg, "postgres", "SELECT oid FROM pg_roles WHERE rolname = $1", []any{p.Principal}, &oid); err != nil {
			t.Fatal(err)
		}
		p.Database, p.Tables = f.other, moved
		if err := f.eng.Grant(ctx, p); err != nil {
			t.Fatalf("grant on the other database: %v", err)
		}
		if n := aclMentions(t, f, oid); n != len(moved) { // pg_shdepend is shared: the other database's grant counts once
			t.Errorf("with tables %v on the other database, %d access-list entries or dependencies mention the login, want %d", moved, n, len(moved))
		}
		if res, err := f.eng.Revoke(ctx, p); err != nil || !res.Dropped {
			t.Fatalf("revoke = %+v, %v", res, err)
		}
	}
}
