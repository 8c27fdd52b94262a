package console_test

import (
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/http/console"
)

// newLiveEnv is newEnv with the store's change feed, as timebox server wires it.
func newLiveEnv(t *testing.T, configure func(*console.Server)) *env {
	e := newEnv(t, configure)
	e.Console.Feed = e.DB.Feed() // before any request
	return e
}

// createRequest has alice ask for prod through the service, as the CLI would.
func (e *env) createRequest() *timebox.Request {
	e.t.Helper()
	r, err := e.Svc.CreateRequest(e.t.Context(), "alice", timebox.RequestInput{
		Database: "prod", Access: "read-only", Duration: "1h", Reason: "investigate the orders bug"})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// auditHead returns the store's last event's seq.
func (e *env) auditHead() int64 {
	e.t.Helper()
	var seq int64
	if err := e.DB.View(e.t.Context(), func(tx timebox.Tx) (err error) { seq, _, err = tx.AuditHead(); return err }); err != nil {
		e.t.Fatal(err)
	}
	return seq
}

// changeData is the only data a change event may carry.
var changeData = regexp.MustCompile(`^\{"seq":\d+\}$`)

func seqOf(t *testing.T, ev sseEvent) int64 {
	t.Helper()
	if ev.Name != "change" || !changeData.MatchString(ev.Data) {
		t.Fatalf("event %+v, want a change with only a seq", ev)
	}
	var d struct{ Seq int64 }
	json.Unmarshal([]byte(ev.Data), &d)
	return d.Seq
}

// TestLiveEvents: a signed-in page's stream announces a change made elsewhere (through the
// service, as the CLI or another approver would) within a second, carrying nothing but the
// seq; a burst of changes is coalesced; HEAD tells the status without a stream.
func TestLiveEvents(t *testing.T) {
	e := newLiveEnv(t, nil)
	bob := e.signIn("bob")
	if p := bob.get("/"); !strings.Contains(p.Body, `data-live="15"`) {
		t.Fatalf("the signed-in page is not marked live: %s", p.Body)
	}
	if p := e.browser().get("/sign-in"); strings.Contains(p.Body, "data-live") {
		t.Error("the sign-in page is marked live")
	}
	s := bob.events()
	h := s.res.Header
	if s.res.StatusCode != http.StatusOK || h.Get("Content-Type") != "text/event-stream" ||
		h.Get("Cache-Control") != "no-store" || h.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("GET /events: %d %v", s.res.StatusCode, h)
	}
	start := time.Now()
	r := e.createRequest()
	ev, ok := s.next(time.Second)
	if !ok {
		t.Fatal("the stream ended")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the change took %s to arrive", d)
	}
	if seq := seqOf(t, ev); seq != e.auditHead() {
		t.Errorf("change seq %d, want the audit head %d", seq, e.auditHead())
	}
	for _, secret := range []string{r.ID, "alice", "prod"} {
		if strings.Contains(ev.Data, secret) {
			t.Errorf("the event tells %q: %s", secret, ev.Data)
		}
	}

	// A burst: a few events, at least ~150 ms apart, the last with the last seq.
	time.Sleep(200 * time.Millisecond)
	for range 6 {
		e.createRequest()
	}
	head := e.auditHead()
	var times []time.Time
	var last int64
	for last != head {
		ev, ok := s.next(2 * time.Second)
		if !ok {
			t.Fatal("the stream ended")
		}
		last = seqOf(t, ev)
		times = append(times, time.Now())
	}
	if len(times) >= 6 {
		t.Errorf("%d events for a burst of 6 changes: not coalesced", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 100*time.Millisecond {
			t.Errorf("events %d and %d only %s apart", i-1, i, gap)
		}
	}

	req, _ := http.NewRequest("HEAD", e.URL+"/events", nil)
	if p := bob.do(req); p.Status != http.StatusOK || p.Header.Get("Content-Type") != "text/event-stream" || p.Body != "" {
		t.Errorf("HEAD /events: %d %v %q", p.Status, p.Header, p.Body)
	}
}

// TestLiveEventsUnauthenticated: no session, or a session that ended, gets a 401 (which
// the script reads as signed out), never a stream.
func TestLiveEventsUnauthenticated(t *testing.T) {
	e := newLiveEnv(t, nil)
	s := e.browser().events()
	if s.res.StatusCode != http.StatusUnauthorized || s.res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /events without a session: %d %v", s.res.StatusCode, s.res.Header)
	}
	b := e.signIn("carol")
	cookies := b.c.Jar.Cookies(mustURL(t, e.URL))
	b.post("/sign-out", nil)
	stale := e.browser()
	stale.c.Jar.SetCookies(mustURL(t, e.URL), cookies)
	if s := stale.events(); s.res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /events with a signed-out cookie: %d", s.res.StatusCode)
	}
}

// TestLiveEventsWithoutFeed: without a feed /events answers 204, so the script polls.
func TestLiveEventsWithoutFeed(t *testing.T) {
	e := newEnv(t, nil)
	s := e.signIn("bob").events()
	if s.res.StatusCode != http.StatusNoContent {
		t.Fatalf("GET /events without a feed: %d, want 204", s.res.StatusCode)
	}
}

// TestLiveEventsSignedOut: a session signed out while its stream is open (in another tab)
// ends the stream at that change, telling the page to reload (which finds it signed out).
func TestLiveEventsSignedOut(t *testing.T) {
	e := newLiveEnv(t, nil)
	bob := e.signIn("bob")
	s := bob.events()
	bob.post("/sign-out", nil)
	ended, seen := s.ended(time.Second)
	if !ended {
		t.Fatalf("the stream of a signed-out session is still open (events %+v)", seen)
	}
	if len(seen) == 0 || seqOf(t, seen[len(seen)-1]) != 0 {
		t.Errorf("events before the end %+v, want a last change with seq 0", seen)
	}
}

// TestLiveEventsSessionExpires: a session that ends without any change (idle too long) is
// noticed by the periodic re-check.
func TestLiveEventsSessionExpires(t *testing.T) {
	var skew atomic.Int64
	e := newLiveEnv(t, func(s *console.Server) { console.SetLiveLimits(s, 0, 200*time.Millisecond, 0, 0) })
	e.Svc.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	s := e.signIn("bob").events()
	if ended, _ := s.ended(500 * time.Millisecond); ended {
		t.Fatal("the stream ended while the session was valid")
	}
	skew.Store(int64(timebox.DefaultSessionIdle + time.Minute))
	if ended, _ := s.ended(2 * time.Second); !ended {
		t.Fatal("the stream of an idle-expired session is still open")
	}
}

// TestLiveEventsLimit: a session may have so many streams, the server so many in all;
// beyond that 429, and a closed stream frees its slot.
func TestLiveEventsLimit(t *testing.T) {
	e := newLiveEnv(t, func(s *console.Server) { console.SetLiveLimits(s, 0, 0, 2, 3) })
	bob := e.signIn("bob")
	first := bob.events()
	bob.events()
	over := bob.events()
	if over.res.StatusCode != http.StatusTooManyRequests || over.res.Header.Get("Retry-After") == "" {
		t.Fatalf("bob's third stream: %d %v, want 429 with Retry-After", over.res.StatusCode, over.res.Header)
	}
	if s := e.signIn("carol").events(); s.res.StatusCode != http.StatusOK {
		t.Fatalf("carol's stream: %d", s.res.StatusCode)
	}
	if s := e.signIn("audrey").events(); s.res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a fourth stream on the server: %d, want 429", s.res.StatusCode)
	}
	first.close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		s := bob.events()
		if s.res.StatusCode == http.StatusOK {
			break
		}
		s.close()
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream did not free its slot: %d", s.res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLiveEventsOutlastTimeouts: a stream outlives the HTTP server's read and write
// timeouts (timebox server sets both), with heartbeats, and still carries changes.
func TestLiveEventsOutlastTimeouts(t *testing.T) {
	e := newLiveEnv(t, func(s *console.Server) { console.SetLiveLimits(s, 100*time.Millisecond, 0, 0, 0) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.API.Handler(), ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	bob := e.signIn("bob")
	// Cookies are per host, not per port: bob's session works on this server too.
	strict := &browser{t: t, e: &env{t: t, URL: "http://" + ln.Addr().String()}, c: bob.c}
	s := strict.events()
	if s.res.StatusCode != http.StatusOK {
		t.Fatalf("GET /events: %d", s.res.StatusCode)
	}
	pings := 0
	deadline := time.After(1200 * time.Millisecond)
wait:
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("the stream ended after %d heartbeats", pings)
			}
			if ev.Comment == "ping" {
				pings++
			}
		case <-deadline:
			break wait
		}
	}
	if pings < 5 {
		t.Errorf("%d heartbeats in 1.2s, want about 12", pings)
	}
	e.createRequest()
	if ev, ok := s.next(time.Second); !ok || seqOf(t, ev) != e.auditHead() {
		t.Fatalf("after the timeouts: %+v %v", ev, ok)
	}
}

// TestLiveEventsShutdown: Shutdown ends the open streams at once (so the HTTP server's
// shutdown need not wait for them) and refuses new ones.
func TestLiveEventsShutdown(t *testing.T) {
	e := newLiveEnv(t, nil)
	bob := e.signIn("bob")
	s := bob.events()
	e.Console.Shutdown()
	if ended, _ := s.ended(time.Second); !ended {
		t.Fatal("the stream is still open after Shutdown")
	}
	if s := bob.events(); s.res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /events after Shutdown: %d, want 503", s.res.StatusCode)
	}
	// The pages themselves still answer.
	if p := bob.get("/"); p.Status != http.StatusOK {
		t.Fatalf("GET / after Shutdown: %d", p.Status)
	}
}

// TestLiveScriptServed: live.js is served as JavaScript from 'self', which the CSP allows.
func TestLiveScriptServed(t *testing.T) {
	e := newEnv(t, nil)
	p := e.browser().get("/static/live.js")
	if p.Status != http.StatusOK || !strings.Contains(p.Header.Get("Content-Type"), "javascript") || !strings.Contains(p.Body, "EventSource") {
		t.Fatalf("GET /static/live.js: %d %v", p.Status, p.Header)
	}
}
