package http_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// addDeliveries stores deliveries on channel about request id, one per status, and returns
// them with their IDs.
func (e *testEnv) addDeliveries(channel, id string, statuses ...timebox.DeliveryStatus) []*timebox.Delivery {
	e.t.Helper()
	var ds []*timebox.Delivery
	for i, st := range statuses {
		d := &timebox.Delivery{Key: fmt.Sprintf("%s/%s/%d", channel, id, i), Channel: channel, Kind: "request.created",
			EventSeq: int64(i + 1), RequestID: id, Status: st, CreatedAt: time.Now().Add(time.Duration(i-10) * time.Minute)}
		if st == timebox.DeliveryFailed {
			d.Attempts, d.LastError = 8, "webhook: 503 Service Unavailable"
		}
		ds = append(ds, d)
	}
	if err := e.db.Update(context.Background(), func(tx timebox.Tx) error { return tx.AddDeliveries(ds) }); err != nil {
		e.t.Fatal(err)
	}
	return ds
}

// TestDeliveryRoutes: admins and auditors list the outbox, filtered; the dead-letter list is
// status=failed; only admins retry, and only what failed; bad queries and ids are one clear
// 400 naming the parameter, on both stores.
func TestDeliveryRoutes(t *testing.T) {
	forEachStore(t, testDeliveryRoutes)
}

func testDeliveryRoutes(t *testing.T, dsn string) {
	e := newEnvOn(t, nil, dsn)
	ctx := context.Background()
	if r := e.raw("GET", "/api/v1/notify/deliveries", "audrey", ""); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"deliveries":[]}` {
		t.Fatalf("an empty outbox = %d %s, want an empty list", r.status, r.body)
	}
	hook := e.addDeliveries("siem", "", timebox.DeliveryFailed, timebox.DeliverySent)
	slack := e.addDeliveries("slack", "R1", timebox.DeliveryFailed, timebox.DeliveryPending)
	failed, err := e.client("admin").Deliveries(ctx, timebox.DeliveryFilter{Status: timebox.DeliveryFailed})
	if err != nil || len(failed) != 2 || failed[0].ID != slack[0].ID || failed[1].ID != hook[0].ID {
		t.Fatalf("the dead-letter list = %+v, %v; want the two failed ones, newest first", failed, err)
	}
	if d := failed[0]; d.Channel != "slack" || d.Kind != "request.created" || d.RequestID != "R1" || d.Attempts != 8 ||
		d.LastError != "webhook: 503 Service Unavailable" || d.CreatedAt.IsZero() {
		t.Errorf("a failed delivery reads %+v", d)
	}
	for q, want := range map[string]int{"?channel=slack": 2, "?request=R1&status=pending": 1, "?limit=1": 1, "?channel=teams": 0, "": 4} {
		r := e.raw("GET", "/api/v1/notify/deliveries"+q, "audrey", "")
		if r.status != 200 || strings.Count(string(r.body), `"key"`) != want {
			t.Errorf("GET deliveries%s as an auditor = %d %s, want %d deliveries", q, r.status, r.body, want)
		}
	}
	for q, want := range map[string]string{
		"?status=lost":               `unknown notification status "lost"`,
		"?limit=0":                   "limit",
		"?status=failed&status=sent": `"status" is given 2 times`,
		"?state=failed":              `unknown query parameter "state"`,
		"?channel=a%00b":             "control character",
		"?request=%ff":               "not valid UTF-8",
	} {
		r := e.raw("GET", "/api/v1/notify/deliveries"+q, "admin", "")
		if code, msg := r.apiError(t); r.status != 400 || code != timebox.EINVALID || !strings.Contains(msg, want) {
			t.Errorf("GET deliveries%s = %d %s %q, want 400 containing %q", q, r.status, code, msg, want)
		}
	}
	for _, who := range []string{"alice", "bob", "stan"} {
		_, err := e.client(who).Deliveries(ctx, timebox.DeliveryFilter{})
		wantCode(t, err, timebox.EFORBIDDEN)
	}

	for _, who := range []string{"audrey", "bob"} {
		_, err := e.client(who).RetryDelivery(ctx, slack[0].ID)
		wantCode(t, err, timebox.EFORBIDDEN)
	}
	d, err := e.client("admin").RetryDelivery(ctx, slack[0].ID)
	if err != nil || d.Status != timebox.DeliveryPending || d.Attempts != 0 || d.ID != slack[0].ID {
		t.Fatalf("admin retries %d: %+v, %v", slack[0].ID, d, err)
	}
	es, err := e.client("admin").Events(ctx, tbhttp.EventQuery{RequestID: "R1"})
	if err != nil || len(es) != 1 || es[0].Action != "notify.retried" || es[0].Actor != "admin" {
		t.Errorf("events of R1 after the retry: %+v, %v", es, err)
	}
	_, err = e.client("admin").RetryDelivery(ctx, slack[0].ID)
	if te := wantCode(t, err, timebox.ECONFLICT); !strings.Contains(te.Message, "is pending, not failed") {
		t.Errorf("a second retry: %q", te.Message)
	}
	_, err = e.client("admin").RetryDelivery(ctx, 999)
	wantCode(t, err, timebox.ENOTFOUND)
	for _, id := range []string{"abc", "0", "-3", "1e3", "99999999999999999999"} {
		r := e.raw("POST", "/api/v1/notify/deliveries/"+id+"/retry", "admin", "{}")
		if code, msg := r.apiError(t); r.status != 400 || code != timebox.EINVALID || !strings.Contains(msg, "not a positive integer") {
			t.Errorf("POST retry of %q = %d %s %q", id, r.status, code, msg)
		}
	}
	if r := e.raw("POST", "/api/v1/notify/deliveries/1/retry", "", "{}"); r.status != 401 {
		t.Errorf("a retry without a token = %d", r.status)
	}
}
