package scheduler

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
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
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat := &timebox.Catalog{
		Servers:   []timebox.Server{{Name: "a", Engine: "postgres"}},
		Databases: []timebox.Database{{Name: "da", Server: "a", Database: "da", Method: timebox.MethodEphemeralLogin}},
	}
	eng := &extendEngine{}
	sealer, _ := timebox.NewSealer("scheduler-test-secret-key")
	s := New(st, cat, sealer, map[string]timebox.Engine{"a": eng})
	now := time.Now().UTC().Truncate(time.Microsecond)
	s.Now = func() time.Time { return now }
	put := func(id string, oldEnd, newEnd time.Time) {
		err := st.Update(ctx, func(tx timebox.Tx) error {
			r := &timebox.Request{ID: id, Requester: "alice", Database: "da", Access: "ro", Start: now.Add(-time.Hour), End: newEnd,
				Reason: "x", State: timebox.StateActive, CreatedAt: now, UpdatedAt: now, Version: 1}
			if err := tx.CreateRequest(r); err != nil {
				return err
			}
			return tx.PutGrant(&timebox.Grant{RequestID: id, Server: "a", Principal: "tbx_" + id, TargetDatabase: "da",
				Method: timebox.MethodEphemeralLogin, Status: timebox.GrantActive, ValidUntil: oldEnd,
				SealedPassword: sealer.Seal("pw", id), CreatedAt: now, UpdatedAt: now})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	load := func(id string) *timebox.Request {
		var r *timebox.Request
		if err := st.View(ctx, func(tx timebox.Tx) (err error) { r, err = tx.FindRequest(id); return err }); err != nil {
			t.Fatal(err)
		}
		return r
	}

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
