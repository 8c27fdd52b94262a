package timebox_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// chainOf returns n chained events and the head a store would record.
func chainOf(n int) ([]*timebox.Event, int64, string) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	var events []*timebox.Event
	var prev *timebox.Event
	for i := range n {
		e := &timebox.Event{
			Time: t0.Add(time.Duration(i) * time.Minute), Actor: "alice", Action: "request.created",
			RequestID: fmt.Sprintf("req%d", i), Database: "prod",
			Details: map[string]any{"note": fmt.Sprintf("n%d", i), "attempts": i, "nested": map[string]any{"b": 1, "a": []any{"x"}}},
		}
		e.Chain(prev, nil)
		events, prev = append(events, e), e
	}
	return events, prev.Seq, prev.Hash
}

func problemsText(ps []timebox.ChainProblem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  seq %d: %s", p.Seq, p.Problem)
	}
	return b.String()
}

// hasProblem reports whether ps has a problem at seq whose text contains word.
func hasProblem(ps []timebox.ChainProblem, seq int64, word string) bool {
	return slices.ContainsFunc(ps, func(p timebox.ChainProblem) bool { return p.Seq == seq && strings.Contains(p.Problem, word) })
}

func TestEventChain(t *testing.T) {
	events, headSeq, headHash := chainOf(5)
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Errorf("event %d has Seq %d", i, e.Seq)
		}
		if i == 0 && e.PrevHash != timebox.GenesisHash {
			t.Errorf("first PrevHash = %q", e.PrevHash)
		}
		if i > 0 && e.PrevHash != events[i-1].Hash {
			t.Errorf("event %d PrevHash does not match the hash before it", e.Seq)
		}
		if e.Time.Location() != time.UTC || e.Time.Nanosecond()%1000 != 0 {
			t.Errorf("event %d time %v is not UTC to the microsecond", e.Seq, e.Time)
		}
		if len(e.Hash) != 64 || e.Hash != e.ComputeHash() {
			t.Errorf("event %d hash %q", e.Seq, e.Hash)
		}
	}
	if ps := timebox.VerifyChain(events, headSeq, headHash, nil); len(ps) != 0 {
		t.Fatalf("intact chain has problems:%s", problemsText(ps))
	}
	if ps := timebox.VerifyChain(nil, 0, "", nil); len(ps) != 0 {
		t.Fatalf("empty log has problems:%s", problemsText(ps))
	}
}

func TestComputeHashCoversEveryField(t *testing.T) {
	events, _, _ := chainOf(2)
	base := *events[1]
	h := base.ComputeHash()
	edits := map[string]func(e *timebox.Event){
		"seq":        func(e *timebox.Event) { e.Seq++ },
		"time":       func(e *timebox.Event) { e.Time = e.Time.Add(time.Microsecond) },
		"actor":      func(e *timebox.Event) { e.Actor = "mallory" },
		"action":     func(e *timebox.Event) { e.Action = "request.approved" },
		"request_id": func(e *timebox.Event) { e.RequestID = "other" },
		"database":   func(e *timebox.Event) { e.Database = "dev" },
		"details":    func(e *timebox.Event) { e.Details = map[string]any{"note": "forged"} },
		"prev_hash":  func(e *timebox.Event) { e.PrevHash = timebox.GenesisHash },
	}
	for name, edit := range edits {
		e := base
		edit(&e)
		if e.ComputeHash() == h {
			t.Errorf("editing %s does not change the hash", name)
		}
	}
	// The same instant in another zone hashes the same; map order never matters.
	e := base
	e.Time = e.Time.In(time.FixedZone("Y", -5*3600))
	e.Details = map[string]any{"nested": map[string]any{"a": []any{"x"}, "b": 1}, "attempts": 1, "note": "n1"}
	if e.ComputeHash() != h {
		t.Error("hash depends on the time zone or map order")
	}
}

func TestVerifyChainEdited(t *testing.T) {
	events, headSeq, headHash := chainOf(5)
	events[2].Details["note"] = "rewritten"
	ps := timebox.VerifyChain(events, headSeq, headHash, nil)
	if len(ps) != 1 || !hasProblem(ps, 3, "edited") {
		t.Fatalf("want exactly one problem, 'edited' at seq 3; got:%s", problemsText(ps))
	}
}

// An editor who also recomputes the hash breaks the link to the next event.
func TestVerifyChainEditedAndRehashed(t *testing.T) {
	events, headSeq, headHash := chainOf(5)
	events[1].Actor = "mallory"
	events[1].Hash = events[1].ComputeHash()
	ps := timebox.VerifyChain(events, headSeq, headHash, nil)
	if len(ps) == 0 || !hasProblem(ps, 3, "does not follow") {
		t.Fatalf("want a broken link at seq 3; got:%s", problemsText(ps))
	}
}

// Editing the last event and rehashing it is caught by the recorded head.
func TestVerifyChainLastEditedAndRehashed(t *testing.T) {
	events, headSeq, headHash := chainOf(4)
	events[3].Actor = "mallory"
	events[3].Hash = events[3].ComputeHash()
	ps := timebox.VerifyChain(events, headSeq, headHash, nil)
	if len(ps) != 1 || !hasProblem(ps, 4, "edited") {
		t.Fatalf("want one 'edited' problem at seq 4; got:%s", problemsText(ps))
	}
}

func TestVerifyChainDeletedMiddle(t *testing.T) {
	events, headSeq, headHash := chainOf(5)
	events = slices.Delete(events, 2, 3) // seq 3
	ps := timebox.VerifyChain(events, headSeq, headHash, nil)
	if !hasProblem(ps, 3, "missing") {
		t.Fatalf("want 'missing' at seq 3; got:%s", problemsText(ps))
	}
	for _, p := range ps {
		if strings.Contains(p.Problem, "at the end") {
			t.Errorf("a deletion in the middle is reported at the end:%s", problemsText(ps))
		}
	}
}

func TestVerifyChainDeletedFirst(t *testing.T) {
	events, headSeq, headHash := chainOf(3)
	ps := timebox.VerifyChain(events[1:], headSeq, headHash, nil)
	if !hasProblem(ps, 1, "missing") {
		t.Fatalf("want 'missing' at seq 1; got:%s", problemsText(ps))
	}
}

func TestVerifyChainDeletedLast(t *testing.T) {
	events, headSeq, headHash := chainOf(5)
	ps := timebox.VerifyChain(events[:3], headSeq, headHash, nil)
	if len(ps) != 1 || !hasProblem(ps, 4, "missing at the end") || !strings.Contains(ps[0].Problem, "4 to 5") {
		t.Fatalf("want one 'missing at the end' problem for 4 to 5; got:%s", problemsText(ps))
	}
	// Everything deleted.
	ps = timebox.VerifyChain(nil, headSeq, headHash, nil)
	if len(ps) != 1 || !hasProblem(ps, 1, "missing at the end") {
		t.Fatalf("want 'missing at the end' from seq 1; got:%s", problemsText(ps))
	}
}

func TestVerifyChainInserted(t *testing.T) {
	// A forged event appended after the recorded head, properly chained.
	events, headSeq, headHash := chainOf(4)
	forged := &timebox.Event{Time: time.Now(), Actor: "mallory", Action: "request.approved"}
	forged.Chain(events[3], nil)
	ps := timebox.VerifyChain(append(events, forged), headSeq, headHash, nil)
	if len(ps) != 1 || !hasProblem(ps, 5, "inserted") {
		t.Fatalf("want one 'inserted' problem at seq 5; got:%s", problemsText(ps))
	}

	// A forged event slipped in between 2 and 3 with a duplicate seq.
	events, headSeq, headHash = chainOf(4)
	dup := &timebox.Event{Time: time.Now(), Actor: "mallory", Action: "request.approved"}
	dup.Chain(events[0], nil) // seq 2
	tampered := slices.Insert(slices.Clone(events), 2, dup)
	ps = timebox.VerifyChain(tampered, headSeq, headHash, nil)
	if !hasProblem(ps, 2, "inserted") {
		t.Fatalf("want 'inserted' at seq 2; got:%s", problemsText(ps))
	}
}

func TestVerifyChainReordered(t *testing.T) {
	events, headSeq, headHash := chainOf(5)
	events[1], events[2] = events[2], events[1]
	ps := timebox.VerifyChain(events, headSeq, headHash, nil)
	if len(ps) == 0 {
		t.Fatal("reordered chain verifies")
	}
	if !slices.ContainsFunc(ps, func(p timebox.ChainProblem) bool {
		return strings.Contains(p.Problem, "out of order") || strings.Contains(p.Problem, "does not follow")
	}) {
		t.Fatalf("reordering not described:%s", problemsText(ps))
	}
}

func TestVerifyChainWrongHead(t *testing.T) {
	events, headSeq, _ := chainOf(3)
	ps := timebox.VerifyChain(events, headSeq, strings.Repeat("f", 64), nil)
	if len(ps) != 1 || !hasProblem(ps, 3, "recorded head") {
		t.Fatalf("want a head mismatch at seq 3; got:%s", problemsText(ps))
	}
}
