package scheduler

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// A request whose last Process failed outside the engine is not dispatched again for a
// second, so a lasting store error cannot spin the loop; after the cooldown it is.
func TestDispatchCooldownAfterFailure(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	r := &timebox.Request{ID: "r1", Requester: "alice", Database: "db", Access: "ro", Start: now.Add(-time.Hour),
		End: now.Add(-time.Minute), Reason: "x", State: timebox.StatePending, CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := st.Update(ctx, func(tx timebox.Tx) error { return tx.CreateRequest(r) }); err != nil {
		t.Fatal(err)
	}
	clock := now
	s := New(st, &timebox.Catalog{}, nil, nil)
	s.Now = func() time.Time { return clock }
	s.done(ctx, "r1", errors.New("store is full"))
	if next := s.Dispatch(ctx); !next.Equal(now.Add(time.Second)) {
		t.Fatalf("next deadline %v, want the end of the cooldown %v", next, now.Add(time.Second))
	}
	if s.inflight["r1"] {
		t.Fatal("a request in cooldown was dispatched")
	}
	clock = now.Add(1100 * time.Millisecond)
	s.Dispatch(ctx)
	s.wg.Wait()
	var got *timebox.Request
	st.View(ctx, func(tx timebox.Tx) (err error) { got, err = tx.FindRequest("r1"); return err })
	if got.State != timebox.StateExpired {
		t.Fatalf("after the cooldown the overdue request is %s, want expired", got.State)
	}
}
