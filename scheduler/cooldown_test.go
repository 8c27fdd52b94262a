package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// A request whose last Process failed outside the engine is not dispatched again for a
// second, so a lasting store error cannot spin the loop; after the cooldown it is.
func TestDispatchCooldownAfterFailure(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	putRequest(t, st, &timebox.Request{ID: "r1", Requester: "alice", Database: "db", Access: "ro", Start: now.Add(-time.Hour),
		End: now.Add(-time.Minute), Reason: "x", State: timebox.StatePending, CreatedAt: now, UpdatedAt: now, Version: 1}, nil)
	clock := now
	s := New(st, &timebox.Catalog{}, nil, nil)
	s.Now = func() time.Time { return clock }
	s.done(ctx, "r1", nil, errors.New("store is full"))
	if next := s.Dispatch(ctx); !next.Equal(now.Add(time.Second)) {
		t.Fatalf("next deadline %v, want the end of the cooldown %v", next, now.Add(time.Second))
	}
	if s.inflight["r1"] {
		t.Fatal("a request in cooldown was dispatched")
	}
	clock = now.Add(1100 * time.Millisecond)
	s.Dispatch(ctx)
	s.wg.Wait()
	if got := loadRequest(t, st, "r1"); got.State != timebox.StateExpired {
		t.Fatalf("after the cooldown the overdue request is %s, want expired", got.State)
	}
}

// A timer-driven Dispatch reads only what became due since the last one; a Wake, the end of
// a Sweep, or a clock that went back makes it read everything due.
func TestDispatchIncremental(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	base := time.Now().UTC().Truncate(time.Microsecond)
	clock := base
	s := New(st, &timebox.Catalog{}, nil, nil)
	s.Now = func() time.Time { return clock }
	add := func(id string, end time.Time) {
		putRequest(t, st, &timebox.Request{ID: id, Requester: "alice", Database: "db", Access: "ro", Start: end.Add(-time.Hour),
			End: end, Reason: "x", State: timebox.StatePending, CreatedAt: base, UpdatedAt: base, Version: 1}, nil)
	}
	state := func(id string) timebox.State {
		s.wg.Wait()
		return loadRequest(t, st, id).State
	}
	s.Dispatch(ctx) // the first pass reads everything; nothing is due
	add("old", base.Add(-time.Second))
	clock = base.Add(10 * time.Millisecond)
	s.Dispatch(ctx)
	if got := state("old"); got != timebox.StatePending {
		t.Fatalf("a timer-driven pass handled a request due before the last pass (%s): it should only read new ones", got)
	}
	s.Wake()
	s.Dispatch(ctx)
	if got := state("old"); got != timebox.StateExpired {
		t.Fatalf("after a Wake the overdue request is %s, want expired", got)
	}
	add("new", base.Add(20*time.Millisecond))
	clock = base.Add(30 * time.Millisecond)
	s.Dispatch(ctx)
	if got := state("new"); got != timebox.StateExpired {
		t.Fatalf("a request that became due since the last pass is %s, want expired", got)
	}
	add("swept", base.Add(-2*time.Second))
	clock = clock.Add(s.Sweep)
	s.Dispatch(ctx)
	if got := state("swept"); got != timebox.StateExpired {
		t.Fatalf("after a Sweep the overdue request is %s, want expired", got)
	}
	add("back", base.Add(-3*time.Second))
	clock = base // the clock went back
	s.Dispatch(ctx)
	if got := state("back"); got != timebox.StateExpired {
		t.Fatalf("after the clock went back the overdue request is %s, want expired", got)
	}
}

// done asks for a full read when the request it finished is due already (its end passed
// while it was in flight: a timer-driven pass would not see it), and only a nudge otherwise.
func TestDoneWakesForOverdue(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	s := New(st, &timebox.Catalog{}, nil, nil)
	s.Now = func() time.Time { return now }
	for id, end := range map[string]time.Time{"overdue": now.Add(-time.Second), "later": now.Add(time.Hour)} {
		putRequest(t, st, &timebox.Request{ID: id, Requester: "alice", Database: "db", Access: "ro", Start: now.Add(-time.Hour),
			End: end, Reason: "x", State: timebox.StateActive, CreatedAt: now, UpdatedAt: now, Version: 1}, nil)
	}
	s.done(ctx, "later", loadRequest(t, st, "later"), nil)
	if s.fullScan.Load() {
		t.Fatal("a request due in an hour asked for a full read")
	}
	select {
	case <-s.wake: // nudged
	default:
		t.Fatal("a request due in an hour did not nudge the loop to set its timer")
	}
	s.done(ctx, "overdue", loadRequest(t, st, "overdue"), nil)
	if !s.fullScan.Load() {
		t.Fatal("an overdue request did not ask for a full read")
	}
}
