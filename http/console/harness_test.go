package console_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/http/console"
	"github.com/timebox-dev/timebox/store"
)

// testCatalog is the people and databases of the console's tests: alice develops, bob and
// carol own prod, admin administers, audrey audits, stan is in no group.
func testCatalog(t testing.TB) *timebox.Catalog {
	c := &timebox.Catalog{
		Users: []timebox.User{
			{Name: "alice", Email: "alice@example.com", Groups: []string{"developers"}},
			{Name: "bob", Email: "bob@example.com", Groups: []string{"prod-owners"}},
			{Name: "carol", Email: "carol@example.com", Groups: []string{"prod-owners"}},
			{Name: "admin", Groups: []string{"platform"}},
			{Name: "audrey", Groups: []string{"audit"}},
			{Name: "stan"},
		},
		AdminGroups:   []string{"platform"},
		AuditorGroups: []string{"audit"},
		Servers: []timebox.Server{{
			Name: "pg1", Engine: timebox.EnginePostgres,
			URL: "postgres://timebox@127.0.0.1:1/postgres", Password: "env:TIMEBOX_TEST_UNUSED",
		}},
		Databases: []timebox.Database{
			{Name: "prod", Server: "pg1", Database: "shop", Environment: "prod", Owners: []string{"prod-owners"}},
			{Name: "staging", Server: "pg1", Database: "shop_staging", Environment: "staging", Owners: []string{"prod-owners"}},
		},
		AccessLevels: []timebox.AccessLevel{
			{Name: "read-only", Postgres: timebox.EngineRoles{Roles: []string{"shop_reader"}}},
			{Name: "read-write", Postgres: timebox.EngineRoles{Roles: []string{"shop_writer"}}},
		},
		Directory: timebox.NewDirectory(),
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// consoleServer is console.Server, for configure functions.
type consoleServer = console.Server

// env is a console (with the API beside it, as the server mounts them) on a new SQLite store.
type env struct {
	t       testing.TB
	DB      *store.DB
	Svc     *timebox.Service
	Console *console.Server
	API     *tbhttp.Server
	URL     string
	logs    *syncBuffer
}

// newEnv starts a console with timebox dev's one-click sign-in on a new SQLite store.
// configure, when set, changes the console before its handler is made.
func newEnv(t testing.TB, configure func(*console.Server)) *env {
	t.Helper()
	return newEnvOn(t, "sqlite:///"+filepath.Join(t.TempDir(), "timebox.db"), configure)
}

// newEnvOn is newEnv on the store at dsn.
func newEnvOn(t testing.TB, dsn string, configure func(*console.Server)) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := timebox.NewKeyring("a test secret key that is long enough")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, DB: db, Svc: timebox.NewService(db, testCatalog(t), keys), logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.Console = console.New(e.Svc)
	e.Console.DevSignIn = true
	e.Console.Logger = logger
	if configure != nil {
		configure(e.Console)
	}
	h, err := e.Console.Handler()
	if err != nil {
		t.Fatal(err)
	}
	e.API = tbhttp.NewServer(e.Svc)
	e.API.Logger = logger
	e.API.Console = h
	ts := httptest.NewServer(e.API.Handler())
	t.Cleanup(ts.Close)
	e.URL = ts.URL
	return e
}

// browser is one person's browser: a cookie jar, no redirects followed unless asked.
type browser struct {
	t    testing.TB
	e    *env
	c    *http.Client
	csrf string // the session's CSRF token, read from the last page
}

// browser returns a new browser with no session.
func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// signIn signs in as user with the one-click dev sign-in and returns the browser.
func (e *env) signIn(user string) *browser {
	b := e.browser()
	b.get("/sign-in")
	res := b.post("/sign-in/dev", url.Values{"user": {user}, "next": {"/"}})
	if res.Status != http.StatusSeeOther {
		e.t.Fatalf("sign in as %s: %d %s", user, res.Status, res.Body)
	}
	if res := b.get("/"); res.Status != http.StatusOK {
		e.t.Fatalf("after sign-in as %s: GET / = %d", user, res.Status)
	}
	return b
}

// page is one answer.
type page struct {
	Status   int
	Body     string
	Header   http.Header
	Location string
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// do sends req and remembers the page's CSRF token.
func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if m := csrfInput.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return page{Status: res.StatusCode, Body: string(body), Header: res.Header, Location: res.Header.Get("Location")}
}

// get fetches path.
func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.e.URL+path, nil)
	return b.do(req)
}

// post submits form to path as a same-origin form would, with the CSRF token of the last
// page unless the form sets its own "csrf".
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.e.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

// syncBuffer is a log buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
