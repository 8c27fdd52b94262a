package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// TestE2EPlanCannotBeApplied: a server started with another secret_key than the one that made
// its store refuses to start, in one line (it could open no sealed password and verify no
// decision). A live grant whose sealed password was replaced in the store cannot be planned:
// that shows in `show` (status line and grant), in `status` and in the audit log, not only in
// the server's log; the genuine password written back clears it at the next repair.
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
	if in, err := startInstance(context.Background(), e.cfg, slog.New(slog.DiscardHandler)); err == nil {
		in.Close()
		t.Fatal("the server started with a secret_key that did not make its store")
	} else if msg := timebox.ErrorMessage(err); !strings.Contains(msg, "secret_key does not match the store") || strings.Contains(msg, "another-secret") {
		t.Errorf("wrong key: %q", msg)
	}
	if err := os.WriteFile(key, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if e.cfg, err = loadConfig(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	e.start()
	var genuine []byte
	other, _ := timebox.NewKeyring("another-secret-key-of-32-bytes!!")
	setPassword := func(fn func(g *timebox.Grant)) {
		t.Helper()
		err := e.in.Store.Update(context.Background(), func(tx timebox.Tx) error {
			r, err := tx.FindRequest(id)
			if err != nil {
				return err
			}
			fn(r.Grant)
			return tx.PutGrant(r.Grant)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setPassword(func(g *timebox.Grant) { genuine, g.SealedPassword = g.SealedPassword, other.Sealer().Seal("x", id) })

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

	// The genuine password again: the next repair clears it.
	setPassword(func(g *timebox.Grant) { g.SealedPassword = genuine })
	_, exec := e.super()
	exec("ALTER ROLE " + `"` + r.Grant.Principal + `"` + " NOLOGIN") // drift, so that the reconciler repairs it
	e.in.Scheduler.Reconcile(context.Background())
	if r := e.show("alice", id); strings.Contains(r.Status, "cannot be applied") {
		t.Errorf("after the repair with the genuine password: status %q", r.Status)
	}
}
