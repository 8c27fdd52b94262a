package scheduler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// fakeEngine answers like a server that can be taken down: while down, every call fails
// with EUNAVAILABLE.
type fakeEngine struct {
	down            atomic.Bool
	revokes, failed atomic.Int64
	pings, grants   atomic.Int64
}

func (f *fakeEngine) err() error {
	if f.down.Load() {
		f.failed.Add(1)
		return timebox.Errorf(timebox.EUNAVAILABLE, "server unreachable: connection refused")
	}
	return nil
}
func (f *fakeEngine) Grant(context.Context, timebox.GrantPlan) error { f.grants.Add(1); return f.err() }
func (f *fakeEngine) Revoke(context.Context, timebox.GrantPlan) (timebox.RevokeResult, error) {
	f.revokes.Add(1)
	time.Sleep(time.Millisecond)
	return timebox.RevokeResult{Dropped: true}, f.err()
}
func (f *fakeEngine) Extend(context.Context, timebox.GrantPlan) error { return f.err() }
func (f *fakeEngine) Ping(context.Context) error                      { f.pings.Add(1); return f.err() }
func (f *fakeEngine) Close() error                                    { return nil }

// While one server is unreachable its due removals are held back after the first failures
// (one probe pings it instead of every request retrying on its own), the other server's
// removals go on, and when the server answers again its backlog runs at once, not after
// each request's own backoff.
func TestOutageHoldsBackOneServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openStore(t)
	cat := &timebox.Catalog{
		Servers: []timebox.Server{{Name: "a", Engine: "postgres", MaxConns: 2}, {Name: "b", Engine: "postgres", MaxConns: 2}},
		Databases: []timebox.Database{{Name: "da", Server: "a", Database: "da", Method: timebox.MethodEphemeralLogin},
			{Name: "db", Server: "b", Database: "db", Method: timebox.MethodEphemeralLogin}},
	}
	a, b := &fakeEngine{}, &fakeEngine{}
	b.down.Store(true)
	now := time.Now().UTC().Truncate(time.Microsecond)
	const n = 40
	err := st.Update(ctx, func(tx timebox.Tx) error {
		for i := range 2 * n {
			server := []string{"a", "b"}[i%2]
			r := &timebox.Request{ID: fmt.Sprintf("r%03d", i), Requester: "alice", Database: "d" + server, Access: "ro",
				Start: now.Add(-time.Hour), End: now.Add(-time.Second), Reason: "x", State: timebox.StateActive,
				CreatedAt: now, UpdatedAt: now, Version: 1}
			if err := tx.CreateRequest(r); err != nil {
				return err
			}
			g := &timebox.Grant{RequestID: r.ID, Server: server, Principal: "tbx_" + r.ID, TargetDatabase: "d" + server,
				Method: timebox.MethodEphemeralLogin, Status: timebox.GrantActive, ValidUntil: r.End, CreatedAt: now, UpdatedAt: now}
			if err := tx.PutGrant(g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, cat, nil, map[string]timebox.Engine{"a": a, "b": b})
	s.MinBackoff, s.MaxBackoff, s.Sweep, s.ReconcileInterval = 20*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond, 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	defer wg.Wait()
	defer cancel()

	left := func(server string) int {
		var live []*timebox.Request
		st.View(ctx, func(tx timebox.Tx) (err error) {
			live, err = tx.FindRequests(timebox.RequestFilter{States: []timebox.State{timebox.StateActive}})
			return err
		})
		c := 0
		for _, r := range live {
			if r.Grant.Server == server {
				c++
			}
		}
		return c
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > limit {
				t.Fatalf("%s: not within %v", what, limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}
	took := waitFor("server a's removals while b is down", 5*time.Second, func() bool { return left("a") == 0 })
	t.Logf("server a: %d removals in %v while b is down", n, took)
	// Each of b's requests makes one attempt (which records its removal as pending), then
	// waits for the probe instead of retrying every 20–100 ms.
	waitFor("a first attempt for each of b's requests", 5*time.Second, func() bool { return b.revokes.Load() >= n })
	before, pings := b.revokes.Load(), b.pings.Load()
	time.Sleep(time.Second)
	failed := b.revokes.Load() - before
	if failed > 0 { // the outage is recorded before a failure is stored, so no retry starts
		t.Errorf("%d retries on the down server in one second: work was not held back", failed)
	}
	if p := b.pings.Load() - pings; p < 3 {
		t.Errorf("%d probes of the down server in a second, want several", p)
	}
	if left("b") != n {
		t.Fatalf("%d of b's requests left, want %d", left("b"), n)
	}
	t.Logf("server b down for 1s more: %d retries, %d probes", failed, b.pings.Load()-pings)
	b.down.Store(false)
	took = waitFor("server b's backlog after it is back", 2*time.Second, func() bool { return left("b") == 0 })
	t.Logf("server b: %d removals done %v after it came back", n, took)
	if st, err := s.Status(ctx); err != nil || st == nil {
		t.Fatalf("status: %v", err)
	}
}

// An unused request's early removal is a first attempt even after its extension failed on
// a server that is down: it is not held back, so it records its intent at once.
func TestRetryingUnusedRemoval(t *testing.T) {
	now := time.Now()
	r := &timebox.Request{State: timebox.StateActive, Start: now.Add(-time.Hour), End: now.Add(time.Hour),
		Grant: &timebox.Grant{Status: timebox.GrantActive, LastError: "extension failed", ValidUntil: now.Add(time.Minute)}}
	r.UnusedBy = now.Add(-time.Second)
	if retrying(r, now) {
		t.Error("the unused removal counts as a retry of the failed extension")
	}
	r.UnusedBy = now.Add(time.Minute)
	if !retrying(r, now) {
		t.Error("the failed extension's next attempt does not count as a retry")
	}
}

// inventoryEngine is a fakeEngine that lists its principals, counting the listings.
type inventoryEngine struct {
	fakeEngine
	listings atomic.Int64
}

func (f *inventoryEngine) Managed(context.Context, []string) ([]timebox.ManagedPrincipal, error) {
	f.listings.Add(1)
	return nil, f.err()
}
func (f *inventoryEngine) PasswordWorks(context.Context, timebox.GrantPlan) (bool, error) {
	return true, f.err()
}

// The reconciler does not list a server in an outage (it would wait for nothing, holding up
// the other servers' pass); it lists it again once the probe found it back.
func TestReconcileSkipsServerInOutage(t *testing.T) {
	st := openStore(t)
	a, b := &inventoryEngine{}, &inventoryEngine{}
	s := New(st, &timebox.Catalog{}, nil, map[string]timebox.Engine{"a": a, "b": b})
	s.outages["b"] = &outage{next: time.Now().Add(time.Hour), attempts: 1}
	s.Reconcile(context.Background())
	if a.listings.Load() != 1 || b.listings.Load() != 0 {
		t.Fatalf("listings with b in an outage: a %d, b %d; want 1, 0", a.listings.Load(), b.listings.Load())
	}
	delete(s.outages, "b")
	s.Reconcile(context.Background())
	if a.listings.Load() != 2 || b.listings.Load() != 1 {
		t.Fatalf("listings after b's outage: a %d, b %d; want 2, 1", a.listings.Load(), b.listings.Load())
	}
}
