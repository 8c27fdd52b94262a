package console_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/http/console"
)

// TestOIDCSignIn: a person the configuration does not list signs in through the provider;
// the identity is recorded with the provider's valid group names only, the session works,
// and the sign-in cookie is gone.
func TestOIDCSignIn(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	b := e.browser()
	if res := b.get("/sign-in"); !strings.Contains(res.Body, `href="/auth/start?next=%2f"`) || !strings.Contains(res.Body, "Sign in with Mock") {
		t.Fatalf("the sign-in page has no provider button: %s", res.Body)
	}
	auth := b.startOIDC("/?tab=mine")
	u, _ := url.Parse(auth)
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || q.Get("nonce") == "" || len(q.Get("state")) < 32 {
		t.Fatalf("the authorization request lacks PKCE S256, a nonce or a state: %s", auth)
	}
	if q.Get("redirect_uri") != e.URL+"/auth/callback" {
		t.Fatalf("redirect_uri = %q", q.Get("redirect_uri"))
	}
	m.QueueUser(person("sub-dave", "Dave", "dave@example.com", "prod-owners", "Not A Group", "admins", "owners"))
	res := b.getURL(b.authorize(auth))
	if res.Status != http.StatusSeeOther || res.Location != "/?tab=mine" {
		t.Fatalf("callback = %d %q: %s", res.Status, res.Location, res.Body)
	}
	var session *http.Cookie
	for _, ck := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(ck, "timebox_session=") {
			session = &http.Cookie{}
			if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Lax") {
				t.Errorf("session cookie %q is not HttpOnly/SameSite=Lax", ck)
			}
		}
		if strings.HasPrefix(ck, "timebox_signin=") && !strings.Contains(ck, "Max-Age=0") {
			t.Errorf("the sign-in cookie was not cleared: %q", ck)
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	if got := b.signedInAs(); got != "dave" {
		t.Fatalf("signed in as %q, want dave", got)
	}
	// Signing in again ends the session it replaces.
	base, _ := url.Parse(e.URL)
	old := b.c.Jar.Cookies(base)
	if res := b.oidcSignIn(m, person("sub-dave", "dave", "dave@example.com", "prod-owners"), "/"); res.Status != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d", res.Status)
	}
	stale := e.browser()
	stale.c.Jar.SetCookies(base, old)
	if stale.signedInAs() != "" {
		t.Error("the session replaced by a new sign-in still works")
	}
	u2, err := e.Svc.Catalog.User("dave")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u2.Groups, []string{"prod-owners"}) || u2.Email != "dave@example.com" {
		t.Errorf("dave = %+v, want groups [prod-owners] (invalid names and the rules' owners/admins dropped)", u2)
	}
	ids, _ := e.Svc.Identities(context.Background(), "admin")
	if len(ids) != 1 || ids[0].Subject != "sub-dave" || ids[0].Issuer != m.Issuer() {
		t.Errorf("identities = %+v", ids)
	}
	if es := e.eventsWith("user.signed_in"); len(es) != 2 || es[0].Details["via"] != timebox.ViaOIDC {
		t.Errorf("signed_in events = %+v", es)
	}
	for _, ev := range e.eventsWith("user.signed_in") {
		for _, v := range ev.Details {
			if s, ok := v.(string); ok && strings.Contains(s, q.Get("state")) {
				t.Error("the state reached the audit log")
			}
		}
	}
}

// TestOIDCGroupsMakeApprover: bob is listed without groups; the provider's groups claim,
// mapped through group_map, makes him a prod owner, so he can approve alice's request.
func TestOIDCGroupsMakeApprover(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, func(s *console.Server, o *console.OIDC) {
		for i := range s.Service.Catalog.Users {
			if s.Service.Catalog.Users[i].Name == "bob" {
				s.Service.Catalog.Users[i].Groups = nil
			}
		}
		o.GroupMap = map[string][]string{"Prod Owners": {"prod-owners"}, "Everyone": {"staff"}}
	})
	ctx := context.Background()
	r, err := e.Svc.CreateRequest(ctx, "alice", timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "1h", Reason: "debug an order"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Svc.Approve(ctx, "bob", r.ID, timebox.ApproveInput{}); err == nil {
		t.Fatalf("bob approved before signing in (groups from the configuration only): %v", err)
	}
	b := e.browser()
	if res := b.oidcSignIn(m, person("sub-bob", "bob", "BOB@example.com", "Prod Owners", "Everyone", "unmapped"), "/"); res.Status != http.StatusSeeOther {
		t.Fatalf("bob's sign-in: %d %s", res.Status, res.Body)
	}
	if got := b.signedInAs(); got != "bob" {
		t.Fatalf("signed in as %q", got)
	}
	u, _ := e.Svc.Catalog.User("bob")
	if !slices.Equal(u.Groups, []string{"prod-owners", "staff"}) {
		t.Fatalf("bob's groups = %v", u.Groups)
	}
	got, err := e.Svc.Approve(ctx, "bob", r.ID, timebox.ApproveInput{Note: "ok"})
	if err != nil {
		t.Fatalf("bob, a prod owner through the groups claim, cannot approve: %v", err)
	}
	if got.State != timebox.StateApproved {
		t.Fatalf("state = %s", got.State)
	}
}

// TestOIDCTamperedState: a callback whose state is not the one this browser started with
// is refused and audited.
func TestOIDCTamperedState(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	b := e.browser()
	m.QueueUser(person("sub-dave", "dave", "dave@example.com"))
	cb, _ := url.Parse(b.authorize(b.startOIDC("/")))
	q := cb.Query()
	q.Set("state", q.Get("state")[:len(q.Get("state"))-1]+"x")
	cb.RawQuery = q.Encode()
	res := b.getURL(cb.String())
	if res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "state that does not match") {
		t.Fatalf("tampered state: %d %s", res.Status, res.Body)
	}
	if !strings.Contains(res.Body, `role="alert"`) || !strings.Contains(res.Body, "/auth/start") {
		t.Error("the error page has no alert or no way to start again")
	}
	if _, reason := e.lastFailure(); !strings.Contains(reason, "state") {
		t.Errorf("audited reason %q", reason)
	}
	if b.signedInAs() != "" {
		t.Fatal("signed in with a tampered state")
	}
	// Without the browser's sign-in cookie (another browser, or a forged link) too.
	b2 := e.browser()
	if res := b2.getURL(cb.String()); res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "not started in this browser") {
		t.Fatalf("callback in another browser: %d %s", res.Status, res.Body)
	}
}

// TestOIDCReplayedCallback: the same callback (code and state), even with the sign-in
// cookie copied back, works once.
func TestOIDCReplayedCallback(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	b := e.browser()
	m.QueueUser(person("sub-dave", "dave", "dave@example.com"))
	cb := b.authorize(b.startOIDC("/"))
	base, _ := url.Parse(e.URL)
	saved := b.c.Jar.Cookies(base)
	if res := b.getURL(cb); res.Status != http.StatusSeeOther {
		t.Fatalf("first callback: %d %s", res.Status, res.Body)
	}
	attacker := e.browser()
	attacker.c.Jar.SetCookies(base, saved)
	res := attacker.getURL(cb)
	if res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "replayed") {
		t.Fatalf("replayed callback: %d %s", res.Status, res.Body)
	}
	if attacker.signedInAs() != "" {
		t.Fatal("the replayed callback signed someone in")
	}
	if _, reason := e.lastFailure(); !strings.Contains(reason, "replayed") {
		t.Errorf("audited reason %q", reason)
	}
	if strings.Contains(e.logs.String(), strings.SplitN(strings.SplitN(cb, "code=", 2)[1], "&", 2)[0]) {
		t.Error("the code reached the log")
	}
}

// TestOIDCWrongNonce: an ID token whose nonce is not this sign-in's is refused.
func TestOIDCWrongNonce(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	b := e.browser()
	m.QueueUser(person("sub-dave", "dave", "dave@example.com"))
	auth, _ := url.Parse(b.startOIDC("/"))
	q := auth.Query()
	q.Set("nonce", "a-nonce-from-another-sign-in")
	auth.RawQuery = q.Encode()
	res := b.getURL(b.authorize(auth.String()))
	if res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "nonce does not match") {
		t.Fatalf("wrong nonce: %d %s", res.Status, res.Body)
	}
	if _, reason := e.lastFailure(); !strings.Contains(reason, "nonce") {
		t.Errorf("audited reason %q", reason)
	}
	if b.signedInAs() != "" {
		t.Fatal("signed in with a wrong nonce")
	}
}

// TestOIDCExpiredIDToken: an ID token that has expired is refused.
func TestOIDCExpiredIDToken(t *testing.T) {
	m := startMockOIDC(t, func(m *mockoidc.MockOIDC) { m.AccessTTL = -5 * time.Minute })
	e := newOIDCEnv(t, m, nil)
	b := e.browser()
	res := b.oidcSignIn(m, person("sub-dave", "dave", "dave@example.com"), "/")
	if res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "ID token expired") {
		t.Fatalf("expired ID token: %d %s", res.Status, res.Body)
	}
	if _, reason := e.lastFailure(); !strings.Contains(reason, "expired") {
		t.Errorf("audited reason %q", reason)
	}
}

// TestOIDCNameCollision: a second provider account whose username claim is a name already
// bound to another account is refused.
func TestOIDCNameCollision(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	if res := e.browser().oidcSignIn(m, person("sub-dave", "dave", "dave@example.com"), "/"); res.Status != http.StatusSeeOther {
		t.Fatalf("first sign-in: %d %s", res.Status, res.Body)
	}
	b := e.browser()
	res := b.oidcSignIn(m, person("sub-mallory", "dave", "mallory@example.com", "prod-owners"), "/")
	if res.Status != http.StatusForbidden || !strings.Contains(res.Body, "belongs to another provider account") {
		t.Fatalf("name collision: %d %s", res.Status, res.Body)
	}
	if who, reason := e.lastFailure(); who != "dave" || !strings.Contains(reason, "another provider account") {
		t.Errorf("audited %q: %q", who, reason)
	}
	if u, _ := e.Svc.Catalog.User("dave"); slices.Contains(u.Groups, "prod-owners") {
		t.Error("the refused sign-in changed dave's groups")
	}
}

// TestOIDCConfigUserEmail: the provider's account for a configuration user must have the
// configuration's e-mail address (verified).
func TestOIDCConfigUserEmail(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	res := e.browser().oidcSignIn(m, person("sub-fake-alice", "alice", "alice@evil.example"), "/")
	if res.Status != http.StatusForbidden || !strings.Contains(res.Body, "alice@example.com") {
		t.Fatalf("alice with another e-mail: %d %s", res.Status, res.Body)
	}
	if who, _ := e.lastFailure(); who != "alice" {
		t.Errorf("audited actor %q", who)
	}
	// An unverified address does not count.
	unverified := unverifiedUser{person("sub-alice", "alice", "alice@example.com")}
	if res := e.browser().oidcSignIn(m, unverified, "/"); res.Status != http.StatusForbidden {
		t.Fatalf("alice with an unverified e-mail: %d %s", res.Status, res.Body)
	}
	if res := e.browser().oidcSignIn(m, person("sub-alice", "alice", "alice@example.com"), "/"); res.Status != http.StatusSeeOther {
		t.Fatalf("alice with her address: %d %s", res.Status, res.Body)
	}
}

// TestOIDCRateLimit: past the limit a client address is refused, and the refusal is
// audited once per window.
func TestOIDCRateLimit(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	b := e.browser()
	for i := 0; i < 20; i++ {
		b.startOIDC("/")
	}
	for i := 0; i < 3; i++ {
		res := b.get("/auth/start?next=/")
		if res.Status != http.StatusTooManyRequests || !strings.Contains(res.Body, "too many sign-in attempts") {
			t.Fatalf("attempt %d past the limit: %d %s", 21+i, res.Status, res.Body)
		}
	}
	es := e.eventsWith("user.sign_in_failed")
	if len(es) != 1 || !strings.Contains(es[0].Details["reason"].(string), "too many sign-in attempts from 127.0.0.1") {
		t.Fatalf("rate-limit events = %+v, want one", es)
	}
	// Callbacks are counted apart (a sign-in is one start and one callback), with the same
	// limit; each refused callback is audited, but past the limit only the first.
	for i := 0; i < 20; i++ {
		if res := b.getURL(e.URL + "/auth/callback?code=x&state=y"); res.Status != http.StatusUnauthorized {
			t.Fatalf("callback %d: %d", i+1, res.Status)
		}
	}
	for i := 0; i < 3; i++ {
		if res := b.getURL(e.URL + "/auth/callback?code=x&state=y"); res.Status != http.StatusTooManyRequests {
			t.Fatalf("callback past the limit: %d", res.Status)
		}
	}
	if es := e.eventsWith("user.sign_in_failed"); len(es) != 1+20+1 {
		t.Fatalf("%d sign_in_failed events, want 22", len(es))
	}
}

// TestOIDCProviderError: the provider's error answer is shown and audited.
func TestOIDCProviderError(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	b := e.browser()
	auth, _ := url.Parse(b.startOIDC("/"))
	res := b.getURL(e.URL + "/auth/callback?error=access_denied&error_description=User+cancelled&state=" + auth.Query().Get("state"))
	if res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "refused the sign-in (access_denied): User cancelled") {
		t.Fatalf("provider error: %d %s", res.Status, res.Body)
	}
	if _, reason := e.lastFailure(); !strings.Contains(reason, "access_denied") {
		t.Errorf("audited %q", reason)
	}
}

// TestOIDCProviderDown: a provider that cannot be reached does not stop the console; the
// sign-in page says so, and the next attempt after it comes up works.
func TestOIDCProviderDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newEnv(t, func(s *console.Server) {
		s.DevSignIn = false
		s.OIDC = &console.OIDC{Issuer: "http://" + addr + "/oidc", ClientID: "x", ClientSecret: "y"}
	})
	b := e.browser()
	res := b.get("/auth/start?next=/")
	if res.Status != http.StatusServiceUnavailable || !strings.Contains(res.Body, "cannot be reached") || !strings.Contains(res.Body, addr) {
		t.Fatalf("provider down: %d %s", res.Status, res.Body)
	}
	m := startMockOIDCAt(t, addr)
	e.Console.OIDC.ClientID, e.Console.OIDC.ClientSecret = m.Config().ClientID, m.Config().ClientSecret
	if res := b.oidcSignIn(m, person("sub-dave", "dave", "dave@example.com"), "/"); res.Status != http.StatusSeeOther {
		t.Fatalf("after the provider came up: %d %s", res.Status, res.Body)
	}
}

// startMockOIDCAt runs the mock provider on addr.
func startMockOIDCAt(t *testing.T, addr string) *mockoidc.MockOIDC {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	return startMockOIDCOn(t, ln, nil)
}

// TestOIDCClaimRules: strip_email_domain, username_claim and allowed_groups.
func TestOIDCClaimRules(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, func(_ *console.Server, o *console.OIDC) {
		o.UsernameClaim = "email"
		o.StripEmailDomain = "corp.example"
		o.AllowedGroups = []string{"staff", "prod-owners"}
	})
	if res := e.browser().oidcSignIn(m, person("sub-erin", "whatever", "erin@corp.example", "staff"), "/"); res.Status != http.StatusSeeOther {
		t.Fatalf("erin: %d %s", res.Status, res.Body)
	}
	if _, err := e.Svc.Catalog.User("erin"); err != nil {
		t.Fatalf("erin@corp.example did not become erin: %v", err)
	}
	res := e.browser().oidcSignIn(m, person("sub-frank", "frank", "frank@corp.example", "contractors"), "/")
	if res.Status != http.StatusForbidden || !strings.Contains(res.Body, "none of the groups allowed") {
		t.Fatalf("frank outside the allowed groups: %d %s", res.Status, res.Body)
	}
	// An address the provider has not verified gives no name.
	res = e.browser().oidcSignIn(m, unverifiedUser{person("sub-hal", "hal", "hal@corp.example", "staff")}, "/")
	if res.Status != http.StatusForbidden || !strings.Contains(res.Body, "has not verified the e-mail address") {
		t.Fatalf("unverified address as the name: %d %s", res.Status, res.Body)
	}
	// An address in another domain stays whole.
	if res := e.browser().oidcSignIn(m, person("sub-gus", "gus", "gus@other.example", "staff"), "/"); res.Status != http.StatusSeeOther {
		t.Fatalf("gus: %d %s", res.Status, res.Body)
	}
	if _, err := e.Svc.Catalog.User("gus@other.example"); err != nil {
		t.Fatalf("gus@other.example: %v", err)
	}
}
