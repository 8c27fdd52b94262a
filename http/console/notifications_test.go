package console_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// hostileError is a last error with markup in it, as a receiver's answer might hold.
const hostileError = `webhook: 400 <script>alert(1)</script>`

// addDelivery stores one delivery and returns it with its ID.
func (e *env) addDelivery(channel, kind, requestID, recipient string, st timebox.DeliveryStatus) *timebox.Delivery {
	e.t.Helper()
	d := &timebox.Delivery{Key: fmt.Sprintf("%s/%s/%s/%s/%d", channel, kind, requestID, recipient, time.Now().UnixNano()),
		Channel: channel, Kind: kind, EventSeq: 1, RequestID: requestID, Recipient: recipient, Status: st}
	if st == timebox.DeliveryFailed {
		d.Attempts, d.LastError = 8, hostileError
	}
	if err := e.DB.Update(context.Background(), func(tx timebox.Tx) error { return tx.AddDeliveries([]*timebox.Delivery{d}) }); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) storedDelivery(id int64) *timebox.Delivery {
	e.t.Helper()
	var d *timebox.Delivery
	if err := e.DB.View(context.Background(), func(tx timebox.Tx) (err error) { d, err = tx.FindDelivery(id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// TestNotificationsPage: admins see the dead-letter list first, with a Retry button on each
// (escaped errors), then the latest deliveries, filtered; a retry puts the delivery back
// and says so, a second one is a 409 on the page; nobody else sees the page or retries.
func TestNotificationsPage(t *testing.T) {
	e := newEnv(t, nil)
	req := e.fileRequest("alice", timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "1h", Reason: "r", Ticket: "T-1"})
	failed := e.addDelivery("ops-slack", "request.created", req.ID, "", timebox.DeliveryFailed)
	e.addDelivery("ops-teams", "request.created", req.ID, "", timebox.DeliverySent)
	e.addDelivery("siem", "event", "", "", timebox.DeliveryPending)
	dm := e.addDelivery("mail", "request.created", req.ID, "bob", timebox.DeliveryFailed)

	for _, who := range []string{"alice", "bob", "audrey", "stan"} {
		b := e.signIn(who)
		if p := b.get("/notifications"); p.Status != http.StatusForbidden || strings.Contains(p.Body, "ops-slack") {
			t.Errorf("%s GET /notifications = %d, want 403", who, p.Status)
		}
		if p := b.get("/"); strings.Contains(p.Body, `href="/notifications"`) {
			t.Errorf("%s has a link to the notifications page", who)
		}
		if p := b.post(fmt.Sprintf("/notifications/%d/retry", failed.ID), nil); p.Status != http.StatusForbidden {
			t.Errorf("%s POST retry = %d, want 403", who, p.Status)
		}
	}
	if d := e.storedDelivery(failed.ID); d.Status != timebox.DeliveryFailed {
		t.Fatalf("a refused retry changed the delivery: %+v", d)
	}

	admin := e.signIn("admin")
	p := admin.get("/notifications")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `href="/notifications" aria-current="page"`) {
		t.Fatalf("admin GET /notifications = %d:\n%s", p.Status, p.Body)
	}
	dead, recent, ok := strings.Cut(p.Body, `id="recent"`)
	if !ok {
		t.Fatal("the page has no latest deliveries section")
	}
	for _, want := range []string{"ops-slack", "mail", ">bob<", fmt.Sprintf(`action="/notifications/%d/retry"`, failed.ID),
		fmt.Sprintf(`action="/notifications/%d/retry"`, dm.ID), "webhook: 400 &lt;script&gt;alert(1)&lt;/script&gt;", `href="/requests/` + req.ID + `"`} {
		if !strings.Contains(dead, want) {
			t.Errorf("the dead-letter list lacks %q", want)
		}
	}
	if strings.Contains(p.Body, "<script>alert") || strings.Contains(dead, "ops-teams") || strings.Contains(dead, "siem") {
		t.Errorf("the dead-letter list shows what it should not:\n%s", dead)
	}
	for _, want := range []string{"ops-teams", "siem", "delivery-sent", "delivery-pending", `<option value="ops-slack">`} {
		if !strings.Contains(recent, want) {
			t.Errorf("the latest deliveries lack %q", want)
		}
	}
	if strings.Contains(recent, "/retry") {
		t.Error("the latest deliveries have Retry buttons (the dead-letter list has them)")
	}
	_, recent, _ = strings.Cut(admin.get("/notifications?status=sent").Body, `id="recent"`)
	if !strings.Contains(recent, "ops-teams") || strings.Contains(recent, "siem") || !strings.Contains(recent, `<option value="sent" selected>`) {
		t.Errorf("?status=sent shows:\n%s", recent)
	}
	_, recent, _ = strings.Cut(admin.get("/notifications?channel=siem").Body, `id="recent"`)
	if !strings.Contains(recent, "siem") || strings.Contains(recent, "ops-teams") {
		t.Errorf("?channel=siem shows:\n%s", recent)
	}
	if p := admin.get("/notifications?channel=a%00b%ff"); p.Status != http.StatusOK || !strings.Contains(p.Body, "is not a channel name") {
		t.Errorf("?channel with a NUL = %d, lacks the field error", p.Status)
	}
	if p := admin.get("/notifications?status=lost"); p.Status != http.StatusOK || !strings.Contains(p.Body, `unknown notification status &#34;lost&#34;`) {
		t.Errorf("?status=lost = %d, lacks the field error", p.Status)
	}

	p = admin.post(fmt.Sprintf("/notifications/%d/retry", failed.ID), nil)
	if want := fmt.Sprintf("/notifications?retried=%d#dead-letters", failed.ID); p.Status != http.StatusSeeOther || p.Location != want {
		t.Fatalf("admin POST retry = %d → %q, want 303 → %q", p.Status, p.Location, want)
	}
	if d := e.storedDelivery(failed.ID); d.Status != timebox.DeliveryPending || d.Attempts != 0 {
		t.Errorf("after the retry the delivery is %+v", d)
	}
	if acts := e.eventActions(req.ID); acts[len(acts)-1] != "notify.retried" {
		t.Errorf("the request's events after the retry: %v", acts)
	}
	p = admin.get(p.Location)
	dead, _, _ = strings.Cut(p.Body, `id="recent"`)
	if !strings.Contains(p.Body, fmt.Sprintf("Notification %d was put back in the outbox", failed.ID)) ||
		strings.Contains(dead, fmt.Sprintf("/notifications/%d/retry", failed.ID)) || !strings.Contains(dead, fmt.Sprintf("/notifications/%d/retry", dm.ID)) {
		t.Errorf("the page after the retry:\n%s", dead)
	}
	p = admin.post(fmt.Sprintf("/notifications/%d/retry", failed.ID), nil)
	if p.Status != http.StatusConflict || !strings.Contains(p.Body, "is pending, not failed") || !strings.Contains(p.Body, "Failed: the dead-letter list") {
		t.Errorf("a second retry = %d:\n%s", p.Status, p.Body)
	}
	for _, id := range []string{"abc", "0", "999"} {
		if p := admin.post("/notifications/"+id+"/retry", nil); p.Status != http.StatusNotFound {
			t.Errorf("POST retry of %s = %d, want 404", id, p.Status)
		}
	}
	e.addDelivery("siem", "event", "", "", timebox.DeliveryPending) // a fresh empty dead-letter list
	admin.post(fmt.Sprintf("/notifications/%d/retry", dm.ID), nil)
	if p := admin.get("/notifications"); !strings.Contains(p.Body, "No notification has failed.") {
		t.Errorf("an empty dead-letter list:\n%s", p.Body)
	}
}

// TestRequestPageDeliveries: a request's page lists its notifications to admins and
// auditors, and to nobody else (the requester and the approvers see none).
func TestRequestPageDeliveries(t *testing.T) {
	e := newEnv(t, nil)
	req := e.fileRequest("alice", timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "1h", Reason: "r", Ticket: "T-1"})
	other := e.fileRequest("alice", timebox.RequestInput{Database: "staging", Access: "read-only", Duration: "1h", Reason: "r"})
	e.addDelivery("ops-slack", "request.created", req.ID, "", timebox.DeliveryFailed)
	e.addDelivery("mail", "request.created", req.ID, "bob", timebox.DeliverySent)
	e.addDelivery("ops-teams", "request.created", other.ID, "", timebox.DeliverySent)
	for who, retryLink := range map[string]bool{"admin": true, "audrey": false} {
		p := e.signIn(who).get("/requests/" + req.ID)
		if p.Status != http.StatusOK {
			t.Fatalf("%s GET the request = %d", who, p.Status)
		}
		_, section, _ := strings.Cut(p.Body, `<h2 id="notifications">`)
		section, _, _ = strings.Cut(section, `<h2 id="history">`)
		for _, want := range []string{"ops-slack", "mail", ">bob<", "delivery-failed", "delivery-sent", "webhook: 400 &lt;script&gt;", ">8<"} {
			if !strings.Contains(section, want) {
				t.Errorf("%s: the request's notifications lack %q:\n%s", who, want, section)
			}
		}
		if strings.Contains(section, "ops-teams") || strings.Contains(section, "/retry") {
			t.Errorf("%s: the request's notifications show another request's or a Retry button:\n%s", who, section)
		}
		if got := strings.Contains(section, `href="/notifications#dead-letters"`); got != retryLink {
			t.Errorf("%s: link to the dead-letter list = %v, want %v", who, got, retryLink)
		}
	}
	if p := e.signIn("audrey").get("/requests/" + other.ID); !strings.Contains(p.Body, "ops-teams") {
		t.Error("the other request's page lacks its notification")
	}
	for _, who := range []string{"alice", "bob"} {
		p := e.signIn(who).get("/requests/" + req.ID)
		if p.Status != http.StatusOK || strings.Contains(p.Body, `id="notifications"`) || strings.Contains(p.Body, "ops-slack") {
			t.Errorf("%s sees the request's notifications (%d)", who, p.Status)
		}
	}
	fresh := e.fileRequest("alice", timebox.RequestInput{Database: "staging", Access: "read-write", Duration: "1h", Reason: "r"})
	if p := e.signIn("admin").get("/requests/" + fresh.ID); !strings.Contains(p.Body, "The outbox has no notification about this request.") {
		t.Error("a request without notifications does not say so")
	}
}
