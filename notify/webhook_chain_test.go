package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// chainWatcher is what a webhook receiver keeps to see that its copy of the audit log is
// whole: the events it got, by seq, and the highest audit head it was told of. It is the
// receiver's side of docs/notify-webhooks.md, "Detecting a missing, truncated or edited log".
type chainWatcher struct {
	bySeq map[int64]*timebox.Event
	// maxHead is the highest head seen, sent at maxHeadAt (its webhook-timestamp).
	maxHead, maxHeadAt int64
	problems           []string
}

// add takes one verified delivery's data, sent at ts (its webhook-timestamp), and notes
// what does not fit. A head lower than one sent before it means the log's end was cut (a
// retried delivery carries the head of its own attempt, so it never looks older).
func (w *chainWatcher) add(d EventData, ts int64) {
	e := d.Event
	if w.bySeq == nil {
		w.bySeq = map[int64]*timebox.Event{}
	}
	if d.Head.Seq < w.maxHead && ts >= w.maxHeadAt {
		w.note("the audit head moved back from %d to %d: the end of the log was deleted", w.maxHead, d.Head.Seq)
	}
	if d.Head.Seq > w.maxHead {
		w.maxHead, w.maxHeadAt = d.Head.Seq, ts
	}
	if old := w.bySeq[e.Seq]; old != nil {
		if old.Hash != e.Hash {
			w.note("event %d arrived again with another hash: the log was rewritten from event %d on", e.Seq, e.Seq)
		}
		return // a duplicate: already have it
	}
	w.bySeq[e.Seq] = e
	if prev := w.bySeq[e.Seq-1]; prev != nil && prev.Hash != e.PrevHash {
		w.note("event %d does not follow event %d (prev_hash differs): an event was edited or replaced", e.Seq, e.Seq-1)
	}
	if next := w.bySeq[e.Seq+1]; next != nil && next.PrevHash != e.Hash {
		w.note("event %d does not follow event %d (prev_hash differs): an event was edited or replaced", e.Seq+1, e.Seq)
	}
}

// missing lists the events between the first one received and the highest head that have
// not arrived (yet: a delivery may be on its way, or in the dead-letter list).
func (w *chainWatcher) missing() []int64 {
	var seqs []int64
	for s := range w.bySeq {
		seqs = append(seqs, s)
	}
	if len(seqs) == 0 {
		return nil
	}
	var out []int64
	for s := slices.Min(seqs); s <= w.maxHead; s++ {
		if w.bySeq[s] == nil {
			out = append(out, s)
		}
	}
	return out
}

func (w *chainWatcher) note(format string, args ...any) {
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

// chain returns n keyed events, chained as the store chains them, from seq first on.
func chain(t *testing.T, keys *timebox.Keyring, prev *timebox.Event, n int, actor string) []*timebox.Event {
	t.Helper()
	var out []*timebox.Event
	for i := 0; i < n; i++ {
		e := &timebox.Event{Time: time.Now(), Actor: actor, Action: "request.approved", RequestID: fmt.Sprintf("r-%d", i), Database: "orders"}
		e.Chain(prev, keys)
		out = append(out, e)
		prev = e
	}
	return out
}

// TestWebhookChain delivers a chain of audit events through a webhook and checks that the
// receiver's watcher, from seq, prev_hash and head alone, sees an event that never arrived,
// a log cut at its end and rewritten, and an edited event; and that a receiver with the
// audit key can check each event's HMAC from the delivered JSON.
func TestWebhookChain(t *testing.T) {
	rc := newReceiver(t, false)
	now := time.Now()
	w, _ := openTestWebhook(t, rc, WebhookConfig{}, &now)
	keys, err := timebox.NewKeyring("a-secret-key-of-the-store-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	events := chain(t, keys, nil, 6, "bob")
	head := Head{Seq: 6, Hash: events[5].Hash}
	watch := &chainWatcher{}
	deliver := func(e *timebox.Event, h Head) {
		t.Helper()
		m := &Message{Kind: KindEvent, Event: e, Head: h, Delivery: &timebox.Delivery{Key: fmt.Sprintf("siem:e%d:%s", e.Seq, e.Hash[:8])}}
		if _, err := w.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		got := rc.requests()
		r := got[len(got)-1]
		if err := verifyLib(t, testSecret, r); err != nil {
			t.Fatalf("event %d: %v", e.Seq, err)
		}
		var ce CloudEvent
		if err := json.Unmarshal(r.body, &ce); err != nil {
			t.Fatal(err)
		}
		ts, _ := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
		watch.add(ce.Data, ts)
	}

	// Event 4 never arrives (its delivery is in the dead-letter list), and 2 arrives twice.
	for _, e := range events {
		if e.Seq != 4 {
			deliver(e, head)
		}
	}
	deliver(events[1], head)
	if got := watch.missing(); !slices.Equal(got, []int64{4}) || len(watch.problems) != 0 {
		t.Fatalf("missing %v, problems %v; want 4 missing and no problem", got, watch.problems)
	}

	// With the audit key, each delivered event's HMAC verifies: the JSON is the event itself.
	for _, r := range rc.requests() {
		var ce CloudEvent
		_ = json.Unmarshal(r.body, &ce)
		key, ok := keys.KeyByID(ce.Data.Event.KeyID, timebox.PurposeAudit)
		if !ok || ce.Data.Event.KeyedHash(key) != ce.Data.Event.Hash {
			t.Errorf("event %d: its delivered JSON does not verify with the audit key", ce.Data.Event.Seq)
		}
	}

	// Events 5 and 6 are deleted and the head moved back; the log goes on from event 4.
	rewritten := chain(t, keys, events[3], 1, "eve")[0]
	deliver(rewritten, Head{Seq: 5, Hash: rewritten.Hash})
	if !hasProblem(watch.problems, "event 5 arrived again with another hash") || !hasProblem(watch.problems, "head moved back from 6 to 5") {
		t.Errorf("truncated and rewritten log not seen: %v", watch.problems)
	}

	// A fresh receiver gets events 1..3, then an event 3 edited in the store (its hash kept)
	// is followed by an event chained to the edited one.
	watch = &chainWatcher{}
	for _, e := range events[:3] {
		deliver(e, Head{Seq: 3, Hash: events[2].Hash})
	}
	forged := *events[2]
	forged.Actor = "eve"
	forged.Hash = forged.ComputeHash()
	next := chain(t, nil, &forged, 1, "eve")[0]
	deliver(next, Head{Seq: 4, Hash: next.Hash})
	if !hasProblem(watch.problems, "event 4 does not follow event 3") {
		t.Errorf("an edited event 3 not seen: %v", watch.problems)
	}
}

func hasProblem(problems []string, s string) bool {
	return slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, s) })
}
