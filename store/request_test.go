package store_test

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// fullRequest returns a request with every field set, its times off UTC and with nanoseconds.
func fullRequest() *timebox.Request {
	return &timebox.Request{
		ID: "r1", Requester: "alice", Database: "orders", Access: "read-write",
		Start: at(10), End: at(130), RequestedStart: at(5), RequestedEnd: at(200),
		Reason: "incident 42: the “orders” table is stuck ✓", Ticket: "INC-42",
		State: timebox.StateActive, Ending: timebox.EndingRevoke, EndingSince: at(60),
		Reviews: []timebox.Review{
			{Reviewer: "bob", Decision: timebox.ActionApprove, Note: "ok", Changes: "narrowed the window", At: at(2)},
			{Reviewer: "carol", Decision: timebox.ActionApprove, At: at(3)},
		},
		ActivatedAt: at(10), EndedAt: at(61), CreatedAt: at(0), UpdatedAt: at(61), Version: 1,
	}
}

// normalised returns a copy of r with its times as the store returns them.
func normalised(r *timebox.Request) *timebox.Request {
	c := *r
	c.Start, c.End, c.RequestedStart, c.RequestedEnd = utcOrZero(r.Start), utcOrZero(r.End), utcOrZero(r.RequestedStart), utcOrZero(r.RequestedEnd)
	c.EndingSince, c.ActivatedAt, c.EndedAt = utcOrZero(r.EndingSince), utcOrZero(r.ActivatedAt), utcOrZero(r.EndedAt)
	c.CreatedAt, c.UpdatedAt = utcOrZero(r.CreatedAt), utcOrZero(r.UpdatedAt)
	c.Reviews = []timebox.Review{}
	for _, rv := range r.Reviews {
		rv.At = utcOrZero(rv.At)
		c.Reviews = append(c.Reviews, rv)
	}
	if r.Grant != nil {
		g := *r.Grant
		g.ValidUntil, g.LastAttemptAt, g.NextAttemptAt = utcOrZero(g.ValidUntil), utcOrZero(g.LastAttemptAt), utcOrZero(g.NextAttemptAt)
		g.CreatedAt, g.UpdatedAt = utcOrZero(g.CreatedAt), utcOrZero(g.UpdatedAt)
		if g.Roles == nil {
			g.Roles = []string{}
		}
		c.Grant = &g
	}
	return &c
}

func utcOrZero(v time.Time) time.Time {
	if v.IsZero() {
		return time.Time{}
	}
	return utc(v)
}

func checkRequest(t *testing.T, what string, got, want *timebox.Request) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
		if got.Grant != nil && want.Grant != nil {
			t.Errorf("grants:\n got %+v\nwant %+v", *got.Grant, *want.Grant)
		}
	}
}

func findRequest(t *testing.T, db *store.DB, id string) *timebox.Request {
	t.Helper()
	var r *timebox.Request
	view(t, db, func(tx timebox.Tx) (err error) {
		r, err = tx.FindRequest(id)
		return err
	})
	return r
}

func testRequestRoundTrip(t *testing.T, db *store.DB) {
	r := fullRequest()
	want := normalised(r)
	update(t, db, func(tx timebox.Tx) error { return tx.CreateRequest(r) })
	checkRequest(t, "the created request", r, want)
	checkRequest(t, "FindRequest", findRequest(t, db, "r1"), want)

	// Change every field but the ID.
	r.Requester, r.Database, r.Access = "bob", "billing", "read"
	r.Start, r.End, r.RequestedStart, r.RequestedEnd = at(20), at(40), at(21), at(41)
	r.Reason, r.Ticket, r.State, r.Ending = "other", "", timebox.StateRevoked, timebox.EndingNone
	r.EndingSince, r.ActivatedAt, r.EndedAt = time.Time{}, time.Time{}, at(99)
	r.Reviews = append(r.Reviews, timebox.Review{Reviewer: "dave", Decision: timebox.ActionRevoke, Note: "done", At: at(98)})
	r.CreatedAt, r.UpdatedAt = at(1), at(99)
	update(t, db, func(tx timebox.Tx) error { return tx.UpdateRequest(r) })
	want = normalised(r)
	if r.Version != 2 {
		t.Errorf("Version after UpdateRequest = %d, want 2", r.Version)
	}
	checkRequest(t, "FindRequest after UpdateRequest", findRequest(t, db, "r1"), want)
	view(t, db, func(tx timebox.Tx) error {
		rs, err := tx.FindRequests(timebox.RequestFilter{})
		if err != nil {
			return err
		}
		if len(rs) != 1 {
			t.Fatalf("FindRequests returned %d requests, want 1", len(rs))
		}
		checkRequest(t, "FindRequests", rs[0], want)
		return nil
	})
}

func testRequestZeroValues(t *testing.T, db *store.DB) {
	r := &timebox.Request{ID: "z", Requester: "alice", Database: "orders", State: timebox.StatePending, CreatedAt: at(0)}
	update(t, db, func(tx timebox.Tx) error { return tx.CreateRequest(r) })
	if r.Version != 1 {
		t.Errorf("Version of a request created with version 0 = %d, want 1", r.Version)
	}
	got := findRequest(t, db, "z")
	want := &timebox.Request{ID: "z", Requester: "alice", Database: "orders", State: timebox.StatePending,
		Reviews: []timebox.Review{}, CreatedAt: utc(at(0)), Version: 1}
	checkRequest(t, "a request with zero times", got, want)

	// A zero CreatedAt becomes now.
	before := time.Now().Add(-time.Second)
	r2 := &timebox.Request{ID: "z2", Requester: "alice", Database: "orders", State: timebox.StatePending}
	update(t, db, func(tx timebox.Tx) error { return tx.CreateRequest(r2) })
	if got := findRequest(t, db, "z2"); got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now()) {
		t.Errorf("CreatedAt of a request created without one = %v, want about now", got.CreatedAt)
	}
	err := db.Update(t.Context(), func(tx timebox.Tx) error {
		return tx.CreateRequest(&timebox.Request{ID: "z3", State: timebox.StatePending, Version: 3})
	})
	wantCode(t, err, timebox.EINVALID)
}

func testRequestDuplicate(t *testing.T, db *store.DB) {
	update(t, db, func(tx timebox.Tx) error {
		return tx.CreateRequest(newRequest("r1", "alice", "orders", timebox.StatePending, at(1)))
	})
	update(t, db, func(tx timebox.Tx) error {
		// The conflict leaves the transaction usable (on PostgreSQL a failed statement would not).
		wantCode(t, tx.CreateRequest(newRequest("r1", "bob", "billing", timebox.StatePending, at(2))), timebox.ECONFLICT)
		return tx.CreateRequest(newRequest("r2", "bob", "billing", timebox.StatePending, at(2)))
	})
	if got := findRequest(t, db, "r1"); got.Requester != "alice" {
		t.Errorf("the duplicate overwrote the request: requester %q", got.Requester)
	}
	findRequest(t, db, "r2")
	view(t, db, func(tx timebox.Tx) error {
		_, err := tx.FindRequest("nope")
		wantCode(t, err, timebox.ENOTFOUND)
		return nil
	})
}

func testRequestVersion(t *testing.T, db *store.DB) {
	update(t, db, func(tx timebox.Tx) error {
		return tx.CreateRequest(newRequest("r1", "alice", "orders", timebox.StatePending, at(1)))
	})
	a, b := findRequest(t, db, "r1"), findRequest(t, db, "r1")
	a.State = timebox.StateApproved
	update(t, db, func(tx timebox.Tx) error { return tx.UpdateRequest(a) })
	b.State = timebox.StateDenied
	err := db.Update(t.Context(), func(tx timebox.Tx) error { return tx.UpdateRequest(b) })
	wantCode(t, err, timebox.ECONFLICT)
	if want := "request r1 was changed by someone else; reload and retry"; timebox.ErrorMessage(err) != want {
		t.Errorf("message %q, want %q", timebox.ErrorMessage(err), want)
	}
	if b.Version != 1 {
		t.Errorf("a failed UpdateRequest changed Version to %d", b.Version)
	}
	got := findRequest(t, db, "r1")
	if got.State != timebox.StateApproved || got.Version != 2 {
		t.Errorf("stored state %s version %d, want approved version 2", got.State, got.Version)
	}
	err = db.Update(t.Context(), func(tx timebox.Tx) error {
		return tx.UpdateRequest(newRequest("nope", "alice", "orders", timebox.StatePending, at(1)))
	})
	wantCode(t, err, timebox.ENOTFOUND)
}

// testRequestRace updates one version of a request from several goroutines at once: exactly
// one wins.
func testRequestRace(t *testing.T, db *store.DB) {
	update(t, db, func(tx timebox.Tx) error {
		return tx.CreateRequest(newRequest("r1", "alice", "orders", timebox.StatePending, at(1)))
	})
	loaded := findRequest(t, db, "r1")
	const n = 8
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			r := *loaded
			r.Reason = fmt.Sprintf("writer %d", i)
			start.Wait()
			errs[i] = db.Update(t.Context(), func(tx timebox.Tx) error { return tx.UpdateRequest(&r) })
		})
	}
	start.Done()
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch timebox.ErrorCode(err) {
		case "":
			if won >= 0 {
				t.Errorf("writers %d and %d both updated version 1", won, i)
			}
			won = i
		case timebox.ECONFLICT:
		default:
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no writer won")
	}
	got := findRequest(t, db, "r1")
	if got.Version != 2 || got.Reason != fmt.Sprintf("writer %d", won) {
		t.Errorf("stored version %d reason %q, want version 2 by writer %d", got.Version, got.Reason, won)
	}
}

// testRequestLostUpdates has goroutines each add a review with read-modify-write, retrying on
// ECONFLICT: no review may be lost.
func testRequestLostUpdates(t *testing.T, db *store.DB) {
	update(t, db, func(tx timebox.Tx) error {
		return tx.CreateRequest(newRequest("r1", "alice", "orders", timebox.StatePending, at(1)))
	})
	const n = 10
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for {
				var r *timebox.Request
				err := db.View(t.Context(), func(tx timebox.Tx) (err error) {
					r, err = tx.FindRequest("r1")
					return err
				})
				if err == nil {
					r.Reviews = append(r.Reviews, timebox.Review{Reviewer: fmt.Sprint(i), Decision: timebox.ActionApprove, At: at(i)})
					err = db.Update(t.Context(), func(tx timebox.Tx) error { return tx.UpdateRequest(r) })
				}
				if timebox.ErrorCode(err) != timebox.ECONFLICT {
					if err != nil {
						t.Error(err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	got := findRequest(t, db, "r1")
	var reviewers []string
	for _, rv := range got.Reviews {
		reviewers = append(reviewers, rv.Reviewer)
	}
	slices.Sort(reviewers)
	if len(reviewers) != n || len(slices.Compact(reviewers)) != n || got.Version != n+1 {
		t.Errorf("reviews %v, version %d; want %d distinct reviews and version %d", reviewers, got.Version, n, n+1)
	}
}

func testGrant(t *testing.T, db *store.DB) {
	r := fullRequest()
	update(t, db, func(tx timebox.Tx) error { return tx.CreateRequest(r) })
	g := &timebox.Grant{
		RequestID: "r1", Server: "pg-main", Principal: "tb_alice_r1", TargetDatabase: `shop "db"`, Method: "role", Status: timebox.GrantActive,
		Roles: []string{"reader", "orders_rw"}, ValidUntil: at(130),
		SealedPassword: []byte{0x00, 0x01, 0xfe, 0xff, 'p', 'w', 0x00},
		Attempts:       3, LastError: "connection refused", LastAttemptAt: at(9), NextAttemptAt: at(11),
		Outcome: "dropped", CreatedAt: at(8), UpdatedAt: at(10),
	}
	update(t, db, func(tx timebox.Tx) error { return tx.PutGrant(g) })
	r.Grant = g
	want := normalised(r)
	checkRequest(t, "FindRequest with a grant", findRequest(t, db, "r1"), want)

	// Replace it with one that has zero times, no roles and no password.
	g2 := &timebox.Grant{RequestID: "r1", Server: "pg-main", Principal: "tb_alice_r1", Method: "role", Status: timebox.GrantRevoking}
	update(t, db, func(tx timebox.Tx) error { return tx.PutGrant(g2) })
	r.Grant = g2
	want = normalised(r)
	got := findRequest(t, db, "r1")
	checkRequest(t, "FindRequest with a replaced grant", got, want)
	if got.Grant.SealedPassword != nil {
		t.Errorf("SealedPassword = %v, want nil", got.Grant.SealedPassword)
	}

	// Another request without a grant; FindRequests joins each with its own.
	update(t, db, func(tx timebox.Tx) error {
		return tx.CreateRequest(newRequest("r2", "bob", "orders", timebox.StatePending, at(1)))
	})
	view(t, db, func(tx timebox.Tx) error {
		rs, err := tx.FindRequests(timebox.RequestFilter{})
		if err != nil {
			return err
		}
		if len(rs) != 2 || rs[0].ID != "r2" || rs[0].Grant != nil || rs[1].Grant == nil {
			t.Errorf("FindRequests: %+v", rs)
		} else {
			checkRequest(t, "FindRequests with a grant", rs[1], want)
		}
		return nil
	})
	err := db.Update(t.Context(), func(tx timebox.Tx) error {
		return tx.PutGrant(&timebox.Grant{RequestID: "nope", SealedPassword: []byte("secret-pw")})
	})
	wantCode(t, err, timebox.ENOTFOUND)
}

// seedRequests stores requests of three people on three databases:
//
//	a1 alice orders  pending  at(1)
//	a2 alice billing active   at(2)
//	b1 bob   orders  approved at(3)
//	b2 bob   hr      denied   at(4)
//	c1 carol billing pending  at(4)
func seedRequests(t *testing.T, db *store.DB) {
	update(t, db, func(tx timebox.Tx) error {
		for _, r := range []*timebox.Request{
			newRequest("a1", "alice", "orders", timebox.StatePending, at(1)),
			newRequest("a2", "alice", "billing", timebox.StateActive, at(2)),
			newRequest("b1", "bob", "orders", timebox.StateApproved, at(3)),
			newRequest("b2", "bob", "hr", timebox.StateDenied, at(4)),
			newRequest("c1", "carol", "billing", timebox.StatePending, at(4)),
		} {
			if err := tx.CreateRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
}

func testRequestFilters(t *testing.T, db *store.DB) {
	seedRequests(t, db)
	pending, active := timebox.StatePending, timebox.StateActive
	tests := []struct {
		f    timebox.RequestFilter
		want []string
	}{
		{timebox.RequestFilter{}, []string{"c1", "b2", "b1", "a2", "a1"}},
		{timebox.RequestFilter{States: []timebox.State{pending, active}}, []string{"c1", "a2", "a1"}},
		{timebox.RequestFilter{States: []timebox.State{timebox.StateExpired}}, nil},
		{timebox.RequestFilter{Requester: "bob"}, []string{"b2", "b1"}},
		{timebox.RequestFilter{Database: "billing"}, []string{"c1", "a2"}},
		{timebox.RequestFilter{Requester: "alice", Database: "orders"}, []string{"a1"}},
		{timebox.RequestFilter{Requester: "zed"}, nil},
		{timebox.RequestFilter{Visible: &timebox.Visibility{Requester: "alice"}}, []string{"a2", "a1"}},
		{timebox.RequestFilter{Visible: &timebox.Visibility{Requester: "alice", Databases: []string{"billing"}}}, []string{"c1", "a2", "a1"}},
		{timebox.RequestFilter{Visible: &timebox.Visibility{Requester: "dave", Databases: []string{"orders", "hr"}}}, []string{"b2", "b1", "a1"}},
		{timebox.RequestFilter{Visible: &timebox.Visibility{Requester: "dave"}}, nil},
		{timebox.RequestFilter{States: []timebox.State{pending}, Visible: &timebox.Visibility{Requester: "alice", Databases: []string{"billing"}}}, []string{"c1", "a1"}},
		{timebox.RequestFilter{Limit: 2}, []string{"c1", "b2"}},
		{timebox.RequestFilter{Database: "orders", Limit: 1}, []string{"b1"}},
	}
	view(t, db, func(tx timebox.Tx) error {
		for _, tt := range tests {
			rs, err := tx.FindRequests(tt.f)
			if err != nil {
				return err
			}
			var ids []string
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("FindRequests(%+v) = %v, want %v", tt.f, ids, tt.want)
			}
		}
		return nil
	})
}

func testCountRequests(t *testing.T, db *store.DB) {
	view(t, db, func(tx timebox.Tx) error {
		counts, err := tx.CountRequests()
		if err != nil {
			return err
		}
		if len(counts) != len(timebox.States) {
			t.Errorf("CountRequests on an empty store = %v, want every state at 0", counts)
		}
		return nil
	})
	seedRequests(t, db)
	view(t, db, func(tx timebox.Tx) error {
		counts, err := tx.CountRequests()
		if err != nil {
			return err
		}
		want := map[timebox.State]int{}
		for _, s := range timebox.States {
			want[s] = 0
		}
		want[timebox.StatePending], want[timebox.StateActive] = 2, 1
		want[timebox.StateApproved], want[timebox.StateDenied] = 1, 1
		if !reflect.DeepEqual(counts, want) {
			t.Errorf("CountRequests = %v, want %v", counts, want)
		}
		return nil
	})
}
