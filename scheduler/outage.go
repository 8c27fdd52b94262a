package scheduler

import (
	"context"
	"time"

	"github.com/timebox-dev/timebox"
)

// outage is a server that an engine call found unreachable. Until a probe reaches it again,
// Dispatch holds back the retries of the requests that need it: retrying each of them on its
// own would cost two store writes per attempt and per request — with thousands due, enough
// to slow the work on the healthy servers — and each would wait out its own backoff after
// the server is back. One probe per server pings it instead, and wakes the loop when it
// answers.
type outage struct {
	next     time.Time // when the probe tries again
	attempts int
}

// retrying reports whether processing r now would retry a database step that already
// failed: an activation, an extension or a removal whose grant records an error from this
// phase (a removal that is due, at the end or early when unused, is a new phase). A first
// attempt is never held back, so that a removal records its intent and shows as pending (and
// an activation its error) even while the server is down.
func retrying(r *timebox.Request, now time.Time) bool {
	g := r.Grant
	if g == nil || g.LastError == "" {
		return false
	}
	removal := r.Ending != timebox.EndingNone || !r.End.After(now) || r.Unused(now)
	return removal == (g.Status == timebox.GrantRevoking)
}

// waitsForProbe reports whether r is a retry held back for its server's outage: the probe
// wakes the loop for it, so Dispatch does not start it, and finishing with it needs no full
// read (thousands queued when a server dies would each cause one).
func (s *Scheduler) waitsForProbe(r *timebox.Request, now time.Time) bool {
	return retrying(r, now) && s.heldBack(s.serverOf(r))
}

// heldBack reports whether server is in an outage: its work waits for the probe.
func (s *Scheduler) heldBack(server string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.outages[server]
	return ok
}

// down records that server did not answer and starts its probe unless one runs already.
// Without a running loop (Run) there is nothing to hold back and no probe.
func (s *Scheduler) down(server string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := s.runCtx
	if _, ok := s.outages[server]; ok || ctx == nil || ctx.Err() != nil {
		return
	}
	o := &outage{next: s.Now().Add(s.probeDelay(1)), attempts: 1}
	s.outages[server] = o
	s.Logger.Warn("scheduler: server unreachable; holding its work back until it answers", "server", server)
	s.wg.Add(1)
	go s.probe(ctx, server, o)
}

// probeDelay is the wait before probe number attempts: the retry backoff, at most Sweep, so
// that a server that is back is noticed within seconds.
func (s *Scheduler) probeDelay(attempts int) time.Duration {
	return min(s.backoff(attempts), s.Sweep)
}

// probe pings server until it answers, then ends the outage and wakes the loop.
func (s *Scheduler) probe(ctx context.Context, server string, o *outage) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		wait := o.next.Sub(s.Now())
		s.mu.Unlock()
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := func() error {
			e, err := s.engine(server)
			if err != nil {
				return err
			}
			pctx, cancel := context.WithTimeout(ctx, s.StepTimeout)
			defer cancel()
			return e.Ping(pctx)
		}()
		if ctx.Err() != nil {
			return
		}
		s.observe(server, err)
		if err == nil || timebox.ErrorCode(err) != timebox.EUNAVAILABLE {
			s.mu.Lock()
			delete(s.outages, server)
			s.mu.Unlock()
			s.Logger.Info("scheduler: server answers again; resuming its work", "server", server)
			s.Wake()
			return
		}
		s.mu.Lock()
		o.attempts++
		o.next = s.Now().Add(s.probeDelay(o.attempts))
		s.mu.Unlock()
	}
}
