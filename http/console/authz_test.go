package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/http/console"
)

// TestEveryPostRefused tries every state-changing route of the console (taken from its route
// table, so a new route is covered without editing this test) with no session, with a
// signed-out (stale) session, without a CSRF token, with a wrong one, and from another site —
// as the requester of a live request and as a stranger — and checks that each is refused
// and that the store's audit log did not grow.
func TestEveryPostRefused(t *testing.T) {
	e := newEnv(t, nil)
	public, private := console.PostRoutes(e.Console)
	if len(private) < 10 {
		t.Fatalf("only %d private POST routes found: %v", len(private), private)
	}
	ctx := context.Background()
	pending := e.fileRequest("alice", timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "1h", Reason: "r", Ticket: "T-1"})
	live := e.fileRequest("alice", timebox.RequestInput{Database: "staging", Access: "read-only", Duration: "1h", Reason: "r"})
	e.approveAs("bob", live.ID, timebox.ApproveInput{})
	e.activateGrant(live.ID, "the-secret-password-1")
	_, tok, err := e.Svc.IssueToken(ctx, "alice", "alice", "laptop", 0)
	if err != nil {
		t.Fatal(err)
	}
	fill := func(pattern, id string) string {
		return strings.NewReplacer("{id}", id, "{name}", "alice").Replace(
			strings.Replace(pattern, "/tokens/{id}", "/tokens/"+tok.ID, 1))
	}
	head := func() int64 {
		var seq int64
		e.DB.View(ctx, func(tx timebox.Tx) (err error) { seq, _, err = tx.AuditHead(); return err })
		return seq
	}
	form := url.Values{"note": {"x"}, "duration": {"1h"}, "reason": {"r"}, "user": {"alice"}, "name": {"n"},
		"action": {"submit"}, "database": {"prod"}, "access": {"read-only"}, "allow": {"1"}}

	stale := e.signIn("bob")
	staleCSRF := stale.csrf
	stale.post("/sign-out", nil)
	alice := e.signIn("alice")
	before := head()
	for _, pattern := range private {
		for _, id := range []string{pending.ID, live.ID} {
			path := fill(pattern, id)
			// No session at all.
			anon := e.browser()
			anon.get("/sign-in")
			if p := anon.post(path, form); p.Status != http.StatusUnauthorized {
				t.Errorf("POST %s without a session = %d, want 401", path, p.Status)
			}
			// A signed-out session, with the CSRF token it had.
			f := url.Values{"csrf": {staleCSRF}}
			for k, v := range form {
				f[k] = v
			}
			if p := stale.post(path, f); p.Status != http.StatusUnauthorized {
				t.Errorf("POST %s with a signed-out session = %d, want 401", path, p.Status)
			}
			// The requester herself, without and with a wrong CSRF token, and from another site.
			for name, csrf := range map[string]string{"no": "", "a wrong": strings.Repeat("x", 32)} {
				f := url.Values{"csrf": {csrf}}
				for k, v := range form {
					f[k] = v
				}
				if p := alice.post(path, f); p.Status != http.StatusForbidden {
					t.Errorf("POST %s with %s CSRF token = %d, want 403", path, name, p.Status)
				}
			}
			alice.get("/")
			req, _ := http.NewRequest("POST", e.URL+path, strings.NewReader(url.Values{"csrf": {alice.csrf}}.Encode()+"&"+form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "https://evil.example")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			if p := alice.do(req); p.Status != http.StatusForbidden {
				t.Errorf("POST %s from another site = %d, want 403", path, p.Status)
			}
		}
	}
	if after := head(); after != before {
		t.Errorf("refused POSTs changed the store: the audit log grew from %d to %d events", before, after)
	}
	// Strangers with a valid session and CSRF token: stan may not act on alice's requests,
	// tokens or account (what a route lets anyone do for themselves — file a request, make a
	// token, sign out — is left out).
	stan := e.signIn("stan")
	before = head() // stan's sign-in is an event
	for _, pattern := range private {
		if pattern == "/requests" || pattern == "/tokens" || pattern == "/cli/authorize" || pattern == "/audit/verify" {
			continue
		}
		for _, id := range []string{pending.ID, live.ID} {
			path := fill(pattern, id)
			stan.get("/")
			p := stan.post(path, form)
			if p.Status != http.StatusForbidden && p.Status != http.StatusNotFound {
				t.Errorf("POST %s as stan = %d, want 403 or 404", path, p.Status)
			}
			if strings.Contains(p.Body, "the-secret-password-1") {
				t.Errorf("POST %s as stan shows alice's password", path)
			}
		}
	}
	if after := head(); after != before {
		t.Errorf("stan's POSTs changed the store: the audit log grew from %d to %d events", before, after)
	}
	if len(public) == 0 {
		t.Fatal("no public POST route found (sign-out, dev sign-in)")
	}
}
