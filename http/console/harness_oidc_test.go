package console_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/http/console"
)

// startMockOIDC runs oauth2-proxy's mock provider on loopback; tweak, when set, changes it
// before it starts (its token lifetime, say).
func startMockOIDC(t testing.TB, tweak func(*mockoidc.MockOIDC)) *mockoidc.MockOIDC {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startMockOIDCOn(t, ln, tweak)
}

// startMockOIDCOn is startMockOIDC on ln.
func startMockOIDCOn(t testing.TB, ln net.Listener, tweak func(*mockoidc.MockOIDC)) *mockoidc.MockOIDC {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(m)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

// oidcFor returns the console's OIDC settings for mock provider m.
func oidcFor(m *mockoidc.MockOIDC) *console.OIDC {
	cfg := m.Config()
	return &console.OIDC{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		Scopes: []string{"openid", "profile", "email", "groups"}, Name: "Mock"}
}

// newOIDCEnv is newEnv with sign-in through m (and no dev sign-in); tweak changes the OIDC
// settings and the console.
func newOIDCEnv(t testing.TB, m *mockoidc.MockOIDC, tweak func(*console.Server, *console.OIDC)) *env {
	t.Helper()
	return newEnv(t, func(s *console.Server) {
		s.DevSignIn = false
		s.OIDC = oidcFor(m)
		if tweak != nil {
			tweak(s, s.OIDC)
		}
	})
}

// person is a user the mock provider signs in next.
func person(sub, name, email string, groups ...string) *mockoidc.MockUser {
	return &mockoidc.MockUser{Subject: sub, PreferredUsername: name, Email: email, EmailVerified: true, Groups: groups}
}

// getURL fetches an absolute URL (the provider's, or the console's callback).
func (b *browser) getURL(u string) page {
	b.t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	return b.do(req)
}

// startOIDC begins a sign-in that comes back to next and returns the provider's
// authorization URL.
func (b *browser) startOIDC(next string) string {
	b.t.Helper()
	res := b.get("/auth/start?next=" + url.QueryEscape(next))
	if res.Status != http.StatusFound || res.Location == "" {
		b.t.Fatalf("GET /auth/start = %d %q: %s", res.Status, res.Location, res.Body)
	}
	return res.Location
}

// authorize visits the provider's authorization URL (the mock signs in whoever it was
// given) and returns the console callback URL it redirects to.
func (b *browser) authorize(authURL string) string {
	b.t.Helper()
	res := b.getURL(authURL)
	if res.Status != http.StatusFound || !strings.HasPrefix(res.Location, b.e.URL+"/auth/callback?") {
		b.t.Fatalf("the provider's authorization = %d %q: %s", res.Status, res.Location, res.Body)
	}
	return res.Location
}

// oidcSignIn signs in through mock provider m as who and returns the callback's answer.
func (b *browser) oidcSignIn(m *mockoidc.MockOIDC, who mockoidc.User, next string) page {
	b.t.Helper()
	m.QueueUser(who)
	return b.getURL(b.authorize(b.startOIDC(next)))
}

// signedInAs returns the user the browser's session belongs to ("" when none), as the
// console's pages show it.
func (b *browser) signedInAs() string {
	b.t.Helper()
	res := b.get("/")
	if res.Status != http.StatusOK {
		return ""
	}
	if _, rest, ok := strings.Cut(res.Body, `<span class="who">`); ok {
		name, _, _ := strings.Cut(rest, "</span>")
		return name
	}
	return ""
}

// eventsWith returns the audit events with action, oldest first.
func (e *env) eventsWith(action string) []*timebox.Event {
	e.t.Helper()
	var out []*timebox.Event
	err := e.DB.View(context.Background(), func(tx timebox.Tx) error {
		es, err := tx.FindEvents(timebox.EventFilter{})
		for _, ev := range es {
			if ev.Action == action {
				out = append(out, ev)
			}
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// lastFailure returns the reason of the last refused sign-in, failing the test when none
// was audited.
func (e *env) lastFailure() (who, reason string) {
	e.t.Helper()
	es := e.eventsWith("user.sign_in_failed")
	if len(es) == 0 {
		e.t.Fatal("no user.sign_in_failed event was audited")
	}
	ev := es[len(es)-1]
	reason, _ = ev.Details["reason"].(string)
	return ev.Actor, reason
}

// unverifiedUser is a mock user whose ID token says email_verified: false (MockUser omits a
// false value).
type unverifiedUser struct{ *mockoidc.MockUser }

func (u unverifiedUser) Claims(scope []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	c, err := u.MockUser.Claims(scope, base)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(c)
	m := jwt.MapClaims{}
	json.Unmarshal(b, &m)
	m["email_verified"] = false
	return m, nil
}
