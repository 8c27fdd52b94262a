package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

func integrityScheduler(t *testing.T, keys *timebox.Keyring) (*Scheduler, timebox.Store, *fakeEngine, time.Time) {
	st := openStore(t)
	cat := &timebox.Catalog{
		Servers:      []timebox.Server{{Name: "a", Engine: "postgres"}},
		Databases:    []timebox.Database{{Name: "da", Server: "a", Database: "da", Method: timebox.MethodEphemeralLogin}},
		AccessLevels: []timebox.AccessLevel{{Name: "ro", Postgres: timebox.EngineRoles{Roles: []string{"reader"}}}},
	}
	eng := &fakeEngine{}
	s := New(st, cat, keys, map[string]timebox.Engine{"a": eng})
	now := time.Now().UTC().Truncate(time.Microsecond)
	s.Now = func() time.Time { return now }
	return s, st, eng, now
}

func events(t *testing.T, st timebox.Store, action string) []*timebox.Event {
	t.Helper()
	var out []*timebox.Event
	err := st.View(context.Background(), func(tx timebox.Tx) error {
		es, err := tx.FindEvents(timebox.EventFilter{})
		for _, e := range es {
			if e.Action == action {
				out = append(out, e)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// An upgraded store's live requests, which have no proofs yet, are trusted once at the first
// start with the key (one audit event); after that, a request without a proof is tampering.
func TestAdoptTrustOnFirstUse(t *testing.T) {
	ctx := context.Background()
	keys, _ := timebox.NewKeyring("scheduler-test-secret-key")
	s, st, _, now := integrityScheduler(t, keys)
	req := func(id string, state timebox.State) *timebox.Request {
		return &timebox.Request{ID: id, Requester: "alice", Database: "da", Access: "ro", Start: now.Add(-time.Minute),
			End: now.Add(time.Hour), Reason: "x", State: state, CreatedAt: now, UpdatedAt: now, Version: 1}
	}
	putRequest(t, st, req("old1", timebox.StateActive), &timebox.Grant{RequestID: "old1", Server: "a", Principal: "tbx_old1",
		TargetDatabase: "da", Method: timebox.MethodEphemeralLogin, Status: timebox.GrantActive, Roles: []string{"reader"},
		ValidUntil: now.Add(time.Hour), SealedPassword: keys.Sealer().Seal("pw", "old1"), CreatedAt: now, UpdatedAt: now})
	putRequest(t, st, req("old2", timebox.StateApproved), nil)
	if err := s.Adopt(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"old1", "old2"} {
		if bad := s.check(loadRequest(t, st, id)); bad != nil {
			t.Errorf("%s after the upgrade: %v does not verify", id, bad)
		}
	}
	if es := events(t, st, "store.integrity_adopted"); len(es) != 1 || len(es[0].Details["requests"].([]any)) != 2 {
		t.Fatalf("store.integrity_adopted events: %+v", es)
	}
	// Once done, never again: a request stored without a proof (an edit) is not trusted.
	putRequest(t, st, req("forged", timebox.StateApproved), nil)
	if err := s.Adopt(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Process(ctx, "forged"); err != nil {
		t.Fatal(err)
	}
	if r := loadRequest(t, st, "forged"); r.State != timebox.StateRevoked || r.Grant != nil || r.Tampered != "decision" {
		t.Fatalf("a request without a proof after the upgrade: %s, grant %v, tampered %q", r.State, r.Grant, r.Tampered)
	}
	if es := events(t, st, "store.integrity_adopted"); len(es) != 1 {
		t.Fatalf("the upgrade ran %d times", len(es))
	}
	// The trusted approved one activates normally.
	if err := s.Process(ctx, "old2"); err != nil {
		t.Fatal(err)
	}
	if r := loadRequest(t, st, "old2"); r.State != timebox.StateActive || s.check(r) != nil {
		t.Fatalf("old2 after activation: %s, %v", r.State, s.check(r))
	}
}

// After a key rotation, proofs made with the previous key still verify (activation and
// removal go on), and the next write of the row authenticates it with the current key.
func TestIntegrityAfterRotation(t *testing.T) {
	ctx := context.Background()
	old, _ := timebox.NewKeyring("scheduler-old-secret-key")
	keys, _ := timebox.NewKeyring("scheduler-new-secret-key", "scheduler-old-secret-key")
	s, st, eng, now := integrityScheduler(t, keys)
	putSealed(t, st, old, &timebox.Request{ID: "r1", Requester: "alice", Database: "da", Access: "ro", Start: now.Add(-time.Minute),
		End: now.Add(time.Hour), Reason: "x", State: timebox.StateApproved, CreatedAt: now, UpdatedAt: now, Version: 1}, nil)
	if err := s.Process(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	r := loadRequest(t, st, "r1")
	if r.State != timebox.StateActive || eng.grants.Load() != 1 {
		t.Fatalf("a previous key's decision did not activate: %s, %d grants", r.State, eng.grants.Load())
	}
	if !keys.Current(r.Decided.Tag) || !keys.Current(r.Grant.Intended.Tag) || s.check(r) != nil {
		t.Fatalf("after the write: decision with the current key %v, intent %v, check %v",
			keys.Current(r.Decided.Tag), keys.Current(r.Grant.Intended.Tag), s.check(r))
	}
	// A retired key's proofs no longer verify: the request is removed, not applied.
	fresh, _ := timebox.NewKeyring("scheduler-other-secret-key")
	s2 := New(st, s.Catalog, fresh, s.Engines)
	s2.Now = s.Now
	if ok, err := s2.failClosed(ctx, "r1"); err != nil || !ok {
		t.Fatalf("failClosed with an unknown key: %v, %v", ok, err)
	}
	if err := s2.Process(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if r := loadRequest(t, st, "r1"); r.State != timebox.StateRevoked || eng.revokes.Load() != 1 {
		t.Fatalf("with a retired key: %s, %d revokes", r.State, eng.revokes.Load())
	}
}

// A removal from a person's own login keeps nothing for another live request of that login
// that does not verify: an edited request cannot hold a role past its removal.
func TestKeepIgnoresTampered(t *testing.T) {
	keys, _ := timebox.NewKeyring("scheduler-test-secret-key")
	st := openStore(t)
	cat := &timebox.Catalog{
		Servers:   []timebox.Server{{Name: "a", Engine: "postgres"}},
		Databases: []timebox.Database{{Name: "dm", Server: "a", Database: "dm", Method: timebox.MethodRoleMembership}},
		AccessLevels: []timebox.AccessLevel{{Name: "ro", Postgres: timebox.EngineRoles{Roles: []string{"reader"}}},
			{Name: "rw", Postgres: timebox.EngineRoles{Roles: []string{"writer"}}}},
		Users: []timebox.User{{Name: "alice", DBUser: "ops"}},
	}
	s := New(st, cat, keys, nil)
	now := time.Now().UTC().Truncate(time.Microsecond)
	s.Now = func() time.Time { return now }
	req := func(id, access string, state timebox.State) *timebox.Request {
		return &timebox.Request{ID: id, Requester: "alice", Database: "dm", Access: access, Start: now.Add(-time.Minute),
			End: now.Add(time.Hour), Reason: "x", State: state, CreatedAt: now, UpdatedAt: now, Version: 1}
	}
	putSealed(t, st, keys, req("a1", "ro", timebox.StateActive), &timebox.Grant{RequestID: "a1", Server: "a", Principal: "ops",
		TargetDatabase: "dm", Method: timebox.MethodRoleMembership, Status: timebox.GrantActive, Roles: []string{"reader"},
		ValidUntil: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now})
	genuine := req("b1", "ro", timebox.StateApproved)
	keys.SealDecision(genuine)
	edited := req("b2", "rw", timebox.StateApproved)
	edited.Decided = genuine.Decided // a genuine proof, of another request
	putRequest(t, st, genuine, nil)
	putRequest(t, st, edited, nil)
	roles, _, _, err := s.keep(context.Background(), loadRequest(t, st, "a1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(roles) != 1 || roles[0] != "reader" {
		t.Fatalf("keep: %v, want only the genuine request's [reader]", roles)
	}
}

// TestEndedReplays: a live request's rows written back from before an event that changed it
// (a revocation asked for, a release, a reopen after an approver was disabled) are a replay;
// the same events with rows that reflect them are not.
func TestEndedReplays(t *testing.T) {
	keys, _ := timebox.NewKeyring("scheduler-test-secret-key")
	st := openStore(t)
	st.Keys = keys
	now := time.Now().UTC()
	cases := []struct {
		name    string
		actions []string
		state   timebox.State
		ending  timebox.Ending
		want    string
	}{
		{"approved", []string{"request.created", "request.approved"}, timebox.StateApproved, timebox.EndingNone, ""},
		{"revoke asked, row without it", []string{"request.approved", "request.activated", "request.revoke_requested"}, timebox.StateActive, timebox.EndingNone, "request.revoke_requested"},
		{"revoke asked, row with it", []string{"request.approved", "request.activated", "request.revoke_requested"}, timebox.StateActive, timebox.EndingRevoke, ""},
		{"release asked, row without it", []string{"request.approved", "request.release_requested"}, timebox.StateActive, timebox.EndingNone, "request.release_requested"},
		{"released", []string{"request.approved", "request.released"}, timebox.StateActive, timebox.EndingNone, "request.released"},
		{"reopened, row approved", []string{"request.approved", "request.reopened"}, timebox.StateApproved, timebox.EndingNone, "request.reopened after its last approval"},
		{"reopened, row pending", []string{"request.approved", "request.reopened"}, timebox.StatePending, timebox.EndingNone, ""},
		{"reopened, approved again", []string{"request.approved", "request.reopened", "request.approved"}, timebox.StateApproved, timebox.EndingNone, ""},
	}
	for i, c := range cases {
		id := fmt.Sprintf("replay%d", i)
		err := st.Update(context.Background(), func(tx timebox.Tx) error {
			for _, a := range c.actions {
				if err := tx.AppendEvent(&timebox.Event{Time: now, Actor: "timebox", Action: a, RequestID: id}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		r := &timebox.Request{ID: id, State: c.state, Ending: c.ending}
		var got string
		if err := st.View(context.Background(), func(tx timebox.Tx) (err error) { got, err = ended(tx, r); return err }); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: ended = %q, want %q", c.name, got, c.want)
		}
	}
}
