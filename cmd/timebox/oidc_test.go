package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const oidcYAML = `console: {url: "https://timebox.example.com"}
oidc:
  issuer: https://login.example.com/realms/acme
  client_id: timebox
  client_secret: env:TBX_OIDC_SECRET
`

// TestOIDCConfig: the oidc section's defaults, and every mistake named by its field.
func TestOIDCConfig(t *testing.T) {
	c, err := parseConfig([]byte(cfgValidYAML + oidcYAML + "  groups_scope: groups\n  group_map: {\"Acme Prod\": [shop-owners, oncall], Auditors: audit}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Catalog.OpenGroups || !slices.Equal(c.OIDC.scopes(), []string{"openid", "profile", "email", "groups"}) ||
		!slices.Equal(c.OIDC.GroupMap["Acme Prod"], []string{"shop-owners", "oncall"}) || !slices.Equal(c.OIDC.GroupMap["Auditors"], []string{"audit"}) {
		t.Fatalf("oidc = %+v, open groups %v", c.OIDC, c.Catalog.OpenGroups)
	}
	for _, tt := range []struct{ name, yaml, want string }{
		{"no issuer", "oidc: {client_id: x, client_secret: env:X}\n", "oidc.issuer: required"},
		{"bad issuer", "oidc: {issuer: 'login.example.com', client_id: x, client_secret: env:X}\n", "oidc.issuer: \"login.example.com\" is not an http(s) URL"},
		{"plain http", "oidc: {issuer: 'http://login.example.com', client_id: x, client_secret: env:X}\n", "oidc.issuer: \"http://login.example.com\" is plain HTTP"},
		{"no client", "oidc: {issuer: 'https://login.example.com', client_secret: env:X}\n", "oidc.client_id: required"},
		{"literal secret", "oidc: {issuer: 'https://login.example.com', client_id: x, client_secret: hunter2}\n", "oidc.client_secret:"},
		{"no openid", oidcYAML + "  scopes: [profile, email]\n", "oidc.scopes: must include openid"},
		{"bad group", oidcYAML + "  group_map: {Ops: [Not A Group]}\n", "oidc.group_map.Ops: \"Not A Group\" is not a Timebox group name"},
		{"bad domain", oidcYAML + "  strip_email_domain: '@'\n", "oidc.strip_email_domain"},
		{"unknown field", oidcYAML + "  client_secrets: env:X\n", "unknown field client_secrets"},
		{"no console url", "oidc: {issuer: 'https://login.example.com', client_id: x, client_secret: env:X}\n", "console.url: required with oidc"},
	} {
		_, err := parseConfig([]byte(cfgValidYAML + tt.yaml))
		cfgWantErr(t, err, tt.want)
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the literal secret is in the error", tt.name)
		}
	}
	// A rule may name a group only the provider fills, once there is a provider.
	rule := "rules:\n  - {name: r, approvers: [security]}\n"
	if _, err := parseConfig([]byte(cfgValidYAML + rule)); err == nil {
		t.Fatal("a rule naming a group nobody is in was accepted without a provider")
	}
	if _, err := parseConfig([]byte(cfgValidYAML + rule + oidcYAML)); err != nil {
		t.Fatalf("with a provider: %v", err)
	}
}

// TestServerStartsWithProviderDown: a provider that cannot be reached does not stop the
// server; the sign-in says why.
func TestServerStartsWithProviderDown(t *testing.T) {
	dir := t.TempDir()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	issuer := "http://" + ln.Addr().String() + "/realms/acme"
	ln.Close()
	t.Setenv("TBX_OIDC_SECRET", "s3cret")
	path := transportConfig(t, dir, fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"console: {url: \"http://127.0.0.1\"}\noidc: {issuer: \""+issuer+"\", client_id: timebox, client_secret: env:TBX_OIDC_SECRET, display_name: Acme SSO}\n")
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	in, err := startInstance(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("the server did not start with the provider down: %v", err)
	}
	defer in.Close()
	body := httpGet(t, http.DefaultClient, in.URL()+"/sign-in", http.StatusOK)
	if !strings.Contains(body, "Sign in with Acme SSO") {
		t.Fatalf("sign-in page: %s", body)
	}
	body = httpGet(t, http.DefaultClient, in.URL()+"/auth/start?next=/", http.StatusServiceUnavailable)
	if !strings.Contains(body, "cannot be reached") {
		t.Fatalf("sign-in with the provider down: %s", body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestLoginSSO: `timebox login --sso` against a real server: the browser (a Go client with
// a cookie jar, standing in for the person) signs in to the console, allows the CLI, and is
// sent back to the CLI's loopback listener; the CLI saves a token that works.
func TestLoginSSO(t *testing.T) {
	dir := t.TempDir()
	path := transportConfig(t, dir, fmt.Sprintf("127.0.0.1:%d", freePort(t)), "")
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c.devSignIn = true
	in, err := startInstance(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	t.Setenv("TIMEBOX_CONFIG_DIR", filepath.Join(dir, "cli"))
	for _, v := range []string{"TIMEBOX_SERVER", "TIMEBOX_TOKEN", "TIMEBOX_CA_FILE"} {
		cfgUnsetenv(t, v)
	}
	browserDone := make(chan error, 1)
	old := openBrowser
	t.Cleanup(func() { openBrowser = old })
	openBrowser = func(link string) error {
		go func() { browserDone <- allowInBrowser(in.URL(), link, "alice") }()
		return nil
	}
	out, stderr, code := runCLI("", "login", "--server", in.URL(), "--sso")
	if code != 0 {
		t.Fatalf("login --sso: exit %d, %s", code, stderr)
	}
	if err := <-browserDone; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "logged in to "+in.URL()+" as alice") || !strings.Contains(stderr, in.URL()+"/cli/authorize?") {
		t.Fatalf("login --sso printed %q, %q", out, stderr)
	}
	creds, err := readCLICredentials()
	if err != nil || !strings.HasPrefix(creds.Token, "tbx_") {
		t.Fatalf("saved credentials %+v, %v", creds, err)
	}
	if out, _, code := runCLI("", "whoami"); code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("whoami after login --sso: %d %q", code, out)
	}
	// Deny: the CLI says so and saves nothing new.
	os.Remove(filepath.Join(dir, "cli", credentialsFileName))
	openBrowser = func(link string) error {
		go func() { browserDone <- denyInBrowser(in.URL(), link) }()
		return nil
	}
	if _, stderr, code := runCLI("", "login", "--server", in.URL(), "--sso"); code == 0 || !strings.Contains(stderr, "the CLI was not allowed") {
		t.Fatalf("denied login --sso: exit %d, %s", code, stderr)
	}
	<-browserDone
	if _, err := os.Stat(filepath.Join(dir, "cli", credentialsFileName)); err == nil {
		t.Fatal("a denied login saved credentials")
	}
}

// allowInBrowser does what the person does in the browser: open link, sign in as user (dev
// sign-in), and allow the CLI.
func allowInBrowser(base, link, user string) error { return decideInBrowser(base, link, user, "allow") }

func denyInBrowser(base, link string) error { return decideInBrowser(base, link, "bob", "deny") }

func decideInBrowser(base, link, user, decision string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	u, err := url.Parse(link)
	if err != nil {
		return err
	}
	signIn, err := fetch(c, "GET", link, nil) // not signed in: the sign-in page
	if err != nil {
		return err
	}
	m := csrfRE.FindStringSubmatch(signIn)
	if m == nil {
		return fmt.Errorf("no sign-in form: %s", signIn)
	}
	consent, err := fetch(c, "POST", base+"/sign-in/dev", url.Values{"csrf": {m[1]}, "user": {user}, "next": {u.RequestURI()}})
	if err != nil {
		return err
	}
	m = csrfRE.FindStringSubmatch(consent)
	if m == nil || !strings.Contains(consent, "Allow the Timebox CLI") {
		return fmt.Errorf("no consent page: %s", consent)
	}
	form := url.Values{"csrf": {m[1]}, "decision": {decision}}
	for _, k := range []string{"port", "state", "challenge", "name"} {
		form.Set(k, u.Query().Get(k))
	}
	_, err = fetch(c, "POST", base+"/cli/authorize", form) // followed to the CLI's listener
	return err
}

func fetch(c *http.Client, method, u string, form url.Values) (string, error) {
	var res *http.Response
	var err error
	if method == "POST" {
		res, err = c.PostForm(u, form)
	} else {
		res, err = c.Get(u)
	}
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s = %d: %s", method, u, res.StatusCode, b)
	}
	return string(b), nil
}

func httpGet(t *testing.T, c *http.Client, u string, want int) string {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("GET %s = %d, want %d: %s", u, res.StatusCode, want, b)
	}
	return string(b)
}
