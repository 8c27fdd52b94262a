package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// inFlight is how many create+approve calls the scale run keeps in flight.
const inFlight = 16

// grantSpec is one request to file and approve: its database and its end (or, when end is
// zero, a duration).
type grantSpec struct {
	db       string
	server   string
	end      time.Time
	duration string
}

// activateAll files and approves every spec with inFlight calls at a time, and returns the
// approved (active) requests in spec order. deadline, when not zero, is when the first end
// comes: activation must be done by then. It prints progress every 10 seconds.
func (e *scaleEnv) activateAll(ctx context.Context, label string, specs []grantSpec, deadline time.Time) ([]*tbhttp.RequestView, time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out := make([]*tbhttp.RequestView, len(specs))
	next, done := atomic.Int64{}, atomic.Int64{}
	start := time.Now()
	var wg sync.WaitGroup
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(specs) || ctx.Err() != nil {
					return
				}
				r, err := e.activateOne(ctx, specs[i])
				if err != nil {
					cancel(fmt.Errorf("%s: grant %d on %s: %w", label, i, specs[i].db, err))
					return
				}
				out[i] = r
				done.Add(1)
			}
		}()
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				n := done.Load()
				progress("%s: %d/%d active (%.0f/s); server RSS %s", label, n, len(specs),
					float64(n)/time.Since(start).Seconds(), mb(e.memory().rss))
				if !deadline.IsZero() && time.Now().After(deadline) {
					cancel(fmt.Errorf("%s: activation still running at the first end (%d/%d active after %s); raise -lead",
						label, n, len(specs), fmtD(time.Since(start))))
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	took := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return nil, took, err
	}
	if !deadline.IsZero() && time.Now().After(deadline) {
		return nil, took, fmt.Errorf("%s: activating %d grants took %s, past the first end; raise -lead", label, len(specs), fmtD(took))
	}
	return out, took, nil
}

// activateOne files and approves one request and checks that it is active.
func (e *scaleEnv) activateOne(ctx context.Context, s grantSpec) (*tbhttp.RequestView, error) {
	in := timebox.RequestInput{Database: s.db, Access: "read-only", Duration: s.duration, Reason: "scale benchmark"}
	if !s.end.IsZero() {
		end := s.end
		in.End, in.Duration = &end, ""
	}
	r, err := e.requester.CreateRequest(ctx, in)
	if err != nil {
		return nil, err
	}
	r, err = e.owner.Approve(ctx, r.ID, timebox.ApproveInput{})
	if err != nil {
		return nil, err
	}
	if r.State != timebox.StateActive {
		msg := ""
		if r.Grant != nil {
			msg = r.Grant.LastError
		}
		return nil, fmt.Errorf("request %s is %s after approval %s", r.ID, r.Status, msg)
	}
	return r, nil
}

// revokeAll revokes requests through the API, inFlight at a time.
func (e *scaleEnv) revokeAll(ctx context.Context, rs []*tbhttp.RequestView) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, inFlight)
	for _, r := range rs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := e.owner.Revoke(ctx, r.ID, "scale benchmark: warm-up done"); err != nil {
				mu.Lock()
				first = cmpOr(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// session is a login held open across its grant's end, running a long query that must die.
type session struct {
	end  time.Time
	died chan time.Time // receives when the query failed (zero time: it returned normally)
}

// openSessions logs in with the credentials of each request and starts a long query on each;
// every session first reads a table to show that the grant works.
func (e *scaleEnv) openSessions(ctx context.Context, rs []*tbhttp.RequestView) ([]*session, error) {
	out := make([]*session, len(rs))
	errs := make(chan error, len(rs))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := e.requester.Credentials(ctx, r.ID)
			if err != nil {
				errs <- err
				return
			}
			conn, err := login(ctx, c)
			if err != nil {
				errs <- fmt.Errorf("login %s: %w", c.User, err)
				return
			}
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM t0000").Scan(&n); err != nil {
				conn.Close(context.Background())
				errs <- fmt.Errorf("read with %s: %w", c.User, err)
				return
			}
			s := &session{end: r.End, died: make(chan time.Time, 1)}
			out[i] = s
			go func(conn *pgx.Conn) {
				defer conn.Close(context.Background())
				_, err := conn.Exec(ctx, "SELECT pg_sleep(3600)")
				if err != nil && ctx.Err() == nil {
					s.died <- time.Now()
					return
				}
				s.died <- time.Time{}
			}(conn)
		}()
	}
	wg.Wait()
	close(errs)
	return out, <-errs
}

// sessionLags waits up to wait for every session to die and returns end → died for those
// that did, and how many survived.
func sessionLags(sessions []*session, wait time.Duration) (lags []time.Duration, survived int) {
	deadline := time.Now().Add(wait)
	for _, s := range sessions {
		select {
		case t := <-s.died:
			if t.IsZero() {
				survived++
			} else {
				lags = append(lags, t.Sub(s.end))
			}
		case <-time.After(time.Until(deadline)):
			survived++
		}
	}
	return lags, survived
}
