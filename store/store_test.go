package store_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// testStore is the suite every dialect runs. open returns a fresh, empty store that is closed
// when the test ends.
func testStore(t *testing.T, open func(t *testing.T) *store.DB) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *store.DB)
	}{
		{"RequestRoundTrip", testRequestRoundTrip},
		{"RequestZeroValues", testRequestZeroValues},
		{"RequestDuplicate", testRequestDuplicate},
		{"RequestVersion", testRequestVersion},
		{"RequestRace", testRequestRace},
		{"RequestLostUpdates", testRequestLostUpdates},
		{"Grant", testGrant},
		{"RequestFilters", testRequestFilters},
		{"CountRequests", testCountRequests},
		{"DueRequests", testDueRequests},
		{"EventRoundTrip", testEventRoundTrip},
		{"EventFilters", testEventFilters},
		{"EventConcurrentAppend", testEventConcurrentAppend},
		{"Tamper", testTamper},
		{"AuditKeyed", testAuditKeyed},
		{"AuditRotation", testAuditRotation},
		{"Token", testToken},
		{"TokenLifecycle", testTokenLifecycle},
		{"PolicyRoundTrip", testPolicyRoundTrip},
		{"DisabledUsers", testDisabledUsers},
		{"Proofs", testProofs},
		{"Upgrade", testUpgrade},
		{"UpdateRollsBack", testUpdateRollsBack},
		{"ViewIsReadOnly", testViewIsReadOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// testReopen opens dsn twice, so the second Open finds its migrations already applied, and
// checks that the data survived.
func testReopen(t *testing.T, dsn string) {
	ctx := t.Context()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	update(t, db, func(tx timebox.Tx) error {
		return tx.CreateRequest(newRequest("r1", "alice", "orders", timebox.StatePending, at(1)))
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		db, err = store.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		view(t, db, func(tx timebox.Tx) error {
			_, err := tx.FindRequest("r1")
			return err
		})
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// testTwoHandles appends events through two stores opened on the same database, as two server
// replicas would, and checks that they keep a single audit chain.
func testTwoHandles(t *testing.T, dsn string) {
	ctx := t.Context()
	var dbs [2]*store.DB
	for i := range dbs {
		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	appendConcurrently(t, 20, func(i int) *store.DB { return dbs[i%2] })
	events, seq, hash := allEvents(t, dbs[0])
	checkSeqs(t, events, 20)
	if problems := timebox.VerifyChain(events, seq, hash, nil); len(problems) > 0 {
		t.Fatalf("VerifyChain: %+v", problems)
	}
}

func TestOpenUnknownScheme(t *testing.T) {
	for _, dsn := range []string{"mysql://root:s3cret@localhost/timebox", "timebox.db", "sqlite://", "sqlite::memory:"} {
		_, err := store.Open(t.Context(), dsn)
		if code := timebox.ErrorCode(err); code != timebox.EINVALID {
			t.Errorf("Open(%q): code %q (%v), want %q", dsn, code, err, timebox.EINVALID)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "s3cret") {
			t.Errorf("Open(%q): the error shows the password: %s", dsn, msg)
		}
		if !strings.Contains(msg, "sqlite://") {
			t.Errorf("Open(%q): the error does not name the supported schemes: %s", dsn, msg)
		}
	}
	_, err := store.Open(t.Context(), "mysql://root:s3cret@localhost/timebox")
	if msg := err.Error(); !strings.Contains(msg, `"mysql"`) || !strings.Contains(msg, "postgres://") {
		t.Errorf("the error does not name the scheme and the supported ones: %s", msg)
	}
}

func testUpdateRollsBack(t *testing.T, db *store.DB) {
	boom := errors.New("boom")
	err := db.Update(t.Context(), func(tx timebox.Tx) error {
		if err := tx.CreateRequest(newRequest("r1", "alice", "orders", timebox.StatePending, at(1))); err != nil {
			return err
		}
		if err := tx.AppendEvent(&timebox.Event{Actor: "alice", Action: "request.created"}); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Update returned %v, want fn's error unchanged", err)
	}
	view(t, db, func(tx timebox.Tx) error {
		_, err := tx.FindRequest("r1")
		wantCode(t, err, timebox.ENOTFOUND)
		if seq, _, err := tx.AuditHead(); err != nil || seq != 0 {
			t.Errorf("AuditHead = %d, %v; want 0", seq, err)
		}
		return nil
	})
}

func testViewIsReadOnly(t *testing.T, db *store.DB) {
	err := db.View(t.Context(), func(tx timebox.Tx) error {
		return tx.CreateRequest(newRequest("r1", "alice", "orders", timebox.StatePending, at(1)))
	})
	if err == nil {
		t.Fatal("CreateRequest in View succeeded")
	}
	view(t, db, func(tx timebox.Tx) error {
		_, err := tx.FindRequest("r1")
		wantCode(t, err, timebox.ENOTFOUND)
		return nil
	})
}

func testToken(t *testing.T, db *store.DB) {
	created := time.Date(2026, 5, 6, 7, 8, 9, 987654321, time.FixedZone("CEST", 2*3600))
	tok := &timebox.Token{ID: "t1", User: "alice", Name: "laptop", Hash: "h1", CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
	update(t, db, func(tx timebox.Tx) error { return tx.CreateToken(tok) })
	update(t, db, func(tx timebox.Tx) error {
		// A conflict leaves the transaction usable.
		wantCode(t, tx.CreateToken(&timebox.Token{ID: "t2", User: "bob", Hash: "h1"}), timebox.ECONFLICT)
		wantCode(t, tx.CreateToken(&timebox.Token{ID: "t1", User: "bob", Hash: "h2"}), timebox.ECONFLICT)
		return tx.CreateToken(&timebox.Token{ID: "t3", User: "bob", Hash: "h3"})
	})
	view(t, db, func(tx timebox.Tx) error {
		got, err := tx.FindToken("h1")
		if err != nil {
			return err
		}
		want := timebox.Token{ID: "t1", User: "alice", Name: "laptop", Hash: "h1", CreatedAt: utc(created), ExpiresAt: utc(created.Add(time.Hour))}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("FindToken = %+v, want %+v", *got, want)
		}
		if got, err := tx.FindToken("h3"); err != nil || got.User != "bob" || got.CreatedAt.IsZero() {
			t.Errorf("FindToken(h3) = %+v, %v; want bob's token with a creation time", got, err)
		}
		_, err = tx.FindToken("nope")
		wantCode(t, err, timebox.ENOTFOUND)
		return nil
	})
}

// base is the time the tests' data is anchored at: not UTC and with nanoseconds, to check the
// conversion to UTC microseconds.
var base = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))

// at returns base plus n minutes.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }

// utc returns v as the store returns it.
func utc(v time.Time) time.Time { return v.UTC().Truncate(time.Microsecond) }

func newRequest(id, requester, database string, state timebox.State, created time.Time) *timebox.Request {
	return &timebox.Request{
		ID: id, Requester: requester, Database: database, Access: "read",
		Start: created, End: created.Add(time.Hour), RequestedStart: created, RequestedEnd: created.Add(time.Hour),
		Reason: "because", State: state, Reviews: []timebox.Review{}, CreatedAt: created, UpdatedAt: created,
		Version: 1,
	}
}

func update(t *testing.T, db *store.DB, fn func(tx timebox.Tx) error) {
	t.Helper()
	if err := db.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, db *store.DB, fn func(tx timebox.Tx) error) {
	t.Helper()
	if err := db.View(t.Context(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := timebox.ErrorCode(err); got != code {
		t.Errorf("error %v has code %q, want %q", err, got, code)
	}
}
