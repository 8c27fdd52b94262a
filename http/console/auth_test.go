package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestDevSignInAndOut(t *testing.T) {
	e := newEnv(t, nil)
	anon := e.browser()
	if p := anon.get("/"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/sign-in") {
		t.Fatalf("GET / without a session = %d %q, want a redirect to /sign-in", p.Status, p.Location)
	}
	b := e.signIn("alice")
	p := b.get("/")
	if !strings.Contains(p.Body, "alice") || p.Header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(p.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("GET / as alice: %d %v", p.Status, p.Header)
	}
	// Without the CSRF token, sign-out is refused and the session lives on.
	if p := b.post("/sign-out", url.Values{"csrf": {""}}); p.Status != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF = %d, want 403", p.Status)
	}
	jar := b.c.Jar.Cookies(mustURL(t, e.URL))
	if p := b.post("/sign-out", nil); p.Status != http.StatusSeeOther {
		t.Fatalf("sign-out = %d", p.Status)
	}
	// The old cookie no longer works: the session ended in the store, not only in the browser.
	replay := e.browser()
	replay.c.Jar.SetCookies(mustURL(t, e.URL), jar)
	if p := replay.get("/"); p.Status != http.StatusSeeOther {
		t.Fatalf("GET / with a signed-out cookie = %d, want a redirect", p.Status)
	}
	// A bearer token does not sign anyone in to the console.
	req, _ := http.NewRequest("GET", e.URL+"/", nil)
	req.Header.Set("Authorization", "Bearer tbx_whatever")
	if p := e.browser().do(req); p.Status != http.StatusSeeOther {
		t.Fatalf("GET / with a bearer token = %d, want a redirect to sign-in", p.Status)
	}
	// Unknown users cannot sign in, even in dev.
	x := e.browser()
	x.get("/sign-in")
	if p := x.post("/sign-in/dev", url.Values{"user": {"mallory"}}); p.Status != http.StatusForbidden {
		t.Fatalf("dev sign-in as mallory = %d, want 403", p.Status)
	}
}

func TestNoDevSignInUnlessAsked(t *testing.T) {
	e := newEnv(t, func(s *consoleServer) { s.DevSignIn = false })
	b := e.browser()
	b.get("/sign-in")
	if p := b.post("/sign-in/dev", url.Values{"user": {"alice"}}); p.Status != http.StatusNotFound {
		t.Fatalf("dev sign-in without DevSignIn = %d, want 404", p.Status)
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
