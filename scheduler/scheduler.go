// Package scheduler activates and removes access on the target databases at the exact times
// the store says, retries with backoff while a database is unreachable, and rebuilds its
// schedule from the store after a restart.
package scheduler

import (
	"context"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/timebox-dev/timebox"
)

// Actor is the audit actor for work the scheduler does on its own.
const Actor = "timebox"

// Scheduler runs activations and removals. One Scheduler runs per store.
type Scheduler struct {
	Store   timebox.Store
	Catalog *timebox.Catalog
	// Keys are derived from secret_key (and the previous keys); Sealer is Keys.Sealer().
	Keys    *timebox.Keyring
	Sealer  *timebox.Sealer
	Engines map[string]timebox.Engine // by server name
	// Leader, when set, says whether this process may change target databases now. Several
	// servers may share a store, but only the one that leads does database work; the others
	// serve the API and take over when it dies. The store implements it.
	Leader interface {
		Lead(ctx context.Context) bool
	}

	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *Metrics
	// Sweep is the longest the scheduler sleeps without looking at the store (default 5s):
	// it catches what no timer was set for (another writer, a clock jump).
	Sweep time.Duration
	// ReconcileInterval is how often the reconciler compares the databases with the store
	// (default 10s; zero or less disables it).
	ReconcileInterval time.Duration
	// PasswordChecks is how many logins per server each reconciler pass tries with their
	// planned password, to find one changed by hand (default 20; zero disables it).
	PasswordChecks int
	// StepTimeout bounds one engine call (default 30s).
	StepTimeout time.Duration
	// MinBackoff and MaxBackoff bound retry delays (default 1s and 30s), jittered ±20%.
	MinBackoff, MaxBackoff time.Duration
	// Hook, when set, is called at each labelled step (see the Step constants); tests use it
	// to kill the process between two steps.
	Hook func(step string)

	wake chan struct{}
	// fullScan asks the next Dispatch to read every due request; otherwise it reads only
	// those that became due since lastScan (the timer's case). Work that is due but not in
	// flight — in cooldown, held back for an outage, changed by the API — is found by a full
	// scan: after a Wake, a cooldown's end, or every Sweep.
	fullScan           atomic.Bool
	lastScan, lastFull time.Time
	reconciling        sync.Mutex // one reconciler pass at a time
	mu                 sync.Mutex
	inflight           map[string]bool
	// cooldown holds requests whose last Process failed outside the engine (a store error):
	// they are not retried before the time given, so a lasting error cannot spin the loop.
	cooldown map[string]time.Time
	slots    map[string]chan struct{} // per server: bounds concurrent engine calls
	queues   map[string]chan struct{} // per server: bounds the requests being processed
	outages  map[string]*outage       // servers found unreachable, until a probe reaches them
	pwCursor map[string]string        // per server: the last login whose password was checked
	runCtx   context.Context          // Run's context, for the probes; nil when Run is not running
	health   map[string]health        // per server: what the last calls said
	// principals serialises the engine calls on one person's login (role_membership).
	principals map[string]*sync.Mutex
	wg         sync.WaitGroup
}

// Labelled steps passed to Hook.
const (
	StepActivateIntent = "activate.intent-stored"
	StepActivateDB     = "activate.database-done"
	StepRevokeIntent   = "revoke.intent-stored"
	StepRevokeDB       = "revoke.database-done"
)

// New returns a Scheduler with default settings.
func New(store timebox.Store, catalog *timebox.Catalog, keys *timebox.Keyring, engines map[string]timebox.Engine) *Scheduler {
	var sealer *timebox.Sealer
	if keys != nil {
		sealer = keys.Sealer()
	}
	return &Scheduler{
		Store: store, Catalog: catalog, Keys: keys, Sealer: sealer, Engines: engines,
		Now: time.Now, Logger: slog.Default(),
		Sweep: 5 * time.Second, StepTimeout: 30 * time.Second, ReconcileInterval: 10 * time.Second, PasswordChecks: 20,
		MinBackoff: time.Second, MaxBackoff: 30 * time.Second,
		wake: make(chan struct{}, 1), inflight: map[string]bool{}, cooldown: map[string]time.Time{}, health: map[string]health{}, principals: map[string]*sync.Mutex{}, slots: map[string]chan struct{}{}, queues: map[string]chan struct{}{}, outages: map[string]*outage{}, pwCursor: map[string]string{},
	}
}

// Wake makes the scheduler look at every due request now. It never blocks.
func (s *Scheduler) Wake() {
	s.fullScan.Store(true)
	s.nudge()
}

// nudge makes the scheduler look now at what became due since its last look, and set its
// timer for the next deadline. done uses it rather than Wake: a request still live after its
// work has its next deadline ahead (its end, a retry), and one that was held back for an
// outage waits for the probe's Wake; a full read after each of thousands of failures against
// a dead server cost more CPU than the healthy servers' work.
func (s *Scheduler) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run schedules work until ctx is done, then waits for work in flight to finish.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.wg.Wait()
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.runCtx = nil
		clear(s.outages)
		s.mu.Unlock()
	}()
	if err := s.Adopt(ctx); err != nil && ctx.Err() == nil {
		s.Logger.Error("scheduler: authenticate the live requests of an upgraded store", "err", err)
	}
	if s.ReconcileInterval > 0 {
		s.wg.Add(1)
		go s.reconcileLoop(ctx)
	}
	leading := false
	for {
		var next time.Time
		if s.lead(ctx) {
			if !leading {
				s.Logger.Info("scheduler: this server now does the database work for the store")
			}
			leading = true
			next = s.Dispatch(ctx)
		} else if leading {
			s.Logger.Warn("scheduler: lost the store's scheduler lock; another server does the database work")
			leading = false
		}
		wait := s.Sweep
		if !next.IsZero() {
			wait = min(wait, next.Sub(s.Now()))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// reconcileLoop runs Reconcile every ReconcileInterval while this process leads.
func (s *Scheduler) reconcileLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.lead(ctx) {
				s.Reconcile(ctx)
			}
		}
	}
}

// Dispatch starts the work that is due now and returns the next deadline (zero if none). It
// reads only the due requests and the next due time, through the store's due_at index.
//
// With thousands of ends spread over a minute the timer fires every few milliseconds; reading
// every due request each time would cost O(backlog) per tick while removals queue, so a
// timer-driven pass reads only what became due since the last one (see fullScan).
func (s *Scheduler) Dispatch(ctx context.Context) time.Time {
	now := s.Now()
	s.mu.Lock()
	cooled := false // a cooldown ended: its request, due since before, needs a full scan
	for id, until := range s.cooldown {
		if until.Before(now) {
			delete(s.cooldown, id)
			cooled = true
		}
	}
	cooldown := maps.Clone(s.cooldown)
	s.mu.Unlock()
	full := s.fullScan.Swap(false) || cooled || s.lastScan.IsZero() || now.Sub(s.lastFull) >= s.Sweep || now.Before(s.lastScan)
	f := timebox.RequestFilter{DueBy: now}
	if !full {
		f.DueAfter = s.lastScan
	}
	var due []*timebox.Request
	var next time.Time
	err := s.Store.View(ctx, func(tx timebox.Tx) (err error) {
		if due, err = tx.FindRequests(f); err != nil {
			return err
		}
		next, err = tx.NextDue(now)
		return err
	})
	if err != nil {
		if full {
			s.fullScan.Store(true)
		}
		if ctx.Err() == nil {
			s.Logger.Error("scheduler: load due requests", "err", err)
		}
		return now.Add(time.Second)
	}
	s.lastScan = now
	if full {
		s.lastFull = now
	}
	for _, until := range cooldown { // the end of a cooldown makes the next pass a full one
		if next.IsZero() || until.Before(next) {
			next = until
		}
	}
	for _, r := range due {
		if _, ok := cooldown[r.ID]; ok {
			continue
		}
		if s.waitsForProbe(r, now) {
			continue // the probe wakes the loop when the server answers
		}
		s.start(ctx, r)
	}
	return next
}

// start runs the work for r in its own goroutine unless r is already in flight. The
// goroutine first waits for a place in the queue of r's server, so that thousands of requests
// due at once wait cheaply (a goroutine holding an ID) instead of all reading and writing the
// store and then queueing for the server's connections, and so that a slow server's backlog
// never holds the places of another.
func (s *Scheduler) start(ctx context.Context, r *timebox.Request) {
	s.mu.Lock()
	if s.inflight[r.ID] {
		s.mu.Unlock()
		return
	}
	s.inflight[r.ID] = true
	s.mu.Unlock()
	id, queue := r.ID, s.queue(s.serverOf(r))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case queue <- struct{}{}:
		case <-ctx.Done():
			s.done(ctx, id, nil, ctx.Err())
			return
		}
		r, err := s.process(ctx, id)
		<-queue
		if err != nil && ctx.Err() == nil {
			s.Logger.Error("scheduler: process request", "request", id, "err", err)
		}
		s.done(ctx, id, r, err)
	}()
}

// serverOf returns the server r's work is on: its grant's, or its database's ("" when the
// database is no longer in the catalog).
func (s *Scheduler) serverOf(r *timebox.Request) string {
	if r.Grant != nil {
		return r.Grant.Server
	}
	if db, err := s.Catalog.Database(r.Database); err == nil {
		return db.Server
	}
	return ""
}

// RunNow does the work that request id needs now and waits for it, for callers that want
// to answer with the outcome (an approval that activates at once, a revocation). When the
// request is already being worked on, RunNow waits for that work instead.
func (s *Scheduler) RunNow(ctx context.Context, id string) error {
	if !s.lead(ctx) {
		return nil // the leading server picks it up on its next pass
	}
	for {
		s.mu.Lock()
		if !s.inflight[id] {
			s.inflight[id] = true
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	r, err := s.process(ctx, id)
	s.done(ctx, id, r, err)
	return err
}

// done marks the work on request id finished; r is the request as the work left it (read
// or stored by process: no read here). It nudges the loop when the request still has a deadline ahead (its end, a
// retry), or wakes it for a full read when it is due already. A request that reached its
// final state needs nothing more, so a burst of removals does not make the loop re-read
// every live request each time. A failed process puts the request in cooldown for a second
// (unless its context ended: RunNow's caller gave up, the work is not done).
func (s *Scheduler) done(ctx context.Context, id string, r *timebox.Request, processErr error) {
	s.mu.Lock()
	delete(s.inflight, id)
	delete(s.cooldown, id)
	if processErr != nil && ctx.Err() == nil {
		s.cooldown[id] = s.Now().Add(time.Second)
	}
	s.mu.Unlock()
	if processErr != nil {
		// Still due (a store error, or the caller's context ended): the full read sets the
		// timer for the cooldown's end, or restarts the work under the loop's context.
		s.Wake()
		return
	}
	now := s.Now()
	switch due, ok := r.DueAt(); {
	case ok && !due.After(now) && !s.waitsForProbe(r, now):
		// Due already (its end passed while its activation ran, say): a nudge reads only
		// what became due since the last look, which may not include it.
		s.Wake()
	case ok:
		s.nudge()
	}
}

// lead reports whether this process may do database work now.
func (s *Scheduler) lead(ctx context.Context) bool { return s.Leader == nil || s.Leader.Lead(ctx) }

// slot returns the semaphore that bounds concurrent engine calls to one server, so that a
// slow or dead server never takes the capacity of the others.
func (s *Scheduler) slot(server string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.slots[server]
	if !ok {
		n := 8
		if srv, err := s.Catalog.Server(server); err == nil && srv.MaxConns > 0 {
			n = srv.MaxConns
		}
		c = make(chan struct{}, n)
		s.slots[server] = c
	}
	return c
}

// queue returns the semaphore that bounds the requests of one server being processed at once:
// twice its slots, so that the store work of the next requests overlaps the database work of
// the current ones.
func (s *Scheduler) queue(server string) chan struct{} {
	n := cap(s.slot(server))
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.queues[server]
	if !ok {
		c = make(chan struct{}, 2*n)
		s.queues[server] = c
	}
	return c
}

// backoff returns the delay before retry number attempts (1-based), with ±20% jitter.
func (s *Scheduler) backoff(attempts int) time.Duration {
	d := s.MinBackoff
	for i := 1; i < attempts && d < s.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.MaxBackoff)
	return min(time.Duration(float64(d)*(0.8+0.4*rand.Float64())), s.MaxBackoff)
}

func (s *Scheduler) hook(step string) {
	if s.Hook != nil {
		s.Hook(step)
	}
}
