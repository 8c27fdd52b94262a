package main

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EPlanCannotBeApplied restarts the server with another secret_key under a live grant
// (as `timebox dev` used to do): the reconciler cannot open its sealed password, and that
// shows in `show` (status line and grant), in `status` and in the audit log, not only in the
// server's log. Starting again with the right key clears it at the next repair.
func TestE2EPlanCannotBeApplied(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "key", "--ticket", "T")
	e.ok("bob", "approve", id)
	e.waitState("alice", id, "active", 5*time.Second)
	e.stop()

	key := filepath.Join(e.dir, "secret.key")
	old, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("another-secret-key-of-32-bytes!!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if e.cfg, err = loadConfig(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	e.start()
	// Tokens are authenticated with secret_key too: the old ones are refused, saying why.
	e.fails("issued under a secret_key this server does not have (after changing secret_key, keep the old one in previous_secret_keys)", "alice", "show", id)
	oldTokens := maps.Clone(e.tokens)
	for _, u := range []string{"alice", "root"} {
		if e.tokens[u], err = createToken(context.Background(), e.in.Store, &e.cfg.Catalog, e.in.Service.Keys, u); err != nil {
			t.Fatal(err)
		}
	}
	e.in.Scheduler.Reconcile(context.Background()) // its password check needs the sealed password
	r := e.show("alice", id)
	const want = "its plan cannot be applied: stored secret cannot be decrypted"
	if r.State != "active" || !strings.Contains(r.Status, want) {
		t.Errorf("show: state %s, status %q; want %q in it", r.State, r.Status, want)
	}
	if out := e.ok("alice", "show", id); !strings.Contains(out, "last error") || !strings.Contains(out, want) {
		t.Errorf("show (table) does not carry the failure:\n%s", out)
	}
	if out := e.ok("root", "status"); !strings.Contains(out, "\npg: request "+id) || !strings.Contains(out, want) {
		t.Errorf("status does not name the failing grant:\n%s", out)
	}
	if n := countActions(e.events(id), "grant.plan_failed"); n != 1 {
		t.Errorf("%d grant.plan_failed events, want 1", n)
	}
	e.in.Scheduler.Reconcile(context.Background()) // the same failure again: no second event
	if n := countActions(e.events(id), "grant.plan_failed"); n != 1 {
		t.Errorf("after a second pass: %d grant.plan_failed events, want 1", n)
	}

	// The right key again: the next repair clears it.
	e.stop()
	if err := os.WriteFile(key, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if e.cfg, err = loadConfig(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.tokens = oldTokens
	_, exec := e.super()
	exec("ALTER ROLE " + `"` + r.Grant.Principal + `"` + " NOLOGIN") // drift, so that the reconciler repairs it
	e.in.Scheduler.Reconcile(context.Background())
	if r := e.show("alice", id); strings.Contains(r.Status, "cannot be applied") {
		t.Errorf("after the repair with the right key: status %q", r.Status)
	}
}
