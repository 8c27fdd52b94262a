package notify

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// Adversarial tests of the outbox's tables, written by someone who can write the store but
// holds no secret_key.

// sendAll plans what is committed and runs the outbox o until every delivery is done.
func (e *env) sendAll(o *Outbox) {
	e.t.Helper()
	if _, err := o.Plan(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	stop := e.run(o)
	waitFor(e.t, "every delivery", func() bool {
		for _, d := range e.deliveries(timebox.DeliveryFilter{}) {
			if d.Status != timebox.DeliverySent && d.Status != timebox.DeliveryFailed {
				return false
			}
		}
		return true
	})
	stop()
}

func (e *env) raw() *sql.DB {
	e.t.Helper()
	raw, err := sql.Open("sqlite", e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { raw.Close() })
	return raw
}

// A delivery row is not authenticated; what it says must agree with its (authentic) event
// or, for an expiry warning, with an active request: a store writer cannot make Timebox
// announce a decision that was never made, pin another request's event on a request, or
// send a request's details to someone the routes never write to.
func TestAttackStoreForgedDeliveriesNotSent(t *testing.T) {
	e := newEnv(t)
	e.svc.Catalog.Users = append(e.svc.Catalog.Users, timebox.User{Name: "mallory", Email: "mallory@example.com", Groups: []string{"developers"}})
	r := e.request("prod")  // event 1
	r2 := e.request("prod") // event 2
	e.sendAll(e.outbox)
	before := len(e.ops.messages()) + len(e.siem.messages())
	type row struct {
		key, kind string
		seq       int64
		request   string
		recipient string
	}
	forged := map[string]row{
		"a decision with no event":           {"ops:forged-1", "decision", 0, r.ID, ""},
		"another request's event":            {"ops:e2-x", "decision", 2, r.ID, ""},
		"a kind its event does not mean":     {"ops:e1-x", "activation", 1, r.ID, ""},
		"a recipient the routes never name":  {"ops:e1:mallory", "new_request", 1, r.ID, "mallory"},
		"a warning of a pending request":     {"ops:warn-" + r2.ID + "-1", "expiry_warning", 0, r2.ID, ""},
		"an events channel's kind elsewhere": {"ops:e1-y", "event", 1, r.ID, ""},
	}
	// Rows as a store writer would insert them (the store's own SQL, no secret_key).
	var ds []*timebox.Delivery
	for _, f := range forged {
		ds = append(ds, &timebox.Delivery{Key: f.key, Channel: "ops", Kind: f.kind, EventSeq: f.seq, RequestID: f.request,
			Recipient: f.recipient, CreatedAt: time.Now()})
	}
	if err := e.db.Update(e.ctx, func(tx timebox.Tx) error { return tx.AddDeliveries(ds) }); err != nil {
		t.Fatal(err)
	}
	e.sendAll(e.newOutbox())
	if n := len(e.deliveries(timebox.DeliveryFilter{Status: timebox.DeliveryFailed})); n != len(forged) {
		for _, d := range e.deliveries(timebox.DeliveryFilter{}) {
			t.Logf("%s %s %q", d.Key, d.Status, d.LastError)
		}
		t.Fatalf("%d deliveries failed, want the %d forged ones", n, len(forged))
	}
	for _, d := range e.deliveries(timebox.DeliveryFilter{Status: timebox.DeliveryFailed}) {
		if !strings.HasPrefix(d.LastError, "not sent") {
			t.Errorf("delivery %s: %q", d.Key, d.LastError)
		}
	}
	if n := len(e.ops.messages()) + len(e.siem.messages()); n != before {
		t.Fatalf("%d forged messages were sent", n-before)
	}
}

// Which chat message stands for a request is kept in the store; pointed at another
// request's message (a break-glass alert, a tamper alert), the next update of this request
// must not rewrite that message: the stored thread is authenticated, and one that fails its
// check is not used.
func TestAttackStoreThreadPointedAtAnotherMessage(t *testing.T) {
	e := newEnv(t)
	r := e.request("prod")
	victim := e.request("prod")
	e.sendAll(e.outbox)
	raw := e.raw()
	var victimThread string
	if err := raw.QueryRow(`SELECT external_id FROM notify_threads WHERE channel = 'ops' AND request_id = ?`, victim.ID).Scan(&victimThread); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE notify_threads SET external_id = ? WHERE channel = 'ops' AND request_id = ?`, victimThread, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Deny(e.ctx, "bob", r.ID, "no"); err != nil {
		t.Fatal(err)
	}
	e.sendAll(e.newOutbox())
	open, _, _ := strings.Cut(victimThread, "|")
	for _, m := range e.ops.messages() {
		if m.Delivery.RequestID == r.ID && m.Thread != "" && m.Thread == open {
			t.Fatalf("the update of %s went to the message of %s (%s)", r.ID, victim.ID, m.Thread)
		}
	}
	// The real thread of r still works after it is posted anew.
	ok := false
	for _, m := range e.ops.messages() {
		ok = ok || m.Delivery.RequestID == r.ID && m.Kind == KindDecision
	}
	if !ok {
		t.Errorf("the denial of %s was not sent", r.ID)
	}
}

// A thread recorded by Timebox is used for the request's later messages (the seal is not
// in the way of the real thing).
func TestAttackStoreRealThreadStillUpdated(t *testing.T) {
	e := newEnv(t)
	r := e.request("prod")
	e.sendAll(e.outbox)
	if _, err := e.svc.Deny(e.ctx, "bob", r.ID, "no"); err != nil {
		t.Fatal(err)
	}
	e.sendAll(e.newOutbox())
	var first string
	for _, m := range e.ops.messages() {
		if m.Kind == KindNewRequest && m.Recipient == nil {
			first = "msg-" // the recorder's external ids
		}
		if m.Kind == KindDecision && m.Recipient == nil {
			if first == "" || !strings.HasPrefix(m.Thread, "msg-") {
				t.Errorf("the decision was sent with thread %q, want the first message's", m.Thread)
			}
		}
	}
}

// The outbox cursor is not authenticated. Rewound, it re-plans history, but every message
// has been delivered under its key already: nothing is sent twice.
func TestAttackStoreCursorRewoundSendsNothingAgain(t *testing.T) {
	e := newEnv(t)
	r := e.request("prod")
	e.sendAll(e.outbox)
	sent := len(e.ops.messages()) + len(e.siem.messages())
	if _, err := e.raw().Exec(`UPDATE outbox_cursor SET seq = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Deny(e.ctx, "bob", r.ID, "no"); err != nil {
		t.Fatal(err)
	}
	e.sendAll(e.newOutbox())
	for _, k := range []string{"ops:e1", "siem:e1", "ops:e1:bob"} {
		if n := e.ops.arrived(k) + e.siem.arrived(k); n != 1 {
			t.Errorf("%s arrived %d times, want once", k, n)
		}
	}
	if n := len(e.ops.messages()) + len(e.siem.messages()) - sent; n != 2 {
		t.Errorf("%d messages after the rewind, want the denial's 2 (shared message, webhook)", n)
	}
}

// Moved past the audit head, the cursor would make the outbox skip every event to come —
// the store-tampered alerts too — without a word: the outbox brings it back to the head
// and says so.
func TestAttackStoreCursorPastTheHeadIsBroughtBack(t *testing.T) {
	e := newEnv(t)
	e.request("prod")
	e.sendAll(e.outbox)
	if _, err := e.raw().Exec(`UPDATE outbox_cursor SET seq = 1000000`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.outbox.Plan(e.ctx); err != nil { // sees the cursor past the head
		t.Fatal(err)
	}
	r := e.request("prod")
	e.sendAll(e.newOutbox())
	got := false
	for _, m := range e.siem.messages() {
		got = got || m.Delivery.RequestID == r.ID
	}
	if !got {
		t.Fatalf("the event after the cursor was moved past the head was never sent")
	}
}

// An approval written into the store without secret_key never counts (the service drops
// it); the notifications must not show it either ("approved by ceo").
func TestAttackStoreForgedApprovalNotShown(t *testing.T) {
	e := newEnv(t)
	r := e.request("prod")
	e.sendAll(e.outbox)
	forged := `[{"reviewer":"ceo","decision":"approve","at":"2026-01-01T00:00:00Z","seal":"k1:00"}]`
	if _, err := e.raw().Exec(`UPDATE requests SET reviews = ? WHERE id = ?`, forged, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Cancel(e.ctx, "alice", r.ID, "not needed"); err != nil {
		t.Fatal(err)
	}
	e.sendAll(e.newOutbox())
	for _, m := range append(e.ops.messages(), e.siem.messages()...) {
		if m.Request != nil && strings.Contains(m.Summary.Status+m.Summary.Text(), "ceo") {
			t.Errorf("%s (%s) shows the forged approval: %q", m.Delivery.Key, m.Kind, m.Summary.Status)
		}
	}
}

// An expiry warning has no audit event to check: a request made active in the store
// (without a decision sealed with secret_key) gets no "your access ends in …" message.
func TestAttackStoreForgedActiveRequestGetsNoWarning(t *testing.T) {
	e := newEnv(t)
	r := e.request("prod")
	e.sendAll(e.outbox)
	end := time.Now().Add(5 * time.Minute).UTC()
	d := &timebox.Delivery{Key: fmt.Sprintf("ops:warn-%s-%d", r.ID, end.Unix()), Channel: "ops", Kind: string(KindExpiryWarning),
		RequestID: r.ID, CreatedAt: time.Now()}
	if err := e.db.Update(e.ctx, func(tx timebox.Tx) error {
		got, err := tx.FindRequest(r.ID)
		if err != nil {
			return err
		}
		got.State, got.End = timebox.StateActive, end
		if err := tx.UpdateRequest(got); err != nil {
			return err
		}
		return tx.AddDeliveries([]*timebox.Delivery{d})
	}); err != nil {
		t.Fatal(err)
	}
	e.sendAll(e.newOutbox())
	for _, m := range e.ops.messages() {
		if m.Kind == KindExpiryWarning {
			t.Fatalf("a warning was sent for a request made active in the store: %q", m.Summary.Title)
		}
	}
}
