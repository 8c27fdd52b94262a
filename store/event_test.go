package store_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// allEvents returns every event and the audit head, read in one transaction.
func allEvents(t *testing.T, db *store.DB) (events []*timebox.Event, seq int64, hash string) {
	t.Helper()
	view(t, db, func(tx timebox.Tx) (err error) {
		if events, err = tx.FindEvents(timebox.EventFilter{}); err != nil {
			return err
		}
		seq, hash, err = tx.AuditHead()
		return err
	})
	return events, seq, hash
}

// checkSeqs checks that events are numbered 1 to n.
func checkSeqs(t *testing.T, events []*timebox.Event, n int) {
	t.Helper()
	if len(events) != n {
		t.Fatalf("%d events, want %d", len(events), n)
	}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has Seq %d", i+1, e.Seq)
		}
	}
}

// appendConcurrently appends n events from n goroutines, the i-th through dbFor(i).
func appendConcurrently(t *testing.T, n int, dbFor func(i int) *store.DB) {
	t.Helper()
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			e := &timebox.Event{
				Time: at(i), Actor: fmt.Sprintf("user%d", i), Action: "request.created",
				RequestID: fmt.Sprintf("r%d", i), Database: "orders",
				Details: map[string]any{"i": i, "note": strings.Repeat("x", i)},
			}
			start.Wait()
			if err := dbFor(i).Update(t.Context(), func(tx timebox.Tx) error { return tx.AppendEvent(e) }); err != nil {
				t.Errorf("AppendEvent %d: %v", i, err)
			}
		})
	}
	start.Done()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

func testEventRoundTrip(t *testing.T, db *store.DB) {
	type pair struct {
		Zeta  int    `json:"zeta"`
		Alpha string `json:"alpha"`
	}
	events := []*timebox.Event{
		{Time: base, Actor: "alice", Action: "request.created", RequestID: "r1", Database: "orders",
			Details: map[string]any{
				"int": 3, "int64": int64(1) << 40, "float": 1.5, "neg": -0.25, "string": `<a href="x">&</a> ✓`,
				"bool": true, "null": nil, "list": []string{"a", "b"}, "nested": map[string]any{"z": 1, "a": []any{2, "x"}},
				"struct": pair{Zeta: 1, Alpha: "x"}, "time": at(5), "bytes": []byte{0, 1, 2},
			}},
		{Time: at(1), Actor: "bob", Action: "request.approved", RequestID: "r1", Database: "orders"},
		{Time: at(2), Actor: "sched", Action: "grant.create_intent", Details: map[string]any{}},
		{Actor: "admin", Action: "token.created", Details: map[string]any{"user": "alice"}},
	}
	before := time.Now().Add(-time.Second)
	for _, e := range events {
		update(t, db, func(tx timebox.Tx) error { return tx.AppendEvent(e) })
	}
	if events[2].Details != nil {
		t.Errorf("empty details were kept as %#v, want nil", events[2].Details)
	}
	if e := events[3]; e.Time.Before(before) || e.Time.After(time.Now()) || e.Time.Location() != time.UTC {
		t.Errorf("an event appended without a time got %v, want now in UTC", e.Time)
	}
	got, seq, hash := allEvents(t, db)
	checkSeqs(t, got, len(events))
	for i, e := range got {
		if !reflect.DeepEqual(e, events[i]) {
			t.Errorf("event %d read back as\n%#v\nwant (as appended)\n%#v", e.Seq, e, events[i])
		}
		if e.ComputeHash() != e.Hash {
			t.Errorf("event %d does not hash to its stored hash after the round trip", e.Seq)
		}
	}
	if got[0].Time != utc(base) {
		t.Errorf("time %v, want %v", got[0].Time, utc(base))
	}
	if problems := timebox.VerifyChain(got, seq, hash, nil); len(problems) > 0 {
		t.Errorf("VerifyChain: %+v", problems)
	}
	if seq != 4 || hash != events[3].Hash {
		t.Errorf("AuditHead = %d %s, want 4 %s", seq, hash, events[3].Hash)
	}
	err := db.Update(t.Context(), func(tx timebox.Tx) error {
		return tx.AppendEvent(&timebox.Event{Actor: "x", Action: "y", Details: map[string]any{"f": func() {}}})
	})
	wantCode(t, err, timebox.EINVALID)
}

// seedEvents stores the requests of seedRequests and these events:
//
//	1 alice request.created  a1 orders  at(1)
//	2 alice request.created  a2 billing at(2)
//	3 bob   request.created  b1 orders  at(3)
//	4 bob   request.approved a1 orders  at(4)
//	5 sched request.activated a2 billing at(5)
//	6 carol request.created  c1 billing at(6)
//	7 admin token.created    -  -       at(7)
func seedEvents(t *testing.T, db *store.DB) {
	seedRequests(t, db)
	update(t, db, func(tx timebox.Tx) error {
		for i, e := range []timebox.Event{
			{Actor: "alice", Action: "request.created", RequestID: "a1", Database: "orders"},
			{Actor: "alice", Action: "request.created", RequestID: "a2", Database: "billing"},
			{Actor: "bob", Action: "request.created", RequestID: "b1", Database: "orders"},
			{Actor: "bob", Action: "request.approved", RequestID: "a1", Database: "orders"},
			{Actor: "sched", Action: "request.activated", RequestID: "a2", Database: "billing"},
			{Actor: "carol", Action: "request.created", RequestID: "c1", Database: "billing"},
			{Actor: "admin", Action: "token.created"},
		} {
			e.Time = at(i + 1)
			if err := tx.AppendEvent(&e); err != nil {
				return err
			}
		}
		return nil
	})
}

func testEventFilters(t *testing.T, db *store.DB) {
	seedEvents(t, db)
	vis := func(user string, dbs ...string) *timebox.Visibility {
		return &timebox.Visibility{Requester: user, Databases: dbs}
	}
	tests := []struct {
		f    timebox.EventFilter
		want []int64
	}{
		{timebox.EventFilter{}, []int64{1, 2, 3, 4, 5, 6, 7}},
		{timebox.EventFilter{Actor: "bob"}, []int64{3, 4}},
		{timebox.EventFilter{User: "alice"}, []int64{1, 2, 4, 5}},
		{timebox.EventFilter{User: "carol"}, []int64{6}},
		{timebox.EventFilter{Database: "billing"}, []int64{2, 5, 6}},
		{timebox.EventFilter{RequestID: "a1"}, []int64{1, 4}},
		{timebox.EventFilter{Since: at(3)}, []int64{3, 4, 5, 6, 7}},
		{timebox.EventFilter{Until: at(3)}, []int64{1, 2}},
		{timebox.EventFilter{Since: at(2), Until: at(5)}, []int64{2, 3, 4}},
		// Since and Until are compared at the stored microsecond precision.
		{timebox.EventFilter{Since: at(3).Add(time.Nanosecond)}, []int64{3, 4, 5, 6, 7}},
		{timebox.EventFilter{Since: at(3).Add(time.Microsecond)}, []int64{4, 5, 6, 7}},
		{timebox.EventFilter{Visible: vis("alice")}, []int64{1, 2, 4, 5}},
		{timebox.EventFilter{Visible: vis("dave", "orders")}, []int64{1, 3, 4}},
		{timebox.EventFilter{Visible: vis("bob", "billing")}, []int64{2, 3, 4, 5, 6}},
		{timebox.EventFilter{Visible: vis("dave")}, nil},
		{timebox.EventFilter{Visible: vis("dave", "orders"), Actor: "bob"}, []int64{3, 4}},
		{timebox.EventFilter{Limit: 3}, []int64{5, 6, 7}},
		{timebox.EventFilter{User: "alice", Limit: 2}, []int64{4, 5}},
		{timebox.EventFilter{Limit: 100}, []int64{1, 2, 3, 4, 5, 6, 7}},
		{timebox.EventFilter{Actor: "nobody"}, nil},
		{timebox.EventFilter{Action: "request.created"}, []int64{1, 2, 3, 6}},
		{timebox.EventFilter{Action: "request.*"}, []int64{1, 2, 3, 4, 5, 6}},
		{timebox.EventFilter{Action: "request.a*", Database: "orders"}, []int64{4}},
		{timebox.EventFilter{Action: "request"}, nil},
		{timebox.EventFilter{Action: "*"}, []int64{1, 2, 3, 4, 5, 6, 7}},
		{timebox.EventFilter{Before: 4}, []int64{1, 2, 3}},
		{timebox.EventFilter{Before: 6, Limit: 2}, []int64{4, 5}},
		{timebox.EventFilter{Before: 6, Limit: 2, Action: "request.created"}, []int64{2, 3}},
	}
	view(t, db, func(tx timebox.Tx) error {
		for _, tt := range tests {
			es, err := tx.FindEvents(tt.f)
			if err != nil {
				return err
			}
			var seqs []int64
			for _, e := range es {
				seqs = append(seqs, e.Seq)
			}
			if !slices.Equal(seqs, tt.want) {
				t.Errorf("FindEvents(%+v) = %v, want %v", tt.f, seqs, tt.want)
			}
		}
		return nil
	})
}

func testEventConcurrentAppend(t *testing.T, db *store.DB) {
	appendConcurrently(t, 20, func(int) *store.DB { return db })
	events, seq, hash := allEvents(t, db)
	checkSeqs(t, events, 20)
	if seq != 20 || hash != events[19].Hash {
		t.Errorf("AuditHead = %d %s, want 20 %s", seq, hash, events[19].Hash)
	}
	if problems := timebox.VerifyChain(events, seq, hash, nil); len(problems) > 0 {
		t.Errorf("VerifyChain: %+v", problems)
	}
}

// testTamper edits the tables behind the store's back and checks that VerifyChain, fed from
// the store, reports each change: this is what `timebox audit --verify` relies on.
func testTamper(t *testing.T, db *store.DB) {
	const n = 6
	insert := `INSERT INTO events (seq, time, actor, action, request_id, database, details, prev_hash, hash)
		SELECT ?, time, ?, action, request_id, database, details, ?, ? FROM events WHERE seq = ?`
	tests := []struct {
		name   string
		tamper func(events []*timebox.Event) (query string, args []any)
		want   []string // problems, as "seq: start of the message"
	}{
		{"edit an actor", func([]*timebox.Event) (string, []any) {
			return `UPDATE events SET actor = 'mallory' WHERE seq = 3`, nil
		}, []string{"3: event 3 was edited"}},
		{"edit details", func([]*timebox.Event) (string, []any) {
			return `UPDATE events SET details = '{"i":1,"note":"xx"}' WHERE seq = 2`, nil
		}, []string{"2: event 2 was edited"}},
		{"re-encode details without changing them", func([]*timebox.Event) (string, []any) {
			return `UPDATE events SET details = '{ "note": "x", "i": 1.0e0 }' WHERE seq = 2`, nil
		}, nil},
		{"delete a middle event", func([]*timebox.Event) (string, []any) {
			return `DELETE FROM events WHERE seq = 4`, nil
		}, []string{"4: events 4 to 4 are missing", "5: event 5 does not follow"}},
		{"delete the last event", func([]*timebox.Event) (string, []any) {
			return `DELETE FROM events WHERE seq = 6`, nil
		}, []string{"6: events 6 to 6 are missing at the end"}},
		{"insert a forged event", func(events []*timebox.Event) (string, []any) {
			last := events[n-1]
			forged := *last
			forged.Seq, forged.Actor, forged.PrevHash = n+1, "mallory", last.Hash
			return insert, []any{forged.Seq, forged.Actor, forged.PrevHash, forged.ComputeHash(), last.Seq}
		}, []string{"7: the log has events after the recorded head 6"}},
		{"edit the last event and its hash", func(events []*timebox.Event) (string, []any) {
			edited := *events[n-1]
			edited.Actor = "mallory"
			return `UPDATE events SET actor = ?, hash = ? WHERE seq = ?`, []any{edited.Actor, edited.ComputeHash(), edited.Seq}
		}, []string{"6: the last event does not match the recorded head"}},
	}
	for _, tt := range tests {
		for _, q := range []string{`DELETE FROM events`, `DELETE FROM audit_head`} {
			if _, err := db.ExecRaw(t.Context(), q); err != nil {
				t.Fatal(err)
			}
		}
		update(t, db, func(tx timebox.Tx) error {
			for i := range n {
				err := tx.AppendEvent(&timebox.Event{Time: at(i), Actor: fmt.Sprintf("user%d", i), Action: "request.created",
					Details: map[string]any{"i": i, "note": strings.Repeat("x", i)}})
				if err != nil {
					return err
				}
			}
			return nil
		})
		events, seq, hash := allEvents(t, db)
		if problems := timebox.VerifyChain(events, seq, hash, nil); len(problems) > 0 {
			t.Fatalf("%s: VerifyChain before tampering: %+v", tt.name, problems)
		}
		query, args := tt.tamper(events)
		if _, err := db.ExecRaw(t.Context(), query, args...); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		events, seq, hash = allEvents(t, db)
		var got []string
		for _, p := range timebox.VerifyChain(events, seq, hash, nil) {
			got = append(got, fmt.Sprintf("%d: %s", p.Seq, p.Problem))
		}
		ok := len(got) == len(tt.want)
		for i := 0; ok && i < len(got); i++ {
			ok = strings.HasPrefix(got[i], tt.want[i])
		}
		if !ok {
			t.Errorf("%s: VerifyChain reports %q, want %q", tt.name, got, tt.want)
		}
	}
}
