package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

var tokenSecretRE = regexp.MustCompile(`tbx_[a-z0-9]{40}`)

func TestTokens(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	b := e.signIn("alice")
	p := b.get("/tokens")
	if p.Status != http.StatusOK || !strings.Contains(accessText(p.Body), "You have no token yet.") || strings.Contains(p.Body, "Show everyone") {
		t.Fatalf("empty tokens page = %d:\n%s", p.Status, accessText(p.Body))
	}

	p = b.post("/tokens", url.Values{"name": {"laptop"}, "lifetime": {"7d"}})
	secret := tokenSecretRE.FindString(p.Body)
	if p.Status != http.StatusOK || secret == "" || p.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create = %d, secret %q, Cache-Control %q", p.Status, secret, p.Header.Get("Cache-Control"))
	}
	txt := accessText(p.Body)
	for _, want := range []string{"Copy it now: it is shown only this once.", "timebox login --server " + e.URL, "paste the token at its prompt"} {
		if !strings.Contains(txt, want) {
			t.Errorf("the new token's page lacks %q", want)
		}
	}
	if !strings.Contains(p.Body, `data-copy="token-secret" hidden`) || strings.Contains(p.Body, "data-live") {
		t.Error("the secret has no copy button, or the page would reload itself")
	}
	toks, err := e.Svc.ListTokens(ctx, "alice", "alice")
	if err != nil || len(toks) != 1 || toks[0].Name != "laptop" || !toks[0].ExpiresAt.Equal(toks[0].CreatedAt.Add(7*24*time.Hour)) {
		t.Fatalf("stored tokens: %v %+v", err, toks)
	}
	if u, err := e.Svc.Authenticate(ctx, secret); err != nil || u.Name != "alice" {
		t.Fatalf("the secret shown does not sign alice in: %v", err)
	}
	// Never again: the list shows the token, not its secret.
	p = b.get("/tokens")
	if strings.Contains(p.Body, secret) || tokenSecretRE.MatchString(p.Body) || !strings.Contains(p.Body, toks[0].ID) || !strings.Contains(accessText(p.Body), "laptop") {
		t.Fatalf("tokens list after create:\n%s", accessText(p.Body))
	}

	// A lifetime beyond the maximum is refused next to its field, and nothing is made.
	p = b.post("/tokens", url.Values{"name": {"forever"}, "lifetime": {"1000d"}})
	if got := accessFieldError(p.Body, "token-lifetime"); p.Status != http.StatusBadRequest || !strings.Contains(got, "longer than the maximum token lifetime") {
		t.Errorf("lifetime 1000d: %d, error %q", p.Status, got)
	}
	if got := accessFieldError(b.post("/tokens", url.Values{"lifetime": {"soon"}}).Body, "token-lifetime"); !strings.Contains(got, `invalid duration "soon"`) {
		t.Errorf("lifetime soon: error %q", got)
	}
	if toks, _ := e.Svc.ListTokens(ctx, "alice", "alice"); len(toks) != 1 {
		t.Fatalf("refused forms made tokens: %d", len(toks))
	}

	// Without the CSRF token nothing is made or revoked.
	if p := b.post("/tokens", url.Values{"name": {"x"}, "csrf": {""}}); p.Status != http.StatusForbidden || tokenSecretRE.MatchString(p.Body) {
		t.Errorf("create without CSRF = %d", p.Status)
	}
	if p := b.post("/tokens/"+toks[0].ID+"/revoke", url.Values{"csrf": {""}}); p.Status != http.StatusForbidden {
		t.Errorf("revoke without CSRF = %d", p.Status)
	}
	// bob cannot revoke alice's token (nor learn that it exists); an admin can see it.
	o := e.signIn("bob")
	o.get("/tokens")
	if p := o.post("/tokens/"+toks[0].ID+"/revoke", nil); p.Status != http.StatusNotFound {
		t.Errorf("bob revokes alice's token: %d", p.Status)
	}
	if p := o.get("/tokens?all=1"); strings.Contains(p.Body, toks[0].ID) {
		t.Error("bob sees alice's token")
	}
	if toks, _ := e.Svc.ListTokens(ctx, "alice", "alice"); toks[0].State(time.Now()) != timebox.TokenActive {
		t.Fatal("a refused revoke revoked the token")
	}
	a := e.signIn("admin")
	if p := a.get("/tokens?all=1"); !strings.Contains(p.Body, toks[0].ID) || !strings.Contains(p.Body, "<td>alice</td>") {
		t.Errorf("the admin's list of everyone's tokens lacks alice's:\n%s", accessText(p.Body))
	}

	p = b.post("/tokens/"+toks[0].ID+"/revoke", nil)
	if p.Status != http.StatusSeeOther || p.Location != "/tokens?done=revoked" {
		t.Fatalf("revoke = %d %q", p.Status, p.Location)
	}
	if _, err := e.Svc.Authenticate(ctx, secret); timebox.ErrorCode(err) != timebox.EUNAUTHORIZED {
		t.Fatalf("a revoked token still signs in: %v", err)
	}
	txt = accessText(b.get(p.Location).Body)
	if !strings.Contains(txt, "The token was revoked") || !strings.Contains(txt, "revoked by alice") {
		t.Errorf("after revoke:\n%s", txt)
	}
	if p := b.get("/tokens"); strings.Contains(p.Body, `action="/tokens/`+toks[0].ID+`/revoke"`) {
		t.Error("a revoked token still has a Revoke button")
	}
}
