package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/timebox-dev/timebox/internal/browsertest"
	"github.com/timebox-dev/timebox/internal/oidcprovider"
)

// consoleEnv is a real server whose console signs people in through a real OpenID provider
// (zitadel's, with a login form) on loopback.
type consoleEnv struct {
	*env
	provider *oidcprovider.Provider
}

// newConsoleEnv starts the provider (alice, erin — an owner only the provider knows, through
// her groups claim and the group_map —, root and audrey) and the server, configured for it.
func newConsoleEnv(t *testing.T, o envOptions) *consoleEnv {
	t.Helper()
	e := newEnv(t, o)
	base := e.url()
	p, err := oidcprovider.Start(t.Context(), []oidcprovider.User{
		{Name: "alice", Password: "alice-pw", Groups: []string{"Developers"}},
		{Name: "erin", Password: "erin-pw", Email: "erin@example.com", Groups: []string{"Shop DBAs"}},
		{Name: "root", Password: "root-pw", Groups: []string{"Platform"}},
		{Name: "audrey", Password: "audrey-pw", Groups: []string{"Security"}},
	}, "timebox", "client-secret-for-tests", []string{base + "/auth/callback"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	secret := filepath.Join(e.dir, "oidc.secret")
	if err := os.WriteFile(secret, []byte("client-secret-for-tests\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "console: {url: %q}\noidc: {issuer: %q, client_id: timebox, client_secret: %q, display_name: Test SSO,\n"+
		"  group_map: {\"Shop DBAs\": [owners], Platform: [platform], Security: [security], Developers: [developers]}}\n",
		base, p.Issuer, "file:"+secret)
	f.Close()
	if e.cfg, err = loadConfig(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	e.start()
	return &consoleEnv{env: e, provider: p}
}

// signIn signs b in as user through the provider's login form and waits for My access.
func (e *consoleEnv) signIn(b *browsertest.Browser, user, password string) {
	e.t.Helper()
	b.Run(30*time.Second,
		chromedp.Navigate(e.url()+"/"),
		chromedp.WaitVisible(chromedp.CSS(`a[href^="/auth/start"]`)),
	)
	b.Screenshot("sign-in")
	b.Run(30*time.Second,
		chromedp.Click(chromedp.CSS(`a[href^="/auth/start"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.signout`)),
	)
	if who := browsertest.Get(b, 5*time.Second, chromedp.Text(chromedp.CSS(".who"))); who != user {
		e.t.Fatalf("signed in as %q, want %s", who, user)
	}
}

// mark sets a marker in the page's window: it survives an in-place update, not a reload.
func mark(b *browsertest.Browser) {
	browsertest.Get(b, 5*time.Second, chromedp.Evaluate[bool](`window.__timeboxMark = true`))
}

// marked reports whether the page still has the marker (it was not reloaded).
func marked(b *browsertest.Browser) bool {
	return browsertest.Get(b, 5*time.Second, chromedp.Evaluate[bool](`window.__timeboxMark === true`))
}

// waitText waits until the page's main element contains want, failing after within.
func waitText(t *testing.T, b *browsertest.Browser, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		text := browsertest.Get(b, 5*time.Second, chromedp.Text(chromedp.CSS("main")))
		if strings.Contains(text, want) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s's page does not show %q after %s:\n%s", b.Name, want, within, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkPage runs axe-core on b's current page and saves its screenshot.
func checkPage(t *testing.T, b *browsertest.Browser, name string) {
	t.Helper()
	b.Screenshot(name)
	if vs := b.Axe(); len(vs) > 0 {
		for _, v := range vs {
			t.Errorf("%s page, as %s: accessibility: %s", name, b.Name, v)
		}
	}
}

var requestPath = regexp.MustCompile(`/requests/([a-z0-9]+)$`)

// TestE2EConsole: alice signs in through the provider and requests prod read-only access;
// erin (an owner by her provider groups only), signed in in a second browser, sees it appear
// in her inbox without reloading and approves it; alice's page updates in place, she reveals
// the credentials and psql connects with them; at the end of the window her page shows it
// ended. Every page is screenshot and checked with axe-core.
func TestE2EConsole(t *testing.T) {
	e := newConsoleEnv(t, envOptions{})
	alice, erin := browsertest.New(t, "alice"), browsertest.New(t, "erin")
	e.signIn(alice, "alice", "alice-pw")
	checkPage(t, alice, "my-access-empty")
	e.signIn(erin, "erin", "erin-pw")
	erin.Run(20*time.Second, chromedp.Navigate(e.url()+"/approvals"), chromedp.WaitVisible(chromedp.CSS("h1")))
	checkPage(t, erin, "approvals-empty")
	mark(erin)

	// alice fills in the form, checks it, submits.
	alice.Run(20*time.Second,
		chromedp.Navigate(e.url()+"/requests/new"),
		chromedp.WaitVisible(chromedp.CSS(`#reason`)),
		chromedp.Click(chromedp.CSS(`#db-shop`)),
		chromedp.SetValue(chromedp.CSS(`#access`), "read-only"),
		chromedp.SetValue(chromedp.CSS(`#duration`), "30s"),
		chromedp.SendKeys(chromedp.CSS(`#reason`), "check order 42"),
		chromedp.SendKeys(chromedp.CSS(`#ticket`), "OPS-7"),
	)
	checkPage(t, alice, "new-request")
	alice.Run(20*time.Second, chromedp.Click(chromedp.CSS(`button[value="check"]`)), chromedp.WaitVisible(chromedp.CSS(`button[value="submit"]`)))
	waitText(t, alice, "owners", 5*time.Second)
	checkPage(t, alice, "new-request-checked")
	alice.Run(20*time.Second, chromedp.Click(chromedp.CSS(`button[value="submit"]`)))
	var m []string
	var loc string
	for deadline := time.Now().Add(10 * time.Second); m == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		loc = browsertest.Get(alice, 5*time.Second, chromedp.Location())
		m = requestPath.FindStringSubmatch(loc)
	}
	if m == nil {
		alice.Screenshot("submit-failed")
		t.Fatalf("after submitting, alice is at %s, want /requests/ID:\n%s", loc, browsertest.Get(alice, 5*time.Second, chromedp.Text(chromedp.CSS("main"))))
	}
	id := m[1]
	checkPage(t, alice, "request-pending")

	// erin's inbox shows it without a reload.
	took := waitText(t, erin, "check order 42", 3*time.Second)
	if !marked(erin) {
		t.Fatal("erin's inbox was reloaded, not updated in place")
	}
	t.Logf("erin's inbox showed the new request %s after %s", id, took)
	checkPage(t, erin, "approvals-waiting")
	if foot := browsertest.Get(erin, 5*time.Second, chromedp.Text(chromedp.CSS("footer"))); !strings.Contains(foot, "Europe/Berlin") {
		t.Errorf("the page does not say it shows times in the browser's zone: %q", foot)
	}

	// alice watches her access page while erin approves on the request page.
	alice.Run(20*time.Second, chromedp.Navigate(e.url()+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	mark(alice)
	erin.Run(20*time.Second, chromedp.Navigate(e.url()+"/requests/"+id), chromedp.WaitVisible(chromedp.CSS(`form[action$="/approve"] button`)))
	checkPage(t, erin, "request-review")
	erin.Run(20*time.Second, chromedp.Click(chromedp.CSS(`form[action$="/approve"] button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS("h1")))
	took = waitText(t, alice, "Reveal credentials", 5*time.Second)
	if !marked(alice) {
		t.Fatal("alice's page was reloaded, not updated in place")
	}
	t.Logf("alice's page showed the approval after %s", took)
	checkPage(t, alice, "my-access-active")

	// She reveals the credentials; psql connects with the URI.
	alice.Run(20*time.Second, chromedp.Click(chromedp.CSS(`form[action$="/credentials"] button`)), chromedp.WaitVisible(chromedp.CSS(`#cred-uri`)))
	checkPage(t, alice, "credentials")
	uri := browsertest.Get(alice, 5*time.Second, chromedp.Text(chromedp.CSS(`#cred-uri`)))
	if _, err := exec.LookPath("psql"); err != nil {
		t.Fatal("psql is not installed (make test installs postgresql-client)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "psql", strings.TrimSpace(uri), "-tAc", "SELECT count(*) FROM orders").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "2" {
		t.Fatalf("psql with the revealed URI: %v: %s", err, out)
	}

	// Every other page, as the people who may see it.
	root := browsertest.New(t, "root")
	e.signIn(root, "root", "root-pw")
	for _, pg := range []struct {
		b    *browsertest.Browser
		path string
	}{
		{alice, "/tokens"}, {alice, "/timeline?database=shop"}, {root, "/audit"}, {root, "/servers"}, {root, "/users"},
		{root, "/timeline?database=shop"}, {erin, "/approvals"}, {root, "/notifications"},
	} {
		pg.b.Run(20*time.Second, chromedp.Navigate(e.url()+pg.path), chromedp.WaitVisible(chromedp.CSS("h1")))
		checkPage(t, pg.b, strings.Trim(strings.NewReplacer("/", "-", "?", "-", "=", "-").Replace(pg.path), "-"))
	}

	// At the end of the window alice's page shows it ended, without a reload.
	alice.Run(20*time.Second, chromedp.Navigate(e.url()+"/requests/"+id), chromedp.WaitVisible(chromedp.CSS("h1")))
	mark(alice)
	waitText(t, alice, "expired", 60*time.Second)
	if !marked(alice) {
		t.Fatal("alice's request page was reloaded, not updated in place")
	}
	checkPage(t, alice, "request-expired")
	if r := e.show("alice", id); r.State != "expired" {
		t.Fatalf("request %s is %s, want expired", id, r.State)
	}
}
