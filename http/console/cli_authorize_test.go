package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// fakeCLI is what `timebox login --sso` does, without the command: a loopback listener, a
// state and a PKCE verifier.
type fakeCLI struct {
	t        *testing.T
	port     int
	state    string
	verifier string
	got      chan url.Values
}

func newFakeCLI(t *testing.T) *fakeCLI {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCLI{t: t, port: ln.Addr().(*net.TCPAddr).Port, state: timebox.RandomID(32), verifier: timebox.RandomID(64), got: make(chan url.Values, 4)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.got <- r.URL.Query()
		io.WriteString(w, "signed in")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c
}

// link is the console address the CLI opens.
func (c *fakeCLI) link() string {
	return "/cli/authorize?" + url.Values{"port": {strconv.Itoa(c.port)}, "state": {c.state},
		"challenge": {timebox.S256Challenge(c.verifier)}, "name": {"laptop-7"}}.Encode()
}

// form is the consent form's fields, with decision.
func (c *fakeCLI) form(decision string) url.Values {
	return url.Values{"port": {strconv.Itoa(c.port)}, "state": {c.state}, "challenge": {timebox.S256Challenge(c.verifier)},
		"name": {"laptop-7"}, "decision": {decision}}
}

// exchange posts code and verifier to the API, as the CLI does.
func exchange(t *testing.T, e *env, code, verifier string) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"code": code, "verifier": verifier})
	res, err := http.Post(e.URL+"/api/v1/cli/token", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body
}

// allow takes browser b through the consent page and returns the code the CLI received.
func (c *fakeCLI) allow(b *browser) string {
	c.t.Helper()
	page := b.get(c.link())
	if page.Status != http.StatusOK || !strings.Contains(page.Body, "laptop-7") {
		c.t.Fatalf("consent page: %d %s", page.Status, page.Body)
	}
	res := b.post("/cli/authorize", c.form("allow"))
	if res.Status != http.StatusSeeOther || !strings.HasPrefix(res.Location, "http://127.0.0.1:"+strconv.Itoa(c.port)+"/callback?") {
		c.t.Fatalf("allow: %d %q %s", res.Status, res.Location, res.Body)
	}
	b.getURL(res.Location) // the browser goes back to the CLI
	q := <-c.got
	if q.Get("state") != c.state || q.Get("code") == "" {
		c.t.Fatalf("the CLI got %v", q)
	}
	return q.Get("code")
}

// TestCLILoginFlow: the CLI's link sends a person who is not signed in through the
// provider's sign-in and back to the consent page; Allow hands the CLI a one-time code that,
// with the verifier, becomes an API token of theirs (audited) — once.
func TestCLILoginFlow(t *testing.T) {
	m := startMockOIDC(t, nil)
	e := newOIDCEnv(t, m, nil)
	cli := newFakeCLI(t)
	b := e.browser()
	res := b.get(cli.link())
	if res.Status != http.StatusSeeOther || !strings.HasPrefix(res.Location, "/sign-in?") {
		t.Fatalf("consent page without a session: %d %q", res.Status, res.Location)
	}
	next, _ := url.Parse(res.Location)
	if got := b.oidcSignIn(m, person("sub-bob", "bob", "bob@example.com", "prod-owners"), next.Query().Get("next")); got.Location != cli.link() {
		t.Fatalf("after sign-in the browser goes to %q, want back to %q", got.Location, cli.link())
	}
	page := b.get(cli.link())
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://127.0.0.1:"+strconv.Itoa(cli.port)+";") {
		t.Errorf("the consent page's CSP does not let its form go back to the CLI: %s", csp)
	}
	if !strings.Contains(page.Body, "Allow the Timebox CLI on <strong>laptop-7</strong> to act as you") || !strings.Contains(page.Body, "lasts 30d 0h") {
		t.Errorf("consent page: %s", page.Body)
	}
	code := cli.allow(b)
	if st, body := exchange(t, e, code, timebox.RandomID(64)); st != http.StatusUnauthorized || !strings.Contains(string(body), "verifier does not match") {
		t.Fatalf("exchange with another verifier: %d %s", st, body)
	}
	if st, body := exchange(t, e, code, cli.verifier); st != http.StatusUnauthorized || !strings.Contains(string(body), "used already") {
		t.Fatalf("the right verifier after a wrong one (the code is spent): %d %s", st, body)
	}

	code = cli.allow(b)
	st, body := exchange(t, e, code, cli.verifier)
	if st != http.StatusOK {
		t.Fatalf("exchange: %d %s", st, body)
	}
	var tok tbhttp.CLIToken
	json.Unmarshal(body, &tok)
	me, err := tbhttp.NewClient(e.URL, tok.Token).Me(context.Background())
	if err != nil || me.User != "bob" || tok.User != "bob" {
		t.Fatalf("the CLI's token: %+v %v", me, err)
	}
	if st, body := exchange(t, e, code, cli.verifier); st != http.StatusUnauthorized || !strings.Contains(string(body), "used already") {
		t.Fatalf("replayed code: %d %s", st, body)
	}
	if st, _ := exchange(t, e, "tbc_"+timebox.RandomID(40), cli.verifier); st != http.StatusUnauthorized {
		t.Fatalf("unknown code: %d", st)
	}
	created := e.eventsWith("token.created")
	if len(created) != 1 || created[0].Actor != "bob" || created[0].Details["name"] != "timebox login --sso on laptop-7" {
		t.Errorf("token.created events = %+v", created)
	}
	var refused int
	for _, ev := range e.eventsWith("user.sign_in_failed") {
		if strings.Contains(ev.Details["reason"].(string), "timebox login --sso") {
			refused++
			if strings.Contains(ev.Details["reason"].(string), code) {
				t.Error("a code reached the audit log")
			}
		}
	}
	if refused != 4 {
		t.Errorf("%d refused exchanges audited, want 4", refused)
	}
}

// TestCLIAuthorizeRefusesOtherHosts: the consent page and its form only ever send the
// browser to 127.0.0.1 on a numeric port; anything else in the link is refused.
func TestCLIAuthorizeRefusesOtherHosts(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn("alice")
	cli := newFakeCLI(t)
	good := func() url.Values { v := cli.form(""); v.Del("decision"); return v }
	for name, change := range map[string]func(url.Values){
		"port with a host":   func(v url.Values) { v.Set("port", "8080@evil.example") },
		"port with a path":   func(v url.Values) { v.Set("port", "8080/evil") },
		"port as a host":     func(v url.Values) { v.Set("port", "evil.example") },
		"privileged port":    func(v url.Values) { v.Set("port", "80") },
		"port out of range":  func(v url.Values) { v.Set("port", "99999") },
		"signed port":        func(v url.Values) { v.Set("port", "+8080") },
		"a host parameter":   func(v url.Values) { v.Set("host", "evil.example") },
		"a redirect_uri":     func(v url.Values) { v.Set("redirect_uri", "https://evil.example/") },
		"two ports":          func(v url.Values) { v.Add("port", "9090") },
		"no challenge":       func(v url.Values) { v.Del("challenge") },
		"a plain challenge":  func(v url.Values) { v.Set("challenge", "short") },
		"a name with markup": func(v url.Values) { v.Set("name", "<b>laptop</b>") },
		"a short state":      func(v url.Values) { v.Set("state", "abc") },
	} {
		v := good()
		change(v)
		if res := b.get("/cli/authorize?" + v.Encode()); res.Status != http.StatusBadRequest {
			t.Errorf("%s: GET = %d %q", name, res.Status, res.Location)
		}
		v.Set("decision", "allow")
		if res := b.post("/cli/authorize", v); res.Status != http.StatusBadRequest || res.Location != "" {
			t.Errorf("%s: POST = %d %q", name, res.Status, res.Location)
		}
	}
	if es := e.eventsWith("token.created"); len(es) != 0 {
		t.Errorf("a refused link made a token: %+v", es)
	}
	// Deny goes back to the CLI with an error, and no code.
	b.get(cli.link())
	res := b.post("/cli/authorize", cli.form("deny"))
	if u, _ := url.Parse(res.Location); res.Status != http.StatusSeeOther || u.Host != "127.0.0.1:"+strconv.Itoa(cli.port) ||
		u.Query().Get("error") != "access_denied" || u.Query().Has("code") {
		t.Fatalf("deny: %d %q", res.Status, res.Location)
	}
	// The form needs the session's CSRF token.
	v := cli.form("allow")
	v.Set("csrf", "forged")
	if res := b.post("/cli/authorize", v); res.Status != http.StatusForbidden {
		t.Fatalf("allow without the CSRF token: %d", res.Status)
	}
	// Without a session the form does nothing.
	if res := e.browser().post("/cli/authorize", cli.form("allow")); res.Status != http.StatusUnauthorized && res.Status != http.StatusForbidden {
		t.Fatalf("allow without a session: %d", res.Status)
	}
}

// TestCLICodeExpires: a one-time code not exchanged within two minutes is refused.
func TestCLICodeExpires(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn("carol")
	cli := newFakeCLI(t)
	code := cli.allow(b)
	e.Svc.Now = func() time.Time { return time.Now().Add(timebox.CLICodeTTL + time.Second) }
	if st, body := exchange(t, e, code, cli.verifier); st != http.StatusUnauthorized || !strings.Contains(string(body), "expired at") {
		t.Fatalf("expired code: %d %s", st, body)
	}
}
