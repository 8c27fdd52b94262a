package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// handingEngine is a fakeEngine whose removals hand objects over, as engine/postgres does
// for a login that created some (its own tests check that on a real server).
type handingEngine struct{ fakeEngine }

func (f *handingEngine) Revoke(context.Context, timebox.GrantPlan) (timebox.RevokeResult, error) {
	return timebox.RevokeResult{Dropped: true, HandedTo: "tbadmin_quarantine", Handed: []timebox.OwnedObject{
		{Kind: "function", Schema: "public", Name: "steal()", Database: "shop", Risk: "security definer"},
		{Kind: "table", Schema: "public", Name: "invoices2", Database: "shop"},
		{Kind: "large object", Name: "16406", Database: "shop"},
	}}, nil
}

// The removal's audit event lists every object the login left, the role it went to, and
// flags the SECURITY DEFINER function.
func TestRemovalEventListsHanded(t *testing.T) {
	st := openStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	r := &timebox.Request{ID: "r1", Requester: "alice", Database: "shop", Access: "ddl",
		Start: now.Add(-time.Hour), End: now.Add(-time.Second), Reason: "x", State: timebox.StateActive,
		CreatedAt: now, UpdatedAt: now, Version: 1}
	putRequest(t, st, r, &timebox.Grant{RequestID: "r1", Server: "a", Principal: "tbx_r1", TargetDatabase: "shop",
		Method: timebox.MethodEphemeralLogin, Status: timebox.GrantActive, ValidUntil: r.End, CreatedAt: now, UpdatedAt: now})
	s := New(st, &timebox.Catalog{}, nil, map[string]timebox.Engine{"a": &handingEngine{}})
	got, err := s.remove(t.Context(), "r1")
	if err != nil || got.State != timebox.StateExpired {
		t.Fatalf("remove = %+v, %v", got, err)
	}
	var events []*timebox.Event
	err = st.View(t.Context(), func(tx timebox.Tx) (err error) {
		events, err = tx.FindEvents(timebox.EventFilter{RequestID: "r1"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var ev *timebox.Event
	for _, e := range events {
		if e.Action == "request.expired" {
			ev = e
		}
	}
	if ev == nil {
		t.Fatalf("no request.expired event in %d events", len(events))
	}
	if ev.Details["handed_to"] != "tbadmin_quarantine" {
		t.Errorf("handed_to = %v", ev.Details["handed_to"])
	}
	handed, _ := ev.Details["handed"].([]any)
	if len(handed) != 3 {
		t.Fatalf("handed = %#v, want 3 objects", ev.Details["handed"])
	}
	fn, _ := handed[0].(map[string]any)
	if fn["kind"] != "function" || fn["schema"] != "public" || fn["name"] != "steal()" || fn["database"] != "shop" || fn["risk"] != "security definer" {
		t.Errorf("handed[0] = %#v, want the SECURITY DEFINER function flagged", fn)
	}
	if lo, _ := handed[2].(map[string]any); lo["kind"] != "large object" || lo["name"] != "16406" || lo["risk"] != nil {
		t.Errorf("handed[2] = %#v", lo)
	}
}

// failingHandEngine hands objects over, then fails the rest of the removal once, as when the
// session-ending step errs after the hand-over committed; the retry finds nothing owned.
type failingHandEngine struct{ calls int }

func (f *failingHandEngine) Revoke(context.Context, timebox.GrantPlan) (timebox.RevokeResult, error) {
	if f.calls++; f.calls == 1 {
		return timebox.RevokeResult{HandedTo: "tbadmin_quarantine", Handed: []timebox.OwnedObject{
				{Kind: "function", Schema: "public", Name: "steal()", Database: "shop", Risk: "security definer"}}},
			timebox.Errorf(timebox.EUNAVAILABLE, "server unreachable: connection reset")
	}
	return timebox.RevokeResult{Dropped: true}, nil
}
func (f *failingHandEngine) Grant(context.Context, timebox.GrantPlan) error  { return nil }
func (f *failingHandEngine) Extend(context.Context, timebox.GrantPlan) error { return nil }
func (f *failingHandEngine) Ping(context.Context) error                      { return nil }
func (f *failingHandEngine) Close() error                                    { return nil }

// What a removal that then failed had handed over is in the audit log (grant.handed_over),
// though the retry that finishes it hands over nothing.
func TestFailedRemovalKeepsHanded(t *testing.T) {
	st := openStore(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	r := &timebox.Request{ID: "r2", Requester: "alice", Database: "shop", Access: "ddl",
		Start: now.Add(-time.Hour), End: now.Add(-time.Second), Reason: "x", State: timebox.StateActive,
		CreatedAt: now, UpdatedAt: now, Version: 1}
	putRequest(t, st, r, &timebox.Grant{RequestID: "r2", Server: "a", Principal: "tbx_r2", TargetDatabase: "shop",
		Method: timebox.MethodEphemeralLogin, Status: timebox.GrantActive, ValidUntil: r.End, CreatedAt: now, UpdatedAt: now})
	s := New(st, &timebox.Catalog{}, nil, map[string]timebox.Engine{"a": &failingHandEngine{}})
	if got, err := s.remove(t.Context(), "r2"); err != nil || got.State != timebox.StateActive || got.Grant.Status != timebox.GrantRevoking {
		t.Fatalf("first removal = %+v, %v; want it failed and retrying", got, err)
	}
	s.cooldown = map[string]time.Time{} // retry at once
	later := now.Add(time.Minute)
	s.Now = func() time.Time { return later }
	if got, err := s.remove(t.Context(), "r2"); err != nil || got.State != timebox.StateExpired {
		t.Fatalf("retry = %+v, %v", got, err)
	}
	var events []*timebox.Event
	if err := st.View(t.Context(), func(tx timebox.Tx) (err error) {
		events, err = tx.FindEvents(timebox.EventFilter{RequestID: "r2"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Action == "grant.handed_over" {
			n++
			if handed, _ := e.Details["handed"].([]any); len(handed) != 1 || e.Details["handed_to"] != "tbadmin_quarantine" {
				t.Errorf("grant.handed_over details = %v", e.Details)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d grant.handed_over events, want 1", n)
	}
}
