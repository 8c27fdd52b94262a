package store_test

import (
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// testDueRequests: the store keeps each request's due time (Request.DueAt) with every change,
// so the scheduler can ask for what is due and for the next deadline.
func testDueRequests(t *testing.T, db *store.DB) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	mk := func(id string, state timebox.State, start, end time.Time) *timebox.Request {
		return &timebox.Request{ID: id, Requester: "alice", Database: "db", Access: "ro", Start: start, End: end,
			Reason: "x", State: state, CreatedAt: now, UpdatedAt: now, Version: 1}
	}
	pending := mk("pending", timebox.StatePending, now, now.Add(time.Hour))                      // due at its end
	approved := mk("approved", timebox.StateApproved, now.Add(-time.Second), now.Add(time.Hour)) // due now
	later := mk("later", timebox.StateApproved, now.Add(30*time.Minute), now.Add(time.Hour))     // due at its start
	done := mk("done", timebox.StateExpired, now.Add(-2*time.Hour), now.Add(-time.Hour))         // never
	update(t, db, func(tx timebox.Tx) error {
		for _, r := range []*timebox.Request{pending, approved, later, done} {
			if err := tx.CreateRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	check := func(wantDue []string, wantNext time.Time) {
		t.Helper()
		var due []*timebox.Request
		var next time.Time
		if err := db.View(t.Context(), func(tx timebox.Tx) (err error) {
			if due, err = tx.FindRequests(timebox.RequestFilter{DueBy: now}); err != nil {
				return err
			}
			next, err = tx.NextDue(now)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range due {
			ids = append(ids, r.ID)
		}
		if len(ids) != len(wantDue) || (len(ids) > 0 && ids[0] != wantDue[0]) || !next.Equal(wantNext) {
			t.Fatalf("due %v next %v; want %v next %v", ids, next, wantDue, wantNext)
		}
	}
	check([]string{"approved"}, later.Start)
	var since []*timebox.Request
	if err := db.View(t.Context(), func(tx timebox.Tx) (err error) {
		since, err = tx.FindRequests(timebox.RequestFilter{DueBy: now, DueAfter: approved.Start})
		return err
	}); err != nil || len(since) != 0 {
		t.Fatalf("due after the approved request's due time: %d requests, %v; want none", len(since), err)
	}
	if err := db.View(t.Context(), func(tx timebox.Tx) (err error) {
		since, err = tx.FindRequests(timebox.RequestFilter{DueBy: now, DueAfter: approved.Start.Add(-time.Microsecond)})
		return err
	}); err != nil || len(since) != 1 || since[0].ID != "approved" {
		t.Fatalf("due since just before the approved request's due time: %d requests, %v; want it", len(since), err)
	}
	// A revocation makes the pending-at-its-end request due at once; the due time follows
	// every update.
	pending.Ending, pending.EndingSince = timebox.EndingRevoke, now.Add(-time.Millisecond)
	later.State = timebox.StateCancelled
	update(t, db, func(tx timebox.Tx) error {
		if err := tx.UpdateRequest(pending); err != nil {
			return err
		}
		return tx.UpdateRequest(later)
	})
	due := []string{"approved", "pending"} // in due order: approved since its start, pending since its ending
	var next time.Time                     // nothing else is due later: approved and pending are due now
	check(due, next)
}
