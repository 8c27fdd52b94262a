package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// TestE2EStoreDownAtExpiry runs on a PostgreSQL store that goes away across a window's end:
// nothing is done to the target database without its intent stored, the login is refused by
// VALID UNTIL meanwhile, and once the store is back the removal completes exactly once.
func TestE2EStoreDownAtExpiry(t *testing.T) {
	storePG, err := testdb.StartPostgres(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer storePG.Close()
	e := newEnv(t, envOptions{storePG: storePG})
	e.start()
	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "3s", "--reason", "store test", "--ticket", "T")
	e.ok("bob", "approve", id)
	r := e.waitState("alice", id, "active", 5*time.Second)
	c := e.creds("alice", id)
	if err := storePG.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(r.End) + 1500*time.Millisecond)
	if exists, _ := e.roleExists(r.Grant.Principal); !exists {
		t.Fatal("the role was removed while its intent could not be stored")
	}
	if conn, err := c.connect(context.Background(), ""); err == nil {
		conn.Close(context.Background())
		t.Fatal("login accepted after the end while the store was down")
	}
	if err := storePG.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitState("alice", id, "expired", 15*time.Second)
	if exists, _ := e.roleExists(r.Grant.Principal); exists {
		t.Fatal("role left behind after the store came back")
	}
	es := e.events(id)
	if countActions(es, "request.expired") != 1 || countActions(es, "grant.revoke_intent") != 1 {
		t.Fatalf("events: %d expired, %d revoke intents", countActions(es, "request.expired"), countActions(es, "grant.revoke_intent"))
	}
	if out := e.ok("audrey", "audit", "--verify"); !strings.Contains(out, "OK") {
		t.Fatalf("verify: %s", out)
	}
}

// TestE2ERevokeExpiryRace: two owners revoke at the moment the window ends. Exactly one
// ending wins, it is recorded once, and the role is gone.
func TestE2ERevokeExpiryRace(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "2s", "--reason", "race", "--ticket", "T")
	e.ok("bob", "approve", id)
	r := e.waitState("alice", id, "active", 5*time.Second)
	time.Sleep(time.Until(r.End) - 5*time.Millisecond)
	errs := make(chan error, 2)
	for _, u := range []string{"bob", "root"} {
		go func() {
			_, err := tbhttp.NewClient(e.url(), e.tokens[u]).Revoke(context.Background(), id, "race")
			errs <- err
		}()
	}
	a, b := <-errs, <-errs
	for _, err := range []error{a, b} {
		if err != nil && timebox.ErrorCode(err) != timebox.ECONFLICT {
			t.Fatalf("a racing revoke failed with %v, want success or a conflict", err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	var got requestView
	for got = e.show("alice", id); got.State == "active"; got = e.show("alice", id) {
		if time.Now().After(deadline) {
			t.Fatalf("still %s", got.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	es := e.events(id)
	final := countActions(es, "request.revoked") + countActions(es, "request.expired")
	if final != 1 || countActions(es, "request.revoke_requested") > 1 || countActions(es, "grant.revoke_intent") != 1 {
		t.Fatalf("state %s; events: %d final, %d revoke requests, %d revoke intents", got.State, final,
			countActions(es, "request.revoke_requested"), countActions(es, "grant.revoke_intent"))
	}
	if exists, _ := e.roleExists(r.Grant.Principal); exists {
		t.Fatal("role left behind")
	}
}

// TestE2EExpiryWhileActivationRetrying: the target is down from the approval until after the
// window's end; the request never becomes active, shows its pending expiry, and ends expired
// once the database is back, with nothing left behind.
func TestE2EExpiryWhileActivationRetrying(t *testing.T) {
	pg, err := testdb.StartPostgres(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	e := newEnv(t, envOptions{pg: pg})
	e.start()
	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "2s", "--reason", "retry", "--ticket", "T")
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	e.ok("bob", "approve", id)
	time.Sleep(2500 * time.Millisecond)
	got := e.show("alice", id)
	if got.State != "approved" || got.Ending != "expire" || !strings.Contains(got.Status, "expiry pending since") {
		t.Fatalf("after the end with the database down: %q", got.Status)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	got = e.waitState("alice", id, "expired", 10*time.Second)
	if exists, _ := e.roleExists(got.Grant.Principal); exists {
		t.Fatal("role left behind")
	}
	if n := countActions(e.events(id), "request.activated"); n != 0 {
		t.Fatalf("%d activations of a request whose window ended before the database came back", n)
	}
}
