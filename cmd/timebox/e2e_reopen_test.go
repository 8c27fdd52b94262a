package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestE2EApproverDisabledBeforeWindow: bob approved two requests whose windows start in an
// hour. Disabled through the API (timebox users disable), his approval of the first no longer
// counts: it is pending again, and show says why; root's approval of the second still
// counts. Enabled again, bob approves the first anew; disabled in the configuration, seen when
// the server starts, his approval no longer counts again.
func TestE2EApproverDisabledBeforeWindow(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	args := []string{"--db", "shop", "--access", "read-only", "--start", start, "--for", "10m", "--reason", "later", "--ticket", "T-1"}
	first, second := e.request("alice", args...), e.request("alice", args...)
	e.ok("bob", "approve", first)
	e.ok("root", "approve", second)
	e.ok("root", "users", "disable", "bob", "--note", "left")
	if out := e.ok("alice", "show", first); !strings.Contains(out, "pending, awaiting 1 more of owners") || !strings.Contains(out, "reopen") || !strings.Contains(out, "approval by bob no longer counts: user bob was disabled by root: left before the window started") {
		t.Errorf("show does not say why:\n%s", out)
	}
	if n := countActions(e.events(first), "request.reopened"); n != 1 {
		t.Errorf("%d request.reopened events, want 1", n)
	}
	if r := e.show("alice", second); r.State != "approved" {
		t.Errorf("root's approval: %s", r.State)
	}

	// bob enabled, approves again; then disabled in the configuration: at the next start,
	// the first request goes back to pending again.
	e.ok("root", "users", "enable", "bob")
	secret, err := createToken(context.Background(), e.in.Store, &e.cfg.Catalog, e.in.Service.Keys, "bob") // his old token stays revoked
	if err != nil {
		t.Fatal(err)
	}
	e.tokens["bob"] = secret
	e.ok("bob", "approve", first)
	if r := e.show("alice", first); r.State != "approved" {
		t.Fatalf("bob's new approval: %s", r.State)
	}
	e.stop()
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "{name: bob, groups: [owners]}", "{name: bob, groups: [owners], disabled: true}", 1)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if e.cfg, err = loadConfig(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	e.start()
	if r := e.show("alice", first); r.State != "pending" {
		t.Errorf("after bob was disabled in the configuration: %s (%s)", r.State, r.Status)
	}
	if es := e.events(first); countActions(es, "request.reopened") != 2 || !strings.Contains(es[len(es)-1].Details["note"].(string), "user bob is disabled in the configuration") {
		t.Errorf("events of the first request: %v", actions(es))
	}
	if r := e.show("alice", second); r.State != "approved" {
		t.Errorf("root's approval after the restart: %s", r.State)
	}
}
