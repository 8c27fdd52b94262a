package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/timebox-dev/timebox/internal/testdb"
)

// The notification benchmark (`go run ./bench -notify`): one throwaway PostgreSQL with the
// benchmark database, and for each configuration a fresh Timebox server (child process, fresh
// store) with a webhook channel to a receiver in this process (notify_receiver.go):
//
//  1. event → webhook delivered, with a healthy receiver: n requests created and approved
//     back to back through the API; from the API call that caused the event returning to the
//     receiver's arrival, and from the event's own time (data.event.time). With a rate high
//     enough that the limiter never waits, and with the default rate (50/s, burst 3). On the
//     SQLite and the PostgreSQL store.
//  2. activation and expiry lag (the measures of `make bench`) with no notify section, with a
//     receiver that is down (connection refused), with a healthy one, and while a burst of
//     audit events is being delivered.
//  3. the burst's drain rate.
type notifyOptions struct {
	requests    int      // 1: requests created and approved
	burst       int      // 2, 3: audit events in the burst (create + cancel: two per request)
	activations int      // 2: activations timed per configuration
	grants      int      // 2: grants ending within 10 s per configuration
	tables      int      // tables in the benchmark database
	stores      []string // 1: sqlite, postgres
	rate        float64  // the "unlimited" channel's rate (and burst)
	configs     string   // 2: which configurations, of "abcde"
}

// fastRate is the channel's rate (messages a second, and burst) when the limiter is not what
// is measured.
const fastRate = 100000

func runNotifyBench(o notifyOptions) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "timebox-notify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "timebox")
	if err := buildTimebox(ctx, bin); err != nil {
		return err
	}
	pg, err := testdb.StartPostgres(ctx)
	if err != nil {
		return err
	}
	h := &harness{pg: pg, admin: "timebox_admin", adminPassword: randomPassword()}
	defer h.close()
	if err := h.setupDatabase(ctx, o.tables); err != nil {
		return err
	}
	fmt.Printf("PostgreSQL %d on 127.0.0.1:%d, database with %d tables; %d CPUs; Timebox server as a child process,\n", pg.Version, pg.Port, o.tables, numCPU())
	fmt.Printf("a fresh store per configuration; webhook receiver in this process on loopback, verifying each\n")
	fmt.Printf("signature with the Standard Webhooks library, answering 204.\n\n")

	run := 0
	// start starts a fresh server with opts (store: "sqlite" or "postgres").
	start := func(store string, opts serverOptions) error {
		run++
		sub := filepath.Join(dir, fmt.Sprintf("run%d", run))
		if err := os.Mkdir(sub, 0o700); err != nil {
			return err
		}
		if store == "postgres" {
			db := fmt.Sprintf("timebox_store_%d", run)
			if err := pg.CreateDatabase(ctx, db); err != nil {
				return err
			}
			opts.store = fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", pg.SuperUser, pg.Host, pg.Port, db)
			opts.storePassword = pg.SuperPassword
		}
		h.opts = opts
		return h.startServer(ctx, sub, bin)
	}

	// 1. event → delivered.
	var lat []*latencyRun
	for _, store := range o.stores {
		if store == "" {
			continue
		}
		for _, rate := range []float64{o.rate, 0} {
			rcv, err := newReceiver()
			if err != nil {
				return err
			}
			err = start(store, serverOptions{extra: webhookSection(rate, int(rate), ""), env: webhookEnv(rcv.url(), rcv.secret)})
			if err == nil {
				var r *latencyRun
				r, err = h.deliveryLatency(ctx, rcv, o.requests)
				if r != nil {
					r.store, r.rate = store, rate
					lat = append(lat, r)
				}
			}
			h.stopServer()
			rcv.close()
			if err != nil {
				return fmt.Errorf("delivery latency (%s, rate %g): %w", store, rate, err)
			}
		}
	}
	if len(lat) > 0 {
		printLatency(lat, o.requests)
	}

	// 2 and 3. activation and expiry lag beside the baseline, the burst's drain.
	var lags []*lagRun
	for _, c := range lagConfigs(o) {
		began := time.Now()
		r, err := c.run(ctx, h, o, func(opts serverOptions) error { return start("sqlite", opts) })
		fmt.Fprintf(os.Stderr, "bench: %s measured in %s\n", c.name, fmtD(time.Since(began)))
		h.stopServer()
		if err != nil && r == nil {
			return fmt.Errorf("%s: %w\n%s", c.name, err, h.serverLog.String())
		}
		if err != nil { // measured in part: reported as such
			r.err = err
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", c.name, err)
		}
		lags = append(lags, r)
	}
	if len(lags) > 0 {
		printLags(lags, o)
	}
	return nil
}

// lagConfig is one configuration of the lag measures.
type lagConfig struct {
	name  string
	notes string
	// down: the webhook posts to a port where nothing listens; healthy: to a receiver.
	down, healthy bool
	// burst: o.burst events are generated through the API while the receiver holds the
	// channel, and released before each measure.
	burst bool
}

func lagConfigs(o notifyOptions) []lagConfig {
	all := []lagConfig{
		{name: "(a) no notify section", notes: "baseline"},
		{name: "(b) receiver down", notes: "connection refused, whole run", down: true},
		{name: "(c) receiver healthy", healthy: true},
		{name: fmt.Sprintf("(d) draining %d events", o.burst), healthy: true, burst: true},
		{name: fmt.Sprintf("(e) down, %d-event backlog", o.burst), down: true, burst: true},
	}
	var cs []lagConfig
	for i, c := range all {
		if strings.ContainsRune(o.configs, rune('a'+i)) {
			cs = append(cs, c)
		}
	}
	return cs
}

// lagRun is what one configuration measured.
type lagRun struct {
	cfg               lagConfig
	act, call, direct []time.Duration
	exp               *expiry
	// drains (d): alone, during the activations, during the expiry window; (e): the backlog.
	drains []*drain
	// actSpan is when the activations were measured, window the expiry window.
	actSpan, window     [2]time.Time
	dups, bad, refusals int
	err                 error // the measure that failed, when one did
}

// run starts the configuration's server and measures activation and expiry lag.
func (c lagConfig) run(ctx context.Context, h *harness, o notifyOptions, start func(serverOptions) error) (*lagRun, error) {
	r := &lagRun{cfg: c}
	var rcv *receiver
	opts := serverOptions{}
	switch {
	case c.healthy:
		var err error
		if rcv, err = newReceiver(); err != nil {
			return nil, err
		}
		defer rcv.close()
		opts = serverOptions{extra: webhookSection(o.rate, int(o.rate), ""), env: webhookEnv(rcv.url(), rcv.secret)}
	case c.down:
		url, err := deadURL()
		if err != nil {
			return nil, err
		}
		opts = serverOptions{extra: webhookSection(o.rate, int(o.rate), ""), env: webhookEnv(url, dummySecret())}
	}
	if err := start(opts); err != nil {
		return nil, err
	}
	var err error
	healthyBurst := c.burst && rcv != nil
	if c.burst { // a clean drain (healthy), or a backlog of retries (down)
		d, err := h.burstBefore(ctx, rcv, o.burst)
		if err == nil {
			err = h.finishDrain(ctx, rcv, d)
		}
		if err != nil {
			return nil, err
		}
		r.drains = append(r.drains, d)
	}
	if healthyBurst {
		d, err := h.burstBefore(ctx, rcv, o.burst)
		if err != nil {
			return nil, err
		}
		r.drains = append(r.drains, d)
	}
	actStart := time.Now()
	if r.act, r.call, r.direct, err = h.activationLatency(ctx, o.activations); err != nil {
		return r, fmt.Errorf("activation latency: %w", err)
	}
	r.actSpan = [2]time.Time{actStart, time.Now()}
	if healthyBurst {
		if err := h.finishDrain(ctx, rcv, r.drains[1]); err != nil {
			return nil, err
		}
		d, err := h.burstBeforeExpiry(ctx, rcv, o.burst, r.drains[0].took())
		if err != nil {
			return nil, err
		}
		r.drains = append(r.drains, d)
	}
	var firstEnd time.Time
	h.beforeExpiry = chain(h.beforeExpiry, func(first time.Time) { firstEnd = first })
	if r.exp, err = h.expiryLag(ctx, o.grants); err != nil {
		return r, fmt.Errorf("expiry lag: %w", err)
	}
	h.beforeExpiry = nil
	r.window = [2]time.Time{firstEnd, firstEnd.Add(10 * time.Second)}
	if healthyBurst {
		if err := h.finishDrain(ctx, rcv, r.drains[2]); err != nil {
			return nil, err
		}
	}
	if rcv != nil {
		r.dups, r.bad, r.refusals = rcv.stats()
	}
	return r, nil
}

// chain returns a function calling f (when set), then g.
func chain(f, g func(time.Time)) func(time.Time) {
	return func(t time.Time) {
		if f != nil {
			f(t)
		}
		g(t)
	}
}
