package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// A removal from a person's own login keeps what the login's other live grants need, those
// of another user with the same db_user included, and nothing of other logins.
func TestKeepSharedLogin(t *testing.T) {
	st := openStore(t)
	cat := &timebox.Catalog{
		Servers:   []timebox.Server{{Name: "a", Engine: "postgres"}},
		Databases: []timebox.Database{{Name: "dm", Server: "a", Database: "dm", Method: timebox.MethodRoleMembership}},
		AccessLevels: []timebox.AccessLevel{{Name: "ro", Postgres: timebox.EngineRoles{Roles: []string{"reader"}}},
			{Name: "rw", Postgres: timebox.EngineRoles{Roles: []string{"writer"}}}},
		Users: []timebox.User{{Name: "alice", DBUser: "ops"}, {Name: "bob", DBUser: "ops"}, {Name: "carol"}},
	}
	s := New(st, cat, nil, nil)
	now := time.Now().UTC().Truncate(time.Microsecond)
	s.Now = func() time.Time { return now }
	add := func(id, user, access, login string, state timebox.State) {
		var g *timebox.Grant
		if state == timebox.StateActive {
			g = &timebox.Grant{RequestID: id, Server: "a", Principal: login, TargetDatabase: "dm", Method: timebox.MethodRoleMembership,
				Status: timebox.GrantActive, ValidUntil: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now}
		}
		putRequest(t, st, &timebox.Request{ID: id, Requester: user, Database: "dm", Access: access, Start: now.Add(-time.Minute),
			End: now.Add(time.Hour), Reason: "x", State: state, CreatedAt: now, UpdatedAt: now, Version: 1}, g)
	}
	add("a1", "alice", "rw", "ops", timebox.StateActive)
	add("b1", "bob", "ro", "ops", timebox.StateApproved) // window started, activation on its way
	add("c1", "carol", "rw", "carol", timebox.StateActive)
	roles, dbs, _, err := s.keep(context.Background(), loadRequest(t, st, "a1"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(roles, []string{"reader"}) || !slices.Equal(dbs, []string{"dm"}) {
		t.Fatalf("keep for alice's removal from login ops: roles %v, databases %v; want bob's [reader] on [dm]", roles, dbs)
	}
}

// The intent of an activation names everything it grants: roles, privileges (MySQL) and
// ad-hoc tables.
func TestActivationIntentNamesPrivileges(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	cat := &timebox.Catalog{
		Servers:      []timebox.Server{{Name: "m", Engine: timebox.EngineMySQL}},
		Databases:    []timebox.Database{{Name: "shop", Server: "m", Database: "shop", Method: timebox.MethodEphemeralLogin}},
		AccessLevels: []timebox.AccessLevel{{Name: "ro", MySQL: timebox.EngineRoles{Privileges: []string{"SELECT"}}}},
	}
	keys, _ := timebox.NewKeyring("scheduler-test-secret-key")
	s := New(st, cat, keys, map[string]timebox.Engine{"m": &fakeEngine{}})
	now := time.Now().UTC().Truncate(time.Microsecond)
	putSealed(t, st, keys, &timebox.Request{ID: "r1", Requester: "alice", Database: "shop", Access: "ro", Start: now.Add(-time.Minute),
		End: now.Add(time.Hour), Reason: "x", State: timebox.StateApproved, CreatedAt: now, UpdatedAt: now, Version: 1}, nil)
	if err := s.Process(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	var events []*timebox.Event
	if err := st.View(ctx, func(tx timebox.Tx) (err error) {
		events, err = tx.FindEvents(timebox.EventFilter{RequestID: "r1"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Action == "grant.create_intent" {
			if got, ok := e.Details["privileges"].([]any); !ok || len(got) != 1 || got[0] != "SELECT" {
				t.Fatalf("grant.create_intent privileges: %#v, want [SELECT]", e.Details["privileges"])
			}
			return
		}
	}
	t.Fatal("no grant.create_intent event")
}
