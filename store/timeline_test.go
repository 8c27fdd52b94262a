package store_test

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

func TestSQLiteFindAccess(t *testing.T) { testFindAccess(t, openSQLite(t)) }

func TestPostgresFindAccess(t *testing.T) { testFindAccess(t, openPostgres(t)) }

func TestSQLiteFindAccessPlan(t *testing.T) { testFindAccessPlan(t, openSQLite(t)) }

func TestPostgresFindAccessPlan(t *testing.T) { testFindAccessPlan(t, openPostgres(t)) }

// accessRequest is a request activated at activated (zero: never) and ended at ended (zero:
// not ended).
func accessRequest(id, requester, database string, state timebox.State, activated, ended time.Time) *timebox.Request {
	created := activated
	if created.IsZero() {
		created = at(-600)
	}
	r := newRequest(id, requester, database, state, created)
	r.ActivatedAt, r.EndedAt = activated, ended
	return r
}

// testFindAccess: FindAccess keeps exactly the confirmed access that overlapped the range,
// with every filter, newest activation first.
func testFindAccess(t *testing.T, db *store.DB) {
	from, to := at(0), at(600)
	spans := accessRequest("spans", "carol", "staging", timebox.StateReleased, at(-10), at(700))
	spans.BreakGlass, spans.Tampered = true, "end"
	live := accessRequest("live", "bob", "prod", timebox.StateActive, at(300), time.Time{})
	live.Ending, live.EndingSince = timebox.EndingRevoke, at(400)
	fixtures := []*timebox.Request{
		accessRequest("before-from", "alice", "prod", timebox.StateExpired, at(-120), at(30)), // began before from: kept
		accessRequest("inside", "alice", "prod", timebox.StateRevoked, at(100), at(200)),      // kept
		live,  // still active (its removal under way): kept
		spans, // covers the range: kept
		accessRequest("ended-before", "alice", "prod", timebox.StateExpired, at(-300), at(-1)),    // excluded
		accessRequest("ended-at-from", "alice", "prod", timebox.StateExpired, at(-300), at(0)),    // excluded: [from, to)
		accessRequest("starts-at-to", "alice", "prod", timebox.StateActive, at(600), time.Time{}), // excluded
		accessRequest("after", "alice", "prod", timebox.StateExpired, at(700), at(800)),           // excluded
		accessRequest("pending", "alice", "prod", timebox.StatePending, time.Time{}, time.Time{}),
		accessRequest("approved", "alice", "prod", timebox.StateApproved, time.Time{}, time.Time{}),
		accessRequest("denied", "alice", "prod", timebox.StateDenied, time.Time{}, at(50)),
		accessRequest("cancelled", "alice", "prod", timebox.StateCancelled, time.Time{}, at(60)),
		accessRequest("denied-activated", "alice", "prod", timebox.StateDenied, at(10), at(20)), // not a state that follows activation
		accessRequest("expired-unreviewed", "alice", "prod", timebox.StateExpired, time.Time{}, at(70)),
	}
	update(t, db, func(tx timebox.Tx) error {
		for _, r := range fixtures {
			if err := tx.CreateRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	find := func(f timebox.AccessFilter) []string {
		t.Helper()
		var ids []string
		view(t, db, func(tx timebox.Tx) error {
			ps, err := tx.FindAccess(f)
			for _, p := range ps {
				ids = append(ids, p.RequestID)
			}
			return err
		})
		return ids
	}
	for _, tc := range []struct {
		name string
		f    timebox.AccessFilter
		want []string
	}{
		{"all", timebox.AccessFilter{From: from, To: to}, []string{"live", "inside", "spans", "before-from"}},
		{"database", timebox.AccessFilter{From: from, To: to, Database: "prod"}, []string{"live", "inside", "before-from"}},
		{"requester", timebox.AccessFilter{From: from, To: to, Requester: "alice"}, []string{"inside", "before-from"}},
		{"both", timebox.AccessFilter{From: from, To: to, Database: "staging", Requester: "alice"}, nil},
		{"limit", timebox.AccessFilter{From: from, To: to, Limit: 2}, []string{"live", "inside"}},
		{"own only", timebox.AccessFilter{From: from, To: to, Visible: &timebox.Visibility{Requester: "carol", Databases: []string{}}}, []string{"spans"}},
		{"own and owned", timebox.AccessFilter{From: from, To: to, Visible: &timebox.Visibility{Requester: "carol", Databases: []string{"prod"}}},
			[]string{"live", "inside", "spans", "before-from"}},
		{"stranger", timebox.AccessFilter{From: from, To: to, Visible: &timebox.Visibility{Requester: "stan", Databases: []string{}}}, nil},
		{"narrow", timebox.AccessFilter{From: at(150), To: at(160)}, []string{"inside", "spans"}},
	} {
		if got := find(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: FindAccess = %v, want %v", tc.name, got, tc.want)
		}
	}
	view(t, db, func(tx timebox.Tx) error {
		ps, err := tx.FindAccess(timebox.AccessFilter{From: from, To: to, Database: "staging"})
		if err != nil {
			return err
		}
		want := []timebox.AccessPeriod{{RequestID: "spans", User: "carol", Database: "staging", Level: "read",
			State: timebox.StateReleased, From: utc(at(-10)), To: utc(at(700)), End: utc(at(50)), BreakGlass: true, Tampered: true}}
		if !reflect.DeepEqual(ps, want) {
			t.Errorf("FindAccess(staging) =\n%+v, want\n%+v", ps, want)
		}
		ps, err = tx.FindAccess(timebox.AccessFilter{From: from, To: to, Database: "prod", Requester: "bob"})
		if err != nil {
			return err
		}
		if len(ps) != 1 || !ps[0].Live() || ps[0].Ending != timebox.EndingRevoke || !ps[0].From.Equal(utc(at(300))) {
			t.Errorf("FindAccess(bob) = %+v, want the live request, its removal under way", ps)
		}
		_, err = tx.FindAccess(timebox.AccessFilter{To: to})
		wantCode(t, err, timebox.EINVALID)
		return nil
	})
}

// endedRange finds an index condition on the ended_at range in either dialect's plan.
var endedRange = regexp.MustCompile(`(?m)(USING (?:COVERING )?INDEX requests_access_\w+ \(.*ended_at>\?|Index Cond: .*ended_at > )`)

// testFindAccessPlan: the timeline's query reads the access indexes of migration 00010, not
// the whole requests table.
func testFindAccessPlan(t *testing.T, db *store.DB) {
	for _, f := range []timebox.AccessFilter{
		{From: at(0), To: at(600), Database: "prod", Limit: 100},
		{From: at(0), To: at(600)},
	} {
		plan, err := db.AccessPlan(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, "requests_access_") || !endedRange.MatchString(plan) {
			t.Errorf("plan for %+v does not read the ended_at range of an access index:\n%s", f, plan)
		}
	}
}
