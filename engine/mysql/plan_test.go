package mysql

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// timeIn returns the time h hours from now.
func timeIn(h int) time.Time { return time.Now().Add(time.Duration(h) * time.Hour) }

// plantedPassword is a known password, looked for in every statement shown.
const plantedPassword = "Plant3d-Passw0rd-4-plans"

// noSecret fails when a statement holds the planted password or its hash.
func noSecret(t *testing.T, stmts []string) {
	t.Helper()
	for _, s := range stmts {
		for _, secret := range secretsOf(plantedPassword) {
			if strings.Contains(s, secret) {
				t.Errorf("statement holds the password or its hash: %s", s)
			}
		}
	}
}

func TestPlanStatements(t *testing.T) {
	eng, err := New("my-test", "mysql://timebox@127.0.0.1:1/", "pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	p := timebox.GrantPlan{Principal: "tbx_a", Password: plantedPassword, Database: "shop_1", Privileges: []string{"select"},
		Roles: []string{"rw"}, ValidUntil: timeIn(1),
		Tables: []timebox.TableGrant{{Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"id", "total"}}}}
	grant, revoke, err := eng.PlanStatements(p)
	if err != nil {
		t.Fatal(err)
	}
	who := "'tbx_a'@'%'"
	wantGrant := []string{
		"CREATE USER " + who + " IDENTIFIED WITH mysql_native_password AS '<password>' ACCOUNT LOCK",
		"GRANT 'timebox_managed' TO " + who,
		"GRANT SELECT ON `shop\\_1`.* TO " + who,
		"GRANT 'rw' TO " + who,
		"GRANT SELECT (`id`, `total`) ON `shop_1`.`orders` TO " + who,
		"CREATE OR REPLACE " + backstopSQL(DefaultEventSchema, "tbx_a", "%", p.ValidUntil, true),
		"ALTER USER " + who + " IDENTIFIED WITH mysql_native_password AS '<password>' ACCOUNT UNLOCK",
		"SET DEFAULT ROLE 'rw' FOR " + who,
	}
	if !slices.Equal(grant, wantGrant) {
		t.Errorf("grant statements:\n%s\nwant:\n%s", strings.Join(grant, "\n"), strings.Join(wantGrant, "\n"))
	}
	wantRevoke := []string{"ALTER USER " + who + " ACCOUNT LOCK", killComment, "DROP USER IF EXISTS " + who,
		"DROP EVENT IF EXISTS `timebox`.`tbx_end_tbx_a`"}
	if !slices.Equal(revoke, wantRevoke) {
		t.Errorf("revoke statements:\n%s\nwant:\n%s", strings.Join(revoke, "\n"), strings.Join(wantRevoke, "\n"))
	}
	noSecret(t, append(grant, revoke...))

	shared := timebox.GrantPlan{Method: timebox.MethodUnlockLogin, Principal: "maint", Password: plantedPassword, Database: "shop", ValidUntil: timeIn(1)}
	grant, revoke, err = eng.PlanStatements(shared)
	if err != nil || len(grant) != 2 || !strings.HasSuffix(grant[1], "AS '<password>' ACCOUNT UNLOCK") || strings.Contains(grant[0], "DROP USER") ||
		len(revoke) != 3 || !strings.HasSuffix(revoke[0], "AS '<password>' ACCOUNT LOCK") {
		t.Errorf("unlock_login: %v\n%s\n--\n%s", err, strings.Join(grant, "\n"), strings.Join(revoke, "\n"))
	}
	noSecret(t, append(grant, revoke...))

	person := timebox.GrantPlan{Method: timebox.MethodRoleMembership, Principal: "alice", Database: "shop", Privileges: []string{"SELECT"},
		Roles: []string{"rw"}, Keep: []string{"rw"}}
	grant, revoke, err = eng.PlanStatements(person)
	wantGrant = []string{"GRANT SELECT ON `shop`.* TO 'alice'@'%'", "GRANT 'rw' TO 'alice'@'%'", "SET DEFAULT ROLE 'rw' FOR 'alice'@'%'"}
	wantRevoke = []string{"REVOKE SELECT ON `shop`.* FROM 'alice'@'%'", killComment}
	if err != nil || !slices.Equal(grant, wantGrant) || !slices.Equal(revoke, wantRevoke) {
		t.Errorf("role_membership: %v\n%s\n--\n%s", err, strings.Join(grant, "\n"), strings.Join(revoke, "\n"))
	}

	// Planned before the password exists.
	p.Password = ""
	if grant, _, err := eng.PlanStatements(p); err != nil || !strings.Contains(grant[0], "'<password>'") {
		t.Errorf("plan without a password: %v, %q", err, grant)
	}
}

func TestPlanStatementsInvalid(t *testing.T) {
	eng, err := New("my-test", "mysql://timebox@127.0.0.1:1/", "pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	good := timebox.GrantPlan{Principal: "tbx_a", Password: plantedPassword, Database: "shop", ValidUntil: timeIn(1),
		Tables: []timebox.TableGrant{{Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"id"}}}}
	bad := badTablePlans()
	bad["bad principal"] = func(p *timebox.GrantPlan) { p.Principal = strings.Repeat("p", 33) }
	bad["no end"] = func(p *timebox.GrantPlan) { p.ValidUntil = time.Time{} }
	bad["unknown method"] = func(p *timebox.GrantPlan) { p.Method = "magic" }
	bad["global privilege"] = func(p *timebox.GrantPlan) { p.Privileges = []string{"SUPER"} }
	bad["non-ASCII password"] = func(p *timebox.GrantPlan) { p.Password = "pässword" }
	for name, mutate := range bad {
		p := good
		p.Tables = slices.Clone(good.Tables)
		mutate(&p)
		grant, revoke, err := eng.PlanStatements(p)
		wantCode(t, err, timebox.EINVALID, name)
		if grant != nil || revoke != nil || (err != nil && strings.Contains(err.Error(), plantedPassword)) {
			t.Errorf("%s: statements %q %q, or the error %v holds the password", name, grant, revoke, err)
		}
	}
}

// TestPlanMatchesGrant: the statements shown are those Grant and Revoke run, on the real
// server, with names that need quoting.
func TestPlanMatchesGrant(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), nasty, true)
	tablesFixture(t, f)
	var mu sync.Mutex
	var ran []string
	f.eng.observe = func(stmt string) {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, stmt)
	}
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := ran
		ran = nil
		return out
	}
	p := f.plan(nastyPrincipal)
	p.Password = plantedPassword
	p.Tables = []timebox.TableGrant{
		{Table: oddTable, Operations: []string{"SELECT", "UPDATE"}, Columns: []string{oddColumn, "other"}},
		{Table: "orders", Operations: []string{"DELETE", "insert"}},
	}
	grant, revoke, err := f.eng.PlanStatements(p)
	if err != nil {
		t.Fatal(err)
	}
	noSecret(t, append(grant, revoke...))
	f.grant(t, p)
	var got []string
	for _, s := range taken() {
		switch {
		case strings.HasPrefix(s, "CREATE ROLE IF NOT EXISTS "): // once per engine, not shown
		case s == "SET DEFAULT ROLE "+QuoteString(f.writer): // run as the login itself, shown as the admin's FOR
		default:
			got = append(got, strings.ReplaceAll(s, QuoteString(nativeHash(plantedPassword)), passwordPlaceholder))
		}
	}
	if !slices.Equal(got, grant) {
		t.Errorf("Grant ran:\n%s\nPlanStatements showed:\n%s", strings.Join(got, "\n"), strings.Join(grant, "\n"))
	}
	want := "GRANT SELECT (" + QuoteIdent(oddColumn) + ", `other`), UPDATE (" + QuoteIdent(oddColumn) + ", `other`) ON " +
		onTable(f.db, oddTable) + " TO " + account(p.Principal, "%")
	if !slices.Contains(grant, want) || !slices.Contains(got, want) {
		t.Errorf("no column grant %s", want)
	}
	f.revoke(t, p)
	shown := slices.DeleteFunc(slices.Clone(revoke), func(s string) bool { return strings.HasPrefix(s, "--") })
	if got := taken(); !slices.Equal(got, shown) {
		t.Errorf("Revoke ran:\n%s\nPlanStatements showed:\n%s", strings.Join(got, "\n"), strings.Join(shown, "\n"))
	}
}
