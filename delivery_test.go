package timebox_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// addDeliveries stores one delivery per status given, on channel, about request id, created a
// minute apart, and returns them (IDs set).
func (e *svcEnv) addDeliveries(channel, id string, statuses ...timebox.DeliveryStatus) []*timebox.Delivery {
	e.t.Helper()
	var ds []*timebox.Delivery
	for i, st := range statuses {
		d := &timebox.Delivery{Key: fmt.Sprintf("%s/%s/%d/%s", channel, id, i, st), Channel: channel, Kind: "request.created",
			EventSeq: int64(i + 1), RequestID: id, Status: st, CreatedAt: e.now.Add(time.Duration(i) * time.Minute)}
		if st == timebox.DeliveryFailed {
			d.Attempts, d.LastError = 8, "slack: 404 channel_not_found"
		}
		ds = append(ds, d)
	}
	if err := e.db.Update(e.ctx, func(tx timebox.Tx) error { return tx.AddDeliveries(ds) }); err != nil {
		e.t.Fatal(err)
	}
	return ds
}

func (e *svcEnv) delivery(id int64) *timebox.Delivery {
	e.t.Helper()
	var d *timebox.Delivery
	if err := e.db.View(e.ctx, func(tx timebox.Tx) (err error) { d, err = tx.FindDelivery(id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func deliveryIDs(ds []*timebox.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// TestDeliveries: admins and auditors list the outbox, newest first, filtered by status,
// channel, request and limit; nobody else does, and a bad filter is one clear error.
func TestDeliveries(t *testing.T) {
	e := newSvcEnv(t)
	slack := e.addDeliveries("slack", "R1", timebox.DeliveryFailed, timebox.DeliverySent, timebox.DeliveryFailed)
	hook := e.addDeliveries("siem", "", timebox.DeliveryPending, timebox.DeliveryFailed)
	for _, who := range []string{"root", "audrey"} {
		all, err := e.svc.Deliveries(e.ctx, who, timebox.DeliveryFilter{})
		if err != nil || fmt.Sprint(deliveryIDs(all)) != fmt.Sprint([]int64{hook[1].ID, hook[0].ID, slack[2].ID, slack[1].ID, slack[0].ID}) {
			t.Fatalf("%s lists %v, %v; want all five, newest first", who, deliveryIDs(all), err)
		}
	}
	for _, c := range []struct {
		f    timebox.DeliveryFilter
		want []*timebox.Delivery
	}{
		{timebox.DeliveryFilter{Status: timebox.DeliveryFailed}, []*timebox.Delivery{hook[1], slack[2], slack[0]}},
		{timebox.DeliveryFilter{Status: timebox.DeliveryFailed, Channel: "slack"}, []*timebox.Delivery{slack[2], slack[0]}},
		{timebox.DeliveryFilter{Status: timebox.DeliveryFailed, Limit: 1}, []*timebox.Delivery{hook[1]}},
		{timebox.DeliveryFilter{RequestID: "R1", Status: timebox.DeliverySent}, []*timebox.Delivery{slack[1]}},
		{timebox.DeliveryFilter{Channel: "teams"}, nil},
	} {
		got, err := e.svc.Deliveries(e.ctx, "audrey", c.f)
		if err != nil || fmt.Sprint(deliveryIDs(got)) != fmt.Sprint(deliveryIDs(c.want)) {
			t.Errorf("Deliveries(%+v) = %v, %v; want %v", c.f, deliveryIDs(got), err, deliveryIDs(c.want))
		}
	}
	if got, err := e.svc.FailedDeliveries(e.ctx, "audrey", 0); err != nil || len(got) != 3 || got[0].LastError == "" || got[0].Attempts != 8 {
		t.Errorf("FailedDeliveries = %+v, %v", got, err)
	}
	for _, who := range []string{"alice", "bob", "carol", "nobody"} {
		_, err := e.svc.Deliveries(e.ctx, who, timebox.DeliveryFilter{})
		wantErr(t, err, timebox.EFORBIDDEN, "only admins and auditors")
	}
	_, err := e.svc.Deliveries(e.ctx, "root", timebox.DeliveryFilter{Status: "lost"})
	wantErr(t, err, timebox.EINVALID, `unknown notification status "lost"`, "pending, sending, sent, failed")
	_, err = e.svc.Deliveries(e.ctx, "root", timebox.DeliveryFilter{Limit: -1})
	wantErr(t, err, timebox.EINVALID, "limit")
}

// TestRetryDelivery: an admin puts a failed delivery back in the outbox, due now, with its
// attempts reset and its last error kept, recorded in the audit log; it is then claimed by
// its channel's sender. Anything else is refused without an event.
func TestRetryDelivery(t *testing.T) {
	e := newSvcEnv(t)
	ds := e.addDeliveries("slack", "R1", timebox.DeliveryFailed, timebox.DeliverySent, timebox.DeliveryPending)
	failed := ds[0]
	e.refused("", timebox.EFORBIDDEN, []string{"only admins may retry"}, func() error {
		_, err := e.svc.RetryDelivery(e.ctx, "audrey", failed.ID)
		return err
	})
	for _, d := range ds[1:] {
		e.refused("", timebox.ECONFLICT, []string{fmt.Sprintf("notification %d is %s, not failed", d.ID, d.Status)}, func() error {
			_, err := e.svc.RetryDelivery(e.ctx, "root", d.ID)
			return err
		})
	}
	e.refused("", timebox.ENOTFOUND, []string{"no notification 999"}, func() error {
		_, err := e.svc.RetryDelivery(e.ctx, "root", 999)
		return err
	})
	e.now = e.now.Add(time.Hour)
	var got *timebox.Delivery
	e.changed("", "notify.retried", false, func() (err error) {
		got, err = e.svc.RetryDelivery(e.ctx, "root", failed.ID)
		return err
	})
	stored := e.delivery(failed.ID)
	for _, d := range []*timebox.Delivery{got, stored} {
		if d.Status != timebox.DeliveryPending || d.Attempts != 0 || !d.NextAt.Equal(e.now) || d.LastError != "slack: 404 channel_not_found" {
			t.Errorf("retried delivery = %+v; want pending, 0 attempts, due now, its last error kept", d)
		}
	}
	es := e.events()
	ev := es[len(es)-1]
	if ev.Actor != "root" || ev.RequestID != "R1" || ev.Details["channel"] != "slack" || fmt.Sprint(ev.Details["delivery"]) != fmt.Sprint(failed.ID) ||
		ev.Details["last_error"] != "slack: 404 channel_not_found" {
		t.Errorf("notify.retried event = %+v", ev)
	}
	e.refused("", timebox.ECONFLICT, []string{"is pending, not failed"}, func() error {
		_, err := e.svc.RetryDelivery(e.ctx, "root", failed.ID)
		return err
	})
	var claimed []*timebox.Delivery
	if err := e.db.Update(e.ctx, func(tx timebox.Tx) (err error) {
		claimed, err = tx.ClaimDeliveries("slack", e.now, e.now.Add(time.Minute), 10, false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Both are about R1: the later pending one waits until the retried (earlier) one is sent.
	if fmt.Sprint(deliveryIDs(claimed)) != fmt.Sprint([]int64{failed.ID}) {
		t.Errorf("claimed %v after the retry, want the retried one alone (the later one about R1 waits for it)", deliveryIDs(claimed))
	}
}
