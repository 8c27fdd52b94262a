package store_test

import (
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// A request's proofs come back whole from FindRequest, with their tags only from listings;
// writing a listed request back keeps the bodies; the tampered mark is kept and found.
func testProofs(t *testing.T, db *store.DB) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	r := &timebox.Request{ID: "p1", Requester: "alice", Database: "shop", Access: "ro", State: timebox.StateApproved,
		Start: now, End: now.Add(time.Hour), CreatedAt: now, UpdatedAt: now, Version: 1,
		Decided: timebox.Proof{Body: `{"v":1}`, Tag: "k1:aa"}}
	g := &timebox.Grant{RequestID: "p1", Server: "pg", Principal: "tbx_p1", Method: timebox.MethodEphemeralLogin,
		Status: timebox.GrantActive, Intended: timebox.Proof{Body: `{"v":1,"kind":"intent"}`, Tag: "k1:bb"}}
	update(t, db, func(tx timebox.Tx) error {
		if err := tx.CreateRequest(r); err != nil {
			return err
		}
		return tx.PutGrant(g)
	})
	var got *timebox.Request
	var list []*timebox.Request
	view(t, db, func(tx timebox.Tx) (err error) {
		if got, err = tx.FindRequest("p1"); err != nil {
			return err
		}
		list, err = tx.FindRequests(timebox.RequestFilter{})
		return err
	})
	if got.Decided != r.Decided || got.Grant.Intended != g.Intended {
		t.Fatalf("FindRequest proofs: %+v, %+v", got.Decided, got.Grant.Intended)
	}
	if len(list) != 1 || list[0].Decided != (timebox.Proof{Tag: "k1:aa"}) || list[0].Grant.Intended != (timebox.Proof{Tag: "k1:bb"}) {
		t.Fatalf("listing proofs: %+v", list)
	}
	l := list[0]
	l.Tampered = "end"
	update(t, db, func(tx timebox.Tx) error {
		if err := tx.PutGrant(l.Grant); err != nil {
			return err
		}
		return tx.UpdateRequest(l)
	})
	view(t, db, func(tx timebox.Tx) (err error) {
		if got, err = tx.FindRequest("p1"); err != nil {
			return err
		}
		list, err = tx.FindRequests(timebox.RequestFilter{Tampered: true})
		return err
	})
	if got.Decided != r.Decided || got.Grant.Intended != g.Intended || got.Tampered != "end" {
		t.Fatalf("after writing a listed request back: %+v, %+v, tampered %q", got.Decided, got.Grant.Intended, got.Tampered)
	}
	if len(list) != 1 || list[0].ID != "p1" {
		t.Fatalf("tampered filter: %v", list)
	}
	got.Decided = timebox.Proof{Body: `{"v":1,"end":"later"}`, Tag: "k2:cc"}
	update(t, db, func(tx timebox.Tx) error { return tx.UpdateRequest(got) })
	view(t, db, func(tx timebox.Tx) (err error) { got, err = tx.FindRequest("p1"); return err })
	if got.Decided.Body != `{"v":1,"end":"later"}` || got.Decided.Tag != "k2:cc" {
		t.Fatalf("a new proof: %+v", got.Decided)
	}
}

// The migration leaves the integrity upgrade to do once.
func testUpgrade(t *testing.T, db *store.DB) {
	var pending bool
	view(t, db, func(tx timebox.Tx) (err error) { pending, err = tx.PendingUpgrade("integrity"); return err })
	if !pending {
		t.Fatal("a new store has no pending integrity upgrade")
	}
	update(t, db, func(tx timebox.Tx) error { return tx.FinishUpgrade("integrity") })
	view(t, db, func(tx timebox.Tx) (err error) { pending, err = tx.PendingUpgrade("integrity"); return err })
	if pending {
		t.Fatal("the upgrade is still pending once finished")
	}
}
