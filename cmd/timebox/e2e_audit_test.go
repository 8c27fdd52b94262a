package main

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
)

// TestE2EAuditCheckpoint runs the real server on a store whose first events were written
// before the chain was keyed (the tokens, by a store opened without keys): the server keys
// the chain from a switch event on, checkpoints its head in a private file next to the SQLite
// store, refuses a second server on that file, and after the tail was deleted with the head
// moved back, says so at startup and in timebox audit --verify.
func TestE2EAuditCheckpoint(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "1h", "--reason", "audit test", "--ticket", "T-1")
	e.ok("bob", "deny", id, "--note", "not today")
	legacy := int64(len(e.cfg.Users)) // one token.created event each, plain SHA-256
	es := e.eventsAll()
	if es[legacy].Action != timebox.ActionAuditKeyed || es[legacy-1].KeyID != "" || es[legacy].KeyID == "" || es[len(es)-1].KeyID == "" {
		t.Fatalf("the chain is not plain up to the switch event %d and keyed after: %+v", legacy+1, es)
	}
	out := e.ok("audrey", "audit", "--verify")
	if !strings.Contains(out, "audit log OK: ") || !strings.Contains(out, "keyed since event "+itoa(legacy+1)) {
		t.Fatalf("audit --verify: %s", out)
	}
	path := filepath.Join(e.dir, "audit-checkpoint.log")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("checkpoint file: %v, %v; want mode 0600", fi, err)
	}
	if _, err := startInstance(context.Background(), e.cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "in use by another Timebox process") {
		t.Fatalf("a second server on the same checkpoint file: %v", err)
	}
	e.stop()

	// Delete the last two events and move the head back, behind the server's back.
	raw, err := sql.Open("sqlite", filepath.Join(e.dir, "timebox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	last := es[len(es)-1].Seq
	for _, q := range []string{`DELETE FROM events WHERE seq > ` + itoa(last-2),
		`UPDATE audit_head SET seq = seq - 2, hash = (SELECT hash FROM events WHERE seq = ` + itoa(last-2) + `)`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	if !strings.Contains(e.log.String(), "the audit log ends before the checkpoint") {
		t.Errorf("the server did not log the truncation at startup:\n%s", e.log.String())
	}
	stdout, stderr, code := e.cli("audrey", "audit", "--verify")
	if code != 6 || !strings.Contains(stdout, "events "+itoa(last-1)+".."+itoa(last)+" recorded in the checkpoint are missing") {
		t.Fatalf("audit --verify after the truncation: exit %d\n%s%s", code, stdout, stderr)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
