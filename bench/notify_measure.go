package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/timebox-dev/timebox"
)

// latencyRun is event → delivered on one store at one rate.
type latencyRun struct {
	store string
	rate  float64 // 0: the default
	// fromCall: the API call that caused the event returned → the receiver got it;
	// fromEvent: the event's time (data.event.time) → the receiver got it.
	fromCall, fromEvent []time.Duration
	events              int
	offered             float64       // events a second the calls produced
	calls, last         time.Duration // how long the calls took; first call → last arrival
	dups, bad           int
}

// deliveryLatency creates and approves n requests back to back (each activates a login) and
// times each of their events to the receiver; it revokes them afterwards.
func (h *harness) deliveryLatency(ctx context.Context, rcv *receiver, n int) (*latencyRun, error) {
	type call struct{ created, approved time.Time }
	calls := map[string]*call{}
	var ids []string
	begin := time.Now()
	for range n {
		r, err := h.requester.CreateRequest(ctx, timebox.RequestInput{Database: "bench", Access: "read-only", Duration: "10m", Reason: "notify benchmark"})
		if err != nil {
			return nil, err
		}
		c := &call{created: time.Now()}
		if _, err := h.owner.Approve(ctx, r.ID, timebox.ApproveInput{}); err != nil {
			return nil, err
		}
		c.approved = time.Now()
		calls[r.ID] = c
		ids = append(ids, r.ID)
	}
	callsTook := time.Since(begin)
	want := []string{"request.created", "request.approved", "request.activated"}
	err := rcv.waitFor(time.Duration(3*n)*time.Second/50+60*time.Second, "every request's created, approved and activated events", func(as []*arrival) bool {
		seen := map[string]int{}
		for _, a := range as {
			if calls[a.requestID] != nil {
				for _, w := range want {
					if a.action == w {
						seen[a.requestID]++
					}
				}
			}
		}
		return len(seen) == n && func() bool {
			for _, k := range seen {
				if k < len(want) {
					return false
				}
			}
			return true
		}()
	})
	if err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond) // any other event of these requests
	r := &latencyRun{calls: callsTook}
	for _, a := range rcv.arrivals() {
		c := calls[a.requestID]
		if c == nil {
			continue
		}
		cause := c.approved
		if a.action == "request.created" {
			cause = c.created
		}
		r.fromCall = append(r.fromCall, a.at.Sub(cause))
		r.fromEvent = append(r.fromEvent, a.at.Sub(a.eventTime))
		r.last = max(r.last, a.at.Sub(begin))
	}
	r.events = len(r.fromCall)
	r.offered = float64(r.events) / callsTook.Seconds()
	r.dups, r.bad, _ = rcv.stats()
	return r, h.revokeAll(ctx, ids)
}

// revokeAll revokes the requests, eight at a time (untimed: the next server must not find
// these logins).
func (h *harness) revokeAll(ctx context.Context, ids []string) error {
	return parallel(len(ids), 8, func(i int) error {
		_, err := h.owner.Revoke(ctx, ids[i], "notify benchmark done")
		return err
	})
}

// parallel runs f(0..n-1), at most width at a time, and returns the first error.
func parallel(n, width int, f func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, width)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// drain is one burst: its events generated through the API while the receiver held the
// channel, then released.
type drain struct {
	ids       map[string]bool // the burst's requests
	events    int             // audit events: two per request (created, cancelled)
	generated time.Duration   // how long the API calls took
	release   time.Time
	first     time.Time     // the burst's first event arrived (the sender waits out the last Retry-After)
	last      time.Time     // the burst's last event arrived
	cpu       time.Duration // the server's CPU time from release to last
	arrivals  []time.Time   // of the burst's events
	done      chan struct{}
}

// took is the burst's first event delivered → its last.
func (d *drain) took() time.Duration { return d.last.Sub(d.first) }

// within counts the burst's events that arrived between from and to.
func (d *drain) within(from, to time.Time) int {
	n := 0
	for _, t := range d.arrivals {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return n
}

// generateBurst writes events audit events through the API: events/2 requests, each created
// by the requester and cancelled by them (request.created, request.cancelled), eight calls in
// flight.
func (h *harness) generateBurst(ctx context.Context, events int) (*drain, error) {
	n := events / 2
	ids := make([]string, n)
	start := time.Now()
	err := parallel(n, 8, func(i int) error {
		r, err := h.requester.CreateRequest(ctx, timebox.RequestInput{Database: "bench", Access: "read-only", Duration: "10m", Reason: "notify burst"})
		if err != nil {
			return err
		}
		ids[i] = r.ID
		_, err = h.requester.Cancel(ctx, r.ID, "notify burst")
		return err
	})
	if err != nil {
		return nil, err
	}
	d := &drain{ids: map[string]bool{}, events: 2 * n, generated: time.Since(start), done: make(chan struct{})}
	for _, id := range ids {
		d.ids[id] = true
	}
	return d, nil
}

// burstBefore generates a burst while rcv holds the channel (rcv nil: the receiver is down,
// the burst becomes a backlog of retries), waits until the planner has had time to plan it,
// and releases it.
func (h *harness) burstBefore(ctx context.Context, rcv *receiver, events int) (*drain, error) {
	if rcv != nil {
		rcv.hold(true)
	}
	d, err := h.generateBurst(ctx, events)
	if err != nil {
		return nil, err
	}
	time.Sleep(2500 * time.Millisecond) // the planner plans 100 events a transaction, at least every 2 s
	h.release(rcv, d)
	return d, nil
}

// release lets rcv answer and follows the drain until the burst's last event arrived.
func (h *harness) release(rcv *receiver, d *drain) {
	if rcv == nil {
		close(d.done)
		return
	}
	pid := h.server.Process.Pid
	cpu0 := serverCPU(pid)
	d.release = time.Now()
	rcv.hold(false)
	go func() {
		defer close(d.done)
		rcv.waitFor(10*time.Minute, "the burst", func(as []*arrival) bool {
			k := 0
			for _, a := range as {
				if d.ids[a.requestID] {
					k++
				}
			}
			return k >= d.events
		})
		d.cpu = serverCPU(pid) - cpu0 // from release: includes the wait for the first
		for _, a := range rcv.arrivals() {
			if d.ids[a.requestID] {
				d.arrivals = append(d.arrivals, a.at)
				if a.at.After(d.last) {
					d.last = a.at
				}
				if d.first.IsZero() || a.at.Before(d.first) {
					d.first = a.at
				}
			}
		}
	}()
}

// finishDrain waits until the burst is delivered.
func (h *harness) finishDrain(ctx context.Context, rcv *receiver, d *drain) error {
	select {
	case <-d.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if rcv != nil && len(d.arrivals) < d.events {
		return fmt.Errorf("the burst: %d of %d events delivered after 10 minutes", len(d.arrivals), d.events)
	}
	return nil
}

// burstBeforeExpiry generates a burst while rcv holds the channel and has expiryLag release
// it so that the drain covers the expiry window (10 s from the first end): 1 s before the
// first end when the last drain took longer than the window, else centred on it.
func (h *harness) burstBeforeExpiry(ctx context.Context, rcv *receiver, events int, lastDrain time.Duration) (*drain, error) {
	rcv.hold(true)
	d, err := h.generateBurst(ctx, events)
	if err != nil {
		return nil, err
	}
	lead := -time.Second
	if lastDrain < 11*time.Second {
		lead = 5*time.Second - lastDrain/2
	}
	h.beforeExpiry = func(first time.Time) {
		time.AfterFunc(time.Until(first.Add(lead)), func() { h.release(rcv, d) })
	}
	return d, nil
}

// serverCPU returns the user and system CPU time of process pid (0 when unreadable).
func serverCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)       // utime, field 14
	k, _ := strconv.ParseInt(f[12], 10, 64)       // stime, field 15
	return time.Duration(u+k) * time.Second / 100 // USER_HZ is 100 on Linux
}

func randomPassword() string { return timebox.RandomPassword(32) }

// dummySecret is a well-formed signing secret for a receiver that does not exist.
func dummySecret() string {
	key := make([]byte, 32)
	rand.Read(key)
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}
