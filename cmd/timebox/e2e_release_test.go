package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// TestE2ERelease: alice gives up her active grant early with `timebox release`: the login
// is dropped and her open session ended on the database before the request reads
// "released", with its own events; nobody else may release it, and an approved request
// that is not active yet is cancelled instead.
func TestE2ERelease(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	ctx := context.Background()
	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "done early", "--ticket", "T-1")
	e.ok("bob", "approve", id)
	r := e.waitState("alice", id, "active", 5*time.Second)
	conn, err := e.creds("alice", id).connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	e.fails("only the requester may release", "bob", "release", id)
	e.fails("only the requester may release", "root", "release", id)
	out := e.ok("alice", "release", id, "--note", "finished the report")
	if !strings.Contains(out, "request "+id+": released") {
		t.Errorf("release says:\n%s", out)
	}
	if exists, _ := e.roleExists(r.Grant.Principal); exists {
		t.Error("the released login still exists")
	}
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(new(int)); err == nil {
		t.Error("the session survived the release")
	}
	v := e.show("alice", id)
	if v.State != "released" || v.Grant == nil || v.Grant.Status != "revoked" {
		t.Errorf("after release: state %s, grant %+v", v.State, v.Grant)
	}
	es := e.events(id)
	if countActions(es, "request.release_requested") != 1 || countActions(es, "request.released") != 1 || countActions(es, "grant.revoke_intent") != 1 {
		t.Errorf("events: %v", actions(es))
	}
	e.fails("cannot release a request that is released", "alice", "release", id)
	if out := e.ok("alice", "requests", "--state", "released"); !strings.Contains(out, id) {
		t.Errorf("requests --state released does not list it:\n%s", out)
	}

	// Approved, not active yet (starts later): release points to cancel.
	later := e.request("alice", "--db", "shop", "--access", "read-only", "--start", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--for", "10m", "--reason", "later", "--ticket", "T-2")
	e.ok("bob", "approve", later)
	e.fails("not active: cancel it instead (timebox cancel "+later+")", "alice", "release", later)
}

// actions lists the actions of es, for messages.
func actions(es []timebox.Event) []string {
	var out []string
	for _, ev := range es {
		out = append(out, ev.Action)
	}
	return out
}
