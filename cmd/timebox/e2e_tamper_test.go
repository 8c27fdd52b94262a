package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/postgres"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// Someone who can write the SQLite store edits, in turn, each authenticated field of a live
// request and its grant: nothing of it is applied on PostgreSQL, the access is removed, and
// the edit is a store.tampered event, a metric, and a line of status and doctor.
func TestE2ETamperSQLite(t *testing.T) { testTamper(t, envOptions{}) }

// The same with the store on PostgreSQL (a DBA of the store's database edits it).
func TestE2ETamperPostgresStore(t *testing.T) {
	testTamper(t, envOptions{storePG: testdb.RequirePostgres(t)})
}

func testTamper(t *testing.T, o envOptions) {
	e := newEnv(t, o)
	e.start()
	ctx := context.Background()
	super, exec := e.super()
	extra := "extra_" + e.admin
	exec("CREATE ROLE " + postgres.QuoteIdent(extra) + " NOLOGIN")
	edit := func(id string, fn func(r *timebox.Request)) {
		t.Helper()
		err := e.in.Store.Update(ctx, func(tx timebox.Tx) error {
			r, err := tx.FindRequest(id)
			if err != nil {
				return err
			}
			fn(r)
			if r.Grant != nil {
				if err := tx.PutGrant(r.Grant); err != nil {
					return err
				}
			}
			return tx.UpdateRequest(r)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tampered := func(id string) (n int, fields []string) {
		for _, ev := range e.events(id) {
			if ev.Action == "store.tampered" {
				n++
				b, _ := json.Marshal(ev.Details["fields"])
				json.Unmarshal(b, &fields)
			}
		}
		return n, fields
	}
	// applied reports whether the scheduler acted on an edit: moved an expiry or repaired.
	applied := func(id string) bool {
		for _, ev := range e.events(id) {
			if ev.Action == "grant.extended" || ev.Action == "drift.repaired" {
				return true
			}
		}
		return false
	}
	// extra, or the real database's CONNECT, held by anyone but the admin's own roles.
	widened := func(principal string) string {
		t.Helper()
		var members []string
		if err := super.QueryRow(ctx, `SELECT ARRAY(SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
			JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = $1 AND r.rolname <> $2)`, extra, e.admin).Scan(&members); err != nil {
			t.Fatal(err)
		}
		if len(members) > 0 {
			return "role " + extra + " granted to " + strings.Join(members, ", ")
		}
		if exists, _ := e.roleExists(principal); exists {
			return "the login " + principal + " still exists"
		}
		if _, canLogin := e.roleExists(e.maint); canLogin {
			return "the shared login " + e.maint + " was unlocked"
		}
		return ""
	}
	cases := []struct {
		field string
		edit  func(r *timebox.Request)
	}{
		{"end", func(r *timebox.Request) { r.End = r.End.Add(30 * time.Minute) }},
		{"start", func(r *timebox.Request) { r.Start = r.Start.Add(-time.Hour) }},
		{"access", func(r *timebox.Request) { r.Access = "ddl" }},
		{"requester", func(r *timebox.Request) { r.Requester = "mallory" }},
		{"approvers", func(r *timebox.Request) {
			for i := range r.Reviews {
				if r.Reviews[i].Decision == timebox.ActionApprove {
					r.Reviews[i].Reviewer = "root"
				}
			}
		}},
		{"tables", func(r *timebox.Request) {
			r.Tables = []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"DELETE"}}}
		}},
		{"roles", func(r *timebox.Request) { r.Grant.Roles = append(r.Grant.Roles, extra) }},
		{"privileges", func(r *timebox.Request) { r.Grant.Privileges = []string{"CREATE"} }},
		{"grant_tables", func(r *timebox.Request) {
			r.Grant.Tables = []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"DELETE", "SELECT"}}}
		}},
		{"principal", func(r *timebox.Request) { r.Grant.Principal = e.maint }},
		{"server", func(r *timebox.Request) { r.Grant.Server = "elsewhere" }},
		{"target_database", func(r *timebox.Request) { r.Grant.TargetDatabase = e.other }},
		{"method", func(r *timebox.Request) { r.Grant.Method = timebox.MethodUnlockLogin }},
		{"valid_until", func(r *timebox.Request) { r.Grant.ValidUntil = r.Grant.ValidUntil.Add(30 * time.Minute) }},
	}
	var ids []string
	for _, c := range cases {
		id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "tamper "+c.field, "--ticket", "T")
		e.ok("bob", "approve", id)
		principal := e.waitState("alice", id, "active", 5*time.Second).Grant.Principal
		edit(id, c.edit)
		e.in.Scheduler.Reconcile(ctx)
		viewer := "root" // the requester's name may be the edit
		e.waitState(viewer, id, "revoked", 5*time.Second)
		e.in.Scheduler.Reconcile(ctx) // found again: no second event
		if w := widened(principal); w != "" {
			t.Errorf("%s edited: %s", c.field, w)
		}
		if n, fields := tampered(id); n != 1 || !slices.Contains(fields, c.field) {
			t.Errorf("%s edited: %d store.tampered events naming %v", c.field, n, fields)
		}
		if applied(id) {
			t.Errorf("%s edited: the edit was applied before the removal", c.field)
		}
		ids = append(ids, id)
	}

	// A person's own login (role_membership): extra roles written into the grant are never
	// granted to it, and what it was granted is revoked.
	id := e.request("alice", "--db", "team", "--access", "read-only", "--for", "10m", "--reason", "tamper team")
	e.ok("bob", "approve", id)
	e.waitState("alice", id, "active", 5*time.Second)
	edit(id, func(r *timebox.Request) { r.Grant.Roles = append(r.Grant.Roles, extra) })
	e.in.Scheduler.Reconcile(ctx)
	e.waitState("alice", id, "revoked", 5*time.Second)
	var held []string
	if err := super.QueryRow(ctx, `SELECT ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
		JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = $1)`, e.personal).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(held, extra) || slices.Contains(held, e.role) {
		t.Errorf("the person's login holds %v after a tampered grant", held)
	}
	if n, _ := tampered(id); n != 1 || applied(id) {
		t.Errorf("team: %d store.tampered events, applied %v", n, applied(id))
	}
	ids = append(ids, id)

	// A shared login (unlock_login) whose end was moved is locked again, not kept open.
	id = e.request("alice", "--db", "maint", "--access", "read-only", "--for", "10m", "--reason", "tamper maint")
	e.ok("bob", "approve", id)
	e.waitState("alice", id, "active", 5*time.Second)
	edit(id, func(r *timebox.Request) { r.End = r.End.Add(time.Hour) })
	e.in.Scheduler.Reconcile(ctx)
	e.waitState("alice", id, "revoked", 5*time.Second)
	if _, canLogin := e.roleExists(e.maint); canLogin {
		t.Error("the shared login stays unlocked after its end was edited")
	}
	if n, _ := tampered(id); n != 1 || applied(id) {
		t.Errorf("maint: %d store.tampered events, applied %v", n, applied(id))
	}
	ids = append(ids, id)

	// A pending request edited to approved activates nothing.
	id = e.request("alice", "--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "forged", "--ticket", "T")
	edit(id, func(r *timebox.Request) { r.State = timebox.StateApproved })
	e.in.Scheduler.Wake()
	if r := e.waitState("alice", id, "revoked", 5*time.Second); r.Grant != nil {
		t.Errorf("a forged approval got a grant: %+v", r.Grant)
	}
	if roles := e.tbxRoles(id); len(roles) > 0 {
		t.Errorf("a forged approval created %v", roles)
	}
	if n, fields := tampered(id); n != 1 || !slices.Equal(fields, []string{"decision"}) {
		t.Errorf("forged approval: %d store.tampered events naming %v", n, fields)
	}
	ids = append(ids, id)

	// An old copy of a revoked request's rows, written back (its proofs are genuine), is not
	// re-created by the reconciler: the audit log says it ended.
	id = e.request("alice", "--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "replay", "--ticket", "T")
	e.ok("bob", "approve", id)
	principal := e.waitState("alice", id, "active", 5*time.Second).Grant.Principal
	var saved *timebox.Request
	if err := e.in.Store.View(ctx, func(tx timebox.Tx) (err error) { saved, err = tx.FindRequest(id); return err }); err != nil {
		t.Fatal(err)
	}
	e.ok("bob", "revoke", id, "--note", "done")
	e.waitState("alice", id, "revoked", 5*time.Second)
	edit(id, func(r *timebox.Request) {
		v := r.Version
		*r = *saved
		r.Version = v
	})
	e.in.Scheduler.Reconcile(ctx)
	e.waitState("alice", id, "revoked", 5*time.Second)
	if exists, _ := e.roleExists(principal); exists {
		t.Error("a replayed revoked request was re-created on the database")
	}
	if n, fields := tampered(id); n != 1 || len(fields) != 1 || !strings.Contains(fields[0], "replayed") {
		t.Errorf("replay: %d store.tampered events naming %v", n, fields)
	}
	ids = append(ids, id)

	var m dto.Metric
	if err := e.in.Scheduler.Metrics.Tampered.Write(&m); err != nil || int(m.GetCounter().GetValue()) != len(ids) {
		t.Errorf("timebox_store_tampered_total = %v (%v), want %d", m.GetCounter().GetValue(), err, len(ids))
	}
	status := e.ok("root", "status")
	doctor, _, _ := e.cli("root", "doctor", "--config", e.cfgPath)
	for _, id := range ids {
		if !strings.Contains(status, id) {
			t.Errorf("status does not list tampered request %s:\n%s", id, status)
		}
		if !strings.Contains(doctor, id) {
			t.Errorf("doctor does not list tampered request %s:\n%s", id, doctor)
		}
	}
	// What was never edited still verifies, activates and expires as usual.
	ok := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "untouched", "--ticket", "T")
	e.ok("bob", "approve", ok)
	e.waitState("alice", ok, "active", 5*time.Second)
	e.in.Scheduler.Reconcile(ctx)
	if n, _ := tampered(ok); n != 0 {
		t.Errorf("an untouched request was found tampered")
	}
	c := e.creds("alice", ok)
	conn, err := c.connect(ctx, "")
	if err != nil {
		t.Fatalf("an untouched grant cannot log in: %v", err)
	}
	conn.Close(ctx)
}
