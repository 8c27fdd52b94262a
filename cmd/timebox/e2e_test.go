package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestE2ELifecycle: request → approve → the credentials read but cannot write, open this
// database only → a session is left open → at the end of the window the login is refused,
// the open session is gone, and the request is expired.
func TestE2ELifecycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	ctx := context.Background()

	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "4s", "--reason", "check order 42", "--ticket", "OPS-1")
	if r := e.show("alice", id); r.State != "pending" || r.Requester != "alice" || r.Database != "shop" || r.Access != "read-only" || r.Reason != "check order 42" || r.Ticket != "OPS-1" {
		t.Fatalf("new request: %+v", r)
	}
	e.fails("has no credentials", "alice", "creds", id)
	e.ok("bob", "approve", id, "--note", "ok")
	r := e.waitState("alice", id, "active", 5*time.Second)
	c := e.creds("alice", id)
	if c.User != r.Grant.Principal || len(c.Password) < 24 || !c.ExpiresAt.Equal(r.End) {
		t.Fatalf("credentials %+v for grant %+v", c, r.Grant)
	}
	e.fails("only the requester", "bob", "creds", id)

	conn, err := c.connect(ctx, "")
	if err != nil {
		t.Fatalf("login with the credentials: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
		t.Fatalf("read: %d, %v", n, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO orders VALUES (3, 'Linus')"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("write at read-only: %v", err)
	}
	for _, db := range []string{"postgres", e.other, "template1"} {
		if other, err := c.connect(ctx, db); err == nil {
			other.Close(ctx)
			t.Fatalf("the credentials open database %s too", db)
		}
	}
	var until time.Time
	pg, _ := pgx.Connect(ctx, e.pg.SuperURL("postgres"))
	pg.QueryRow(ctx, "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", c.User).Scan(&until)
	pg.Close(ctx)
	if !until.Equal(r.End) {
		t.Fatalf("VALID UNTIL %s, want the window's end %s", until, r.End)
	}
	if _, err := exec.LookPath("psql"); err == nil {
		out := e.ok("alice", "connect", id, "--", "-tAc", "SELECT customer FROM orders ORDER BY id")
		if !strings.Contains(out, "Ada") {
			t.Fatalf("timebox connect printed %q", out)
		}
	}

	// The session stays open across the end of the window.
	time.Sleep(time.Until(r.End) + 50*time.Millisecond)
	r = e.waitState("alice", id, "expired", 5*time.Second)
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the session opened before expiry still works after it")
	}
	if _, err := c.connect(ctx, ""); err == nil {
		t.Fatal("login still accepted after expiry")
	}
	if exists, _ := e.roleExists(c.User); exists || r.Grant.Outcome != "dropped" {
		t.Fatalf("role %s exists=%v after expiry, outcome %q", c.User, exists, r.Grant.Outcome)
	}
	e.fails("has no credentials", "alice", "creds", id)
	es := e.events(id)
	for _, a := range []string{"request.created", "request.approved", "grant.create_intent", "request.activated", "grant.revoke_intent", "request.expired"} {
		if countActions(es, a) != 1 {
			t.Errorf("audit has %d %s events, want 1", countActions(es, a), a)
		}
	}
	if all := e.ok("root", "audit", "-o", "json"); strings.Contains(all, c.Password) {
		t.Fatal("the password is in the audit log")
	}
	if logs := e.log.String(); !strings.Contains(logs, "/credentials") || strings.Contains(logs, c.Password) || strings.Contains(logs, e.tokens["alice"]) {
		t.Fatalf("the server log lacks the credentials call, or holds the password or a token:\n%s", logs)
	}
	if out := e.ok("audrey", "audit", "--verify"); !strings.Contains(out, "OK") {
		t.Fatalf("verify: %s", out)
	}
	if out := e.ok("audrey", "report", "access", "--since", "1h", "-o", "csv"); !strings.Contains(out, id) || !strings.Contains(out, "bob") || !strings.Contains(out, "OPS-1") {
		t.Fatalf("access report lacks the request, approver or ticket:\n%s", out)
	}
}
