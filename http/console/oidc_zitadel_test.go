package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox/http/console"
	"github.com/timebox-dev/timebox/internal/oidcprovider"
)

var hiddenID = regexp.MustCompile(`<input type="hidden" name="id" value="([^"]+)">`)

// TestOIDCZitadelProvider: a real provider with a login form (zitadel/oidc's example OP):
// a browser goes through the console's /auth/start, fills the provider's form, comes back
// through the callback and is signed in, with the groups claim of its ID token and the name
// from the provider's userinfo endpoint (this provider keeps the profile out of the ID token).
func TestOIDCZitadelProvider(t *testing.T) {
	e := newEnv(t, func(s *console.Server) {
		s.DevSignIn = false
		s.OIDC = &console.OIDC{ClientID: "timebox", ClientSecret: "zitadel-test-secret", Name: "Zitadel"}
		for i := range s.Service.Catalog.Users {
			if s.Service.Catalog.Users[i].Name == "bob" {
				s.Service.Catalog.Users[i].Groups = nil
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p, err := oidcprovider.Start(ctx, []oidcprovider.User{
		{Name: "bob", Password: "bob's password", Email: "bob@example.com", Groups: []string{"prod-owners"}},
	}, "timebox", "zitadel-test-secret", []string{e.URL + "/auth/callback"})
	if err != nil {
		t.Fatal(err)
	}
	e.Console.OIDC.Issuer = p.Issuer

	jar, _ := cookiejar.New(nil)
	var visited []string
	c := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		visited = append(visited, r.URL.Scheme+"://"+r.URL.Host+r.URL.Path)
		return nil
	}}
	form := get(t, c, e.URL+"/auth/start?next=%2F")
	m := hiddenID.FindStringSubmatch(form)
	if m == nil || !strings.Contains(form, `name="username"`) || !strings.Contains(form, `name="password"`) {
		t.Fatalf("no login form from the provider: %s", form)
	}
	// A wrong password stays on the provider's form.
	if body := post(t, c, p.Issuer+"/login/username", url.Values{"id": {m[1]}, "username": {"bob"}, "password": {"wrong"}}); !strings.Contains(body, "username or password wrong") {
		t.Fatalf("wrong password: %s", body)
	}
	visited = nil
	home := post(t, c, p.Issuer+"/login/username", url.Values{"id": {m[1]}, "username": {"bob"}, "password": {"bob's password"}})
	if !slices.Contains(visited, e.URL+"/auth/callback") || !strings.Contains(home, `<span class="who">bob</span>`) {
		t.Fatalf("after the provider's form: visited %v, page %s", visited, home)
	}
	u, err := e.Svc.Catalog.User("bob")
	if err != nil || !slices.Equal(u.Groups, []string{"prod-owners"}) {
		t.Fatalf("bob after signing in = %+v, %v", u, err)
	}
	ids, _ := e.Svc.Identities(context.Background(), "admin")
	if len(ids) != 1 || ids[0].Subject != oidcprovider.Subject("bob") || ids[0].Issuer != p.Issuer || ids[0].Email != "bob@example.com" {
		t.Fatalf("identities = %+v", ids)
	}
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", u, res.StatusCode, b)
	}
	return string(b)
}

func post(t *testing.T, c *http.Client, u string, v url.Values) string {
	t.Helper()
	res, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s = %d: %s", u, res.StatusCode, b)
	}
	return string(b)
}
