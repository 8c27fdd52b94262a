package postgres

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// planEngine returns an engine that is never connected: PlanStatements needs no server.
func planEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := New("pg-test", "postgres://timebox@127.0.0.1:1/postgres", "pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// planted is a password PlanStatements must never show.
const planted = "Planted-Secret-8f3Kq"

func TestPlanStatementsEphemeral(t *testing.T) {
	e := planEngine(t)
	p := timebox.GrantPlan{
		Principal: "tbx_x", Password: planted, Database: "shop", Roles: []string{"shop_read"},
		ValidUntil: time.Date(2030, 1, 2, 3, 4, 5, 6789, time.UTC),
		Tables: []timebox.TableGrant{
			{Table: "orders", Operations: []string{"select"}, Columns: []string{"id", "total", "id"}},
			{Schema: "sales", Table: `le"ads`, Operations: []string{"UPDATE", "DELETE"}},
		},
	}
	grant, revoke, err := e.PlanStatements(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`CREATE ROLE "tbx_x" WITH LOGIN PASSWORD '<password>' VALID UNTIL '2030-01-02T03:04:05.000006Z'`,
		`COMMENT ON ROLE "tbx_x" IS 'timebox ephemeral login'`,
		`GRANT "timebox_managed" TO "tbx_x"`,
		`GRANT "` + e.connectRole("shop") + `" TO "tbx_x"`,
		`GRANT "shop_read" TO "tbx_x"`,
		`GRANT USAGE ON SCHEMA "public" TO "tbx_x" -- only if the login lacks USAGE on the schema (PUBLIC has it on public by default)`,
		`GRANT USAGE ON SCHEMA "sales" TO "tbx_x" -- only if the login lacks USAGE on the schema (PUBLIC has it on public by default)`,
		`GRANT SELECT ("id", "total") ON "public"."orders" TO "tbx_x"`,
		`GRANT DELETE, UPDATE ON "sales"."le""ads" TO "tbx_x"`,
	}
	if !slices.Equal(grant, want) {
		t.Errorf("grant statements:\n%s\nwant:\n%s", strings.Join(grant, "\n"), strings.Join(want, "\n"))
	}
	wantRevoke := []string{
		`ALTER ROLE "tbx_x" NOLOGIN`,
		`GRANT "tbx_x" TO CURRENT_USER`,
		signalByOID + ` -- $1: the role's oid; repeated until no session is left`,
		`REASSIGN OWNED BY "tbx_x" TO "timebox_quarantine" -- in database "shop", only if the login owns objects there (never to the admin)`,
		`DROP OWNED BY "tbx_x" -- in database "shop", where it holds the table privileges`,
		`DROP ROLE IF EXISTS "tbx_x"`,
		signalByOID + ` -- again, for a session that began just before NOLOGIN`,
	}
	if !slices.Equal(revoke, wantRevoke) {
		t.Errorf("revoke statements:\n%s\nwant:\n%s", strings.Join(revoke, "\n"), strings.Join(wantRevoke, "\n"))
	}
	p.Tables = nil
	_, revoke, _ = e.PlanStatements(p)
	if !strings.HasSuffix(revoke[4], `-- in database "shop", only if the login owns objects or holds privileges there`) {
		t.Errorf("DROP OWNED without tables: %s", revoke[4])
	}
	e.OwnerRoles = map[string]string{"shop": "app_owner"}
	if _, revoke, _ = e.PlanStatements(p); !strings.HasPrefix(revoke[3], `REASSIGN OWNED BY "tbx_x" TO "app_owner" --`) {
		t.Errorf("REASSIGN OWNED with an owner role: %s", revoke[3])
	}
	noSecret(t, p)
}

// noSecret fails when the statements planned for p, with every method, show its password or
// a verifier.
func noSecret(t *testing.T, p timebox.GrantPlan) {
	t.Helper()
	e := planEngine(t)
	for _, m := range []string{timebox.MethodEphemeralLogin, timebox.MethodUnlockLogin, timebox.MethodRoleMembership} {
		p.Method = m
		grant, revoke, err := e.PlanStatements(p)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		all := strings.Join(append(grant, revoke...), "\n")
		if strings.Contains(all, p.Password) || strings.Contains(all, "SCRAM") {
			t.Errorf("%s: the statements show the password:\n%s", m, all)
		}
	}
}

func TestPlanStatementsSharedAndPerson(t *testing.T) {
	e := planEngine(t)
	p := timebox.GrantPlan{Method: timebox.MethodUnlockLogin, Principal: "maint", Password: planted, Database: "shop",
		ValidUntil: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	grant, revoke, err := e.PlanStatements(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`ALTER ROLE "maint" WITH LOGIN PASSWORD '<password>' VALID UNTIL '2030-01-02T03:04:05.000000Z'`}; !slices.Equal(grant, want) {
		t.Errorf("unlock grant = %q", grant)
	}
	if len(revoke) != 2 || revoke[0] != `ALTER ROLE "maint" WITH NOLOGIN PASSWORD NULL VALID UNTIL '-infinity'` ||
		!strings.HasPrefix(revoke[1], signalByName+` -- $1: "maint"`) {
		t.Errorf("unlock revoke = %q", revoke)
	}

	p = timebox.GrantPlan{Method: timebox.MethodRoleMembership, Principal: "alice", Database: "shop",
		Roles: []string{"shop_read", "shop_write"}, Keep: []string{"shop_read"}}
	grant, revoke, err = e.PlanStatements(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`GRANT CONNECT ON DATABASE "shop" TO "alice"`, `GRANT "shop_read" TO "alice"`, `GRANT "shop_write" TO "alice"`}; !slices.Equal(grant, want) {
		t.Errorf("membership grant = %q", grant)
	}
	if len(revoke) != 3 || revoke[0] != `REVOKE "shop_write" FROM "alice"` || revoke[1] != `REVOKE CONNECT ON DATABASE "shop" FROM "alice"` {
		t.Errorf("membership revoke = %q", revoke)
	}
}

func TestPlanStatementsInvalid(t *testing.T) {
	e := planEngine(t)
	good := timebox.GrantPlan{Principal: "tbx_a", Database: "db", ValidUntil: time.Now().Add(time.Hour),
		Tables: []timebox.TableGrant{{Table: "t", Operations: []string{"SELECT"}}}}
	for name, mutate := range map[string]func(*timebox.GrantPlan){
		"NUL in principal":     func(p *timebox.GrantPlan) { p.Principal = "a\x00b" },
		"long database":        func(p *timebox.GrantPlan) { p.Database = strings.Repeat("d", 64) },
		"zero end":             func(p *timebox.GrantPlan) { p.ValidUntil = time.Time{} },
		"empty table":          func(p *timebox.GrantPlan) { p.Tables[0].Table = "" },
		"NUL in column":        func(p *timebox.GrantPlan) { p.Tables[0].Columns = []string{"a\x00"} },
		"invalid UTF-8 schema": func(p *timebox.GrantPlan) { p.Tables[0].Schema = "\xff" },
		"unknown operation":    func(p *timebox.GrantPlan) { p.Tables[0].Operations = []string{"TRUNCATE"} },
		"no operation":         func(p *timebox.GrantPlan) { p.Tables[0].Operations = nil },
		"table twice": func(p *timebox.GrantPlan) {
			p.Tables = append(p.Tables, timebox.TableGrant{Schema: "public", Table: "t", Operations: []string{"INSERT"}})
		},
		"tables with unlock":     func(p *timebox.GrantPlan) { p.Method = timebox.MethodUnlockLogin },
		"tables with membership": func(p *timebox.GrantPlan) { p.Method = timebox.MethodRoleMembership },
		"DELETE on columns": func(p *timebox.GrantPlan) {
			p.Tables[0].Operations, p.Tables[0].Columns = []string{"DELETE", "SELECT"}, []string{"a"}
		},
	} {
		p := good
		p.Tables = slices.Clone(good.Tables)
		mutate(&p)
		_, _, err := e.PlanStatements(p)
		wantCode(t, err, timebox.EINVALID, name)
		p.Password = "pw"
		wantCode(t, e.Grant(t.Context(), p), timebox.EINVALID, "grant: "+name)
		if name == "DELETE on columns" && (err == nil || !strings.Contains(err.Error(), "DELETE cannot be limited to columns")) {
			t.Errorf("DELETE on columns: %v", err)
		}
	}
}

// TestCommentName: a name in an SQL comment cannot end the comment.
func TestCommentName(t *testing.T) {
	for _, s := range awkward {
		if got := commentName(s); strings.ContainsAny(got, "\n\r") {
			t.Errorf("commentName(%q) = %q", s, got)
		}
	}
}

// TestPlanRefusesTimeboxRoles: the admin, the bookkeeping role and a connect role (which
// opens its database) are never handed out, and a bookkeeping role PostgreSQL would truncate
// is refused.
func TestPlanRefusesTimeboxRoles(t *testing.T) {
	e := planEngine(t)
	for _, role := range []string{"timebox", e.ManagedRole, e.connectRole("other")} {
		p := timebox.GrantPlan{Principal: "tbx_x", Password: "pw", Database: "shop", Roles: []string{role},
			ValidUntil: time.Now().Add(time.Hour)}
		_, _, err := e.PlanStatements(p)
		wantCode(t, err, timebox.EINVALID, "plan handing out "+role)
		wantCode(t, e.Grant(t.Context(), p), timebox.EINVALID, "grant handing out "+role)
	}
	e.ManagedRole = strings.Repeat("m", 64)
	_, _, err := e.PlanStatements(timebox.GrantPlan{Principal: "tbx_x", Database: "shop", ValidUntil: time.Now().Add(time.Hour)})
	wantCode(t, err, timebox.EINVALID, "64-byte bookkeeping role")
}

// TestRevokeTimeboxRoles: a plan that Grant refuses for handing out Timebox's own roles is
// still revoked (Revoke must remove whatever was granted); here the login never existed.
func TestRevokeTimeboxRoles(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	p := f.plan("tbx_own_")
	p.Roles = []string{f.admin}
	wantCode(t, f.eng.Grant(t.Context(), p), timebox.EINVALID, "grant handing out the admin role")
	if res, err := f.eng.Revoke(t.Context(), p); err != nil || !res.Dropped || !res.Absent {
		t.Errorf("revoke = %+v, %v; want dropped, absent", res, err)
	}
}
