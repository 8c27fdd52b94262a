package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/store"
)

// testEnv is a real server on a real SQLite store, with a token for every user.
type testEnv struct {
	t      testing.TB
	db     *store.DB
	svc    *timebox.Service
	api    *tbhttp.Server
	url    string
	tokens map[string]string
	logs   *syncBuffer
}

// testCatalog has alice (a developer), bob (an owner of prod), admin, audrey (an auditor),
// stan (nobody in particular) and one PostgreSQL server that the tests never contact.
func testCatalog(t testing.TB) *timebox.Catalog {
	c := &timebox.Catalog{
		Users: []timebox.User{
			{Name: "alice", Email: "alice@example.com", Groups: []string{"developers"}},
			{Name: "bob", Email: "bob@example.com", Groups: []string{"prod-owners"}},
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
		Databases: []timebox.Database{{
			Name: "prod", Server: "pg1", Database: "shop", Environment: "prod", Owners: []string{"prod-owners"},
		}},
		AccessLevels: []timebox.AccessLevel{
			{Name: "read-only", Postgres: timebox.EngineRoles{Roles: []string{"shop_reader"}}},
			{Name: "ddl"}, // grants nothing anywhere
		},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// newEnv starts a test server on a new SQLite store, with a token for every user of the
// catalog and for mallory, whom it does not list (to test removed users).
func newEnv(t *testing.T, runner tbhttp.Runner) *testEnv {
	t.Helper()
	return newEnvOn(t, runner, sqliteDSN(t))
}

// sqliteDSN returns the URL of a new SQLite store in a temporary directory.
func sqliteDSN(tb testing.TB) string {
	return "sqlite:///" + filepath.Join(tb.TempDir(), "timebox.db")
}

// newEnvOn is newEnv on the store at dsn.
func newEnvOn(t testing.TB, runner tbhttp.Runner, dsn string) *testEnv {
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
	e := &testEnv{t: t, db: db, svc: timebox.NewService(db, testCatalog(t), keys), tokens: map[string]string{}, logs: &syncBuffer{}}
	e.api = tbhttp.NewServer(e.svc)
	e.api.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if runner != nil {
		e.api.Runner = runner
	}
	ts := httptest.NewServer(e.api.Handler())
	t.Cleanup(ts.Close)
	e.url = ts.URL
	err = db.Update(ctx, func(tx timebox.Tx) error {
		for _, u := range []string{"alice", "bob", "admin", "audrey", "stan", "mallory"} {
			secret, tok := timebox.NewToken(u, time.Now())
			tok.Sign(keys)
			if err := tx.CreateToken(tok); err != nil {
				return err
			}
			e.tokens[u] = secret
		}
		return nil
	})
	if err != nil {
		t.Fatalf("create tokens: %v", err)
	}
	t.Cleanup(func() {
		for u, secret := range e.tokens {
			if strings.Contains(e.logs.String(), secret) {
				t.Errorf("the log contains %s's token", u)
			}
		}
	})
	return e
}

// client returns an API client acting as user.
func (e *testEnv) client(user string) *tbhttp.Client {
	return tbhttp.NewClient(e.url, e.tokens[user])
}

// create files a one-hour read-only request on prod as user.
func (e *testEnv) create(user string) *tbhttp.RequestView {
	e.t.Helper()
	r, err := e.client(user).CreateRequest(context.Background(), timebox.RequestInput{
		Database: "prod", Access: "read-only", Duration: "1h", Reason: "investigate INC-1",
	})
	if err != nil {
		e.t.Fatalf("create request as %s: %v", user, err)
	}
	return r
}

// response is a raw HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// apiError decodes the answer's error body, failing the test when it is not one.
func (r response) apiError(t testing.TB) (code, message string) {
	t.Helper()
	var e struct{ Code, Message string }
	if err := json.Unmarshal(r.body, &e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("answer %d is not a JSON error: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return e.Code, e.Message
}

// raw sends one HTTP request as user ("" for none) with body ("" for none).
func (e *testEnv) raw(method, path, user, body string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[user])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantCode fails the test unless err is a *timebox.Error with code.
func wantCode(t *testing.T, err error, code string) *timebox.Error {
	t.Helper()
	var e *timebox.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want a *timebox.Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("error code = %s (%s), want %s", e.Code, e.Message, code)
	}
	return e
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
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

func TestListenServeClose(t *testing.T) {
	e := newEnv(t, nil)
	s := tbhttp.NewServer(e.svc)
	s.Logger = slog.New(slog.DiscardHandler)
	if s.URL() != "" {
		t.Fatalf("URL before Listen = %q, want empty", s.URL())
	}
	ln, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || strings.HasSuffix(s.URL(), ":0") {
		t.Fatalf("URL = %q", s.URL())
	}
	_, err = tbhttp.NewServer(e.svc).Listen(ln.Addr().String())
	if te := wantCode(t, err, timebox.EUNAVAILABLE); !strings.Contains(te.Message, "address already in use") {
		t.Errorf("listening twice: %q", te.Message)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	resp, err := http.Get(s.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Fatalf("healthz = %d %s", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve after Close = %v, want nil", err)
	}
}

func TestURLUnspecifiedHost(t *testing.T) {
	s := tbhttp.NewServer(newEnv(t, nil).svc)
	if _, err := s.Listen(":0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if !strings.HasPrefix(s.URL(), "http://localhost:") {
		t.Fatalf("URL = %q, want http://localhost:PORT", s.URL())
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.raw("GET", "/healthz", "", ""); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
		t.Fatalf("healthz = %d %s", r.status, r.body)
	}
	e.db.Close()
	if r := e.raw("GET", "/healthz", "", ""); r.status != 503 || strings.TrimSpace(string(r.body)) != `{"status":"unavailable"}` {
		t.Fatalf("healthz on a closed store = %d %s", r.status, r.body)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t, nil)
	r := e.raw("GET", "/api/v1/nope", "alice", "")
	if code, _ := r.apiError(t); r.status != 404 || code != timebox.ENOTFOUND {
		t.Fatalf("unknown route = %d %s", r.status, r.body)
	}
	r = e.raw("DELETE", "/api/v1/requests/abc", "alice", "")
	code, msg := r.apiError(t)
	if r.status != 405 || code != timebox.EINVALID || !strings.Contains(msg, "DELETE") {
		t.Fatalf("wrong method = %d %s", r.status, r.body)
	}
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") {
		t.Errorf("Allow = %q", allow)
	}
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.client("alice").Me(context.Background()); err != nil {
		t.Fatal(err)
	}
	log := e.logs.String()
	for _, want := range []string{"method=GET", "path=/api/v1/me", "status=200", "duration=", "user=alice"} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "Bearer") || strings.Contains(log, "Authorization") {
		t.Errorf("the log mentions headers:\n%s", log)
	}
}
