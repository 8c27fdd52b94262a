package mysql

import (
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// TestExtendLockedShared: a late Extend of a shared login whose grant ended (the login is
// locked again) is refused and places no backstop, which would lock the next holder's window.
func TestExtendLockedShared(t *testing.T) {
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	ctx := t.Context()
	a := sharedAccount(t, f, "shared_late_")
	if err := f.eng.Grant(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.Revoke(ctx, a); err != nil {
		t.Fatal(err)
	}
	late := a
	late.Password, late.ValidUntil = "", time.Now().Add(2*time.Hour)
	if err := f.eng.Extend(ctx, late); timebox.ErrorCode(err) != timebox.ECONFLICT {
		t.Errorf("Extend of a locked shared login: %v, want ECONFLICT", err)
	}
	if eventExists(t, f.m, a.Principal) {
		t.Error("a backstop event was placed on a locked login")
	}
}
