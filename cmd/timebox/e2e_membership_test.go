package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox/engine/postgres"
)

// TestE2ERoleMembership: the access level's roles are granted to the requester's own login
// for the window; when one of two overlapping grants ends, what the other still needs stays
// (no gap, the session lives on); when the last ends, roles and CONNECT are revoked and the
// login's sessions are ended, but the login itself stays.
func TestE2ERoleMembership(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	ctx := context.Background()
	own := func() (*pgx.Conn, error) { return pgx.Connect(ctx, e.pg.URL(e.personal, e.personalPassword, e.db)) }
	if conn, err := own(); err == nil {
		conn.Close(ctx)
		t.Fatal("the personal login connects before any grant")
	}
	long := e.request("alice", "--db", "team", "--access", "read-only", "--for", "10m", "--reason", "long", "--ticket", "T")
	e.ok("bob", "approve", long)
	e.waitState("alice", long, "active", 5*time.Second)
	c := e.creds("alice", long)
	if c.User != e.personal || c.Password != "" {
		t.Fatalf("credentials %q/%q: want the person's own login and no password", c.User, c.Password)
	}
	conn, err := own()
	if err != nil {
		t.Fatalf("own login during the grant: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Fatal(err)
	}

	short := e.request("alice", "--db", "team", "--access", "read-only", "--for", "2s", "--reason", "short", "--ticket", "T")
	e.ok("bob", "approve", short)
	got := e.waitState("alice", short, "expired", 8*time.Second)
	if !strings.Contains(got.Grant.Outcome, "nothing revoked") {
		t.Fatalf("the overlapping grant's end: outcome %q", got.Grant.Outcome)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Fatalf("the end of an overlapping grant cut the live one: %v", err)
	}

	e.ok("bob", "revoke", long, "--note", "done")
	got = e.waitState("alice", long, "revoked", 5*time.Second)
	if !strings.Contains(got.Grant.Outcome, "revoked") || strings.Contains(got.Grant.Outcome, "kept") {
		t.Fatalf("outcome %q", got.Grant.Outcome)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the session survived the revocation")
	}
	if c, err := own(); err == nil {
		c.Close(ctx)
		t.Fatal("the personal login still connects after its last grant ended")
	}
	if exists, canLogin := e.roleExists(e.personal); !exists || !canLogin {
		t.Fatal("the person's own login was dropped or locked")
	}
}

// TestE2ERoleMembershipBackToBack: one grant ends exactly when the next one starts; a session
// querying across the boundary never loses access.
func TestE2ERoleMembershipBackToBack(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	ctx := context.Background()
	first := e.request("alice", "--db", "team", "--access", "read-only", "--for", "3s", "--reason", "first", "--ticket", "T")
	e.ok("bob", "approve", first)
	r := e.waitState("alice", first, "active", 5*time.Second)
	next := e.request("alice", "--db", "team", "--access", "read-only", "--start", r.End.Format(time.RFC3339Nano),
		"--until", r.End.Add(5*time.Second).Format(time.RFC3339Nano), "--reason", "next", "--ticket", "T")
	e.ok("bob", "approve", next)
	conn, err := pgx.Connect(ctx, e.pg.URL(e.personal, e.personalPassword, e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	for stop := r.End.Add(1500 * time.Millisecond); time.Now().Before(stop); time.Sleep(10 * time.Millisecond) {
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
			t.Fatalf("access lost %s after the first window's end: %v", time.Since(r.End), err)
		}
	}
	e.waitState("alice", first, "expired", 5*time.Second)
	e.waitState("alice", next, "active", 5*time.Second)
}

// TestE2ERoleMembershipDrift: on a person's own login, a role the access levels hand out
// that was revoked by hand during a live grant is granted again, and one granted by hand
// with no live grant (standing access around the review) is revoked with its sessions
// ended; each is a drift.repaired event. Roles Timebox does not hand out are left alone.
func TestE2ERoleMembershipDrift(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	ctx := context.Background()
	super, exec := e.super()
	member := func(role string) bool {
		var ok bool
		if err := super.QueryRow(ctx, "SELECT pg_has_role($1, $2::regrole, 'MEMBER')", e.personal, role).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	drifts := func() int { return countActions(e.eventsAll(), "drift.repaired") }
	role := postgres.QuoteIdent(e.role)
	unrelated := "unrelated_" + e.admin
	exec("CREATE ROLE " + unrelated + " NOLOGIN")
	exec("GRANT " + unrelated + " TO " + e.personal)

	id := e.request("alice", "--db", "team", "--access", "read-only", "--for", "10m", "--reason", "drift", "--ticket", "T")
	e.ok("bob", "approve", id)
	e.waitState("alice", id, "active", 5*time.Second)
	e.in.Scheduler.Reconcile(ctx)
	if n := drifts(); n != 0 {
		t.Fatalf("%d repairs with nothing changed", n)
	}
	exec("REVOKE " + role + " FROM " + e.personal)
	e.in.Scheduler.Reconcile(ctx)
	if !member(role) || drifts() != 1 {
		t.Fatalf("the role revoked by hand during a live grant: member %v, %d drift events", member(role), drifts())
	}

	e.ok("bob", "revoke", id, "--note", "done")
	e.waitState("alice", id, "revoked", 5*time.Second)
	exec("GRANT " + role + " TO " + e.personal)
	exec("GRANT CONNECT ON DATABASE " + postgres.QuoteIdent(e.db) + " TO " + e.personal)
	conn, err := pgx.Connect(ctx, e.pg.URL(e.personal, e.personalPassword, e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	e.in.Scheduler.Reconcile(ctx)
	if member(role) || drifts() != 2 {
		t.Fatalf("the role granted by hand with no live grant: member %v, %d drift events", member(role), drifts())
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the session that held the role survived")
	}
	if !member(unrelated) {
		t.Fatal("the reconciler revoked a role Timebox does not hand out")
	}
	e.in.Scheduler.Reconcile(ctx)
	if n := drifts(); n != 2 {
		t.Fatalf("%d drift events after a quiet pass, want still 2", n)
	}
}
