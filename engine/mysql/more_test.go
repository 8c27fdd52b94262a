package mysql

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// TestManaged: Managed lists the logins this installation made (not a look-alike account,
// not the admin, not another installation's) and the shared logins asked for.
func TestManaged(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), nasty, true)
	ctx := t.Context()
	p := f.plan(nastyPrincipal)
	p.Roles = []string{f.writer, f.reader}
	f.grant(t, p)
	lookalike := "tbx_" + suffix()
	mustExec(t, f.m, "CREATE USER "+account(lookalike, "%")+" IDENTIFIED BY 'x'")
	mustExec(t, f.m, "GRANT "+QuoteString(f.writer)+" TO "+account(lookalike, "%"))
	shared := sharedAccount(t, f, "shared_m_")
	found, err := f.eng.Managed(ctx, []string{shared.Principal})
	if err != nil {
		t.Fatal(err)
	}
	want := []timebox.ManagedPrincipal{
		{Name: shared.Principal, CanLogin: false, Roles: []string{}, Database: f.db, Shared: true,
			Privileges: map[string][]string{f.db: {"SELECT"}}},
		{Name: p.Principal, CanLogin: true, ValidUntil: p.ValidUntil.UTC(), Roles: slices.Sorted(slices.Values(p.Roles)), Database: f.db,
			Privileges: map[string][]string{f.db: {"SELECT"}}},
	}
	slices.SortFunc(found, func(a, b timebox.ManagedPrincipal) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(want, func(a, b timebox.ManagedPrincipal) int { return strings.Compare(a.Name, b.Name) })
	if fmt.Sprintf("%+v", found) != fmt.Sprintf("%+v", want) {
		t.Errorf("Managed =\n%+v\nwant\n%+v", found, want)
	}
	// Another installation (another bookkeeping role) on the same server sees none of them.
	other := f.engine(t, f.admin, f.password)
	other.ManagedRole = "bk 'o' " + suffix()
	if found, err := other.Managed(ctx, nil); err != nil || len(found) != 0 {
		t.Errorf("another installation's Managed = %+v, %v", found, err)
	}
	// A backstop moved by hand shows its own time.
	moved := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	mustExec(t, f.m, "ALTER EVENT "+QuoteIdent(DefaultEventSchema)+"."+QuoteIdent(eventName(p.Principal))+
		" ON SCHEDULE AT CONVERT_TZ("+QuoteString(moved.Format(eventLayout))+", '+00:00', @@session.time_zone)")
	found, err = f.eng.Managed(ctx, nil)
	if err != nil || len(found) != 1 || !found[0].ValidUntil.Equal(moved) {
		t.Errorf("Managed after the backstop was moved = %+v, %v; want ValidUntil %v", found, err, moved)
	}
	// A locked one (as the backstop or a manual lock leaves it) cannot log in.
	mustExec(t, f.m, "ALTER USER "+account(p.Principal, "%")+" ACCOUNT LOCK")
	found, err = f.eng.Managed(ctx, nil)
	if err != nil || len(found) != 1 || found[0].CanLogin {
		t.Errorf("Managed after a lock = %+v, %v", found, err)
	}
	f.revoke(t, p)
	if found, err := f.eng.Managed(ctx, nil); err != nil || len(found) != 0 {
		t.Errorf("Managed after revoke = %+v, %v", found, err)
	}
}

// TestPasswordWorks: the planned password logs in, another is refused (false, no error), and
// a login refused for another reason is an error without the password.
func TestPasswordWorks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	ctx := t.Context()
	p := f.plan("tbx_pw_")
	f.grant(t, p)
	if ok, err := f.eng.PasswordWorks(ctx, p); !ok || err != nil {
		t.Fatalf("planned password: %v, %v; want true", ok, err)
	}
	wrong := p
	wrong.Password = "not-" + p.Password
	if ok, err := f.eng.PasswordWorks(ctx, wrong); ok || err != nil {
		t.Fatalf("another password: %v, %v; want false, no error", ok, err)
	}
	otherDB := p
	otherDB.Database = f.other
	if ok, err := f.eng.PasswordWorks(ctx, otherDB); !ok || err != nil {
		t.Fatalf("right password, database refused: %v, %v; want true", ok, err)
	}
	mustExec(t, f.m, "ALTER USER "+account(p.Principal, "%")+" ACCOUNT LOCK")
	if ok, err := f.eng.PasswordWorks(ctx, p); ok || err == nil || strings.Contains(err.Error(), p.Password) {
		t.Fatalf("locked login: %v, %v; want an error without the password", ok, err)
	}
	f.revoke(t, p)
}

// TestConcurrent grants and revokes many principals on one database at once, from two engines
// (two Timebox replicas).
func TestConcurrent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	engines := []*Engine{f.eng, f.engine(t, f.admin, f.password)}
	plans := make([]timebox.GrantPlan, 16)
	for i := range plans {
		plans[i] = f.plan(fmt.Sprintf("tbx_c%d_", i))
	}
	ctx := t.Context()
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
		t.Logf("%d concurrent %s from 2 engines: %v", len(plans), what, time.Since(start))
	}
	run("grants", func(e *Engine, p timebox.GrantPlan) error { return e.Grant(ctx, p) })
	run("revokes", func(e *Engine, p timebox.GrantPlan) error {
		res, err := e.Revoke(ctx, p)
		if err == nil && !res.Dropped {
			err = fmt.Errorf("not dropped: %s", res.Detail)
		}
		return err
	})
	for _, p := range plans {
		if accountExists(t, f.m, p.Principal) {
			t.Errorf("%s left", p.Principal)
		}
	}
}

// TestPrivateServer runs on a server of its own, whose event scheduler it switches and which
// it stops: Doctor on a hardened server, backstops unavailable (NoExpiry), injected problems,
// and the server going away (EUNAVAILABLE) and coming back.
func TestPrivateServer(t *testing.T) {
	t.Parallel()
	testdb.RequireMariaDB(t) // skips when MariaDB is not installed
	m, err := testdb.StartMariaDB(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	f := newFixture(t, m, plain, false)
	ctx := t.Context()

	version, findings, err := f.eng.Doctor(ctx, []string{f.db, f.other}, []string{f.writer, f.reader})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(version, "MariaDB") || timebox.Problems(findings) != 0 || !hasFinding(findings, SeverityWarn, "backstop unavailable: SET GLOBAL event_scheduler=ON") {
		t.Fatalf("hardened server (version %q), scheduler off: %+v", version, findings)
	}
	for _, fd := range findings {
		t.Logf("%s: %s", fd.Severity, fd.Message)
	}

	// init_connect runs for every login but the admin, which holds CONNECTION ADMIN.
	mustExec(t, m, "SET GLOBAL init_connect = 'SET @tbx_init_connect = CURRENT_USER()'")
	fresh := f.engine(t, f.admin, f.password)
	pool, err := fresh.db()
	if err != nil {
		t.Fatal(err)
	}
	var ran *string
	if err := pool.QueryRowContext(ctx, "SELECT @tbx_init_connect").Scan(&ran); err != nil || ran != nil {
		t.Errorf("init_connect in an admin session: %v, %v; want it not run", ran, err)
	}
	mustExec(t, m, "CREATE USER 'tbx_ic'@'%' IDENTIFIED BY 'ic-pw'")
	other, err := connect(t, m, "tbx_ic", "ic-pw", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.QueryRowContext(ctx, "SELECT @tbx_init_connect").Scan(&ran); err != nil || ran == nil {
		t.Errorf("init_connect in another account's session: %v, %v; want it run (else this check proves nothing)", ran, err)
	}
	if _, findings, err := fresh.Doctor(ctx, nil, nil); err != nil || !hasFinding(findings, SeverityOK, "init_connect is set") {
		t.Errorf("doctor with init_connect: %+v, %v", findings, err)
	}
	mustExec(t, m, "SET GLOBAL init_connect = ''")

	// Without a backstop, Grant works and Managed says there is no database-side expiry.
	p := f.plan("tbx_noexp_")
	f.grant(t, p)
	if why, err := f.eng.Backstop(ctx, p); err != nil || !strings.Contains(why, "the event scheduler is OFF") {
		t.Errorf("Backstop with the scheduler off = %q, %v", why, err)
	}
	found, err := f.eng.Managed(ctx, nil)
	if err != nil || len(found) != 1 || !found[0].NoExpiry || !found[0].ValidUntil.IsZero() {
		t.Errorf("Managed without backstops = %+v, %v; want NoExpiry", found, err)
	}
	// Extend has no backstop to move: it succeeds (Timebox removes the access itself).
	extended := p
	extended.ValidUntil = p.ValidUntil.Add(time.Hour)
	if err := f.eng.Extend(ctx, extended); err != nil || eventExists(t, m, p.Principal) {
		t.Errorf("extend without backstops: %v (event placed: %v)", err, eventExists(t, m, p.Principal))
	}
	mustExec(t, m, "SET GLOBAL event_scheduler = ON")
	if why, err := f.eng.Backstop(ctx, p); err != nil || why != "" {
		t.Errorf("Backstop with the scheduler on = %q, %v", why, err)
	}
	if found, err := f.eng.Managed(ctx, nil); err != nil || len(found) != 1 || found[0].NoExpiry {
		t.Errorf("Managed with the scheduler on = %+v, %v; want NoExpiry false (the backstop is missing)", found, err)
	}

	// Inject problems.
	a := account(f.admin, "%")
	mustExec(t, m, "REVOKE PROCESS ON *.* FROM "+a)
	mustExec(t, m, "REVOKE SELECT ON mysql.roles_mapping FROM "+a)
	mustExec(t, m, "CREATE USER ''@'localhost'")
	mustExec(t, m, "CREATE ROLE plain_role")
	mustExec(t, m, "GRANT plain_role TO "+a)
	mustExec(t, m, "REVOKE EVENT ON "+onDB(DefaultEventSchema)+" FROM "+a)
	mustExec(t, m, "REVOKE ALL PRIVILEGES ON "+onDB(f.other)+" FROM "+a)
	mustExec(t, m, "REVOKE GRANT OPTION ON "+onDB(f.other)+" FROM "+a)
	_, findings, err = f.eng.Doctor(ctx, []string{f.db, f.other, "missing_db"}, []string{f.reader, "plain_role", "no_such_role"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"lacks PROCESS":                              "GRANT PROCESS ON *.* TO " + a + ";",
		"cannot read mysql.roles_mapping":            "GRANT SELECT ON mysql.`roles_mapping` TO " + a + ";",
		"anonymous account ''@'localhost'":           "DROP USER ''@'localhost';",
		"cannot grant role 'plain_role'":             "GRANT 'plain_role' TO " + a + " WITH ADMIN OPTION;",
		"role 'no_such_role', which an access level": "",
		"database `missing_db` does not exist on the server, or the admin holds no privilege": "GRANT ALL PRIVILEGES ON `missing\\_db`.* TO " + a + " WITH GRANT OPTION;",
		"lacks the EVENT privilege": "CREATE DATABASE IF NOT EXISTS `timebox`; GRANT EVENT ON `timebox`.* TO " + a + ";",
		"database `" + f.other + "` does not exist on the server, or the admin holds no privilege": "GRANT ALL PRIVILEGES ON " + onDB(f.other) + " TO " + a + " WITH GRANT OPTION;",
	}
	for msg, fix := range want {
		found := false
		for _, fd := range findings {
			found = found || strings.Contains(fd.Message, msg) && fd.Severity == SeverityFail && fd.Fix == fix
		}
		if !found {
			t.Errorf("no failure %q with fix %q in %+v", msg, fix, findings)
		}
	}
	if timebox.Problems(findings) != len(want) {
		t.Errorf("%d problems, want %d: %+v", timebox.Problems(findings), len(want), findings)
	}
	mustExec(t, m, "DROP USER ''@'localhost'")
	mustExec(t, m, "GRANT PROCESS ON *.* TO "+a)
	mustExec(t, m, "GRANT SELECT ON mysql.roles_mapping TO "+a)

	// With NO_BACKSLASH_ESCAPES in the server's sql_mode, the default role the login sets
	// itself is still the planned one, whose name holds a backslash and a quote.
	role := `r\'nbe_` + suffix()
	mustExec(t, m, "CREATE ROLE "+QuoteString(role))
	mustExec(t, m, "GRANT SELECT ON "+onDB(f.db)+" TO "+QuoteString(role))
	mustExec(t, m, "GRANT "+QuoteString(role)+" TO "+a+" WITH ADMIN OPTION")
	var mode string
	if err := root(t, m).QueryRowContext(ctx, "SELECT @@GLOBAL.sql_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	mustExec(t, m, "SET GLOBAL sql_mode = CONCAT_WS(',', NULLIF(@@GLOBAL.sql_mode, ''), 'NO_BACKSLASH_ESCAPES')")
	nbe := f.plan("tbx_nbe_")
	nbe.Privileges, nbe.Roles = nil, []string{role}
	f.grant(t, nbe)
	var current *string
	if err := f.login(t, nbe.Principal, nbe.Password).QueryRowContext(ctx, "SELECT CURRENT_ROLE()").Scan(&current); err != nil ||
		current == nil || *current != role {
		t.Errorf("current role with NO_BACKSLASH_ESCAPES: %v, %v; want %q", current, err, role)
	}
	f.revoke(t, nbe)
	mustExec(t, m, "SET GLOBAL sql_mode = "+QuoteString(mode))

	// The server goes away: every call is EUNAVAILABLE, and works again once it is back.
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			m.Start()
		}
	})
	later := f.plan("tbx_later_")
	start := time.Now()
	err = f.eng.Grant(ctx, later)
	wantCode(t, err, timebox.EUNAVAILABLE, "grant while down")
	if err != nil && (!strings.Contains(err.Error(), "server my-test unreachable: ") || strings.Contains(err.Error(), later.Password)) {
		t.Errorf("grant while down: message %q", err)
	}
	t.Logf("grant while down failed in %v: %v", time.Since(start), err)
	_, err = f.eng.Revoke(ctx, p)
	wantCode(t, err, timebox.EUNAVAILABLE, "revoke while down")
	wantCode(t, f.eng.Extend(ctx, p), timebox.EUNAVAILABLE, "extend while down")
	wantCode(t, f.eng.Ping(ctx), timebox.EUNAVAILABLE, "ping while down")
	_, err = f.eng.Managed(ctx, nil)
	wantCode(t, err, timebox.EUNAVAILABLE, "managed while down")
	_, _, err = f.eng.Doctor(ctx, nil, nil)
	wantCode(t, err, timebox.EUNAVAILABLE, "doctor while down")
	_, err = f.eng.PasswordWorks(ctx, p)
	wantCode(t, err, timebox.EUNAVAILABLE, "password check while down")
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	stopped = false
	if err := f.eng.Grant(ctx, later); err != nil {
		t.Errorf("grant after restart: %v", err)
	}
	for _, p := range []timebox.GrantPlan{p, later} {
		if res, err := f.eng.Revoke(ctx, p); err != nil || !res.Dropped {
			t.Errorf("revoke after restart = %+v, %v", res, err)
		}
	}
	// A wrong admin password is EUNAVAILABLE too (the caller retries; doctor says why).
	bad := f.engine(t, f.admin, "wrong")
	wantCode(t, bad.Ping(ctx), timebox.EUNAVAILABLE, "ping with a wrong admin password")
}

// hasFinding reports whether findings hold one of severity whose message contains msg.
func hasFinding(findings []Finding, severity, msg string) bool {
	for _, f := range findings {
		if f.Severity == severity && strings.Contains(f.Message, msg) {
			return true
		}
	}
	return false
}

func TestSetupStatements(t *testing.T) {
	got := SetupStatements("adm'in", "pw'x", "10.0.%", []string{"shop_1", "we`ird", "shop_1"}, []string{"ro", "rw", "ro"})
	a := `'adm''in'@'10.0.%'`
	want := []string{
		"CREATE USER " + a + " IDENTIFIED WITH mysql_native_password AS '" + nativeHash("pw'x") + "'",
		"GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO " + a,
		"GRANT SELECT ON mysql.global_priv TO " + a,
		"GRANT SELECT ON mysql.roles_mapping TO " + a,
		"GRANT SELECT ON mysql.db TO " + a,
		"GRANT SELECT ON mysql.tables_priv TO " + a,
		"GRANT SELECT ON mysql.columns_priv TO " + a,
		"GRANT ALL PRIVILEGES ON `shop\\_1`.* TO " + a + " WITH GRANT OPTION",
		"GRANT ALL PRIVILEGES ON `we``ird`.* TO " + a + " WITH GRANT OPTION",
		"GRANT 'ro' TO " + a + " WITH ADMIN OPTION",
		"GRANT 'rw' TO " + a + " WITH ADMIN OPTION",
		"CREATE DATABASE IF NOT EXISTS `timebox`",
		"GRANT EVENT ON `timebox`.* TO " + a,
		"CREATE ROLE IF NOT EXISTS 'adm''in_managed' WITH ADMIN " + a,
	}
	if !slices.Equal(got, want) {
		t.Errorf("statements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestManagedRoleName(t *testing.T) {
	for _, admin := range []string{"timebox", strings.Repeat("é", 20), strings.Repeat("a", 32)} {
		got := ManagedRoleName(admin)
		if len(got) > 32 || !strings.HasSuffix(got, "_managed") || !utf8.ValidString(got) || validUser(got) != nil {
			t.Errorf("ManagedRoleName(%q) = %q", admin, got)
		}
	}
	if got := ManagedRoleName("timebox"); got != "timebox_managed" {
		t.Errorf("ManagedRoleName(timebox) = %q", got)
	}
}

func TestEventName(t *testing.T) {
	for user, want := range map[string]string{
		"tbx_abc123": "tbx_end_tbx_abc123",
		"Tbx_abc":    "tbx_endh_",
		"tbx 'x'":    "tbx_endh_",
	} {
		if got := eventName(user); !strings.HasPrefix(got, want) || len(got) > 64 || ValidIdent(got) != nil {
			t.Errorf("eventName(%q) = %q, want prefix %q", user, got, want)
		}
	}
	if eventName("Bob") == eventName("bob") {
		t.Error("event names of Bob and bob collide (event names are case-insensitive)")
	}
}

// TestNativeHash compares the hash with the one the server computes itself.
func TestNativeHash(t *testing.T) {
	t.Parallel()
	m := testdb.RequireMariaDB(t)
	for _, pw := range []string{"secret", `p@ss w0rd'"\;`, rand32()} {
		var got string
		if err := root(t, m).QueryRowContext(t.Context(), "SELECT PASSWORD(?)", pw).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != nativeHash(pw) {
			t.Errorf("nativeHash(%q) = %s, server says %s", pw, nativeHash(pw), got)
		}
	}
}

func rand32() string { return suffix() + suffix() + suffix() + suffix() + suffix() }

func TestScrub(t *testing.T) {
	e := &Engine{name: "s"}
	for _, err := range []error{
		&mysql.MySQLError{Number: 1064, Message: "syntax error near 'Sekret-123'"},
		&mysql.MySQLError{Number: 1045, Message: "Access denied for Sekret-123"},
		errors.New("dial: Sekret-123: connection refused"),
	} {
		got := e.wrap(err, []string{"Sekret-123"})
		if strings.Contains(got.Error(), "Sekret-123") {
			t.Errorf("wrap(%v) = %q leaks the secret", err, got)
		}
	}
	wantCode(t, e.wrap(&mysql.MySQLError{Number: 1045}, nil), timebox.EUNAVAILABLE, "admin access denied")
	wantCode(t, e.wrap(&mysql.MySQLError{Number: 1040}, nil), timebox.EUNAVAILABLE, "too many connections")
	wantCode(t, e.wrap(&mysql.MySQLError{Number: 1064}, nil), timebox.EINTERNAL, "syntax error")
	wantCode(t, e.wrap(mysql.ErrInvalidConn, nil), timebox.EUNAVAILABLE, "invalid connection")
}

func TestNormalizePrivileges(t *testing.T) {
	got, err := normalizePrivileges([]string{"select", " create  temporary tables", "SELECT", "all"})
	if want := []string{"ALL PRIVILEGES", "CREATE TEMPORARY TABLES", "SELECT"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("normalizePrivileges = %q, %v; want %q", got, err, want)
	}
}
