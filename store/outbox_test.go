package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
	"github.com/timebox-dev/timebox/store"
)

func TestSQLiteOutbox(t *testing.T) { testOutbox(t, openSQLite(t)) }

func TestPostgresOutbox(t *testing.T) {
	testdb.RequirePostgres(t)
	testOutbox(t, openPostgres(t))
}

// testOutbox: the cursor starts unset; deliveries are added once per key; claims take what
// is due in order, hold it until the claim runs out (then it is due again, still sending),
// outcomes are saved, the dead-letter list is found by status, threads round-trip, and
// events are read forward from a seq.
func testOutbox(t *testing.T, db *store.DB) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	view(t, db, func(tx timebox.Tx) error {
		if _, ok, err := tx.OutboxCursor(); err != nil || ok {
			t.Fatalf("cursor of a new store: ok=%v err=%v", ok, err)
		}
		return nil
	})
	update(t, db, func(tx timebox.Tx) error { return tx.SetOutboxCursor(7) })
	update(t, db, func(tx timebox.Tx) error { return tx.SetOutboxCursor(9) })
	view(t, db, func(tx timebox.Tx) error {
		if seq, ok, err := tx.OutboxCursor(); err != nil || !ok || seq != 9 {
			t.Fatalf("cursor = %d %v %v, want 9", seq, ok, err)
		}
		return nil
	})
	d1 := &timebox.Delivery{Key: "ops:e1", Channel: "ops", Kind: "new_request", EventSeq: 1, RequestID: "r1", NextAt: now, CreatedAt: now}
	d2 := &timebox.Delivery{Key: "ops:e2", Channel: "ops", Kind: "decision", EventSeq: 2, RequestID: "r2", NextAt: now.Add(time.Second), CreatedAt: now}
	// d4 is about r1 like d1: it waits until d1 is delivered (or given up), though due.
	d4 := &timebox.Delivery{Key: "ops:e4", Channel: "ops", Kind: "decision", EventSeq: 4, RequestID: "r1", NextAt: now, CreatedAt: now}
	d3 := &timebox.Delivery{Key: "mail:e1:bob", Channel: "mail", Kind: "new_request", EventSeq: 1, Recipient: "bob", NextAt: now, CreatedAt: now}
	update(t, db, func(tx timebox.Tx) error { return tx.AddDeliveries([]*timebox.Delivery{d1, d2, d3, d4}) })
	if d1.ID == 0 || d2.ID == 0 || d3.ID == 0 {
		t.Fatalf("ids not set: %d %d %d", d1.ID, d2.ID, d3.ID)
	}
	again := &timebox.Delivery{Key: "ops:e1", Channel: "ops", Kind: "other", NextAt: now, CreatedAt: now}
	update(t, db, func(tx timebox.Tx) error { return tx.AddDeliveries([]*timebox.Delivery{again}) })
	if again.ID != 0 {
		t.Fatalf("a delivery with an existing key was stored again (id %d)", again.ID)
	}
	var claimed []*timebox.Delivery
	update(t, db, func(tx timebox.Tx) (err error) {
		claimed, err = tx.ClaimDeliveries("ops", now, now.Add(time.Minute), 10, false)
		return err
	})
	if len(claimed) != 1 || claimed[0].ID != d1.ID || claimed[0].Status != timebox.DeliveryPending || claimed[0].Attempts != 1 {
		t.Fatalf("claim at now = %+v, want d1 only, pending, attempt 1", claimed)
	}
	update(t, db, func(tx timebox.Tx) (err error) {
		claimed, err = tx.ClaimDeliveries("ops", now.Add(2*time.Second), now.Add(time.Minute), 10, false)
		return err
	})
	if len(claimed) != 1 || claimed[0].ID != d2.ID {
		t.Fatalf("claim at +2s = %+v, want d2 only (d1 is claimed)", claimed)
	}
	update(t, db, func(tx timebox.Tx) (err error) {
		claimed, err = tx.ClaimDeliveries("ops", now.Add(2*time.Minute), now.Add(3*time.Minute), 10, false)
		return err
	})
	if len(claimed) != 2 || claimed[0].Status != timebox.DeliverySending || claimed[0].Attempts != 2 {
		t.Fatalf("claims that ran out = %+v, want both, sending (uncertain), attempt 2", claimed)
	}
	view(t, db, func(tx timebox.Tx) error {
		next, err := tx.NextDelivery("ops", false)
		if err != nil || !next.Equal(now.Add(3*time.Minute)) {
			t.Fatalf("next = %v %v, want the end of the claim", next, err)
		}
		return nil
	})
	update(t, db, func(tx timebox.Tx) error { return tx.ReleaseClaims(now) })
	view(t, db, func(tx timebox.Tx) error {
		if next, _ := tx.NextDelivery("ops", false); !next.Equal(now) {
			t.Fatalf("next after ReleaseClaims = %v, want now", next)
		}
		return nil
	})
	c := claimed[0]
	c.Status, c.SentAt, c.ExternalID = timebox.DeliverySent, now, "1700000000.000100"
	f := claimed[1]
	if c.ID != d1.ID || f.ID != d2.ID {
		t.Fatalf("claimed %d and %d, want d1 and d2 (d4 waits behind d1)", c.ID, f.ID)
	}
	f.Status, f.LastError = timebox.DeliveryFailed, "HTTP 404"
	update(t, db, func(tx timebox.Tx) error {
		if err := tx.SaveDelivery(c); err != nil {
			return err
		}
		if err := tx.SaveDelivery(f); err != nil {
			return err
		}
		return tx.PutThread("ops", "r1", "C1:1700000000.000100")
	})
	update(t, db, func(tx timebox.Tx) (err error) {
		claimed, err = tx.ClaimDeliveries("ops", now, now.Add(time.Minute), 10, false)
		return err
	})
	if len(claimed) != 1 || claimed[0].ID != d4.ID {
		t.Fatalf("claim after d1 was sent = %+v, want d4", claimed)
	}
	claimed[0].Status = timebox.DeliverySent
	update(t, db, func(tx timebox.Tx) error { return tx.SaveDelivery(claimed[0]) })
	view(t, db, func(tx timebox.Tx) error {
		got, err := tx.FindDelivery(c.ID)
		if err != nil || got.Status != timebox.DeliverySent || got.ExternalID != c.ExternalID || !got.SentAt.Equal(now) {
			t.Fatalf("saved delivery = %+v %v", got, err)
		}
		failed, err := tx.FindDeliveries(timebox.DeliveryFilter{Status: timebox.DeliveryFailed})
		if err != nil || len(failed) != 1 || failed[0].ID != f.ID || failed[0].LastError != "HTTP 404" {
			t.Fatalf("failed = %+v %v", failed, err)
		}
		all, err := tx.FindDeliveries(timebox.DeliveryFilter{RequestID: "r1"})
		if err != nil || len(all) != 2 || all[0].ID != d4.ID || all[1].ID != d1.ID {
			t.Fatalf("deliveries of r1 = %+v %v, want 2 newest first", all, err)
		}
		if next, _ := tx.NextDelivery("ops", false); !next.IsZero() {
			t.Fatalf("next with nothing undelivered = %v", next)
		}
		if th, err := tx.Thread("ops", "r1"); err != nil || th != "C1:1700000000.000100" {
			t.Fatalf("thread = %q %v", th, err)
		}
		if th, err := tx.Thread("ops", "r2"); err != nil || th != "" {
			t.Fatalf("thread of r2 = %q %v", th, err)
		}
		if _, err := tx.FindDelivery(999); timebox.ErrorCode(err) != timebox.ENOTFOUND {
			t.Fatalf("FindDelivery(999) = %v", err)
		}
		return nil
	})
	// Events are read forward from a seq.
	update(t, db, func(tx timebox.Tx) error {
		for i := range 5 {
			if err := tx.AppendEvent(&timebox.Event{Actor: "alice", Action: "test.event", Details: map[string]any{"n": i}}); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, db, func(tx timebox.Tx) error {
		es, err := tx.FindEvents(timebox.EventFilter{From: 2, Limit: 2})
		if err != nil || len(es) != 2 || es[0].Seq != 2 || es[1].Seq != 3 {
			t.Fatalf("From 2 Limit 2 = %v %v", es, err)
		}
		return nil
	})
}

func TestSQLiteOutboxOrdered(t *testing.T) { testOutboxOrdered(t, openSQLite(t)) }

func TestPostgresOutboxOrdered(t *testing.T) {
	testdb.RequirePostgres(t)
	testOutboxOrdered(t, openPostgres(t))
}

// testOutboxOrdered: an ordered channel (a webhook) claims its first undelivered deliveries
// by id as far as they are due; a later one never overtakes an earlier one in backoff; a
// failed one holds nothing.
func testOutboxOrdered(t *testing.T, db *store.DB) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	var ds []*timebox.Delivery
	for i := range 4 {
		ds = append(ds, &timebox.Delivery{Key: fmt.Sprintf("siem:e%d", i+1), Channel: "siem", Kind: "event", EventSeq: int64(i + 1),
			RequestID: fmt.Sprintf("r%d", i), NextAt: now, CreatedAt: now})
	}
	ds[1].NextAt = now.Add(time.Minute) // in backoff
	update(t, db, func(tx timebox.Tx) error { return tx.AddDeliveries(ds) })
	claim := func(at time.Time) (got []int64) {
		update(t, db, func(tx timebox.Tx) error {
			cs, err := tx.ClaimDeliveries("siem", at, at.Add(time.Second), 10, true)
			for _, c := range cs {
				got = append(got, c.EventSeq)
			}
			return err
		})
		return got
	}
	if got := claim(now); fmt.Sprint(got) != "[1]" {
		t.Fatalf("claimed %v, want [1]: e2 is in backoff and e3, e4 wait behind it", got)
	}
	view(t, db, func(tx timebox.Tx) error {
		if next, err := tx.NextDelivery("siem", true); err != nil || !next.Equal(now.Add(time.Second)) {
			t.Fatalf("next = %v %v, want the end of e1's claim", next, err)
		}
		return nil
	})
	ds[0].Status = timebox.DeliveryFailed
	update(t, db, func(tx timebox.Tx) error { return tx.SaveDelivery(ds[0]) })
	if got := claim(now.Add(2 * time.Second)); len(got) != 0 {
		t.Fatalf("claimed %v, want nothing before e2 is due", got)
	}
	if got := claim(now.Add(2 * time.Minute)); fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("claimed %v, want [2 3 4]", got)
	}
}

func TestSQLiteOutboxRetention(t *testing.T) { testOutboxRetention(t, openSQLite(t)) }

func TestPostgresOutboxRetention(t *testing.T) {
	testdb.RequirePostgres(t)
	testOutboxRetention(t, openPostgres(t))
}

// testOutboxRetention: undelivered deliveries are counted per channel and status; old sent
// and failed ones are deleted with the threads left without a delivery, pending ones never.
func testOutboxRetention(t *testing.T, db *store.DB) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	old := now.Add(-40 * 24 * time.Hour)
	mk := func(key, ch, req string, st timebox.DeliveryStatus, created time.Time) *timebox.Delivery {
		return &timebox.Delivery{Key: key, Channel: ch, Kind: "event", RequestID: req, Status: st, NextAt: created, CreatedAt: created}
	}
	ds := []*timebox.Delivery{
		mk("a:1", "a", "r1", timebox.DeliverySent, old), mk("a:2", "a", "r1", timebox.DeliveryFailed, old),
		mk("a:3", "a", "r2", timebox.DeliveryPending, old), mk("a:4", "a", "r2", timebox.DeliverySent, now),
		mk("b:1", "b", "", timebox.DeliveryFailed, now), mk("b:2", "b", "", timebox.DeliveryPending, now),
	}
	update(t, db, func(tx timebox.Tx) error {
		if err := tx.AddDeliveries(ds); err != nil {
			return err
		}
		if err := tx.PutThread("a", "r1", "t1"); err != nil {
			return err
		}
		return tx.PutThread("a", "r2", "t2")
	})
	view(t, db, func(tx timebox.Tx) error {
		c, err := tx.CountUndelivered()
		if err != nil || c["a"][timebox.DeliveryFailed] != 1 || c["a"][timebox.DeliveryPending] != 1 || c["b"][timebox.DeliveryFailed] != 1 ||
			c["b"][timebox.DeliveryPending] != 1 || c["a"][timebox.DeliverySent] != 0 {
			t.Fatalf("counts = %v %v", c, err)
		}
		return nil
	})
	update(t, db, func(tx timebox.Tx) error {
		n, err := tx.DeleteDeliveries(now.Add(-30 * 24 * time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("deleted %d %v, want the old sent and failed ones", n, err)
		}
		return nil
	})
	view(t, db, func(tx timebox.Tx) error {
		left, _ := tx.FindDeliveries(timebox.DeliveryFilter{})
		if len(left) != 4 {
			t.Fatalf("left %d deliveries, want 4", len(left))
		}
		if th, _ := tx.Thread("a", "r1"); th != "" {
			t.Errorf("the thread of r1 (no delivery left) = %q, want gone", th)
		}
		if th, _ := tx.Thread("a", "r2"); th != "t2" {
			t.Errorf("the thread of r2 = %q, want kept", th)
		}
		return nil
	})
}
