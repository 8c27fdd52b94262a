package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// recorder is a receiver standing in for Slack, Teams, a mail server or a webhook consumer:
// it records what arrives, deduplicates by key as an idempotent receiver does, can be down,
// and reaches everyone with an e-mail.
type recorder struct {
	mu        sync.Mutex
	down      bool
	permanent bool
	after     time.Duration // answer 429 with this Retry-After
	got       []*Message
	keys      map[string]int // attempts per key that reached the receiver
	uncertain int            // attempts flagged as possibly sent already
	threads   int
}

func (r *recorder) Send(ctx context.Context, m *Message) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.Delivery.Status == timebox.DeliverySending {
		r.uncertain++
	}
	switch {
	case r.permanent:
		return Result{}, Permanent(errors.New("HTTP 404"))
	case r.after > 0:
		return Result{}, RetryAfter(r.after, errors.New("HTTP 429"))
	case r.down:
		return Result{}, errors.New("connection refused")
	}
	if r.keys == nil {
		r.keys = map[string]int{}
	}
	r.keys[m.Delivery.Key]++
	r.got = append(r.got, m)
	res := Result{ExternalID: fmt.Sprintf("msg-%d", len(r.got))}
	if m.Request != nil && m.Recipient == nil && m.Thread == "" {
		r.threads++
		res.Thread = res.ExternalID
	}
	return res, nil
}

var testLog io.Writer = io.Discard

func (r *recorder) Reaches(u *timebox.User) bool { return u.Email != "" }

func (r *recorder) set(fn func(r *recorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r)
}

func (r *recorder) arrived(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys[key]
}

func (r *recorder) messages() []*Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Message(nil), r.got...)
}

// env is a Service on a real SQLite store, an outbox with a people channel "ops" and a
// webhook "siem", both recorders.
type env struct {
	t      *testing.T
	ctx    context.Context
	db     *store.DB
	svc    *timebox.Service
	ops    *recorder
	siem   *recorder
	cfg    *Config
	outbox *Outbox
	path   string // the SQLite file
}

func testCatalog(t *testing.T) *timebox.Catalog {
	c := &timebox.Catalog{
		Users: []timebox.User{
			{Name: "alice", Email: "alice@example.com", Groups: []string{"developers"}},
			{Name: "bob", Email: "bob@example.com", Groups: []string{"prod-owners"}},
			{Name: "dora", Email: "dora@example.com", Groups: []string{"prod-owners"}},
			{Name: "erin", Groups: []string{"prod-owners"}}, // no e-mail: not reachable directly
			{Name: "root", Groups: []string{"platform"}},
		},
		AdminGroups: []string{"platform"},
		Servers: []timebox.Server{{Name: "pg1", Engine: timebox.EnginePostgres, URL: "postgres://timebox@db.internal:5432/postgres",
			Password: "env:TBX_TEST_NEVER_READ"}},
		Databases: []timebox.Database{
			{Name: "prod", Server: "pg1", Database: "shop", Environment: "prod", Owners: []string{"prod-owners"}},
			{Name: "dev", Server: "pg1", Database: "shop_dev", Environment: "dev", Owners: []string{"prod-owners"}},
		},
		AccessLevels: []timebox.AccessLevel{{Name: "read-only", Postgres: timebox.EngineRoles{Roles: []string{"shop_ro"}}}},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func newEnv(t *testing.T, routes ...Route) *env {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := store.Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := timebox.NewKeyring("notify-test-secret-key")
	if err != nil {
		t.Fatal(err)
	}
	db.Keys = keys
	svc := timebox.NewService(db, testCatalog(t), keys)
	if len(routes) == 0 {
		routes = []Route{{Channels: []string{"ops"}, Environments: []string{"prod"}, Direct: []string{"approvers"}}}
	}
	e := &env{t: t, ctx: ctx, db: db, svc: svc, path: path, ops: &recorder{}, siem: &recorder{},
		cfg: &Config{Routes: routes, RetryMin: timebox.Duration(10 * time.Millisecond), RetryMax: timebox.Duration(40 * time.Millisecond)}}
	e.outbox = e.newOutbox()
	if err := e.outbox.Start(ctx); err != nil { // the cursor starts at the head
		t.Fatal(err)
	}
	return e
}

func (e *env) newOutbox() *Outbox {
	channels := []*Channel{
		{Name: "ops", Type: "slack", Sender: e.ops},
		{Name: "siem", Type: "webhook", Sender: e.siem, Events: []string{"*"}, Ordered: true},
	}
	o := New(e.db, e.svc, e.db.Feed(), e.cfg, channels, "https://timebox.example.com")
	o.Sweep, o.Claim = 20*time.Millisecond, time.Minute
	o.Logger = slog.New(slog.NewTextHandler(testLog, nil))
	return o
}

// run runs the outbox until the test ends (or stop is called).
func (e *env) run(o *Outbox) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

func (e *env) request(db string) *timebox.Request {
	e.t.Helper()
	r, err := e.svc.CreateRequest(e.ctx, "alice", timebox.RequestInput{Database: db, Access: "read-only", Duration: "1h", Reason: "debug INC-1"})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) deliveries(f timebox.DeliveryFilter) []*timebox.Delivery {
	e.t.Helper()
	var ds []*timebox.Delivery
	if err := e.db.View(e.ctx, func(tx timebox.Tx) (err error) {
		ds, err = tx.FindDeliveries(f)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return ds
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) allSent() bool {
	for _, d := range e.deliveries(timebox.DeliveryFilter{}) {
		if d.Status != timebox.DeliverySent {
			return false
		}
	}
	return true
}
