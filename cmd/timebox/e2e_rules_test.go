package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// TestE2EReviewRules checks who may do what, and that every limit produces its error.
func TestE2EReviewRules(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	req := func(user string, extra ...string) string {
		return e.request(user, append([]string{"--db", "shop", "--access", "read-only", "--reason", "r", "--ticket", "T-1"}, extra...)...)
	}

	// Limits, each with its own error; nothing is stored.
	base := []string{"request", "--db", "shop", "--access", "read-only", "--reason", "r"}
	e.fails("exceeds the prod limit of 1h0m0s", "alice", append(base, "--ticket", "T", "--for", "2h")...)
	e.fails("below the prod minimum of 1s", "alice", append(base, "--ticket", "T", "--for", "500ms")...)
	e.fails("more than 24h0m0s ahead", "alice", append(base, "--ticket", "T", "--for", "1h", "--start", "+48h")...)
	e.fails("a ticket is required for prod databases", "alice", append(base, "--for", "1h")...)
	e.fails("reason is required", "alice", "request", "--db", "shop", "--access", "read-only", "--for", "1h", "--ticket", "T", "--reason", " ")
	e.fails(`unknown database "nope"`, "alice", "request", "--db", "nope", "--access", "read-only", "--for", "1h", "--reason", "r")
	e.fails(`unknown access level "god"`, "alice", "request", "--db", "shop", "--access", "god", "--for", "1h", "--reason", "r", "--ticket", "T")
	e.fails("invalid duration", "alice", append(base, "--ticket", "T", "--for", "soon")...)
	if out := e.ok("root", "requests", "-o", "json"); strings.Contains(out, `"id"`) {
		t.Fatalf("refused requests were stored: %s", out)
	}

	// Nobody approves their own request, admins included; non-owners cannot approve.
	own := req("root", "--for", "10m")
	e.fails("nobody may approve their own request", "root", "approve", own)
	id := req("alice", "--for", "10m")
	e.fails("nobody may approve their own request", "alice", "approve", id)
	e.fails("not an owner of database shop", "audrey", "approve", id) // an auditor sees it, may not decide
	e.fails("not found", "mallory", "approve", id)                    // others' requests are invisible
	e.fails("not found", "mallory", "show", id)
	if out := e.ok("bob", "requests", "--state", "pending"); !strings.Contains(out, id) {
		t.Fatalf("the owner does not see the pending request:\n%s", out)
	}
	// Deny needs a note; a denied request cannot be approved afterwards.
	_, _, code := e.cli("bob", "deny", id)
	if code == 0 {
		t.Fatal("deny without a note succeeded")
	}
	e.ok("bob", "deny", id, "--note", "use the replica")
	e.fails("cannot approve a request that is denied", "root", "approve", id)

	// An approver may narrow (never widen) the window; the requester sees what changed.
	id = req("alice", "--for", "30m", "--start", "+1h")
	e.fails("may only narrow the window", "bob", "approve", id, "--end", time.Now().Add(3*time.Hour).Format(time.RFC3339))
	narrowEnd := time.Now().Add(80 * time.Minute).UTC().Truncate(time.Second)
	e.ok("bob", "approve", id, "--end", narrowEnd.Format(time.RFC3339), "--note", "20 minutes are enough")
	r := e.show("alice", id)
	if r.State != "approved" || !r.End.Equal(narrowEnd) {
		t.Fatalf("narrowed approval: %+v", r)
	}
	if out := e.ok("alice", "show", id); !strings.Contains(out, "end ") || !strings.Contains(out, "20 minutes are enough") {
		t.Fatalf("show does not tell the requester what changed:\n%s", out)
	}
	// The requester cancels an approved request that has not started.
	e.fails("only the requester may cancel", "bob", "cancel", id)
	e.ok("alice", "cancel", id)
	if r := e.show("alice", id); r.State != "cancelled" {
		t.Fatalf("cancel: %+v", r)
	}

	// A window that already ended cannot be approved (it expires unreviewed).
	id = req("alice", "--for", "1s")
	time.Sleep(1200 * time.Millisecond)
	e.fails("cannot", "bob", "approve", id) // "…is expired" or "…already ended…"
	e.waitState("alice", id, "expired", 2*time.Second)

	// Two approvers at once: exactly one wins.
	id = req("alice", "--for", "10m", "--start", "+1h")
	errs := make(chan error, 2)
	for _, u := range []string{"bob", "root"} {
		go func() {
			_, err := tbhttp.NewClient(e.url(), e.tokens[u]).Approve(context.Background(), id, timebox.ApproveInput{})
			errs <- err
		}()
	}
	if a, b := <-errs, <-errs; (a == nil) == (b == nil) || timebox.ErrorCode(errors.Join(a, b)) != timebox.ECONFLICT {
		t.Fatalf("concurrent approvals: %v and %v, want exactly one success and one conflict", a, b)
	}
	if n := countActions(e.events(id), "request.approved"); n != 1 {
		t.Fatalf("%d approval events", n)
	}

	// Revoke ends a live session at once.
	id = req("alice", "--for", "10m")
	e.ok("bob", "approve", id)
	e.waitState("alice", id, "active", 5*time.Second)
	c := e.creds("alice", id)
	ctx := context.Background()
	conn, err := c.connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	e.fails("nobody may", "alice", "approve", id)
	e.fails("a revocation needs a note", "bob", "revoke", id)
	e.ok("bob", "revoke", id, "--note", "incident over")
	r = e.waitState("alice", id, "revoked", 5*time.Second)
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("session still alive after revoke")
	}
	if exists, _ := e.roleExists(c.User); exists {
		t.Fatal("role still exists after revoke")
	}
}
