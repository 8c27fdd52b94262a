package postgres

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// hostile is the state of TestHostileRequester: the fixture, the record schema and the
// hostile login.
type hostile struct {
	*fixture
	rec   string // schema (quoted) of the record table, sequence and rec.note()
	login timebox.GrantPlan
}

// TestHostileRequester: a login holding a level with CREATE on a schema on the admin's
// search_path (a schema named like the admin: "$user" comes first in the default path) plants
// same-name overloads of every function and operator the engine's SQL uses (enumerated from
// the package's source), views named like the catalog views it reads, a SECURITY DEFINER
// function and a view over a table it cannot read, a trigger, default privileges, a role
// setting and a large object. Each planted function records who called it. Then every admin
// path runs. Nothing planted ever runs as the admin; after the removal, everything the login
// made belongs to the quarantine role, which holds no privilege and no membership, and the
// data of a table created in the window is still there.
func TestHostileRequester(t *testing.T) {
	pg := testdb.RequirePostgres(t)
	h := &hostile{fixture: newFixture(t, pg, names{"hostile_", "hother_", "hreader_"}), rec: QuoteIdent("tbrec_" + suffix())}
	ctx := t.Context()
	mustExec(t, pg, h.db, "CREATE TABLE public.secrets (v text); INSERT INTO public.secrets VALUES ('top secret')")
	adhocTables(t, h.fixture) // the admin may grant every table of public, secrets included
	h.prepare(t)
	h.login = h.plan("tbx_h")
	h.login.Roles = []string{h.reader, h.ddl}
	if err := h.eng.Grant(ctx, h.login); err != nil {
		t.Fatal(err)
	}
	h.plant(t)
	before := h.adminCalls(t)
	h.control(t)
	if h.adminCalls(t) == before {
		t.Fatal("control: an admin session without the pinned search_path did not run a planted function; the suite proves nothing")
	}
	before = h.adminCalls(t)
	res := h.runAdminPaths(t)
	if got := h.adminCalls(t); got != before {
		t.Errorf("planted functions ran as the admin %d time(s) during the admin paths", got-before)
	}
	h.checkHandedOver(t, res)
}

// prepare creates, as the superuser, in the admin's database (postgres) and the target
// database: the record schema (PUBLIC may insert calls and bump the admin_calls sequence,
// which counts calls by the admin even when its statement is rolled back), and the schema
// named like the admin, where the ddl role may create.
func (h *hostile) prepare(t *testing.T) {
	for _, db := range []string{"postgres", h.db} {
		mustExec(t, h.pg, db, fmt.Sprintf(`CREATE SCHEMA %[1]s; GRANT USAGE ON SCHEMA %[1]s TO PUBLIC;
			CREATE TABLE %[1]s.calls (cur name, sess name, what text); GRANT INSERT ON %[1]s.calls TO PUBLIC;
			CREATE SEQUENCE %[1]s.admin_calls; GRANT USAGE, UPDATE ON SEQUENCE %[1]s.admin_calls TO PUBLIC;
			CREATE FUNCTION %[1]s.note(what text) RETURNS void LANGUAGE plpgsql AS $f$BEGIN
				INSERT INTO %[1]s.calls VALUES (current_user, session_user, what);
				IF current_user = %[2]s OR session_user = %[2]s THEN PERFORM pg_catalog.nextval(%[3]s); END IF;
			END$f$;
			CREATE SCHEMA %[4]s; GRANT USAGE, CREATE ON SCHEMA %[4]s TO %[5]s`,
			h.rec, QuoteLiteral(h.admin), QuoteLiteral(h.rec+".admin_calls"), QuoteIdent(h.admin), QuoteIdent(h.ddl)))
	}
}

// plant creates the hostile objects: in the target database through the login's own
// session; in the admin's database, which the login may not connect to, as the login through
// SET ROLE (the objects are the same as if it could).
func (h *hostile) plant(t *testing.T) {
	ctx := t.Context()
	sql := enumerateSQL(t)
	t.Logf("the engine's SQL calls %d names, uses operators %v, reads %d pg_ names", len(sql.functions), sql.operators, len(sql.relations))
	if len(sql.functions) < 10 || len(sql.operators) < 3 {
		t.Fatalf("enumeration found too little: %+v", sql)
	}
	super, err := connect(t, h.pg, h.pg.SuperUser, h.pg.SuperPassword, h.db)
	if err != nil {
		t.Fatal(err)
	}
	fns, err := builtins(ctx, super, sql.functions)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sql.functions {
		if fns[name] == nil && !slices.Contains(sqlSyntax, name) {
			t.Errorf("the engine's SQL calls %q, which is neither a pg_catalog function nor known syntax: add it to sqlSyntax only if it is syntax", name)
		}
	}
	// Each relation with the columns a view may show (not those of a pseudo-type).
	rows, err := super.Query(ctx, `SELECT c.relname::text, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
		JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid AND ty.typtype <> 'p'
		WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind IN ('r', 'v') AND c.relname = ANY($1)
		AND has_table_privilege('public', c.oid, 'SELECT') GROUP BY c.relname`, sql.relations)
	if err != nil {
		t.Fatal(err)
	}
	rels := map[string]string{}
	for rows.Next() {
		var rel, cols string
		if err := rows.Scan(&rel, &cols); err != nil {
			t.Fatal(err)
		}
		rels[rel] = cols
	}
	if err := rows.Err(); err != nil || len(rels) < 5 {
		t.Fatalf("catalog relations of the engine's SQL: %v, %v", rels, err)
	}
	stmts, planted := plantStatements(QuoteIdent(h.admin), h.rec+".note", fns, sql.operators, rels)
	for name := range fns {
		if planted[name] == 0 {
			t.Errorf("function %s: nothing planted", name)
		}
	}
	for _, op := range sql.operators {
		if planted[op] == 0 {
			t.Errorf("operator %s: nothing planted", op)
		}
	}
	t.Logf("planting %d objects in each database", len(stmts))
	plants := strings.Join(stmts, ";\n")
	login, err := connect(t, h.pg, h.login.Principal, h.login.Password, h.db)
	if err != nil {
		t.Fatal(err)
	}
	extra := `CREATE TABLE public.migrated (v text); INSERT INTO public.migrated VALUES ('keep me');
		CREATE FUNCTION public.steal() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $f$BEGIN
			RETURN (SELECT string_agg(v, ',') FROM public.secrets);
			EXCEPTION WHEN insufficient_privilege THEN RETURN 'denied'; END$f$;
		CREATE FUNCTION public.steal_quarantined() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $f$BEGIN
			RETURN (SELECT string_agg(v, ',') FROM public.migrated);
			EXCEPTION WHEN insufficient_privilege THEN RETURN 'denied'; END$f$;
		CREATE VIEW public.peek AS SELECT v FROM public.secrets;
		GRANT SELECT ON public.peek TO PUBLIC;
		SELECT lo_from_bytea(0, 'stored by a login');
		CREATE FUNCTION public.trg() RETURNS trigger LANGUAGE plpgsql AS $f$BEGIN PERFORM ` + h.rec + `.note('trigger'); RETURN NULL; END$f$;
		CREATE TRIGGER t AFTER INSERT OR UPDATE OR DELETE ON public.migrated FOR EACH ROW EXECUTE FUNCTION public.trg();
		CREATE TRIGGER tt AFTER TRUNCATE ON public.migrated FOR EACH STATEMENT EXECUTE FUNCTION public.trg();
		ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC;
		ALTER ROLE CURRENT_USER SET search_path = ` + QuoteIdent(h.admin) + `, public`
	if _, err := login.PgConn().Exec(ctx, plants+";\n"+extra).ReadAll(); err != nil {
		t.Fatalf("plant in %s as the login: %v", h.db, err)
	}
	admindb, err := connect(t, h.pg, h.pg.SuperUser, h.pg.SuperPassword, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admindb.PgConn().Exec(ctx, "SET ROLE "+QuoteIdent(h.login.Principal)+";\n"+plants+";\nRESET ROLE").ReadAll(); err != nil {
		t.Fatalf("plant in postgres as the login: %v", err)
	}
}

// control runs one of the engine's queries from an admin session without the pinned
// search_path: the planted overloads must be reached, or the suite would prove nothing.
func (h *hostile) control(t *testing.T) {
	e, err := New("pg-control", adminURL(h.pg, h.admin), h.password, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	delete(e.config.ConnConfig.RuntimeParams, "search_path")
	pool, err := e.pool(e.adminDB)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.lookupRole(t.Context(), pool, h.login.Principal)
	t.Logf("control: lookupRole without the pin: %v", err)
}

// adminCalls returns how many times a planted function ran as the admin, in both databases
// (the sequences count calls whose statement was rolled back too), and fails when the
// record tables hold an admin row.
func (h *hostile) adminCalls(t *testing.T) int64 {
	t.Helper()
	var total int64
	for _, db := range []string{"postgres", h.db} {
		var n int64
		var called bool
		var rows int
		err := superQueryRow(t, h.pg, db, "SELECT last_value, is_called, (SELECT count(*) FROM "+h.rec+".calls WHERE cur = $1 OR sess = $1) FROM "+h.rec+".admin_calls",
			[]any{h.admin}, &n, &called, &rows)
		if err != nil {
			t.Fatal(err)
		}
		if called {
			total += n
		}
	}
	return total
}

// runAdminPaths runs every path of the engine with the planted objects in place and returns
// the result of the hostile login's removal.
func (h *hostile) runAdminPaths(t *testing.T) timebox.RevokeResult {
	ctx := t.Context()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s with planted objects: %v", what, err)
		}
	}
	adhoc := h.plan("tbx_a")
	adhoc.Roles = nil
	adhoc.Tables = []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"id"}}}
	must("CheckTables", h.eng.CheckTables(ctx, adhoc))
	must("Grant (ad-hoc)", h.eng.Grant(ctx, adhoc))
	_, _, err := h.eng.PlanStatements(adhoc)
	must("PlanStatements", err)
	person, shared := "person_"+suffix(), "shared_"+suffix()
	mustExec(t, h.pg, "postgres", "CREATE ROLE "+QuoteIdent(person)+" LOGIN; CREATE ROLE "+QuoteIdent(shared)+" NOLOGIN")
	member := timebox.GrantPlan{Method: timebox.MethodRoleMembership, Principal: person, Database: h.db, Roles: []string{h.reader}}
	unlock := timebox.GrantPlan{Method: timebox.MethodUnlockLogin, Principal: shared, Password: adhoc.Password, Database: h.db, ValidUntil: adhoc.ValidUntil}
	must("Grant (role_membership)", h.eng.Grant(ctx, member))
	must("Grant (unlock_login)", h.eng.Grant(ctx, unlock))
	_, err = h.eng.Managed(ctx, []string{shared})
	must("Managed", err)
	ok, err := h.eng.PasswordWorks(ctx, h.login)
	must("PasswordWorks", err)
	if !ok {
		t.Error("PasswordWorks refused the hostile login's password")
	}
	adhoc.ValidUntil = adhoc.ValidUntil.Add(time.Hour)
	must("Extend", h.eng.Extend(ctx, adhoc))
	_, findings, err := h.eng.Doctor(ctx, []string{h.db, h.other}, []string{h.reader, h.ddl})
	must("Doctor", err)
	for _, p := range []timebox.GrantPlan{adhoc, member, unlock} {
		_, err := h.eng.Revoke(ctx, p)
		must("Revoke ("+p.Method+")", err)
	}
	res, err := h.eng.Revoke(ctx, h.login)
	must("Revoke (the hostile login)", err)
	_, findings, err = h.eng.Doctor(ctx, []string{h.db, h.other}, []string{h.reader, h.ddl})
	must("Doctor after the removal", err)
	waiting := false
	for _, f := range findings {
		waiting = waiting || strings.Contains(f.Message, "wait in quarantine") && strings.Contains(f.Message, `function "public".steal()`)
	}
	if !waiting {
		t.Errorf("doctor does not list the quarantined SECURITY DEFINER function: %+v", findings)
	}
	_, err = h.eng.Managed(ctx, nil)
	must("Managed after the removal", err)
	return res
}

// checkHandedOver checks what the removal of the hostile login left: everything it owned is
// listed and owned by the quarantine role, which can log in nowhere, belongs to no role and
// holds no privilege; the SECURITY DEFINER function and the view read nothing for a
// bystander; the table made in the window keeps its row.
func (h *hostile) checkHandedOver(t *testing.T, res timebox.RevokeResult) {
	q := h.eng.QuarantineRole
	if !res.Dropped || res.HandedTo != q {
		t.Errorf("removal = dropped %v, handed to %q (%s); want dropped, handed to %q", res.Dropped, res.HandedTo, res.Detail, q)
	}
	want := map[string]bool{"function public steal() security definer": false, "view public peek view": false, "table public migrated ": false,
		"large object  ": false, "function public trg() ": false}
	perDB := map[string]int{}
	for _, o := range res.Handed {
		perDB[o.Database]++
		key := o.Kind + " " + o.Schema + " " + o.Name + " " + o.Risk
		if o.Kind == "large object" {
			key = "large object  "
		}
		if _, ok := want[key]; ok {
			want[key] = true
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("the removal's list lacks %q (%d objects listed)", k, len(res.Handed))
		}
	}
	for _, db := range []string{"postgres", h.db} {
		var adminOwns, quarantineOwns int
		err := superQueryRow(t, h.pg, db, `SELECT count(*) FILTER (WHERE r.rolname = $1), count(*) FILTER (WHERE r.rolname = $2)
			FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid
			WHERE s.deptype = 'o' AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, []any{h.admin, q}, &adminOwns, &quarantineOwns)
		if err != nil {
			t.Fatal(err)
		}
		if adminOwns != 0 || quarantineOwns != perDB[db] || perDB[db] < 100 {
			t.Errorf("database %s: the admin owns %d objects, the quarantine role %d; want 0 and the %d listed", db, adminOwns, quarantineOwns, perDB[db])
		}
	}
	var login, powers bool
	var memberships, privileges, defaults int
	err := superQueryRow(t, h.pg, h.db, `SELECT rolcanlogin, rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls,
		(SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid OR m.roleid = r.oid),
		(SELECT count(*) FROM pg_shdepend s WHERE s.refobjid = r.oid AND s.deptype = 'a'),
		(SELECT count(*) FROM pg_default_acl d WHERE d.defaclrole = r.oid)
		FROM pg_roles r WHERE rolname = $1`, []any{q}, &login, &powers, &memberships, &privileges, &defaults)
	if err != nil {
		t.Fatal(err)
	}
	if login || powers || memberships != 0 || privileges != 0 || defaults != 0 {
		t.Errorf("quarantine role: login %v, powers %v, %d memberships, %d privileges, %d default privileges; want none", login, powers, memberships, privileges, defaults)
	}
	h.bystander(t)
}

// bystander calls the quarantined SECURITY DEFINER function and reads the view as another
// role: neither reads the table the login could not read; the window's table keeps its row
// and the large object belongs to the quarantine role.
func (h *hostile) bystander(t *testing.T) {
	ctx := t.Context()
	super, err := connect(t, h.pg, h.pg.SuperUser, h.pg.SuperPassword, h.db)
	if err != nil {
		t.Fatal(err)
	}
	var definer bool
	var viewOptions []string
	if err := super.QueryRow(ctx, `SELECT (SELECT prosecdef FROM pg_proc WHERE proname = 'steal'),
		(SELECT coalesce(reloptions, '{}') FROM pg_class WHERE relname = 'peek')`).Scan(&definer, &viewOptions); err != nil {
		t.Fatal(err)
	}
	if definer || !slices.Contains(viewOptions, "security_invoker=true") {
		t.Errorf("quarantined function SECURITY DEFINER %v, view options %v; want SECURITY INVOKER and security_invoker=true", definer, viewOptions)
	}
	var stolen, kept, lo string
	asReader := func(sql string) error {
		return pgx.BeginFunc(ctx, super, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+QuoteIdent(h.reader)); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, sql)
			if err != nil {
				return err
			}
			for rows.Next() {
				if err := rows.Scan(&stolen); err != nil {
					return err
				}
			}
			return rows.Err()
		})
	}
	if err := asReader("SELECT public.steal()"); err != nil {
		t.Fatal(err)
	}
	wantSQLState(t, asReader("SELECT v FROM public.peek"), "42501", "a bystander reads the quarantined view")
	if stolen != "denied" {
		t.Errorf("the quarantined SECURITY DEFINER function read %q for a bystander", stolen)
	}
	// The quarantine role owns the window's table too: a function it owned with its rights
	// would read it for anyone.
	if err := asReader("SELECT public.steal_quarantined()"); err != nil || stolen != "denied" {
		t.Errorf("a quarantined function read another quarantined object for a bystander: %q, %v", stolen, err)
	}
	if err := super.QueryRow(ctx, `SELECT (SELECT v FROM public.migrated), (SELECT lomowner::regrole::text FROM pg_largeobject_metadata
		WHERE lomowner = (SELECT oid FROM pg_roles WHERE rolname = $1))`, h.eng.QuarantineRole).Scan(&kept, &lo); err != nil {
		t.Fatal(err)
	}
	if kept != "keep me" || lo != QuoteIdent(h.eng.QuarantineRole) && lo != h.eng.QuarantineRole {
		t.Errorf("the window's table holds %q, the large object belongs to %q", kept, lo)
	}
}
