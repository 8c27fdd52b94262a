package notify

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// slowReceiver takes its time to answer 200 (a receiver under load), and counts arrivals.
type slowReceiver struct {
	delay time.Duration
	mu    sync.Mutex
	keys  map[string]int
}

func (s *slowReceiver) Send(ctx context.Context, m *Message) (Result, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[m.Delivery.Key]++
	return Result{}, nil
}

// A receiver that answers slowly must not make two replicas send the same message: a
// sender claims a batch for Claim; what it has not attempted when the claim runs low is
// given back rather than sent after another replica may have claimed it.
func TestAttackSlowReceiverNoDuplicatesAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	slow := &slowReceiver{delay: 60 * time.Millisecond, keys: map[string]int{}}
	replica := func() *Outbox {
		o := New(e.db, e.svc, e.db.Feed(), e.cfg, []*Channel{{Name: "siem", Type: "webhook", Sender: slow, Events: []string{"*"}}}, "https://timebox.example.com")
		o.Sweep, o.Claim = 10*time.Millisecond, 300*time.Millisecond
		o.Logger = e.outbox.Logger
		return o
	}
	a, b := replica(), replica()
	for range 12 {
		e.request("dev")
	}
	if _, err := a.Plan(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.run(a)
	time.Sleep(20 * time.Millisecond)
	e.run(b)
	waitFor(t, "every delivery", func() bool {
		ds := e.deliveries(timebox.DeliveryFilter{Channel: "siem"})
		for _, d := range ds {
			if d.Status != timebox.DeliverySent {
				return false
			}
		}
		return len(ds) == 12
	})
	slow.mu.Lock()
	defer slow.mu.Unlock()
	for k, n := range slow.keys {
		if n != 1 {
			t.Errorf("%s arrived %d times", k, n)
		}
	}
}
