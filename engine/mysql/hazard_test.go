package mysql

import (
	"slices"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// TestEventSchemaRefused: no plan hands out privileges on the event schema or the mysql
// schema, nor roles that reach the event schema (a database pattern covering it, a hazard on
// *.*, directly or through another role); Doctor names them, and the accounts that may
// change the backstops, with the fix. An account that may alter a backstop event becomes its
// definer by doing so: the body then runs as that account, not as the admin.
func TestEventSchemaRefused(t *testing.T) {
	t.Parallel()
	m := testdb.RequireMariaDB(t)
	f := newFixture(t, m, plain, true)
	ctx := t.Context()
	a := account(f.admin, "%")
	for _, dbname := range []string{DefaultEventSchema, "MySQL"} {
		p := f.plan("tbx_evs_")
		p.Database, p.Roles = dbname, nil
		wantCode(t, f.eng.Grant(ctx, p), timebox.EINVALID, "grant on "+dbname)
		_, _, err := f.eng.PlanStatements(p)
		wantCode(t, err, timebox.EINVALID, "plan on "+dbname)
		p.Privileges, p.Tables = nil, []timebox.TableGrant{{Table: "t", Operations: []string{"SELECT"}}}
		wantCode(t, f.eng.Grant(ctx, p), timebox.EINVALID, "table grant in "+dbname)
		if accountExists(t, m, p.Principal) {
			t.Errorf("a refused plan on %s created its account", dbname)
		}
	}
	s := suffix()
	direct, pattern, global, nested := "ev_direct_"+s, "ev_pattern_"+s, "ev_global_"+s, "ev_nested_"+s
	for _, stmt := range []string{
		"CREATE ROLE " + direct, "GRANT EVENT ON " + onDB(DefaultEventSchema) + " TO " + direct,
		"CREATE ROLE " + pattern, "GRANT SELECT ON `t%`.* TO " + pattern,
		"CREATE ROLE " + global, "GRANT SET USER ON *.* TO " + global,
		"CREATE ROLE " + nested, "GRANT " + global + " TO " + nested,
	} {
		mustExec(t, m, stmt)
	}
	for _, r := range []string{direct, pattern, global, nested} {
		mustExec(t, m, "GRANT "+r+" TO "+a+" WITH ADMIN OPTION")
		p := f.plan("tbx_evr_")
		p.Roles = []string{f.reader, r}
		err := f.eng.Grant(ctx, p)
		wantCode(t, err, timebox.EINVALID, "grant of role "+r)
		if err != nil && !strings.Contains(err.Error(), r) {
			t.Errorf("the refusal does not name role %s: %v", r, err)
		}
		if accountExists(t, m, p.Principal) {
			t.Errorf("a refused plan with role %s created its account", r)
		}
	}
	if p := f.plan("tbx_evok_"); f.eng.Grant(ctx, p) != nil {
		t.Error("a plan with harmless roles was refused")
	} else {
		f.revoke(t, p)
	}

	evil := "tbx_evil_" + s
	mustExec(t, m, "CREATE USER "+account(evil, "%")+" IDENTIFIED BY 'evil-pw'")
	mustExec(t, m, "GRANT EVENT, DROP ON "+onDB(DefaultEventSchema)+" TO "+account(evil, "%"))
	_, findings, err := f.eng.Doctor(ctx, []string{f.db, DefaultEventSchema}, []string{f.reader, direct, nested})
	if err != nil {
		t.Fatal(err)
	}
	for msg, fix := range map[string]string{
		"role '" + direct + "' holds privileges on database pattern `timebox`": "",
		"role '" + nested + "' (through role '" + global + "') holds SET USER": "",
		account(evil, "%") + " holds DROP, EVENT on `timebox`":                 "REVOKE DROP, EVENT ON `timebox`.* FROM " + account(evil, "%") + ";",
		account(global, "") + " holds SET USER on *.*":                         "REVOKE SET USER ON *.* FROM " + account(global, "") + ";",
		"database `timebox` is the event schema":                               "",
	} {
		if !slices.ContainsFunc(findings, func(fd Finding) bool {
			return fd.Severity == SeverityFail && strings.Contains(fd.Message, msg) && fd.Fix == fix
		}) {
			t.Errorf("doctor: no FAIL %q with fix %q in %+v", msg, fix, findings)
		}
	}
	if hasFinding(findings, SeverityFail, "role '"+f.reader+"'") {
		t.Errorf("doctor flags the harmless role: %+v", findings)
	}

	// What an ALTER EVENT by such an account does (MariaDB): it becomes the definer.
	p := f.plan("tbx_evalt_")
	f.grant(t, p)
	conn, err := connect(t, m, evil, "evil-pw", DefaultEventSchema)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "ALTER EVENT "+QuoteIdent(DefaultEventSchema)+"."+QuoteIdent(eventName(p.Principal))+" DO SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, m, "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_NAME = ? AND DEFINER = ?", eventName(p.Principal), evil+"@%"); n != 1 {
		t.Error("after ALTER EVENT by another account, the event still runs as the admin")
	}
	f.revoke(t, p)
}

func TestAdminURLWithDatabase(t *testing.T) {
	for _, u := range []string{"mysql://timebox@h/shop", "mysql://timebox@h:3306/shop?tls=true", "mysql://timebox@h//"} {
		if _, err := New("my-test", u, "pw", 0); timebox.ErrorCode(err) != timebox.EINVALID || !strings.Contains(err.Error(), "must not name a database") {
			t.Errorf("New(%s) = %v; want EINVALID naming the database", u, err)
		}
	}
	for _, u := range []string{"mysql://timebox@h", "mysql://timebox@h/"} {
		if _, err := New("my-test", u, "pw", 0); err != nil {
			t.Errorf("New(%s) = %v", u, err)
		}
	}
}

// TestDefinerScope: a read-only login can define nothing (the removal looks no further); one
// with CREATE VIEW on its database there; one whose role holds CREATE VIEW on *.* anywhere.
func TestDefinerScope(t *testing.T) {
	t.Parallel()
	m := testdb.RequireMariaDB(t)
	f := newFixture(t, m, plain, true)
	ctx := t.Context()
	db, fl, err := f.eng.admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	views := "views_" + suffix()
	mustExec(t, m, "CREATE ROLE "+views)
	mustExec(t, m, "GRANT CREATE VIEW ON *.* TO "+views)
	mustExec(t, m, "GRANT "+views+" TO "+account(f.admin, "%")+" WITH ADMIN OPTION")
	for _, tc := range []struct {
		privs, roles []string
		schemas      []string
		all          bool
	}{
		{[]string{"SELECT"}, []string{f.reader}, nil, false},
		{[]string{"SELECT", "CREATE VIEW"}, nil, []string{f.db}, false},
		{[]string{"SELECT"}, []string{views}, nil, true},
	} {
		p := f.plan("tbx_scope_")
		p.Privileges, p.Roles = tc.privs, tc.roles
		f.grant(t, p)
		schemas, all, err := f.eng.definerScope(ctx, db, fl, p.Principal)
		if err != nil || !slices.Equal(schemas, tc.schemas) || all != tc.all {
			t.Errorf("%v %v: scope %v, all %v, %v; want %v, %v", tc.privs, tc.roles, schemas, all, err, tc.schemas, tc.all)
		}
		f.revoke(t, p)
	}
}
