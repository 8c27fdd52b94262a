package postgres

import (
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// TestExtend moves a login's end before it comes: a session open across the old end keeps
// working, a new login with the same password works after it (no gap), the password and
// memberships are untouched, and rolvaliduntil is the new end. A login that is not extended
// is refused after its end, which shows the test would see a gap.
func TestExtend(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	ctx := t.Context()
	p, control := f.plan("tbx_ext_"), f.plan("tbx_noext_")
	oldEnd := time.Now().Add(3 * time.Second)
	p.ValidUntil, control.ValidUntil = oldEnd, oldEnd
	for _, q := range []timebox.GrantPlan{p, control} {
		if err := f.eng.Grant(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	session, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatal(err)
	}
	p.ValidUntil = time.Now().Add(time.Hour).Add(123456789 * time.Nanosecond)
	extend := p
	extend.Password = "not-" + p.Password // Extend must not set it
	extend.Roles = nil                    // nor revoke the roles
	for range 2 {                         // idempotent
		if err := f.eng.Extend(ctx, extend); err != nil {
			t.Fatalf("extend: %v", err)
		}
	}
	time.Sleep(time.Until(oldEnd) + time.Second)

	var n int
	if err := session.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil || n != 1 {
		t.Errorf("session open across the old end: n=%d, %v", n, err)
	}
	conn, err := connect(t, f.pg, p.Principal, p.Password, f.db)
	if err != nil {
		t.Fatalf("new login after the old end: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Errorf("read-only role after extend: %v", err)
	}
	_, err = connect(t, f.pg, control.Principal, control.Password, f.db)
	wantSQLState(t, err, "28P01", "login after the end of a login not extended")
	wantValidUntil(t, f.pg, p.Principal, p.ValidUntil, "rolvaliduntil")
	for _, q := range []timebox.GrantPlan{p, control} {
		if _, err := f.eng.Revoke(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExtendRefused: a missing login is ENOTFOUND, a role of the wrong kind EINVALID, and
// a person's own login (role_membership) needs nothing.
func TestExtendRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequirePostgres(t), names{"shop_", "other_", "reader_"})
	ctx := t.Context()
	missing := f.plan("tbx_missing_")
	wantCode(t, f.eng.Extend(ctx, missing), timebox.ENOTFOUND, "extend of a missing login")

	foreign := f.plan("unused_")
	foreign.Principal = f.reader // exists, not created by timebox
	wantCode(t, f.eng.Extend(ctx, foreign), timebox.EINVALID, "extend of a role timebox did not create")

	shared := f.plan("tbx_shared_")
	shared.Method, shared.Roles = timebox.MethodUnlockLogin, nil
	mustExec(t, f.pg, "postgres", "CREATE ROLE "+QuoteIdent(shared.Principal)+" NOLOGIN")
	if err := f.eng.Grant(ctx, shared); err != nil {
		t.Fatal(err)
	}
	shared.ValidUntil = shared.ValidUntil.Add(time.Hour)
	if err := f.eng.Extend(ctx, shared); err != nil {
		t.Errorf("extend of a shared login: %v", err)
	}
	wantValidUntil(t, f.pg, shared.Principal, shared.ValidUntil, "shared login's rolvaliduntil")
	// Its grant ended (locked again): a late Extend must not give it a future expiry.
	if _, err := f.eng.Revoke(ctx, shared); err != nil {
		t.Fatal(err)
	}
	shared.ValidUntil = shared.ValidUntil.Add(time.Hour)
	wantCode(t, f.eng.Extend(ctx, shared), timebox.ECONFLICT, "extend of a locked shared login")
	var canLogin bool
	if err := superQueryRow(t, f.pg, "postgres", "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", []any{shared.Principal}, &canLogin); err != nil || canLogin {
		t.Errorf("the locked shared login can log in: %v %v", canLogin, err)
	}

	ephemeral := f.plan("tbx_eph_")
	if err := f.eng.Grant(ctx, ephemeral); err != nil {
		t.Fatal(err)
	}
	ephemeral.Method = timebox.MethodUnlockLogin
	wantCode(t, f.eng.Extend(ctx, ephemeral), timebox.EINVALID, "extend of an ephemeral login as a shared one")

	person := missing
	person.Method = timebox.MethodRoleMembership
	if err := f.eng.Extend(ctx, person); err != nil {
		t.Errorf("extend of a role membership: %v, want nil", err)
	}
	bad := missing
	bad.ValidUntil = time.Time{}
	wantCode(t, f.eng.Extend(ctx, bad), timebox.EINVALID, "extend to no end")
}
