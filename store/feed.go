package store

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

// The change feed: DB implements timebox.Feed.
//
// On SQLite (one process owns the file) every Update that appended events publishes their
// changes to this process's subscribers after the commit. On PostgreSQL, where several server
// replicas share the store, Update calls pg_notify on feedChannel inside its transaction
// (PostgreSQL delivers a notification only when its transaction commits), and each DB with
// subscribers keeps one connection that LISTENs on the channel and publishes what arrives,
// whichever replica committed it. After that connection is lost and made again, notifications
// may have been missed: subscribers get a Change with Seq 0 ("reload everything").

// feedChannel is the PostgreSQL notification channel of the change feed.
const feedChannel = "timebox_changes"

// feedApplication is the application_name of the LISTEN connection (in pg_stat_activity).
const feedApplication = "timebox change feed"

// feedBuffer is how many changes a subscriber may fall behind before it gets a reload.
const feedBuffer = 64

// Backoff of the LISTEN connection's reconnection, and how long it waits for a notification
// before it checks that the connection still works.
var (
	feedBackoffMin = 100 * time.Millisecond
	feedBackoffMax = 10 * time.Second
	feedPing       = 30 * time.Second
	// feedReady is how long the first Subscribe waits for the LISTEN connection; a subscriber
	// that returns before it listens gets a reload once it does.
	feedReady = 2 * time.Second
)

// feed is a DB's subscribers and, on PostgreSQL, its LISTEN connection.
type feed struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
	// PostgreSQL: dsn to connect the listener with; started once the first Subscribe came;
	// listening while its connection LISTENs (ready is closed the first time it does); late
	// when a Subscribe gave up waiting for that; stop and done end the listener.
	dsn       string
	started   bool
	listening bool
	late      bool
	ready     chan struct{}
	stop      context.CancelFunc
	done      chan struct{}
}

type subscriber struct{ ch chan timebox.Change }

// Feed returns the store's change feed (the DB itself).
func (db *DB) Feed() timebox.Feed { return db }

var _ timebox.Feed = (*DB)(nil)

// Subscribe returns a channel of the changes committed from now on, by this process (SQLite)
// or by any replica sharing the store (PostgreSQL), and a function that ends the
// subscription and closes the channel. A subscriber that falls feedBuffer changes behind
// loses them and gets a Change with Seq 0 instead; so does every subscriber after the
// PostgreSQL listener reconnected. The channel is closed when the DB is closed.
func (db *DB) Subscribe() (<-chan timebox.Change, func()) {
	f := &db.feed
	s := &subscriber{ch: make(chan timebox.Change, feedBuffer)}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	if f.subs == nil {
		f.subs = map[*subscriber]struct{}{}
	}
	f.subs[s] = struct{}{}
	var ready chan struct{}
	if db.dialect == dialectPostgres {
		if !f.started {
			f.started = true
			f.ready, f.done = make(chan struct{}), make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			f.stop = cancel
			go f.listen(ctx)
		}
		if !f.listening {
			ready = f.ready
		}
	}
	f.mu.Unlock()
	if ready != nil {
		t := time.NewTimer(feedReady)
		select {
		case <-ready:
		case <-t.C:
			f.mu.Lock()
			if !f.listening {
				f.late = true
			}
			f.mu.Unlock()
		}
		t.Stop()
	}
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if _, ok := f.subs[s]; ok {
				delete(f.subs, s)
				close(s.ch)
			}
		})
	}
}

// publish hands cs to every subscriber without blocking: one whose buffer is full is
// emptied and gets a reload (Seq 0) instead.
func (f *feed) publish(cs ...timebox.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		for _, c := range cs {
			if !s.send(c) {
				break
			}
		}
	}
}

// send offers c to s; when s is too far behind it replaces what s has not read with a
// reload, and reports false (the rest of the batch is covered by it).
func (s *subscriber) send(c timebox.Change) bool {
	select {
	case s.ch <- c:
		return true
	default:
	}
	for {
		select {
		case <-s.ch: // the subscriber may be reading too: either way the slot frees
			continue
		case s.ch <- timebox.Change{}:
			return false
		}
	}
}

// closeFeed stops the listener and closes every subscriber's channel.
func (db *DB) closeFeed() {
	f := &db.feed
	f.mu.Lock()
	f.closed = true
	stop, done := f.stop, f.done
	for s := range f.subs {
		close(s.ch)
	}
	f.subs = nil
	f.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// listen keeps a connection LISTENing on feedChannel until ctx ends, publishing each
// notification, reconnecting with backoff when the connection fails.
func (f *feed) listen(ctx context.Context) {
	defer close(f.done)
	backoff, first, failing := feedBackoffMin, true, false
	for ctx.Err() == nil {
		conn, err := f.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				slog.Warn("store: the change feed cannot listen for changes; retrying", "err", err)
				failing = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, feedBackoffMax)
			continue
		}
		if failing {
			slog.Info("store: the change feed listens for changes again")
			failing = false
		}
		backoff = feedBackoffMin
		f.mu.Lock()
		reload := !first || f.late
		f.listening, f.late = true, false
		if first {
			close(f.ready)
			first = false
		}
		f.mu.Unlock()
		if reload {
			f.publish(timebox.Change{})
		}
		err = f.receive(ctx, conn)
		f.mu.Lock()
		f.listening = false
		f.mu.Unlock()
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		conn.Close(closeCtx)
		cancel()
		if ctx.Err() == nil {
			slog.Warn("store: the change feed lost its connection; reconnecting", "err", err)
			failing = true
		}
	}
}

// connect opens the listener's connection and LISTENs.
func (f *feed) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(f.dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = feedApplication
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, "LISTEN "+feedChannel); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

// receive publishes the notifications conn receives until ctx ends or conn fails. A quiet
// connection is pinged every feedPing, so that a connection lost without a word is noticed.
func (f *feed) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, feedPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			f.publish(decodeChange(n.Payload))
		}
	}
}

// notifyChanges announces t's changes on PostgreSQL: inside the transaction, so that
// PostgreSQL delivers them only if it commits.
func (t *tx) notifyChanges() error {
	if len(t.changes) == 0 {
		return nil
	}
	payloads := make([]string, len(t.changes))
	for i, c := range t.changes {
		payloads[i] = encodeChange(c)
	}
	if _, err := t.tx.ExecContext(t.ctx, `SELECT pg_notify('`+feedChannel+`', p) FROM unnest($1::text[]) AS p`, payloads); err != nil {
		return internal(err, "announce the change")
	}
	return nil
}

// maxPayload keeps a notification well under PostgreSQL's 8000-byte limit: a larger change
// is announced by its Seq alone.
const maxPayload = 2000

func encodeChange(c timebox.Change) string {
	b, err := json.Marshal(c)
	if err != nil || len(b) > maxPayload {
		return strconv.FormatInt(c.Seq, 10)
	}
	return string(b)
}

// decodeChange reads a notification's payload: a Change in JSON, or a bare Seq. Anything
// else (a NOTIFY sent by hand) is a reload.
func decodeChange(payload string) timebox.Change {
	if seq, err := strconv.ParseInt(payload, 10, 64); err == nil {
		return timebox.Change{Seq: seq}
	}
	var c timebox.Change
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		return timebox.Change{}
	}
	return c
}
