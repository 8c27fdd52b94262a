package postgres

import (
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// TestCheckTablesSchemaUsage: the admin may use schema hr but not hand USAGE on it out, and
// holds SELECT WITH GRANT OPTION on hr.staff. Grant refuses an ad-hoc plan for hr.staff (a
// new login could not use the schema), so CheckTables must refuse it when the request is
// filed, and Doctor must warn.
func TestCheckTablesSchemaUsage(t *testing.T) {
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	a := QuoteIdent(f.admin)
	mustExec(t, f.pg, f.db, "CREATE SCHEMA hr; CREATE TABLE hr.staff (id int);"+
		"GRANT USAGE ON SCHEMA hr TO "+a+"; GRANT SELECT ON hr.staff TO "+a+" WITH GRANT OPTION;"+
		"GRANT SELECT ON items TO "+a+" WITH GRANT OPTION")
	p := f.plan("tbx_hr_")
	p.Roles = nil
	p.Tables = []timebox.TableGrant{{Schema: "hr", Table: "staff", Operations: []string{"SELECT"}}}
	checkErr := f.eng.CheckTables(t.Context(), timebox.GrantPlan{Method: p.Method, Database: p.Database, Tables: p.Tables})
	_, findings, derr := f.eng.Doctor(t.Context(), []string{f.db}, nil)
	for _, fd := range findings {
		t.Logf("doctor: %s %s", fd.Severity, fd.Message)
	}
	grantErr := f.eng.Grant(t.Context(), p)
	t.Logf("CheckTables = %v; Doctor err = %v; Grant = %v", checkErr, derr, grantErr)
	if grantErr == nil || timebox.ErrorCode(checkErr) != timebox.EINVALID || !strings.Contains(checkErr.Error(), `schema "hr"`) {
		t.Errorf("CheckTables = %v for a plan that Grant refuses with %v", checkErr, grantErr)
	}
	warned := false
	for _, fd := range findings {
		warned = warned || fd.Severity == SeverityWarn && strings.Contains(fd.Message, "cannot grant 1 of")
	}
	if !warned {
		t.Errorf("doctor did not warn: %+v", findings)
	}
}

// TestDoctorFixComment: the fixes doctorTables and doctorLargeObjects print starts with an SQL line comment naming
// the database: a newline in the name must not turn the rest of it into a statement of the
// fix an administrator runs as a superuser.
func TestDoctorFixComment(t *testing.T) {
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	evil := "x\nDROP TABLE items; --" + suffix()
	mustExec(t, f.pg, "postgres", "CREATE DATABASE "+QuoteIdent(evil))
	mustExec(t, f.pg, "postgres", "GRANT CONNECT ON DATABASE "+QuoteIdent(evil)+" TO "+QuoteIdent(f.admin))
	mustExec(t, f.pg, evil, "CREATE TABLE t (id int)")
	_, findings, err := f.eng.Doctor(t.Context(), []string{evil}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, fd := range findings {
		if !strings.HasPrefix(fd.Fix, "-- in database") {
			continue // the other fixes keep the name inside a quoted identifier
		}
		if strings.Contains(fd.Fix, "for ad-hoc requests") {
			checked++
		}
		for _, line := range strings.Split(fd.Fix, "\n") {
			if !strings.HasPrefix(line, "--") && !strings.HasPrefix(line, "GRANT ") && !strings.HasPrefix(line, "REVOKE EXECUTE ON FUNCTION pg_catalog.lo_") {
				t.Errorf("a line of the ad-hoc fix is a statement taken from the database name: %q\nfix:\n%s", line, fd.Fix)
			}
		}
	}
	if checked != 1 {
		t.Errorf("%d ad-hoc fixes for database %q, want 1 (table t is not grantable): %+v", checked, evil, findings)
	}
}
