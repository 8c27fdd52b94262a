package mysql

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// callRE finds a name followed by "(" (spaces allowed: MariaDB resolves "COUNT (" to a stored
// function of the default database when IGNORE_SPACE is off).
var callRE = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*\(`)

// calledNames returns every name the package's own SQL writes before "(", from the string
// literals of its non-test Go files, upper-cased, with the number of arguments of its first
// call when the literal closes it (else 1), so that a new query cannot slip past the hostile
// suite.
func calledNames(t *testing.T) map[string]int {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			for _, m := range callRE.FindAllStringSubmatchIndex(s, -1) {
				n := strings.ToUpper(s[m[2]:m[3]])
				if _, seen := names[n]; !seen && len(n) <= 64 {
					names[n] = arity(s[m[1]:])
				}
			}
			return true
		})
	}
	return names
}

// arity counts the arguments of a call whose text after "(" is rest: top-level commas up to
// the closing parenthesis; 0 for "()", 1 when the literal does not close the call.
func arity(rest string) int {
	depth, n, empty, quote := 0, 1, true, byte(0)
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`':
			quote, empty = c, false
		case c == '(':
			depth, empty = depth+1, false
		case c == ')' && depth == 0:
			if empty {
				return 0
			}
			return n
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			n++
		case c != ' ' && c != '\n' && c != '\t':
			empty = false
		}
	}
	return 1
}

func TestCalledNames(t *testing.T) {
	names := calledNames(t)
	for _, want := range []string{"VERSION", "CURRENT_USER", "JSON_VALUE", "COUNT", "COALESCE", "CONNECTION_ID", "TRIM", "EXISTS"} {
		if _, ok := names[want]; !ok {
			t.Errorf("%s is missing from the names the engine's SQL calls: %v", want, names)
		}
	}
	if names["VERSION"] != 0 || names["JSON_VALUE"] != 2 {
		t.Errorf("arity of VERSION, JSON_VALUE = %d, %d; want 0, 2", names["VERSION"], names["JSON_VALUE"])
	}
}

// TestHostileRequester: an ephemeral login with ALL PRIVILEGES on the target database plants
// functions and procedures named like every name the engine's SQL calls (SQL SECURITY
// INVOKER: they would run as whoever calls them), definer-rights routines and views, a
// trigger, an event and a view that calls a planted function, and makes a table. Then every
// admin path runs. Nothing planted ran in an admin session; the removal lists what the login
// defined, each of it fails afterwards for another account (the event, which ran every
// second as the login, runs no more), and the table keeps its rows.
func TestHostileRequester(t *testing.T) {
	t.Parallel()
	m := testdb.RequireMariaDB(t)
	f := newFixture(t, m, plain, true)
	ctx := t.Context()
	db := QuoteIdent(f.db)
	mustExec(t, m, "CREATE TABLE "+db+".trap (who varchar(300), cur varchar(300), what varchar(100))")
	mustExec(t, m, "GRANT INSERT ON "+db+".trap TO PUBLIC")
	mustExec(t, m, "CREATE TABLE "+db+".vault (secret text)")

	hostile := f.plan("tbx_hostile_")
	hostile.Privileges, hostile.Roles = []string{"ALL PRIVILEGES"}, nil
	f.grant(t, hostile)
	h := f.login(t, hostile.Principal, hostile.Password)
	names := calledNames(t)
	if len(names) == 0 {
		t.Fatal("no name found in the engine's SQL")
	}
	record := func(what string) string {
		return "INSERT INTO " + db + ".trap VALUES (USER(), CURRENT_USER(), " + QuoteString(what) + ")"
	}
	plant := []string{
		"CREATE FUNCTION df() RETURNS INT SQL SECURITY DEFINER RETURN (SELECT COUNT(*) FROM items)",
		"CREATE FUNCTION steal() RETURNS TEXT SQL SECURITY DEFINER RETURN (SELECT MAX(secret) FROM vault)",
		"CREATE PROCEDURE dp() SQL SECURITY DEFINER SELECT COUNT(*) FROM items",
		"CREATE SQL SECURITY DEFINER VIEW dv AS SELECT * FROM items",
		"CREATE TRIGGER trg BEFORE INSERT ON items FOR EACH ROW " + record("trigger"),
		"CREATE EVENT ev ON SCHEDULE EVERY 1 SECOND DO " + record("event"),
		"CREATE TABLE migration (id int)",
		"INSERT INTO migration VALUES (1), (2), (3)",
	}
	for name, n := range names {
		var params []string
		for i := range n {
			params = append(params, "a"+strconv.Itoa(i)+" TEXT")
		}
		args := strings.Join(params, ", ")
		plant = append(plant,
			"CREATE FUNCTION "+QuoteIdent(name)+"("+args+") RETURNS TEXT SQL SECURITY INVOKER BEGIN "+record(name)+"; RETURN NULL; END",
			"CREATE PROCEDURE "+QuoteIdent(name)+"("+strings.ReplaceAll(args, "a", "IN a")+") SQL SECURITY INVOKER BEGIN "+record(name)+"; END")
	}
	plant = append(plant, "CREATE SQL SECURITY INVOKER VIEW iv AS SELECT "+db+".`VERSION`() AS v, id FROM items")
	for _, s := range plant {
		if _, err := h.ExecContext(ctx, s); err != nil {
			t.Fatalf("plant %s: %v", s, err)
		}
	}
	for name := range names {
		if n := count(t, m, "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_NAME = ?", f.db, name); n != 2 {
			t.Fatalf("%s planted %d times, want a function and a procedure", name, n)
		}
	}
	// The trap works: called by name, a planted function records its caller.
	var v *string
	if err := h.QueryRowContext(ctx, "SELECT "+db+".`VERSION`()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if n := count(t, m, "SELECT COUNT(*) FROM "+db+".trap WHERE who LIKE ?", hostile.Principal+"@%"); n != 1 {
		t.Fatalf("the trap recorded %d calls by the login, want 1", n)
	}
	// Why the admin has no default database: there, "COUNT (" (with a space) is the planted
	// function. The engine's sessions have none.
	rootIn := f.login(t, "root", m.RootPassword)
	if err := rootIn.QueryRowContext(ctx, "SELECT COUNT (1)").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if n := count(t, m, "SELECT COUNT(*) FROM "+db+".trap WHERE who LIKE 'root@%' AND what = 'COUNT'"); n != 1 {
		t.Errorf("with a default database, COUNT (1) ran the planted function %d times, want 1 (the class this suite guards)", n)
	}
	admin, err := f.eng.db()
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&v); err != nil || v != nil {
		t.Fatalf("the admin's default database: %v, %v; want none", v, err)
	}
	bystander := "tbx_by_" + suffix()
	mustExec(t, m, "CREATE USER "+account(bystander, "%")+" IDENTIFIED BY 'by-pw'")
	mustExec(t, m, "GRANT SELECT, INSERT, EXECUTE ON "+onDB(f.db)+" TO "+account(bystander, "%"))
	by := f.login(t, bystander, "by-pw")
	var n int
	if err := by.QueryRowContext(ctx, "SELECT df()").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the definer function as another account before the removal: %d, %v", n, err)
	}

	runAdminPaths(t, f, hostile)

	if n := count(t, m, "SELECT COUNT(*) FROM "+db+".trap WHERE who LIKE ? OR cur LIKE ?", f.admin+"@%", f.admin+"@%"); n != 0 {
		t.Errorf("%d planted routines ran in an admin session", n)
	}
	events := func() int { return count(t, m, "SELECT COUNT(*) FROM "+db+".trap WHERE what = 'event'") }
	for deadline := time.Now().Add(3 * time.Second); events() == 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	res := f.revoke(t, hostile)
	ran := events()
	if n := count(t, m, "SELECT COUNT(*) FROM "+db+".trap WHERE who LIKE ? OR cur LIKE ?", f.admin+"@%", f.admin+"@%"); n != 0 {
		t.Errorf("%d planted routines ran in the removal", n)
	}
	if !res.Dropped || accountExists(t, m, hostile.Principal) {
		t.Fatalf("removal %+v: the login is not dropped", res)
	}
	handed := map[string]string{}
	for _, o := range res.Handed {
		if o.Database != f.db {
			t.Errorf("handed %+v: not in %s", o, f.db)
		}
		handed[o.Kind+" "+o.Name] = o.Risk
	}
	for obj, risk := range map[string]string{"function df": "security definer", "function steal": "security definer", "procedure dp": "security definer",
		"view dv": "security definer", "trigger trg": "security definer", "event ev": "security definer", "function VERSION": "", "view iv": ""} {
		if got, ok := handed[obj]; !ok || got != risk {
			t.Errorf("handed %s: listed %v, risk %q; want risk %q", obj, ok, got, risk)
		}
	}
	if len(res.Handed) != 2*len(names)+7 || !strings.Contains(res.HandedTo, "dropped") {
		t.Errorf("handed %d objects to %q, want %d to nobody", len(res.Handed), res.HandedTo, 2*len(names)+7)
	}
	// Nothing the login defined runs any more, with anybody's privileges.
	for _, q := range []string{"SELECT df()", "SELECT steal()", "CALL dp()", "SELECT COUNT(*) FROM dv", "INSERT INTO items VALUES (5)"} {
		_, err := by.ExecContext(ctx, q)
		wantErrNumber(t, err, q+" as another account after the removal", erNoSuchDefiner, erAccessDenied)
	}
	if time.Sleep(2100 * time.Millisecond); ran == 0 || events() != ran {
		t.Errorf("the login's event ran %d times before the removal (want some) and %d after (want none)", ran, events()-ran)
	}
	if n := count(t, m, "SELECT COUNT(*) FROM "+db+".migration"); n != 3 {
		t.Errorf("the table made in the window has %d rows, want 3", n)
	}
}

// erNoSuchDefiner is MariaDB's "The user specified as a definer does not exist".
const erNoSuchDefiner = 1449

// runAdminPaths runs, while hostile's objects are in place, every path of the engine that
// touches the server: Grant and Revoke of an ephemeral login with roles and of one with
// ad-hoc table grants (on the planted view too), CheckTables, Extend, Managed,
// PasswordWorks, Doctor, PlanStatements, Backstop, and the unlock_login and role_membership
// methods.
func runAdminPaths(t *testing.T, f *fixture, hostile timebox.GrantPlan) {
	ctx := t.Context()
	m := f.m
	victim := f.plan("tbx_victim_")
	f.grant(t, victim)
	adhoc := f.plan("tbx_adhoc_")
	adhoc.Privileges, adhoc.Roles = nil, nil
	adhoc.Tables = []timebox.TableGrant{{Table: "items", Operations: []string{"SELECT"}}, {Table: "iv", Operations: []string{"SELECT"}, Columns: []string{"v"}}}
	if err := f.eng.CheckTables(ctx, adhoc); err != nil {
		t.Fatal(err)
	}
	f.grant(t, adhoc)
	adhoc.Tables = adhoc.Tables[:1]
	f.grant(t, adhoc) // narrows: revokes the grant on iv
	extended := hostile
	extended.ValidUntil = hostile.ValidUntil.Add(time.Hour)
	if err := f.eng.Extend(ctx, extended); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.Managed(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.eng.PasswordWorks(ctx, hostile); !ok || err != nil {
		t.Fatalf("password works: %v, %v", ok, err)
	}
	if _, _, err := f.eng.Doctor(ctx, []string{f.db}, []string{f.reader, f.writer}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.eng.PlanStatements(victim); err != nil {
		t.Fatal(err)
	}
	if why, err := f.eng.Backstop(ctx, victim); why != "" || err != nil {
		t.Fatalf("backstop: %q, %v", why, err)
	}
	person, shared := "tbp_"+suffix(), "tbs_"+suffix()
	mustExec(t, m, "CREATE USER "+account(person, "%")+" IDENTIFIED BY 'p-pw'")
	mustExec(t, m, "CREATE USER "+account(shared, "%")+" IDENTIFIED BY 's-pw' ACCOUNT LOCK")
	member := timebox.GrantPlan{Method: timebox.MethodRoleMembership, Principal: person, Database: f.db, Roles: []string{f.reader},
		Privileges: []string{"INSERT"}, ValidUntil: victim.ValidUntil}
	unlock := timebox.GrantPlan{Method: timebox.MethodUnlockLogin, Principal: shared, Password: victim.Password + "u", Database: f.db, ValidUntil: victim.ValidUntil}
	for _, p := range []timebox.GrantPlan{member, unlock} {
		f.grant(t, p)
		if err := f.eng.Extend(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.eng.Managed(ctx, []string{shared}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []timebox.GrantPlan{member, unlock, adhoc, victim} {
		if res := f.revoke(t, p); len(res.Handed) != 0 {
			t.Errorf("revoke of %s handed %+v: it defined nothing", p.Principal, res.Handed)
		}
	}
}
