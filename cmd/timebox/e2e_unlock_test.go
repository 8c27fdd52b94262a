package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestE2EUnlockLogin: a shared maintenance login is unlocked for one approved window with a
// fresh password, a second overlapping request for it is refused with the holder's window,
// and at the end it is locked again (sessions ended, password cleared) and stays: it is not
// Timebox's to drop. Unlocked by hand afterwards, the reconciler locks it again.
func TestE2EUnlockLogin(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	ctx := context.Background()
	id := e.request("alice", "--db", "maint", "--access", "read-only", "--for", "3s", "--reason", "vacuum", "--ticket", "T")
	// Pending requests do not hold the login; approving a second overlapping one is refused.
	rival := e.request("mallory", "--db", "maint", "--access", "read-only", "--for", "10m", "--reason", "me too")
	e.ok("bob", "approve", id)
	r := e.waitState("alice", id, "active", 5*time.Second)
	e.fails("is held by request "+id+" (alice)", "bob", "approve", rival)
	e.fails("is held by request "+id+" (alice)", "mallory", "request", "--db", "maint", "--access", "read-only", "--for", "10m", "--reason", "me too")
	c := e.creds("alice", id)
	if c.User != e.maint || r.Grant.Principal != e.maint {
		t.Fatalf("credentials for %q, grant principal %q; want the shared login %q", c.User, r.Grant.Principal, e.maint)
	}
	conn, err := c.connect(ctx, "")
	if err != nil {
		t.Fatalf("login with the unlocked shared login: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Fatal(err)
	}
	got := e.waitState("alice", id, "expired", 8*time.Second)
	if !strings.Contains(got.Grant.Outcome, "locked again") {
		t.Fatalf("outcome %q", got.Grant.Outcome)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the session survived the lock")
	}
	if exists, canLogin := e.roleExists(e.maint); !exists || canLogin {
		t.Fatalf("shared login after the window: exists=%v canLogin=%v; want it kept and locked", exists, canLogin)
	}
	if _, err := c.connect(ctx, ""); err == nil {
		t.Fatal("the old password still works")
	}
	// Now free: mallory may have it.
	e.request("mallory", "--db", "maint", "--access", "read-only", "--for", "10m", "--reason", "my turn")

	// Unlocked by hand while no grant holds it: locked again by the reconciler.
	if err := e.pg.Exec(ctx, "postgres", "ALTER ROLE "+e.maint+" LOGIN PASSWORD 'Hand-made-1'"); err != nil {
		t.Fatal(err)
	}
	e.in.Scheduler.Reconcile(ctx)
	if _, canLogin := e.roleExists(e.maint); canLogin {
		t.Fatal("the reconciler left a shared login unlocked by hand")
	}
	if n := countActions(e.eventsAll(), "drift.repaired"); n != 1 {
		t.Fatalf("%d drift events, want 1: %s", n, e.ok("root", "audit"))
	}
	e.in.Scheduler.Reconcile(ctx)
	if n := countActions(e.eventsAll(), "drift.repaired"); n != 1 {
		t.Fatalf("%d drift events after a second pass, want still 1", n)
	}
}
