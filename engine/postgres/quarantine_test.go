package postgres

import (
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// loginExec grants p and runs sql as its login in the fixture's database.
func loginExec(t *testing.T, f *fixture, p timebox.GrantPlan, sql string) {
	t.Helper()
	if err := f.eng.Grant(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	conn, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// A login that grants a privilege on its own table to the quarantine role before its window
// ends blocks neither its own removal nor anyone else's: the privilege becomes the
// quarantine's as the table's owner anyway. A privilege someone else granted it still is
// refused.
func TestQuarantineGrantedByLogin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"qg_", "qgother_", "qgreader_"})
	first := f.plan("tbx_qg1")
	first.Roles = []string{f.ddl}
	loginExec(t, f, first, "CREATE TABLE public.first_made (v text)")
	if res, err := f.eng.Revoke(t.Context(), first); err != nil || !res.Dropped {
		t.Fatalf("first removal = %+v, %v", res, err)
	}
	q := QuoteIdent(f.eng.QuarantineRole)
	p, other := f.plan("tbx_qg2"), f.plan("tbx_qg3")
	p.Roles, other.Roles = []string{f.ddl}, []string{f.ddl}
	loginExec(t, f, p, "CREATE TABLE public.granted (v text); GRANT SELECT ON public.granted TO "+q)
	loginExec(t, f, other, "CREATE TABLE public.other_granted (v text); GRANT SELECT ON public.other_granted TO "+q)
	for _, l := range []timebox.GrantPlan{p, other} {
		res, err := f.eng.Revoke(t.Context(), l)
		if err != nil || !res.Dropped || res.HandedTo != f.eng.QuarantineRole {
			t.Fatalf("removal of a login, while it or another granted a table to the quarantine role = %+v, %v; want dropped, handed to %s", res, err, f.eng.QuarantineRole)
		}
	}
	mustExec(t, f.pg, f.db, "GRANT SELECT ON items TO "+q)
	last := f.plan("tbx_qg4")
	last.Roles = []string{f.ddl}
	loginExec(t, f, last, "CREATE TABLE public.last_made (v text)")
	_, err := f.eng.Revoke(t.Context(), last)
	if timebox.ErrorCode(err) != timebox.EINVALID || !strings.Contains(err.Error(), "holds privileges") {
		t.Errorf("removal to a quarantine role granted SELECT on items by the superuser = %v, want refused: it holds privileges", err)
	}
}
