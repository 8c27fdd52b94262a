package notify

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/timebox-dev/timebox"
)

// TestPlanRoutes: a new prod request goes to the shared channel and, directly, to the
// approvers who can be reached (bob and dora: erin has no e-mail; alice is the requester);
// the webhook gets every audit event; a dev request matches no route but still reaches the
// webhook; a denial updates the shared message although the route is about prod only.
func TestPlanRoutes(t *testing.T) {
	e := newEnv(t)
	r := e.request("prod")
	dev := e.request("dev")
	if _, err := e.outbox.Plan(e.ctx); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, d := range e.deliveries(timebox.DeliveryFilter{Channel: "ops"}) {
		keys = append(keys, d.Key+"/"+d.Kind+"/"+d.Recipient)
	}
	slices.Sort(keys)
	want := []string{"ops:e1/new_request/", "ops:e1:bob/new_request/bob", "ops:e1:dora/new_request/dora"}
	if !slices.Equal(keys, want) {
		t.Fatalf("ops deliveries = %v, want %v", keys, want)
	}
	if n := len(e.deliveries(timebox.DeliveryFilter{Channel: "siem"})); n != 2 {
		t.Fatalf("siem got %d deliveries, want both request.created events", n)
	}
	// The shared message of r exists once sent: a later event updates it.
	stop := e.run(e.outbox)
	waitFor(t, "the first deliveries", e.allSent)
	stop()
	if _, err := e.svc.Deny(e.ctx, "bob", r.ID, "not now"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Cancel(e.ctx, "alice", dev.ID, "no longer needed"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.outbox.Plan(e.ctx); err != nil {
		t.Fatal(err)
	}
	ds := e.deliveries(timebox.DeliveryFilter{Channel: "ops", Status: timebox.DeliveryPending})
	if len(ds) != 1 || ds[0].Kind != string(KindDecision) || ds[0].RequestID != r.ID || ds[0].Recipient != "" {
		t.Fatalf("after the denial: %+v, want one decision for the shared message of %s (none for the dev request)", ds, r.ID)
	}
}

// TestReceiverDownExactlyOnce: while the receiver is down nothing is lost and nothing is
// sent twice; once it is back every message arrives exactly once, in order per request.
func TestReceiverDownExactlyOnce(t *testing.T) {
	e := newEnv(t)
	e.ops.set(func(r *recorder) { r.down = true })
	e.siem.set(func(r *recorder) { r.down = true })
	e.run(e.outbox)
	var ids []string
	for range 5 {
		r := e.request("prod")
		ids = append(ids, r.ID)
		if _, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "attempts while down", func() bool {
		ds := e.deliveries(timebox.DeliveryFilter{Channel: "siem"})
		return len(ds) == 10 && ds[len(ds)-1].Attempts >= 3 // the oldest; a request's later events wait for it
	})
	e.ops.set(func(r *recorder) { r.down = false })
	e.siem.set(func(r *recorder) { r.down = false })
	waitFor(t, "every delivery", e.allSent)
	for _, rec := range []*recorder{e.ops, e.siem} {
		for k, n := range rec.keys {
			if n != 1 {
				t.Errorf("%s arrived %d times", k, n)
			}
		}
	}
	if n := len(e.siem.keys); n != 10 {
		t.Errorf("siem got %d distinct events, want 10", n)
	}
	for i, m := range e.siem.messages() { // a webhook gets the log in order
		if i > 0 && m.Event.Seq <= e.siem.messages()[i-1].Event.Seq {
			t.Errorf("siem got seq %d after %d", m.Event.Seq, e.siem.messages()[i-1].Event.Seq)
		}
	}
	// Per request: the new request before its decision, and the decision updated the thread.
	for _, id := range ids {
		var kinds []Kind
		for _, m := range e.ops.messages() {
			if m.Request != nil && m.Request.ID == id && m.Recipient == nil {
				kinds = append(kinds, m.Kind)
				if m.Kind == KindDecision && m.Thread == "" {
					t.Errorf("the decision on %s did not update the shared message", id)
				}
			}
		}
		if !slices.Equal(kinds, []Kind{KindNewRequest, KindDecision}) {
			t.Errorf("shared messages of %s = %v", id, kinds)
		}
	}
}

// TestRestartMidDelivery: deliveries claimed by a process that died before it recorded the
// outcome are sent again by the next one, flagged uncertain (so a receiver that can look
// first does), each exactly once.
func TestRestartMidDelivery(t *testing.T) {
	e := newEnv(t)
	e.request("prod")
	if _, err := e.outbox.Plan(e.ctx); err != nil {
		t.Fatal(err)
	}
	// The first process claims everything and dies mid-delivery.
	for _, ch := range []string{"ops", "siem"} {
		if _, err := e.outbox.claim(e.ctx, e.outbox.channel(ch)); err != nil {
			t.Fatal(err)
		}
	}
	next := e.newOutbox()
	next.SingleProcess = true
	if err := next.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.run(next)
	waitFor(t, "the redelivery", e.allSent)
	if e.ops.uncertain != 3 || e.siem.uncertain != 1 {
		t.Errorf("uncertain attempts = ops %d, siem %d; want 3 and 1", e.ops.uncertain, e.siem.uncertain)
	}
	for k, n := range e.ops.keys {
		if n != 1 {
			t.Errorf("%s arrived %d times", k, n)
		}
	}
}

// TestDeadLetterAndRetry: a permanent refusal goes to the dead-letter list at once; an
// admin's retry (audited) sends it again; a delivery failing past give_up_after fails too.
func TestDeadLetterAndRetry(t *testing.T) {
	e := newEnv(t)
	e.cfg.GiveUpAfter = timebox.Duration(300 * time.Millisecond)
	e.outbox = e.newOutbox()
	e.siem.set(func(r *recorder) { r.permanent = true })
	e.ops.set(func(r *recorder) { r.down = true })
	e.run(e.outbox)
	e.request("prod")
	waitFor(t, "the dead letters", func() bool {
		return len(e.deliveries(timebox.DeliveryFilter{Status: timebox.DeliveryFailed})) == 4
	})
	failed, err := e.svc.FailedDeliveries(e.ctx, "root", 0)
	if err != nil || len(failed) != 4 {
		t.Fatalf("failed = %d %v", len(failed), err)
	}
	var siem *timebox.Delivery
	for _, d := range failed {
		if d.Channel == "siem" {
			siem = d
			if d.Attempts != 1 || d.LastError != "HTTP 404" {
				t.Errorf("permanent failure: attempts %d, error %q; want 1, HTTP 404", d.Attempts, d.LastError)
			}
		} else if d.Attempts < 2 || d.LastError != "connection refused" {
			t.Errorf("given up: attempts %d, error %q", d.Attempts, d.LastError)
		}
	}
	if _, err := e.svc.RetryDelivery(e.ctx, "alice", siem.ID); timebox.ErrorCode(err) != timebox.EFORBIDDEN {
		t.Fatalf("a requester's retry = %v, want EFORBIDDEN", err)
	}
	e.siem.set(func(r *recorder) { r.permanent = false })
	if _, err := e.svc.RetryDelivery(e.ctx, "root", siem.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RetryDelivery(e.ctx, "root", siem.ID); timebox.ErrorCode(err) != timebox.ECONFLICT {
		t.Fatalf("a second retry = %v, want ECONFLICT", err)
	}
	waitFor(t, "the replay", func() bool { return e.siem.arrived(siem.Key) >= 1 })
	time.Sleep(50 * time.Millisecond)
	if n := e.siem.arrived(siem.Key); n != 1 {
		t.Fatalf("replayed %s arrived %d times", siem.Key, n)
	}
}

// TestRetryAfterHoldsTheChannel: a 429 with Retry-After holds the whole channel that long.
func TestRetryAfterHoldsTheChannel(t *testing.T) {
	e := newEnv(t)
	e.ops.set(func(r *recorder) { r.after = 400 * time.Millisecond })
	e.run(e.outbox)
	start := time.Now()
	e.request("prod")
	waitFor(t, "the first refusal", func() bool {
		ds := e.deliveries(timebox.DeliveryFilter{Channel: "ops"})
		return len(ds) == 3 && ds[len(ds)-1].LastError == "HTTP 429"
	})
	e.ops.set(func(r *recorder) { r.after = 0 })
	waitFor(t, "the deliveries", e.allSent)
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Fatalf("sent after %s, before Retry-After", took)
	}
}

// TestExpiryWarningOnce: an active request ending within expiry_warning gets one warning
// (with an extend link), and a new one only when its end moves.
func TestExpiryWarningOnce(t *testing.T) {
	e := newEnv(t, Route{Channels: []string{"ops"}, Events: []Kind{KindExpiryWarning}, Direct: []string{"requester"}})
	e.cfg.ExpiryWarning = timebox.Duration(2 * time.Hour)
	e.outbox = e.newOutbox()
	r := e.request("prod")
	if _, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{}); err != nil {
		t.Fatal(err)
	}
	activate(t, e, r.ID)
	for range 3 {
		if _, err := e.outbox.Plan(e.ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	var warnings []*timebox.Delivery
	for _, d := range e.deliveries(timebox.DeliveryFilter{}) {
		if d.Kind == string(KindExpiryWarning) {
			warnings = append(warnings, d)
		}
	}
	if len(warnings) != 2 { // the shared message and alice's own
		t.Fatalf("warnings = %+v, want 2 (shared, alice)", warnings)
	}
	stop := e.run(e.outbox)
	waitFor(t, "the warnings", e.allSent)
	stop()
	for _, m := range e.ops.messages() {
		if m.Kind == KindExpiryWarning && (len(m.Summary.Links) != 2 || m.Summary.Links[1].Text != "Extend") {
			t.Errorf("warning links = %+v", m.Summary.Links)
		}
	}
}

// activate marks request id active as the scheduler would once the database confirmed.
func activate(t *testing.T, e *env, id string) {
	t.Helper()
	if err := e.db.Update(e.ctx, func(tx timebox.Tx) error {
		r, err := tx.FindRequest(id)
		if err != nil {
			return err
		}
		r.State, r.ActivatedAt = timebox.StateActive, time.Now().UTC()
		if err := tx.UpdateRequest(r); err != nil {
			return err
		}
		return tx.AppendEvent(&timebox.Event{Actor: timebox.Actor, Action: "request.activated", RequestID: id, Database: r.Database})
	}); err != nil {
		t.Fatal(err)
	}
}

// TestBurstPlanned: a burst of events is planned exactly once, in batches, and delivered.
func TestBurstPlanned(t *testing.T) {
	e := newEnv(t, Route{Channels: []string{"ops"}, Events: []Kind{KindDriftRepaired}})
	e.outbox.channel("siem").Limit = 0
	const n = 300
	if err := e.db.Update(e.ctx, func(tx timebox.Tx) error {
		for i := range n {
			if err := tx.AppendEvent(&timebox.Event{Actor: "timebox", Action: "grant.test", Details: map[string]any{"i": i}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.run(e.outbox)
	waitFor(t, fmt.Sprintf("%d deliveries", n), func() bool {
		return len(e.deliveries(timebox.DeliveryFilter{Channel: "siem", Status: timebox.DeliverySent})) == n
	})
	if len(e.siem.keys) != n {
		t.Fatalf("distinct = %d", len(e.siem.keys))
	}
}

// TestForgedEventNotSent: an audit event edited in the store (by someone without
// secret_key) is not sent to anyone: its deliveries fail, naming the event.
func TestForgedEventNotSent(t *testing.T) {
	e := newEnv(t)
	e.request("prod")
	if _, err := e.outbox.Plan(e.ctx); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE events SET details = '{"reason":"approve this, it is fine"}' WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	e.run(e.outbox)
	waitFor(t, "the refusals", func() bool {
		return len(e.deliveries(timebox.DeliveryFilter{Status: timebox.DeliveryFailed})) == 4
	})
	for _, d := range e.deliveries(timebox.DeliveryFilter{}) {
		if !strings.Contains(d.LastError, "audit event 1 fails its check with secret_key") {
			t.Errorf("delivery %s: %q", d.Key, d.LastError)
		}
	}
	if n := len(e.ops.messages()) + len(e.siem.messages()); n != 0 {
		t.Fatalf("%d messages of a forged event were sent", n)
	}
}

// TestMetrics: attempts are counted by outcome, undelivered messages by channel and status.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	e.outbox.Register(reg)
	e.siem.set(func(r *recorder) { r.permanent = true })
	e.run(e.outbox)
	e.request("prod")
	waitFor(t, "the deliveries", func() bool {
		return testutil.ToFloat64(e.outbox.metrics.attempts.WithLabelValues("ops", "sent")) == 3 &&
			testutil.ToFloat64(e.outbox.metrics.attempts.WithLabelValues("siem", "failed")) == 1
	})
	want := `
# HELP timebox_notify_undelivered Notifications not delivered, by channel and status (pending, sending, failed: the dead-letter list).
# TYPE timebox_notify_undelivered gauge
timebox_notify_undelivered{channel="ops",status="failed"} 0
timebox_notify_undelivered{channel="ops",status="pending"} 0
timebox_notify_undelivered{channel="ops",status="sending"} 0
timebox_notify_undelivered{channel="siem",status="failed"} 1
timebox_notify_undelivered{channel="siem",status="pending"} 0
timebox_notify_undelivered{channel="siem",status="sending"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "timebox_notify_undelivered"); err != nil {
		t.Fatal(err)
	}
}
