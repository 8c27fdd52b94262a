package scheduler

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// extendEngine is a fakeEngine whose Extend fails while failExtend is set, and counts calls.
type extendEngine struct {
	fakeEngine
	failExtend atomic.Bool
	extends    atomic.Int64
	lastUntil  atomic.Value
}

func (f *extendEngine) Extend(_ context.Context, p timebox.GrantPlan) error {
	f.extends.Add(1)
	f.lastUntil.Store(p.ValidUntil)
	if p.Password != "" {
		return timebox.Errorf(timebox.EINTERNAL, "Extend was handed the password")
	}
	if f.failExtend.Load() {
		return timebox.Errorf(timebox.EINVALID, "role dropped by hand")
	}
	return nil
}

// An approved extension moves the grant's expiry without the password; a failing Extend is
// retried with backoff, and once the end passes the removal runs instead of more retries.
func TestExtendThenExpire(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cat := &timebox.Catalog{
		Servers:   []timebox.Server{{Name: "a", Engine: "postgres"}},
		Databases: []timebox.Database{{Name: "da", Server: "a", Database: "da", Method: timebox.MethodEphemeralLogin}},
	}
	eng := &extendEngine{}
	keys, _ := timebox.NewKeyring("scheduler-test-secret-key")
	s := New(st, cat, keys, map[string]timebox.Engine{"a": eng})
	now := time.Now().UTC().Truncate(time.Microsecond)
	s.Now = func() time.Time { return now }
	put := func(id string, oldEnd, newEnd time.Time) {
		putSealed(t, st, keys, &timebox.Request{ID: id, Requester: "alice", Database: "da", Access: "ro", Start: now.Add(-time.Hour), End: newEnd,
			Reason: "x", State: timebox.StateActive, CreatedAt: now, UpdatedAt: now, Version: 1},
			&timebox.Grant{RequestID: id, Server: "a", Principal: "tbx_" + id, TargetDatabase: "da",
				Method: timebox.MethodEphemeralLogin, Status: timebox.GrantActive, ValidUntil: oldEnd,
				SealedPassword: keys.Sealer().Seal("pw", id), CreatedAt: now, UpdatedAt: now})
	}
	load := func(id string) *timebox.Request { return loadRequest(t, st, id) }

	// Success: the grant's expiry follows the end.
	put("ok", now.Add(time.Second), now.Add(time.Hour))
	if err := s.Process(ctx, "ok"); err != nil {
		t.Fatal(err)
	}
	if r := load("ok"); !r.Grant.ValidUntil.Equal(now.Add(time.Hour)) || r.ExtensionUnsynced() || eng.extends.Load() != 1 {
		t.Fatalf("after the extension: valid until %s, %d calls", r.Grant.ValidUntil, eng.extends.Load())
	}

	// Failure: retried after a backoff, not in a loop; after the end, removed.
	eng.failExtend.Store(true)
	put("bad", now.Add(time.Second), now.Add(2*time.Second))
	if err := s.Process(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	r := load("bad")
	if due, _ := r.DueAt(); !due.After(now) || r.Grant.LastError == "" {
		t.Fatalf("after a failed extension: due %s, last error %q", due, r.Grant.LastError)
	}
	if err := s.Process(ctx, "bad"); err != nil || eng.extends.Load() != 2 {
		t.Fatalf("a retry before its time ran: %d calls, %v", eng.extends.Load(), err)
	}
	now = now.Add(3 * time.Second) // past the end
	if err := s.Process(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	if r := load("bad"); r.State != timebox.StateExpired || eng.revokes.Load() != 1 || eng.extends.Load() != 2 {
		t.Errorf("past the end: %s, %d revokes, %d extends", r.State, eng.revokes.Load(), eng.extends.Load())
	}
}

// Repeated failures of one extension are one audit event, counted from the first attempt
// (not from the activation's), and backed off; a grant that left the phase meanwhile keeps
// its own retry state.
func TestExtendFailuresRecorded(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cat := &timebox.Catalog{
		Servers:   []timebox.Server{{Name: "a", Engine: "postgres"}},
		Databases: []timebox.Database{{Name: "da", Server: "a", Database: "da", Method: timebox.MethodEphemeralLogin}},
	}
	eng := &extendEngine{}
	eng.failExtend.Store(true)
	s := New(st, cat, nil, map[string]timebox.Engine{"a": eng})
	now := time.Now().UTC().Truncate(time.Microsecond)
	s.Now = func() time.Time { return now }
	putRequest(t, st, &timebox.Request{ID: "x", Requester: "alice", Database: "da", Access: "ro", Start: now.Add(-time.Hour),
		End: now.Add(time.Hour), Reason: "x", State: timebox.StateActive, CreatedAt: now, UpdatedAt: now, Version: 1},
		&timebox.Grant{RequestID: "x", Server: "a", Principal: "tbx_x", TargetDatabase: "da", Method: timebox.MethodEphemeralLogin,
			Status: timebox.GrantActive, Attempts: 3, ValidUntil: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now})
	for i := range 3 {
		if err := s.Process(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		g := loadRequest(t, st, "x").Grant
		if g.Attempts != i+1 || g.LastError == "" || !g.NextAttemptAt.After(now) {
			t.Fatalf("after failure %d: %d attempts, error %q, next attempt %s", i+1, g.Attempts, g.LastError, g.NextAttemptAt)
		}
		now = g.NextAttemptAt
	}
	var events []*timebox.Event
	if err := st.View(ctx, func(tx timebox.Tx) (err error) {
		events, err = tx.FindEvents(timebox.EventFilter{RequestID: "x"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Action != "grant.extend_failed" {
		t.Fatalf("events after three failed extensions: %d, want one grant.extend_failed", len(events))
	}

	// A removal took over (a crash, another replica): a late extension failure must not put
	// its retry time and error on the removal.
	if err := st.Update(ctx, func(tx timebox.Tx) error {
		r, err := tx.FindRequest("x")
		if err != nil {
			return err
		}
		r.Ending, r.EndingSince = timebox.EndingRevoke, now
		r.Grant.Status, r.Grant.LastError, r.Grant.NextAttemptAt, r.Grant.Attempts = timebox.GrantRevoking, "", time.Time{}, 1
		if err := tx.PutGrant(r.Grant); err != nil {
			return err
		}
		return tx.UpdateRequest(r)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.failed(ctx, "x", timebox.GrantActive, "grant.extend_failed", "extend", timebox.Errorf(timebox.EINVALID, "late")); err != nil {
		t.Fatal(err)
	}
	if g := loadRequest(t, st, "x").Grant; g.LastError != "" || !g.NextAttemptAt.IsZero() || g.Attempts != 1 {
		t.Fatalf("a late extension failure changed the removal: error %q, next attempt %s, %d attempts", g.LastError, g.NextAttemptAt, g.Attempts)
	}
}
