package notify

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/timebox-dev/timebox"
	"golang.org/x/time/rate"
)

// Defaults of Config.
const (
	defaultExpiryWarning = 15 * time.Minute
	defaultRetryMin      = 2 * time.Second
	defaultRetryMax      = 10 * time.Minute
	defaultGiveUpAfter   = 24 * time.Hour
	defaultKeep          = 30 * 24 * time.Hour
	pruneEvery           = time.Hour
)

// Outbox plans audit events into deliveries and sends them, one sender per channel.
type Outbox struct {
	// Logger receives delivery failures (never a message's content or a secret).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Claim is how long a sender holds a delivery before another attempt may take it (a
	// crashed replica's claims run out; default 1m). SingleProcess releases the previous
	// process's claims at start: set it for a store only one process uses (SQLite).
	Claim         time.Duration
	SingleProcess bool
	// Sweep is the longest the outbox goes without looking at the store (default 2s); the
	// change feed wakes it at once for new events.
	Sweep time.Duration
	// Hook, when set, is called at labelled steps ("notify.sent": a receiver accepted a
	// message whose outcome is not recorded yet), for fault injection in tests.
	Hook func(step string)

	store         timebox.Store
	service       *timebox.Service
	feed          timebox.Feed
	channels      []*Channel
	routes        []Route
	consoleURL    string
	expiryWarning time.Duration
	retryMin      time.Duration
	retryMax      time.Duration
	giveUpAfter   time.Duration

	wakes map[string]chan struct{}
	// lastWarn is when the expiry warnings were last planned; warned the warnings planned
	// (by id, with the end they warn of), so that each is added once.
	lastWarn time.Time
	warned   map[string]time.Time
	// keep is the retention of finished deliveries; lastPrune when they were last pruned.
	keep      time.Duration
	lastPrune time.Time
	metrics   *metrics
}

// New returns an Outbox for the channels Open made from cfg. feed (may be nil) wakes it when
// events are committed.
func New(store timebox.Store, svc *timebox.Service, feed timebox.Feed, cfg *Config, channels []*Channel, consoleURL string) *Outbox {
	o := &Outbox{
		Logger: slog.Default(), Now: time.Now, Claim: time.Minute, Sweep: 2 * time.Second,
		store: store, service: svc, feed: feed, channels: channels, routes: cfg.Routes, consoleURL: consoleURL,
		expiryWarning: orDefault(cfg.ExpiryWarning, defaultExpiryWarning), retryMin: orDefault(cfg.RetryMin, defaultRetryMin),
		retryMax: orDefault(cfg.RetryMax, defaultRetryMax), giveUpAfter: orDefault(cfg.GiveUpAfter, defaultGiveUpAfter),
		wakes: map[string]chan struct{}{}, warned: map[string]time.Time{}, keep: orDefault(cfg.Keep, defaultKeep),
	}
	for _, ch := range channels {
		o.wakes[ch.Name] = make(chan struct{}, 1)
	}
	return o
}

func orDefault(d timebox.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}

func (o *Outbox) catalog() *timebox.Catalog { return o.service.Catalog }

func (o *Outbox) channel(name string) *Channel {
	for _, ch := range o.channels {
		if ch.Name == name {
			return ch
		}
	}
	return nil
}

// Channels returns the opened channels.
func (o *Outbox) Channels() []*Channel { return o.channels }

// Start readies the outbox before the server serves: on the first start with
// notifications it sets the cursor at the audit head, so that every event committed from now
// on is planned (history is not replayed); it takes over the claims of a previous process
// (SingleProcess).
func (o *Outbox) Start(ctx context.Context) error {
	return o.store.Update(ctx, func(tx timebox.Tx) error {
		if o.SingleProcess {
			if err := tx.ReleaseClaims(o.Now()); err != nil {
				return err
			}
		}
		if _, ok, err := tx.OutboxCursor(); err != nil || ok {
			return err
		}
		head, _, err := tx.AuditHead()
		if err != nil {
			return err
		}
		return tx.SetOutboxCursor(head)
	})
}

// Run plans and sends until ctx ends (after Start).
func (o *Outbox) Run(ctx context.Context) {
	if len(o.channels) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, ch := range o.channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.send(ctx, ch)
		}()
	}
	o.plan(ctx)
	wg.Wait()
}

// plan follows the audit log (woken by the change feed, at least every Sweep) and the
// expiry warnings (every Sweep) until ctx ends.
func (o *Outbox) plan(ctx context.Context) {
	var changes <-chan timebox.Change
	if o.feed != nil {
		var stop func()
		changes, stop = o.feed.Subscribe()
		defer stop()
	}
	tick := time.NewTicker(o.Sweep)
	defer tick.Stop()
	for {
		n, err := o.Plan(ctx)
		if err != nil && ctx.Err() == nil {
			o.Logger.Warn("notify: could not plan notifications; trying again", "err", err)
		}
		o.prune(ctx)
		if n == planBatch {
			continue // more to read
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case ch, ok := <-changes:
			if !ok {
				changes = nil
			} else if ch.Action == "notify.retried" {
				o.wakeAll()
			}
		}
	}
}

// Plan reads the events after the cursor (a batch at most) and the expiry warnings due, and
// adds their deliveries in one transaction with the cursor's move; it returns how many
// events it read and wakes the senders of the channels that got deliveries.
func (o *Outbox) Plan(ctx context.Context) (int, error) {
	var p *planner
	var n int
	var past int64 // the cursor found past the audit head, 0 when it was not
	err := o.store.Update(ctx, func(tx timebox.Tx) error {
		p = &planner{o: o, tx: tx, now: o.Now().UTC(), reqs: map[string]*timebox.Request{}}
		n, past = 0, 0
		cursor, ok, err := tx.OutboxCursor()
		if err != nil {
			return err
		}
		if !ok {
			return timebox.Errorf(timebox.EINTERNAL, "notify: the outbox was not started")
		}
		es, err := tx.FindEvents(timebox.EventFilter{From: cursor + 1, Limit: planBatch + 1})
		if err != nil {
			return err
		}
		for i, e := range es {
			if i == planBatch {
				break
			}
			var next *timebox.Event
			if i+1 < len(es) {
				next = es[i+1]
			}
			if err := p.event(e, next); err != nil {
				return err
			}
			cursor, n = e.Seq, n+1
		}
		if p.now.Sub(o.lastWarn) >= o.Sweep {
			if err := p.warnings(); err != nil {
				return err
			}
		}
		if err := tx.AddDeliveries(p.out); err != nil {
			return err
		}
		if n == 0 {
			// Past the audit head (the store was edited), the cursor would skip every event
			// to come, the store-tampered alerts too: bring it back to the head.
			head, _, err := tx.AuditHead()
			if err != nil || cursor <= head {
				return err
			}
			past = cursor
			return tx.SetOutboxCursor(head)
		}
		return tx.SetOutboxCursor(cursor)
	})
	if err != nil {
		return 0, err
	}
	if past != 0 {
		o.Logger.Error("notify: the outbox cursor was past the audit head (edited in the store?); it is back at the head: run timebox audit --verify",
			"cursor", past)
	}
	if p.warned != nil {
		o.lastWarn = p.now
		for id, end := range o.warned {
			if end.Before(p.now) {
				delete(o.warned, id)
			}
		}
		for id, end := range p.warned {
			o.warned[id] = end
		}
	}
	for _, d := range p.out {
		if d.ID != 0 {
			o.wake(d.Channel)
		}
	}
	return n, nil
}

// prune removes the deliveries finished longer than keep ago, at most every pruneEvery.
func (o *Outbox) prune(ctx context.Context) {
	now := o.Now()
	if now.Sub(o.lastPrune) < pruneEvery {
		return
	}
	o.lastPrune = now
	var n int
	err := o.store.Update(ctx, func(tx timebox.Tx) (err error) {
		n, err = tx.DeleteDeliveries(now.Add(-o.keep))
		return err
	})
	if err != nil && ctx.Err() == nil {
		o.Logger.Warn("notify: could not remove old deliveries; trying again in an hour", "err", err)
	} else if n > 0 {
		o.Logger.Info("notify: removed old deliveries", "deliveries", n, "keep", o.keep)
	}
}

func (o *Outbox) wake(channel string) {
	select {
	case o.wakes[channel] <- struct{}{}:
	default:
	}
}

func (o *Outbox) wakeAll() {
	for _, ch := range o.channels {
		o.wake(ch.Name)
	}
}

// backoff returns the delay before attempt n+1: RetryMin doubled per attempt up to
// RetryMax, with full jitter over its upper half.
func (o *Outbox) backoff(attempts int) time.Duration {
	d := o.retryMin
	for i := 1; i < attempts && d < o.retryMax; i++ {
		d *= 2
	}
	d = min(d, o.retryMax)
	return d/2 + rand.N(d/2+1)
}

// limiter returns the rate limiter of ch.
func limiter(ch *Channel) *rate.Limiter {
	if ch.Limit <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(ch.Limit, max(ch.Burst, 1))
}
