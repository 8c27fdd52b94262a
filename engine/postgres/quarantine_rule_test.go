package postgres

import (
	"strings"
	"testing"

	"github.com/timebox-dev/timebox/internal/testdb"
)

// Code that PostgreSQL runs with a quarantined table's owner's rights — here a rule, which
// the defusing of functions and views does not reach — reads nothing another removed login
// left in quarantine: the quarantine role holds no privilege even on what it owns. What the
// login granted to others on its objects stays, and a quarantined table a foreign key links
// keeps working (PostgreSQL checks and cascades foreign keys as the table's owner).
func TestQuarantineRuleReadsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"qr_", "qrother_", "qrreader_"})
	a := f.plan("tbx_qra")
	a.Roles = []string{f.ddl}
	mustExec(t, f.pg, f.db, "CREATE TABLE public.customers (id int PRIMARY KEY); INSERT INTO public.customers VALUES (1), (2);"+
		"GRANT REFERENCES ON public.customers TO "+QuoteIdent(f.ddl))
	loginExec(t, f, a, `CREATE TABLE public.a_secret (v text); INSERT INTO public.a_secret VALUES ('secret');
		CREATE TABLE public.a_child (c int REFERENCES public.customers ON DELETE CASCADE); INSERT INTO public.a_child VALUES (1), (2)`)
	if res, err := f.eng.Revoke(t.Context(), a); err != nil || !res.Dropped {
		t.Fatalf("removal of a = %+v, %v", res, err)
	}
	b := f.plan("tbx_qrb")
	b.Roles = []string{f.ddl}
	loginExec(t, f, b, `CREATE TABLE public.b_in (v text); CREATE TABLE public.b_out (v text);
		CREATE RULE b_copy AS ON INSERT TO public.b_in DO ALSO INSERT INTO public.b_out SELECT v FROM public.a_secret;
		GRANT INSERT ON public.b_in TO PUBLIC; GRANT SELECT ON public.b_out TO PUBLIC`)
	if res, err := f.eng.Revoke(t.Context(), b); err != nil || !res.Dropped {
		t.Fatalf("removal of b = %+v, %v", res, err)
	}
	r := f.plan("tbx_qrr")
	if err := f.eng.Grant(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	conn, err := connect(t, f.pg, r.Principal, r.Password, f.db)
	if err != nil {
		t.Fatal(err)
	}
	_, insErr := conn.Exec(t.Context(), "INSERT INTO public.b_in VALUES ('x')")
	var leaked int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM public.b_out WHERE v = 'secret'").Scan(&leaked); err != nil {
		t.Fatalf("reading b_out, which b granted to PUBLIC: %v", err)
	}
	if leaked > 0 {
		t.Errorf("a quarantined rule copied another login's quarantined rows (insert: %v)", insErr)
	}
	if insErr == nil || !strings.Contains(insErr.Error(), "permission denied") {
		t.Errorf("insert through the quarantined rule = %v, want permission denied", insErr)
	}
	mustExec(t, f.pg, f.db, "DELETE FROM public.customers WHERE id = 1")
	var children int
	if err := superQueryRow(t, f.pg, f.db, "SELECT count(*) FROM public.a_child", nil, &children); err != nil || children != 1 {
		t.Errorf("rows left in the quarantined a_child after deleting a customer: %d, %v; want 1 (cascaded)", children, err)
	}
	var row string
	if err := superQueryRow(t, f.pg, f.db, "SELECT v FROM public.a_secret", nil, &row); err != nil || row != "secret" {
		t.Errorf("a's row = %q, %v; want it kept", row, err)
	}
}

// doctor flags quarantined relations on which the quarantine role holds privileges (left by
// a removal from before they were taken away), and its fix takes them away.
func TestDoctorQuarantineRights(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"qd_", "qdother_", "qdreader_"})
	a := f.plan("tbx_qd")
	a.Roles = []string{f.ddl}
	loginExec(t, f, a, "CREATE TABLE public.old_left (v text)")
	if res, err := f.eng.Revoke(t.Context(), a); err != nil || !res.Dropped {
		t.Fatalf("removal = %+v, %v", res, err)
	}
	q := QuoteIdent(f.eng.QuarantineRole)
	doctorFix := func() string {
		_, findings, err := f.eng.Doctor(t.Context(), []string{f.db}, []string{f.ddl})
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range findings {
			if strings.Contains(fd.Message, "still holds privileges") {
				return fd.Fix
			}
		}
		return ""
	}
	if fix := doctorFix(); fix != "" {
		t.Fatalf("doctor flags a fresh quarantine: %s", fix)
	}
	mustExec(t, f.pg, f.db, "GRANT ALL ON TABLE public.old_left TO "+q)
	fix := doctorFix()
	if !strings.Contains(fix, "REVOKE ALL ON TABLE old_left FROM "+q) && !strings.Contains(fix, "REVOKE ALL ON TABLE public.old_left FROM "+q) {
		t.Fatalf("doctor's fix = %q, want the REVOKE", fix)
	}
	mustExec(t, f.pg, f.db, fix[strings.Index(fix, "\n")+1:])
	if fix := doctorFix(); fix != "" {
		t.Errorf("doctor still flags after its fix: %s", fix)
	}
}
