package console

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Live updates. A page marked data-live (every page shown to a signed-in person for a GET)
// loads static/live.js, which opens GET /events: a stream of server-sent events, one
// "change" event ({"seq":N}) whenever the store commits audit events, on this replica or,
// with a PostgreSQL store, on any other. The event says nothing of what changed (no request
// id, actor or database): the script re-fetches its own page, and the page's handler decides
// what this person may see. Without a feed /events answers 204 and the script polls instead.

// Defaults of the event streams (liveStreams' zero settings).
const (
	defaultHeartbeat     = 15 * time.Second       // a comment line, so that proxies keep the stream
	defaultRecheck       = time.Minute            // how often the session is checked without changes
	defaultCoalesce      = 150 * time.Millisecond // at most one event per stream this often
	defaultPerSession    = 8                      // concurrent streams of one session (tabs)
	defaultMaxStreams    = 1024                   // concurrent streams on this server
	liveWriteWait        = 30 * time.Second       // how long one write may block before the stream ends
	liveRetryMillis      = 3000                   // the browser's reconnection delay
	liveOverLimitSeconds = 60                     // Retry-After of a 429
)

// liveStreams counts the open event streams (per session and in all), and ends them on
// Shutdown. Its zero value is ready, with the default settings.
type liveStreams struct {
	mu        sync.Mutex
	total     int
	bySession map[string]int
	closed    bool
	done      chan struct{}
	// Settings; zero means the default (tests shorten them).
	heartbeat, recheck, coalesce time.Duration
	perSession, max              int
}

func orDefault[T time.Duration | int](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// doneChan is closed by Shutdown.
func (l *liveStreams) doneChan() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done == nil {
		l.done = make(chan struct{})
	}
	return l.done
}

// acquire takes a stream slot for session; it reports false (and why) when the session or
// the server has as many streams as allowed, or the console is shutting down.
func (l *liveStreams) acquire(session string) (ok bool, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return false, http.StatusServiceUnavailable
	case l.bySession[session] >= orDefault(l.perSession, defaultPerSession), l.total >= orDefault(l.max, defaultMaxStreams):
		return false, http.StatusTooManyRequests
	}
	if l.bySession == nil {
		l.bySession = map[string]int{}
	}
	l.bySession[session]++
	l.total++
	return true, 0
}

func (l *liveStreams) release(session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.bySession[session]--; l.bySession[session] <= 0 {
		delete(l.bySession, session)
	}
}

// Shutdown ends every live-update stream and refuses new ones (503), so that shutting the
// HTTP server down does not wait for them: call it first. The pages' scripts reconnect
// (to another replica, or to this server once it is back).
func (s *Server) Shutdown() {
	done := s.live.doneChan()
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if !s.live.closed {
		s.live.closed = true
		close(done)
	}
}

func (s *Server) liveRoutes() []route {
	// Public, so that the anonymous get a 401 the script understands rather than the
	// sign-in page; handleEvents checks the session itself.
	return []route{{Method: "GET", Path: "/events", Public: true, h: s.handleEvents}}
}

// handleEvents streams "change" events to a signed-in session until the session is no
// longer valid (checked on every change and at least every recheck), the client goes away,
// or the console shuts down. A HEAD request gets the status a stream would get, and no stream.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, c *call) error {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if c.User == nil || c.Session == nil {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "You are not signed in.\n")
		return nil
	}
	if s.Feed == nil {
		w.WriteHeader(http.StatusNoContent) // the script polls instead
		return nil
	}
	l := &s.live
	if ok, status := l.acquire(c.Session.ID); !ok {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Retry-After", strconv.Itoa(liveOverLimitSeconds))
		w.WriteHeader(status)
		if status == http.StatusTooManyRequests {
			io.WriteString(w, "Too many live pages are open; this one refreshes every few seconds instead.\n")
		} else {
			io.WriteString(w, "The server is shutting down.\n")
		}
		return nil
	}
	defer l.release(c.Session.ID)
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}

	// Subscribe before the stream opens: what commits once the browser sees it open is sent.
	changes, stop := s.Feed.Subscribe()
	defer stop()
	done := l.doneChan()

	rc := http.NewResponseController(w)
	// The server's WriteTimeout would end the stream: each write sets its own deadline. (The
	// whole-request ReadTimeout no longer applies once the headers are read, on HTTP/1.1;
	// clearing it is for HTTP/2.)
	rc.SetReadDeadline(time.Time{})
	write := func(text string) bool {
		rc.SetWriteDeadline(time.Now().Add(liveWriteWait))
		if _, err := io.WriteString(w, text); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	w.WriteHeader(http.StatusOK)
	if !write(fmt.Sprintf("retry: %d\n\n", liveRetryMillis)) {
		return nil
	}

	coalesce := orDefault(l.coalesce, defaultCoalesce)
	heartbeat := time.NewTicker(orDefault(l.heartbeat, defaultHeartbeat))
	defer heartbeat.Stop()
	recheck := time.NewTicker(orDefault(l.recheck, defaultRecheck))
	defer recheck.Stop()
	var (
		pending bool
		seq     int64     // the seq to send: the last pending one, 0 when a reload is among them
		sent    time.Time // when the last event was sent
		timer   *time.Timer
		fire    <-chan time.Time // timer's channel while it is armed
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// valid re-checks the session; when it has ended, the page gets one last change (its
	// reload finds it signed out) and the stream ends.
	valid := func() bool {
		if _, _, err := s.Service.PeekWebSession(r.Context(), c.secret); err != nil {
			if r.Context().Err() == nil {
				write("event: change\ndata: {\"seq\":0}\n\n")
			}
			return false
		}
		return true
	}
	send := func() bool {
		pending, fire = false, nil
		if !valid() {
			return false
		}
		sent = time.Now()
		return write(fmt.Sprintf("event: change\ndata: {\"seq\":%d}\n\n", seq))
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-done:
			return nil
		case ch, ok := <-changes:
			if !ok { // the store closed
				return nil
			}
			switch {
			case !pending:
				seq = ch.Seq
			case ch.Seq == 0 || seq == 0:
				seq = 0
			default:
				seq = max(seq, ch.Seq)
			}
			pending = true
			if fire != nil {
				continue // already due
			}
			if wait := coalesce - time.Since(sent); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				fire = timer.C
				continue
			}
			if !send() {
				return nil
			}
		case <-fire:
			if !send() {
				return nil
			}
		case <-heartbeat.C:
			if !write(": ping\n\n") {
				return nil
			}
		case <-recheck.C:
			if !valid() {
				return nil
			}
		}
	}
}
