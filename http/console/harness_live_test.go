package console_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sse is one open /events stream, read line by line in the background.
type sse struct {
	t      testing.TB
	res    *http.Response
	cancel context.CancelFunc
	events chan sseEvent // closed when the stream ends
}

// sseEvent is one event, or (Comment set) one comment line.
type sseEvent struct {
	Name, Data, Comment string
}

// events opens GET /events in b and returns its answer; the stream, when it is one, is
// read until the test ends.
func (b *browser) events() *sse {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", b.e.URL+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := b.c.Do(req)
	if err != nil {
		cancel()
		b.t.Fatal(err)
	}
	s := &sse{t: b.t, res: res, cancel: cancel, events: make(chan sseEvent, 100)}
	b.t.Cleanup(s.close)
	go s.read()
	return s
}

func (s *sse) close() {
	s.cancel()
	s.res.Body.Close()
}

func (s *sse) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.res.Body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Name != "" || ev.Data != "" {
				s.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			s.events <- sseEvent{Comment: strings.TrimSpace(line[1:])}
		case strings.HasPrefix(line, "event:"):
			ev.Name = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			ev.Data += strings.TrimSpace(line[len("data:"):])
		case strings.HasPrefix(line, "retry:"):
		default:
			s.events <- sseEvent{Name: "?", Data: line}
		}
	}
}

// next returns the next event (skipping comments) within d; ok is false when the stream
// ended first, and the test fails when nothing came within d.
func (s *sse) next(d time.Duration) (ev sseEvent, ok bool) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return ev, false
			}
			if ev.Comment != "" {
				continue
			}
			return ev, true
		case <-deadline:
			s.t.Fatalf("no event within %s", d)
			return sseEvent{}, false
		}
	}
}

// ended waits up to d for the stream to end, reporting whether it did; events before the
// end are returned.
func (s *sse) ended(d time.Duration) (bool, []sseEvent) {
	deadline := time.After(d)
	var seen []sseEvent
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return true, seen
			}
			seen = append(seen, ev)
		case <-deadline:
			return false, seen
		}
	}
}
