package postgres

import (
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// TestDoctor: a cluster hardened with SetupStatements is clean; a new database open to
// PUBLIC, a missing database or role, and a role held without ADMIN OPTION are each flagged
// with the SQL that fixes them.
func TestDoctor(t *testing.T) {
	pg, err := testdb.StartPostgres(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	f := newFixture(t, pg, names{"doc", "doco", "docr"})
	version, findings, err := f.eng.Doctor(t.Context(), []string{f.db, f.other}, []string{f.reader})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "1") || timebox.Problems(findings) != 0 {
		t.Fatalf("hardened cluster (version %q): %+v", version, findings)
	}
	// Tables the admin cannot grant are a warning (ad-hoc requests are optional), with the fix;
	// after the fix, fine.
	mustExec(t, pg, f.db, `CREATE TABLE "odd ""table" (id int)`)
	tableWarning := func() *Finding {
		_, findings, err := f.eng.Doctor(t.Context(), []string{f.db}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, fd := range findings {
			if strings.Contains(fd.Message, "cannot grant") && strings.Contains(fd.Message, f.db) {
				return &findings[i]
			}
		}
		return nil
	}
	w := tableWarning()
	if w == nil || w.Severity != SeverityWarn || !strings.Contains(w.Fix, "WITH GRANT OPTION") {
		t.Fatalf("no table warning: %+v", w)
	}
	for _, s := range TableSetupStatements(f.admin, nil) {
		mustExec(t, pg, f.db, s)
	}
	if w := tableWarning(); w != nil {
		t.Errorf("still warned after TableSetupStatements: %+v", w)
	}

	mustExec(t, pg, "postgres", `CREATE DATABASE "wide open"`)
	mustExec(t, pg, "postgres", `CREATE ROLE plain_role NOLOGIN`)
	mustExec(t, pg, "postgres", `GRANT plain_role TO `+QuoteIdent(f.admin))
	mustExec(t, pg, "postgres", `REVOKE ADMIN OPTION FOR `+QuoteIdent(ManagedRoleName(f.admin))+` FROM `+QuoteIdent(f.admin))
	_, findings, err = f.eng.Doctor(t.Context(), []string{f.db, "missing_db"}, []string{f.reader, "plain_role", "no_such_role"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		`database "wide open" is open to every login`:                                             `REVOKE CONNECT ON DATABASE "wide open" FROM PUBLIC;`,
		`database "missing_db" does not exist`:                                                    "",
		`role "no_such_role", which an access level grants or unlock_login opens, does not exist`: "",
	}
	for msg, fix := range want {
		found := false
		for _, fd := range findings {
			if strings.Contains(fd.Message, msg) && fd.Severity == SeverityFail && fd.Fix == fix {
				found = true
			}
		}
		if !found {
			t.Errorf("no failure %q with fix %q in %+v", msg, fix, findings)
		}
	}
	if timebox.Problems(findings) != len(want) {
		t.Errorf("%d problems, want %d: %+v", timebox.Problems(findings), len(want), findings)
	}
	for _, msg := range []string{`holds role "plain_role" without ADMIN OPTION`, `holds the bookkeeping role "` + ManagedRoleName(f.admin) + `" without ADMIN OPTION`} {
		warned := false
		for _, fd := range findings {
			if strings.Contains(fd.Message, msg) && fd.Severity == SeverityWarn && strings.Contains(fd.Fix, "WITH ADMIN OPTION") {
				warned = true
			}
		}
		if !warned {
			t.Errorf("not flagged: %q in %+v", msg, findings)
		}
	}

	// An unreachable server is EUNAVAILABLE, not a finding.
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	defer pg.Start()
	if _, _, err := f.eng.Doctor(t.Context(), nil, nil); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("doctor on a stopped server: %v", err)
	}
}
