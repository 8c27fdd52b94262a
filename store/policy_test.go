package store_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// testPolicyRoundTrip stores a request's policy part (with times off UTC and with
// nanoseconds) and a grant's privileges and ad-hoc tables, reads them back as stored, and
// finds open follow-up reviews through their column.
func testPolicyRoundTrip(t *testing.T, db *store.DB) {
	tables := []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"SELECT", "UPDATE"}, Columns: []string{"id", "state"}}}
	r := newRequest("r1", "alice", "orders", timebox.StateActive, at(0))
	r.Policy = timebox.Policy{
		Rule: "prod-two-approvers", Awaiting: "1 more of dba", Tables: tables, RequestedTables: tables,
		BreakGlass: true, FollowUp: &timebox.FollowUp{Open: true},
		Extension: &timebox.Extension{End: at(300), Rule: "prod-two-approvers", Reason: "more time", RequestedAt: at(50),
			Reviews: []timebox.Review{{Reviewer: "bob", Decision: timebox.ActionApprove, At: at(51)}}},
		UnusedAfter: timebox.Duration(15 * time.Minute), UnusedBy: at(15), UsedAt: at(3),
	}
	update(t, db, func(tx timebox.Tx) error {
		if err := tx.CreateRequest(r); err != nil {
			return err
		}
		return tx.CreateRequest(newRequest("r2", "bob", "orders", timebox.StateActive, at(1)))
	})
	want := r.Policy
	want.Extension = &timebox.Extension{End: utc(at(300)), Rule: "prod-two-approvers", Reason: "more time", RequestedAt: utc(at(50)),
		Reviews: []timebox.Review{{Reviewer: "bob", Decision: timebox.ActionApprove, At: utc(at(51))}}}
	want.UnusedBy, want.UsedAt = utc(at(15)), utc(at(3))
	if got := findRequest(t, db, "r1").Policy; !reflect.DeepEqual(got, want) {
		t.Errorf("policy:\n got %+v\nwant %+v", got, want)
	}
	if got := findRequest(t, db, "r2").Policy; !reflect.DeepEqual(got, timebox.Policy{}) {
		t.Errorf("the policy of a request without one: %+v, want none", got)
	}
	openFollowUps := func() (ids []string) {
		view(t, db, func(tx timebox.Tx) error {
			rs, err := tx.FindRequests(timebox.RequestFilter{FollowUpOpen: true})
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			return err
		})
		return ids
	}
	if ids := openFollowUps(); !reflect.DeepEqual(ids, []string{"r1"}) {
		t.Errorf("open follow-ups: %v, want [r1]", ids)
	}
	r.FollowUp = &timebox.FollowUp{ClosedBy: "carol", ClosedAt: at(70)}
	update(t, db, func(tx timebox.Tx) error { return tx.UpdateRequest(r) })
	if ids := openFollowUps(); len(ids) != 0 {
		t.Errorf("open follow-ups after the review was closed: %v, want none", ids)
	}

	g := &timebox.Grant{RequestID: "r1", Server: "my", Principal: "tbx_alice_r1", TargetDatabase: "orders", Method: "ephemeral_login",
		Status: timebox.GrantActive, Roles: []string{}, Privileges: []string{"SELECT", "SHOW VIEW"}, Tables: tables}
	update(t, db, func(tx timebox.Tx) error { return tx.PutGrant(g) })
	if got := findRequest(t, db, "r1").Grant; !reflect.DeepEqual(got.Privileges, g.Privileges) || !reflect.DeepEqual(got.Tables, tables) {
		t.Errorf("grant privileges %v and tables %+v, want %v and %+v", got.Privileges, got.Tables, g.Privileges, tables)
	}
	g.Privileges, g.Tables = nil, nil
	update(t, db, func(tx timebox.Tx) error { return tx.PutGrant(g) })
	if got := findRequest(t, db, "r1").Grant; got.Privileges != nil || got.Tables != nil {
		t.Errorf("a grant without privileges or tables reads back %v and %+v, want nil", got.Privileges, got.Tables)
	}
}

// testDisabledUsers records, replaces, lists and removes users disabled through the API.
func testDisabledUsers(t *testing.T, db *store.DB) {
	update(t, db, func(tx timebox.Tx) error {
		if err := tx.DisableUser(&timebox.DisabledUser{Name: "alice", By: "admin", Note: "left", At: at(1)}); err != nil {
			return err
		}
		if err := tx.DisableUser(&timebox.DisabledUser{Name: "bob", By: "admin", At: at(2)}); err != nil {
			return err
		}
		return tx.DisableUser(&timebox.DisabledUser{Name: "alice", By: "root", Note: "left the company", At: at(3)})
	})
	var got map[string]*timebox.DisabledUser
	view(t, db, func(tx timebox.Tx) (err error) { got, err = tx.DisabledUsers(); return err })
	want := map[string]*timebox.DisabledUser{
		"alice": {Name: "alice", By: "root", Note: "left the company", At: utc(at(3))},
		"bob":   {Name: "bob", By: "admin", At: utc(at(2))},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("disabled users: got %v, want %v", got, want)
	}
	update(t, db, func(tx timebox.Tx) error { return tx.EnableUser("alice") })
	err := db.Update(t.Context(), func(tx timebox.Tx) error { return tx.EnableUser("alice") })
	wantCode(t, err, timebox.ENOTFOUND)
	view(t, db, func(tx timebox.Tx) (err error) { got, err = tx.DisabledUsers(); return err })
	if len(got) != 1 || got["bob"] == nil {
		t.Errorf("disabled users after enabling alice: %v, want bob only", got)
	}
}
