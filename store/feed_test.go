package store_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
	"github.com/timebox-dev/timebox/store"
)

// within is how soon a subscriber must see a commit (the console promises a second).
const within = time.Second

// nextChange returns the next change on ch, failing the test when none comes within d.
func nextChange(t *testing.T, ch <-chan timebox.Change, d time.Duration) timebox.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("the feed's channel closed")
		}
		return c
	case <-time.After(d):
		t.Fatalf("no change within %s", d)
	}
	return timebox.Change{}
}

// noChange fails the test when ch delivers anything within d.
func noChange(t *testing.T, ch <-chan timebox.Change, d time.Duration) {
	t.Helper()
	select {
	case c := <-ch:
		t.Fatalf("unexpected change %+v", c)
	case <-time.After(d):
	}
}

var feedRequests atomic.Int64

// appendOne appends one event for a new request on db and returns it (with its Seq).
func appendOne(t *testing.T, db *store.DB, actor string) *timebox.Event {
	t.Helper()
	e := &timebox.Event{Actor: actor, Action: "request.created", RequestID: fmt.Sprintf("f%d", feedRequests.Add(1)), Database: "orders"}
	update(t, db, func(tx timebox.Tx) error { return tx.AppendEvent(e) })
	return e
}

// testFeedBasics: a subscriber sees each appended event once committed, with what it is
// about; a transaction that rolls back, or appends nothing, announces nothing; ending the
// subscription and closing the store close the channel.
func testFeedBasics(t *testing.T, db *store.DB) {
	ch, stop := db.Subscribe()
	e := appendOne(t, db, "alice")
	want := timebox.Change{Seq: e.Seq, Action: "request.created", Actor: "alice", RequestID: e.RequestID, Database: "orders"}
	if got := nextChange(t, ch, within); got != want {
		t.Fatalf("change %+v, want %+v", got, want)
	}
	// Two events in one transaction: two changes, in order.
	update(t, db, func(tx timebox.Tx) error {
		for _, who := range []string{"bob", "carol"} {
			if err := tx.AppendEvent(&timebox.Event{Actor: who, Action: "request.approved", RequestID: e.RequestID}); err != nil {
				return err
			}
		}
		return nil
	})
	for i, who := range []string{"bob", "carol"} {
		if got := nextChange(t, ch, within); got.Seq != e.Seq+1+int64(i) || got.Actor != who || got.Action != "request.approved" {
			t.Fatalf("change %d: %+v, want %s's approval, seq %d", i, got, who, e.Seq+1+int64(i))
		}
	}
	// Rolled back: nothing. Nothing appended: nothing. The next commit comes next.
	boom := errors.New("boom")
	err := db.Update(t.Context(), func(tx timebox.Tx) error {
		if err := tx.AppendEvent(&timebox.Event{Actor: "mallory", Action: "request.created"}); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Update = %v, want boom", err)
	}
	update(t, db, func(tx timebox.Tx) error {
		return tx.CreateRequest(newRequest(fmt.Sprintf("q%d", feedRequests.Add(1)), "alice", "orders", timebox.StatePending, at(1)))
	})
	noChange(t, ch, 300*time.Millisecond)
	e2 := appendOne(t, db, "dave")
	if got := nextChange(t, ch, within); got.Seq != e2.Seq || got.Actor != "dave" {
		t.Fatalf("after a rollback: change %+v, want dave's event %d", got, e2.Seq)
	}
	// A second subscriber sees the same; the first, once stopped, nothing.
	ch2, stop2 := db.Subscribe()
	defer stop2()
	stop()
	stop() // twice is harmless
	if _, ok := <-ch; ok {
		t.Fatal("the channel is still open after the subscription ended")
	}
	e3 := appendOne(t, db, "erin")
	if got := nextChange(t, ch2, within); got.Seq != e3.Seq {
		t.Fatalf("second subscriber: %+v, want %d", got, e3.Seq)
	}
}

// testFeedSlowSubscriber: a subscriber that does not read does not hold writers up; it
// gets a reload (Seq 0) after what its buffer kept, then the changes after it.
func testFeedSlowSubscriber(t *testing.T, db *store.DB) {
	ch, stop := db.Subscribe()
	defer stop()
	fast, stopFast := db.Subscribe()
	defer stopFast()
	const n = 100 // more than a subscriber's buffer
	var last int64
	start := time.Now()
	for i := range n {
		e := appendOne(t, db, "alice")
		last = e.Seq
		// The fast one reads as it goes: it loses nothing.
		if c := nextChange(t, fast, within); c.Seq != e.Seq {
			t.Fatalf("fast subscriber, event %d: %+v, want seq %d", i, c, e.Seq)
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("%d commits took %s: the slow subscriber held the writer up", n, d)
	}
	reload := false
	for len(ch) > 0 {
		if c := <-ch; c.Seq == 0 {
			reload = true
		}
	}
	if !reload {
		t.Fatalf("the slow subscriber got no reload after missing changes")
	}
	e := appendOne(t, db, "bob")
	if c := nextChange(t, ch, within); c.Seq != e.Seq || e.Seq != last+1 {
		t.Fatalf("after the reload: %+v, want seq %d", c, e.Seq)
	}
}

func TestSQLiteFeed(t *testing.T) {
	t.Run("Basics", func(t *testing.T) { testFeedBasics(t, openSQLite(t)) })
	t.Run("SlowSubscriber", func(t *testing.T) { testFeedSlowSubscriber(t, openSQLite(t)) })
	t.Run("Close", func(t *testing.T) { testFeedClose(t, sqliteDSN(t)) })
}

func TestPostgresFeed(t *testing.T) {
	testdb.RequirePostgres(t)
	t.Run("Basics", func(t *testing.T) { testFeedBasics(t, openPostgres(t)) })
	t.Run("SlowSubscriber", func(t *testing.T) { testFeedSlowSubscriber(t, openPostgres(t)) })
	t.Run("Close", func(t *testing.T) { testFeedClose(t, postgresDSN(t)) })
}

// testFeedClose: closing the store closes its subscribers' channels (and stops the
// listener); a Subscribe after Close gets a closed channel.
func testFeedClose(t *testing.T, dsn string) {
	db, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	ch, stop := db.Subscribe()
	defer stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("a change after Close")
		}
	case <-time.After(within):
		t.Fatal("Close did not close the subscriber's channel")
	}
	ch2, stop2 := db.Subscribe()
	defer stop2()
	if _, ok := <-ch2; ok {
		t.Fatal("Subscribe after Close returned an open channel")
	}
}

// TestPostgresFeedReplicas: two stores on one PostgreSQL database, as two server replicas.
// A commit on either is seen by the other's subscriber within a second; a rollback is seen
// by none; when the listener's connection is killed, the subscriber gets a reload and then
// the changes again.
func TestPostgresFeedReplicas(t *testing.T) {
	pg := testdb.RequirePostgres(t)
	name := fmt.Sprintf("store_test_%d", pgDatabases.Add(1))
	if err := pg.CreateDatabase(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	var a, b *store.DB
	for _, db := range []**store.DB{&a, &b} {
		d, err := store.Open(t.Context(), pg.SuperURL(name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		*db = d
	}
	ch, stop := b.Subscribe()
	defer stop()
	chA, stopA := a.Subscribe()
	defer stopA()

	e := appendOne(t, a, "alice")
	if c := nextChange(t, ch, within); c.Seq != e.Seq || c.Actor != "alice" || c.RequestID != e.RequestID || c.Database != "orders" {
		t.Fatalf("replica b saw %+v, want alice's event %d", c, e.Seq)
	}
	if c := nextChange(t, chA, within); c.Seq != e.Seq {
		t.Fatalf("replica a saw %+v, want its own event %d", c, e.Seq)
	}
	e = appendOne(t, b, "bob")
	for _, sub := range []<-chan timebox.Change{ch, chA} {
		if c := nextChange(t, sub, within); c.Seq != e.Seq || c.Actor != "bob" {
			t.Fatalf("saw %+v, want bob's event %d", c, e.Seq)
		}
	}
	// A transaction that rolls back on a announces nothing anywhere.
	err := a.Update(t.Context(), func(tx timebox.Tx) error {
		if err := tx.AppendEvent(&timebox.Event{Actor: "mallory", Action: "request.created"}); err != nil {
			return err
		}
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("Update did not fail")
	}
	noChange(t, ch, 300*time.Millisecond)
	e = appendOne(t, a, "carol")
	if c := nextChange(t, ch, within); c.Seq != e.Seq || c.Actor != "carol" {
		t.Fatalf("after a rollback b saw %+v, want carol's event %d", c, e.Seq)
	}
	nextChange(t, chA, within)

	// Kill b's listener: b's subscriber gets a reload once it listens again, then changes.
	killed := 0
	for range 50 {
		n, err := a.ExecRaw(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'timebox change feed' AND pid <> pg_backend_pid()`)
		if err != nil {
			t.Fatal(err)
		}
		if killed = int(n); killed > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if killed != 2 { // a's and b's
		t.Fatalf("terminated %d listener backends, want 2", killed)
	}
	for _, sub := range []<-chan timebox.Change{ch, chA} {
		if c := nextChange(t, sub, 5*time.Second); c.Seq != 0 {
			t.Fatalf("after the listener was killed: %+v, want a reload (seq 0)", c)
		}
	}
	e = appendOne(t, a, "dave")
	if c := nextChange(t, ch, within); c.Seq != e.Seq || c.Actor != "dave" {
		t.Fatalf("after the reconnect b saw %+v, want dave's event %d", c, e.Seq)
	}
}
