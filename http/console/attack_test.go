package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAttackSignInPageWhyNotInjectable: the sign-in page's reason line comes from Timebox,
// never from a link's query, so an attacker cannot put their own words on Timebox's sign-in
// page ("Timebox moved: sign in at https://evil.example").
func TestAttackSignInPageWhyNotInjectable(t *testing.T) {
	e := newEnv(t, nil)
	lure := "Timebox has moved: sign in at https://evil.example instead"
	p := e.browser().get("/sign-in?why=" + url.QueryEscape(lure))
	if strings.Contains(p.Body, "evil.example") {
		t.Fatalf("the sign-in page shows a link's own text: %s", p.Body)
	}
	// The real reason still shows: a signed-out session's GET comes back with why.
	b := e.signIn("alice")
	b.post("/sign-out", nil)
	res := b.get("/requests/new")
	if res.Status != http.StatusSeeOther {
		t.Fatalf("GET after sign-out = %d", res.Status)
	}
	if p := b.get(res.Location); !strings.Contains(p.Body, "you are not signed in") {
		t.Fatalf("the sign-in page lost Timebox's own reason (%s): %s", res.Location, p.Body)
	}
}

// TestAttackCallbackErrorNeedsState: an anonymous visitor who never started a sign-in cannot
// write their own text into the audit log through the callback's error parameters.
func TestAttackCallbackErrorNeedsState(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	b := e.browser()
	res := b.getURL(e.URL + "/auth/callback?error=x&error_description=" + url.QueryEscape("approved by the CISO, see https://evil.example"))
	if res.Status != http.StatusUnauthorized {
		t.Fatalf("forged error callback = %d", res.Status)
	}
	for _, ev := range e.eventsWith("user.sign_in_failed") {
		if r, _ := ev.Details["reason"].(string); strings.Contains(r, "evil.example") {
			t.Fatalf("a forged callback wrote its own text into the audit log: %q", r)
		}
	}
	if strings.Contains(res.Body, "evil.example") {
		t.Fatalf("a forged callback's text is shown on the sign-in page")
	}
}

// TestAttackInvisibleUserName: a provider account cannot take a name that looks like another
// person's (zero-width or bidi characters).
func TestAttackInvisibleUserName(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	for _, name := range []string{"bob\u200b", "b\u200dob", "\u202ebob", "bob\ufeff", "bo\u00adb"} {
		res := e.browser().oidcSignIn(m, person("sub-"+name, name, "x@evil.example", "developers"), "/")
		if res.Status == http.StatusSeeOther {
			t.Errorf("provider username %q (looks like bob) was accepted", name)
		}
	}
}

// TestAttackConfigAdminSquatted: a provider account whose username claim is a configuration
// user's name becomes that user (with the configuration's groups). When the configuration
// user has no e-mail address to check, any provider account may claim the name.
func TestAttackConfigAdminSquatted(t *testing.T) {
	t.Skip("unfixed finding: a configuration user without an e-mail address can be claimed by any provider account choosing that username (see the security review)")
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	res := e.browser().oidcSignIn(m, person("sub-mallory", "admin", "mallory@evil.example"), "/")
	if res.Status == http.StatusSeeOther && e.Svc.Catalog.IsAdmin("admin") {
		t.Fatalf("mallory's provider account became Timebox's admin by choosing the username admin")
	}
}

// TestAttackSessionNotAnAPIToken: the console's session secret is no bearer token for the
// API, and the API ignores the console's cookie.
func TestAttackSessionNotAnAPIToken(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn("alice")
	var secret string
	for _, ck := range b.c.Jar.Cookies(mustURL(t, e.URL)) {
		if ck.Name == "timebox_session" {
			secret = ck.Value
		}
	}
	if secret == "" {
		t.Fatal("no session cookie")
	}
	req, _ := http.NewRequest("GET", e.URL+"/api/v1/requests", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	if p := e.browser().do(req); p.Status != http.StatusUnauthorized {
		t.Errorf("the session secret as a bearer token = %d, want 401", p.Status)
	}
	if p := b.get("/api/v1/requests"); p.Status != http.StatusUnauthorized {
		t.Errorf("the API with the console's cookie = %d, want 401", p.Status)
	}
}
