package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

const nastyPrincipal = "tbx 'p'`;\\ ü"

func TestEphemeralLifecycle(t *testing.T) {
	m := testdb.RequireMariaDB(t)
	for _, tc := range []struct {
		name      string
		n         names
		principal string
	}{
		{"plain", plain, "tbx_"},
		{"nasty", nasty, nastyPrincipal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, m, tc.n, true)
			testLifecycle(t, f, f.plan(tc.principal))
		})
	}
}

func testLifecycle(t *testing.T, f *fixture, p timebox.GrantPlan) {
	ctx := t.Context()
	start := time.Now()
	f.grant(t, p)
	t.Logf("first grant (connects the pool): %v", time.Since(start))
	conn := f.login(t, p.Principal, p.Password)
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n); err != nil || n != 1 {
		t.Errorf("select as principal: n=%d err=%v", n, err)
	}
	_, err := conn.ExecContext(ctx, "INSERT INTO items VALUES (2)")
	wantErrNumber(t, err, "insert into items (SELECT only)", erTableAccessDenied)
	if _, err := conn.ExecContext(ctx, "INSERT INTO log VALUES (1)"); err != nil {
		t.Errorf("insert into log through the default role: %v", err)
	}
	_, err = conn.ExecContext(ctx, "SELECT COUNT(*) FROM "+QuoteIdent(f.other)+".items")
	wantErrNumber(t, err, "select in the other database", erTableAccessDenied, erDBAccessDenied)
	_, err = connect(t, f.m, p.Principal, p.Password, f.other)
	wantErrNumber(t, err, "connect to the other database", erDBAccessDenied)
	_, err = connect(t, f.m, p.Principal, p.Password, "mysql")
	wantErrNumber(t, err, "connect to mysql", erDBAccessDenied)
	_, err = connect(t, f.m, p.Principal, p.Password+"x", f.db)
	wantErrNumber(t, err, "wrong password", erAccessDenied)
	if !eventExists(t, f.m, p.Principal) {
		t.Error("no backstop event after grant")
	}

	// Grant again, unchanged: converges. Then with a new password, a new end, INSERT and no role.
	start = time.Now()
	f.grant(t, p)
	t.Logf("grant again (warm pool): %v", time.Since(start))
	old := p.Password
	p.Password = "new-" + p.Password
	p.ValidUntil = p.ValidUntil.Add(time.Minute)
	p.Privileges = []string{"SELECT", "insert"}
	p.Roles = nil
	f.grant(t, p)
	_, err = connect(t, f.m, p.Principal, old, f.db)
	wantErrNumber(t, err, "old password after change", erAccessDenied)
	session := f.login(t, p.Principal, p.Password)
	if _, err := session.ExecContext(ctx, "INSERT INTO items VALUES (2)"); err != nil {
		t.Errorf("insert after INSERT was granted: %v", err)
	}
	var role *string
	if err := session.QueryRowContext(ctx, "SELECT CURRENT_ROLE()").Scan(&role); err != nil || role != nil {
		t.Errorf("current role after the role was revoked: %v, %v; want none", role, err)
	}
	var roles int
	if err := root(t, f.m).QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.roles_mapping WHERE User = ? AND Role <> ?",
		p.Principal, f.eng.ManagedRole).Scan(&roles); err != nil || roles != 0 {
		t.Errorf("roles left after converging to none: %d, %v", roles, err)
	}
	var at time.Time
	if err := root(t, f.m).QueryRowContext(ctx, "SELECT CONVERT_TZ(EXECUTE_AT, TIME_ZONE, '+00:00') FROM information_schema.EVENTS WHERE EVENT_NAME = ?",
		eventName(p.Principal)).Scan(&at); err != nil || !at.Equal(backstopTime(p.ValidUntil)) {
		t.Errorf("backstop at %v (%v), want %v", at, err, backstopTime(p.ValidUntil))
	}

	// Revoke with a session open.
	start = time.Now()
	res, err := f.eng.Revoke(ctx, p)
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	t.Logf("revoke with open sessions: %v (%+v)", time.Since(start), res)
	if !res.Dropped || res.Absent || res.SessionsEnded < 2 {
		t.Errorf("revoke result = %+v, want dropped with sessions ended", res)
	}
	if err := session.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n); err == nil {
		t.Error("a session opened before the revoke can still query")
	}
	if accountExists(t, f.m, p.Principal) || eventExists(t, f.m, p.Principal) {
		t.Error("account or backstop event still exists after revoke")
	}
	// Revoke again first: a refused login's thread shows in the process list under the
	// user's name for a moment, and the second revoke would count it as a session.
	res, err = f.eng.Revoke(ctx, p)
	if err != nil || !res.Dropped || !res.Absent || res.SessionsEnded != 0 {
		t.Errorf("second revoke = %+v, %v", res, err)
	}
	_, err = connect(t, f.m, p.Principal, p.Password, f.db)
	wantErrNumber(t, err, "login after revoke", erAccessDenied)
}

// TestBackstop grants with an end 2 s ahead and does not revoke: the event locks the
// account, kills its session and drops it; for a shared login it locks it.
func TestBackstop(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	ctx := t.Context()
	p := f.plan("tbx_bs_")
	shared := sharedAccount(t, f, "shared_bs_")
	p.ValidUntil = time.Now().Add(2 * time.Second)
	shared.ValidUntil = p.ValidUntil
	for _, p := range []timebox.GrantPlan{p, shared} {
		f.grant(t, p)
	}
	session := f.login(t, p.Principal, p.Password)
	sharedSession := f.login(t, shared.Principal, shared.Password)
	deadline := time.Now().Add(15 * time.Second)
	for accountExists(t, f.m, p.Principal) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if accountExists(t, f.m, p.Principal) {
		t.Fatal("the account outlived its backstop")
	}
	t.Logf("account dropped %v after the end", time.Since(p.ValidUntil))
	var n int
	if err := session.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n); err == nil {
		t.Error("the backstop left a session running")
	}
	if err := sharedSession.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n); err == nil {
		t.Error("the backstop left a shared login's session running")
	}
	if !accountExists(t, f.m, shared.Principal) {
		t.Error("the backstop dropped a shared login")
	}
	_, err := connect(t, f.m, shared.Principal, shared.Password, f.db)
	wantErrNumber(t, err, "shared login after its backstop", erMariaAccountLocked)
	if eventExists(t, f.m, p.Principal) || eventExists(t, f.m, shared.Principal) {
		t.Error("a backstop event is left after it ran")
	}
	// Timebox's own revoke afterwards finds nothing left to do.
	if res, err := f.eng.Revoke(ctx, p); err != nil || !res.Absent {
		t.Errorf("revoke after the backstop = %+v, %v", res, err)
	}
	if res, err := f.eng.Revoke(ctx, shared); err != nil || !res.Absent {
		t.Errorf("revoke of the shared login after the backstop = %+v, %v", res, err)
	}
}

// sharedAccount creates, as root, a locked shared account with SELECT on the fixture's
// database, and returns an unlock_login plan for it.
func sharedAccount(t *testing.T, f *fixture, prefix string) timebox.GrantPlan {
	name := prefix + suffix()
	mustExec(t, f.m, "CREATE USER "+account(name, "%")+" IDENTIFIED BY 'initial' ACCOUNT LOCK")
	mustExec(t, f.m, "GRANT SELECT ON "+onDB(f.db)+" TO "+account(name, "%"))
	return timebox.GrantPlan{Method: timebox.MethodUnlockLogin, Principal: name, Password: "pw-" + suffix(),
		Database: f.db, ValidUntil: time.Now().Add(time.Hour)}
}

func TestUnlockLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), nasty, true)
	ctx := t.Context()
	p := sharedAccount(t, f, "shared 'x'\\ ")
	_, err := connect(t, f.m, p.Principal, "initial", f.db)
	wantErrNumber(t, err, "locked shared login", erMariaAccountLocked)
	f.grant(t, p)
	conn := f.login(t, p.Principal, p.Password)
	found, err := f.eng.Managed(ctx, []string{p.Principal, "no_such_login"})
	if err != nil || len(found) != 1 || !found[0].Shared || !found[0].CanLogin || !found[0].ValidUntil.Equal(p.ValidUntil) {
		t.Errorf("Managed = %+v, %v; want the shared login, unlocked, until %v", found, err, p.ValidUntil)
	}
	res, err := f.eng.Revoke(ctx, p)
	if err != nil || res.Absent || res.SessionsEnded != 1 {
		t.Fatalf("revoke = %+v, %v", res, err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n); err == nil {
		t.Error("a session of the shared login survived its revoke")
	}
	_, err = connect(t, f.m, p.Principal, p.Password, f.db)
	wantErrNumber(t, err, "login after revoke", erMariaAccountLocked, erAccessDenied)
	if !accountExists(t, f.m, p.Principal) || eventExists(t, f.m, p.Principal) {
		t.Error("the shared login was dropped, or its backstop kept")
	}
	if res, err := f.eng.Revoke(ctx, p); err != nil || !res.Absent {
		t.Errorf("second revoke = %+v, %v; want Absent", res, err)
	}

	missing := p
	missing.Principal = "no_such_login"
	wantCode(t, f.eng.Grant(ctx, missing), timebox.EINVALID, "unlock of a missing login")
	f.refusesEphemeral(t, p, "unlock of an ephemeral login")
}

func TestRoleMembership(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), nasty, true)
	ctx := t.Context()
	person := "alice 'a'`\\ " + suffix()
	mustExec(t, f.m, "CREATE USER "+account(person, "%")+" IDENTIFIED BY 'alice-pw'")
	p := timebox.GrantPlan{Method: timebox.MethodRoleMembership, Principal: person, Database: f.db,
		Privileges: []string{"SELECT"}, Roles: []string{f.writer}}
	f.grant(t, p)
	conn := f.login(t, person, "alice-pw")
	// The admin cannot set another account's default role on MariaDB without UPDATE on the
	// mysql schema: the person enables the role.
	if _, err := conn.ExecContext(ctx, "SET ROLE "+QuoteString(f.writer)); err != nil {
		t.Errorf("SET ROLE as the person: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO log SELECT id FROM items"); err != nil {
		t.Errorf("read items and write log as the person: %v", err)
	}
	// Another grant of the person still needs SELECT on the database: only the role goes.
	keepDB := p
	keepDB.KeepDatabases, keepDB.KeepPrivileges = []string{f.db}, []string{"SELECT"}
	res, err := f.eng.Revoke(ctx, keepDB)
	if err != nil || res.SessionsEnded != 1 || !strings.Contains(res.Detail, "kept") {
		t.Fatalf("revoke keeping the database = %+v, %v", res, err)
	}
	conn = f.login(t, person, "alice-pw")
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n); err != nil {
		t.Errorf("select after a revoke that kept the database: %v", err)
	}
	_, err = conn.ExecContext(ctx, "SET ROLE "+QuoteString(f.writer))
	wantErrNumber(t, err, "SET ROLE after the role was revoked", erInvalidRole)
	_, err = conn.ExecContext(ctx, "INSERT INTO log VALUES (3)")
	wantErrNumber(t, err, "insert after the role was revoked", erTableAccessDenied)
	res, err = f.eng.Revoke(ctx, p)
	if err != nil || res.SessionsEnded != 1 {
		t.Fatalf("full revoke = %+v, %v", res, err)
	}
	_, err = connect(t, f.m, person, "alice-pw", f.db)
	wantErrNumber(t, err, "connect after the full revoke", erDBAccessDenied)
	if !accountExists(t, f.m, person) {
		t.Error("the person's login was dropped")
	}
	if res, err := f.eng.Revoke(ctx, p); err != nil || res.SessionsEnded != 0 || !strings.HasPrefix(res.Detail, "nothing revoked") {
		t.Errorf("second revoke = %+v, %v", res, err)
	}
	f.refusesEphemeral(t, p, "membership for an ephemeral login")
}

// TestRevokeDroppedLogin: a shared or person's login dropped by hand while a session is open
// still has that session killed by Revoke (DROP USER leaves it running), and a second Revoke
// finds nothing left.
func TestRevokeDroppedLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	ctx := t.Context()
	shared := sharedAccount(t, f, "shared_gone_")
	person := "bob_" + suffix()
	mustExec(t, f.m, "CREATE USER "+account(person, "%")+" IDENTIFIED BY 'bob-pw'")
	member := timebox.GrantPlan{Method: timebox.MethodRoleMembership, Principal: person, Database: f.db,
		Privileges: []string{"SELECT"}}
	for _, tc := range []struct {
		p        timebox.GrantPlan
		password string
	}{{shared, shared.Password}, {member, "bob-pw"}} {
		f.grant(t, tc.p)
		session := f.login(t, tc.p.Principal, tc.password)
		mustExec(t, f.m, "DROP USER "+account(tc.p.Principal, "%"))
		if res, err := f.eng.Revoke(ctx, tc.p); err != nil || res.SessionsEnded != 1 || res.Absent {
			t.Errorf("%s: revoke of a dropped login = %+v, %v; want its session ended", tc.p.Method, res, err)
		}
		var n int
		if err := session.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n); err == nil {
			t.Errorf("%s: a session of the dropped login survived its revoke", tc.p.Method)
		}
		if res, err := f.eng.Revoke(ctx, tc.p); err != nil || !res.Absent {
			t.Errorf("%s: second revoke = %+v, %v; want Absent", tc.p.Method, res, err)
		}
	}
	if eventExists(t, f.m, shared.Principal) {
		t.Error("the backstop of the dropped shared login was kept")
	}
}

func TestRefusesForeignAccounts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	ctx := t.Context()
	p := f.plan("tbx_foreign_")
	mustExec(t, f.m, "CREATE USER "+account(p.Principal, "%")+" IDENTIFIED BY 'theirs'")
	wantCode(t, f.eng.Grant(ctx, p), timebox.EINVALID, "grant to a foreign account")
	_, err := f.eng.Revoke(ctx, p)
	wantCode(t, err, timebox.EINVALID, "revoke of a foreign account")
	if !accountExists(t, f.m, p.Principal) {
		t.Error("the foreign account was dropped")
	}
	// Locked, with the plan's own password hash and nothing else: a Grant interrupted right
	// after CREATE USER. The next Grant takes it over.
	half := f.plan("tbx_half_")
	mustExec(t, f.m, "CREATE USER "+account(half.Principal, "%")+" IDENTIFIED BY "+QuoteString(half.Password)+" ACCOUNT LOCK")
	f.grant(t, half)
	if _, err := connect(t, f.m, half.Principal, half.Password, f.db); err != nil {
		t.Errorf("login after taking over a half-made account: %v", err)
	}
	if res, err := f.eng.Revoke(ctx, half); err != nil || !res.Dropped {
		t.Errorf("revoke = %+v, %v", res, err)
	}
}

func TestGrantInvalid(t *testing.T) {
	eng, err := New("my-test", "mysql://timebox@127.0.0.1:1/", "pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	good := timebox.GrantPlan{Principal: "tbx_a", Password: "pw", Database: "db", ValidUntil: time.Now().Add(time.Hour)}
	for name, mutate := range map[string]func(*timebox.GrantPlan){
		"empty principal":    func(p *timebox.GrantPlan) { p.Principal = "" },
		"long principal":     func(p *timebox.GrantPlan) { p.Principal = strings.Repeat("p", 33) },
		"NUL in database":    func(p *timebox.GrantPlan) { p.Database = "a\x00b" },
		"long database":      func(p *timebox.GrantPlan) { p.Database = strings.Repeat("d", 65) },
		"trailing space":     func(p *timebox.GrantPlan) { p.Database = "db " },
		"emoji role":         func(p *timebox.GrantPlan) { p.Roles = []string{"r😀"} },
		"empty password":     func(p *timebox.GrantPlan) { p.Password = "" },
		"non-ASCII password": func(p *timebox.GrantPlan) { p.Password = "pässword" },
		"zero end":           func(p *timebox.GrantPlan) { p.ValidUntil = time.Time{} },
		"unknown privilege":  func(p *timebox.GrantPlan) { p.Privileges = []string{"SELECT; DROP DATABASE x"} },
		"grant option":       func(p *timebox.GrantPlan) { p.Privileges = []string{"grant option"} },
		"global privilege":   func(p *timebox.GrantPlan) { p.Privileges = []string{"SUPER"} },
		"unknown method":     func(p *timebox.GrantPlan) { p.Method = "magic" },
		"admin as principal": func(p *timebox.GrantPlan) { p.Principal = "timebox" },
	} {
		p := good
		mutate(&p)
		wantCode(t, eng.Grant(t.Context(), p), timebox.EINVALID, name)
	}
	for _, u := range []string{"mysql://timebox:secret@127.0.0.1/", "mysql://%zz", "postgres://timebox@h/", "mysql://@h/",
		"mysql://timebox@h/?password=x", "mysql://timebox@h/?tls=maybe", "mysql://timebox@h/?allowAllFiles=true"} {
		_, err = New("my-test", u, "pw", 0)
		wantCode(t, err, timebox.EINVALID, u)
		if err != nil && (!strings.Contains(err.Error(), "my-test") || strings.Contains(err.Error(), "secret")) {
			t.Errorf("error %q does not name the server, or leaks the password", err)
		}
	}
	eng.EventSchema = "bad\x00schema"
	wantCode(t, eng.Grant(t.Context(), good), timebox.EINVALID, "NUL in the event schema")
	_, err = eng.Revoke(t.Context(), good)
	wantCode(t, err, timebox.EINVALID, "revoke with a NUL in the event schema")
	if _, err := New("my-test", "mysql://timebox@db1.internal/?tls=skip-verify", "pw", 0); err != nil {
		t.Errorf("URL without a port, with tls: %v", err)
	}
}

func TestGrantErrorHidesPassword(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	p := f.plan("tbx_err_")
	p.Roles = []string{"no_such_role_" + suffix()}
	err := f.eng.Grant(t.Context(), p)
	wantCode(t, err, timebox.EINTERNAL, "grant of a missing role")
	if msg := err.Error(); strings.Contains(msg, p.Password) || strings.Contains(msg, nativeHash(p.Password)[1:]) || !strings.Contains(msg, "error 1959") {
		t.Errorf("error message leaks a secret or lacks the error number: %s", msg)
	}
	_, err = connect(t, f.m, p.Principal, p.Password, f.db)
	wantErrNumber(t, err, "login to the account a failed grant left", erMariaAccountLocked)
	p.Roles = nil
	if err := f.eng.Grant(t.Context(), p); err != nil {
		t.Errorf("grant after fixing the plan: %v", err)
	}
	if res, err := f.eng.Revoke(t.Context(), p); err != nil || !res.Dropped {
		t.Errorf("revoke = %+v, %v", res, err)
	}
}

// TestGrantPastEnd: a plan whose window is over already leaves the account locked, without a
// backstop.
func TestGrantPastEnd(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	ctx := t.Context()
	p := f.plan("tbx_past_")
	p.ValidUntil = time.Now().Add(-time.Second)
	f.grant(t, p)
	_, err := connect(t, f.m, p.Principal, p.Password, f.db)
	wantErrNumber(t, err, "login to an account whose window is over", erMariaAccountLocked)
	if eventExists(t, f.m, p.Principal) {
		t.Error("a backstop in the past was left")
	}
	found, err := f.eng.Managed(ctx, nil)
	if err != nil || len(found) != 1 || found[0].CanLogin || !found[0].ValidUntil.IsZero() {
		t.Errorf("Managed = %+v, %v; want one locked login without backstop", found, err)
	}
	if res, err := f.eng.Revoke(ctx, p); err != nil || !res.Dropped {
		t.Errorf("revoke = %+v, %v", res, err)
	}
}
