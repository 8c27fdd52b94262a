package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// eventAt returns the time the backstop event of user runs at, in UTC, and its definition.
func eventAt(t *testing.T, f *fixture, user string) (time.Time, string) {
	t.Helper()
	var at time.Time
	var body string
	err := root(t, f.m).QueryRowContext(t.Context(), "SELECT CONVERT_TZ(EXECUTE_AT, TIME_ZONE, '+00:00'), EVENT_DEFINITION "+
		"FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = ?", DefaultEventSchema, eventName(user)).Scan(&at, &body)
	if err != nil {
		t.Fatalf("backstop event of %s: %v", user, err)
	}
	return at, body
}

// TestExtend grants a login whose window ends 3 s ahead, with the event scheduler on, and
// extends it by an hour: the backstop moves, a session opened before the old end lives
// across it, a new login still works after it, and the password stays.
func TestExtend(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), nasty, true)
	ctx := t.Context()
	p := f.plan(nastyPrincipal)
	p.ValidUntil = time.Now().Add(3 * time.Second)
	oldEnd := backstopTime(p.ValidUntil)
	f.grant(t, p)
	session := f.login(t, p.Principal, p.Password)
	ext := p
	ext.Password = "" // Extend needs no password
	ext.ValidUntil = time.Now().Add(time.Hour)
	for range 2 { // idempotent
		if err := f.eng.Extend(ctx, ext); err != nil {
			t.Fatalf("extend: %v", err)
		}
	}
	if at, _ := eventAt(t, f, p.Principal); !at.Equal(backstopTime(ext.ValidUntil)) {
		t.Errorf("backstop at %v after extend, want %v", at, backstopTime(ext.ValidUntil))
	}
	time.Sleep(time.Until(oldEnd.Add(2 * time.Second))) // the old backstop would have run by now
	var n int
	if err := session.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n); err != nil {
		t.Errorf("a session opened before the old end, after it: %v", err)
	}
	if _, err := connect(t, f.m, p.Principal, p.Password, f.db); err != nil {
		t.Errorf("new login after the old end: %v", err)
	}
	found, err := f.eng.Managed(ctx, nil)
	if err != nil || len(found) != 1 || !found[0].ValidUntil.Equal(ext.ValidUntil.UTC()) || !found[0].CanLogin {
		t.Errorf("Managed after extend = %+v, %v; want until %v", found, err, ext.ValidUntil)
	}

	missing := ext
	missing.Principal = "tbx_missing_" + suffix()
	wantCode(t, f.eng.Extend(ctx, missing), timebox.ENOTFOUND, "extend of a missing account")
	foreign := f.plan("tbx_foreign_")
	mustExec(t, f.m, "CREATE USER "+account(foreign.Principal, "%")+" IDENTIFIED BY 'theirs'")
	wantCode(t, f.eng.Extend(ctx, foreign), timebox.EINVALID, "extend of an account timebox did not create")
	if eventExists(t, f.m, foreign.Principal) {
		t.Error("extend placed a backstop for an account timebox did not create")
	}
	bad := ext
	bad.ValidUntil = time.Time{}
	wantCode(t, f.eng.Extend(ctx, bad), timebox.EINVALID, "extend without an end")
	f.revoke(t, p)
	wantCode(t, f.eng.Extend(ctx, ext), timebox.ENOTFOUND, "extend after revoke")
}

// TestExtendOtherMethods: a shared login's backstop moves and still only locks; a person's
// login (role_membership) has no backstop and is only checked; a new end that has passed
// locks the account without ending its session.
func TestExtendOtherMethods(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	ctx := t.Context()
	shared := sharedAccount(t, f, "shared_ext_")
	f.grant(t, shared)
	shared.ValidUntil = time.Now().Add(2 * time.Hour)
	shared.Password = ""
	if err := f.eng.Extend(ctx, shared); err != nil {
		t.Fatalf("extend of a shared login: %v", err)
	}
	at, body := eventAt(t, f, shared.Principal)
	if !at.Equal(backstopTime(shared.ValidUntil)) || strings.Contains(body, "DROP USER") {
		t.Errorf("shared backstop at %v (want %v), or it drops the login:\n%s", at, backstopTime(shared.ValidUntil), body)
	}
	person := timebox.GrantPlan{Method: timebox.MethodRoleMembership, Principal: "alice_" + suffix(), Database: f.db,
		Privileges: []string{"SELECT"}, ValidUntil: time.Now().Add(time.Hour)}
	wantCode(t, f.eng.Extend(ctx, person), timebox.ENOTFOUND, "extend of a missing person")
	mustExec(t, f.m, "CREATE USER "+account(person.Principal, "%")+" IDENTIFIED BY 'alice-pw'")
	if err := f.eng.Extend(ctx, person); err != nil || eventExists(t, f.m, person.Principal) {
		t.Errorf("extend of a person's login: %v (a backstop placed: %v)", err, eventExists(t, f.m, person.Principal))
	}
	eph := f.plan("tbx_past_")
	f.grant(t, eph)
	asShared := shared
	asShared.Principal = eph.Principal
	wantCode(t, f.eng.Extend(ctx, asShared), timebox.EINVALID, "extend of an ephemeral login as a shared one")
	session := f.login(t, eph.Principal, eph.Password)
	eph.ValidUntil = time.Now().Add(-time.Second)
	for i := range 2 { // idempotent: the second finds the account locked already
		if err := f.eng.Extend(ctx, eph); err != nil {
			t.Fatalf("extend %d to a past end: %v", i+1, err)
		}
	}
	_, err := connect(t, f.m, eph.Principal, eph.Password, f.db)
	wantErrNumber(t, err, "login after an extend to a past end", erMariaAccountLocked)
	var n int
	if err := session.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n); err != nil || eventExists(t, f.m, eph.Principal) {
		t.Errorf("after an extend to a past end: session %v, backstop left %v", err, eventExists(t, f.m, eph.Principal))
	}
	for _, p := range []timebox.GrantPlan{eph, shared} {
		f.revoke(t, p)
	}
}

// TestExtendLockedShared: a late Extend of a shared login whose grant ended (the login is
// locked again) is refused and places no backstop, which would lock the next holder's window.
func TestExtendLockedShared(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	ctx := t.Context()
	a := sharedAccount(t, f, "shared_late_")
	f.grant(t, a)
	f.revoke(t, a)
	late := a
	late.Password, late.ValidUntil = "", time.Now().Add(2*time.Hour)
	if err := f.eng.Extend(ctx, late); timebox.ErrorCode(err) != timebox.ECONFLICT {
		t.Errorf("Extend of a locked shared login: %v, want ECONFLICT", err)
	}
	if eventExists(t, f.m, a.Principal) {
		t.Error("a backstop event was placed on a locked login")
	}
}
