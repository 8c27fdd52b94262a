package console_test

import (
	"context"
	"html"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/timebox-dev/timebox"
)

// ask files a request by user through the Service, as the CLI or the API would.
func (e *env) ask(user string, in timebox.RequestInput) *timebox.Request {
	e.t.Helper()
	if in.Duration == "" && in.End == nil {
		in.Duration = "2h"
	}
	if in.Reason == "" {
		in.Reason = "investigate INC-1"
	}
	r, err := e.Svc.CreateRequest(context.Background(), user, in)
	if err != nil {
		e.t.Fatalf("request by %s: %v", user, err)
	}
	return r
}

// stored reads request id from the store, as the scheduler would (no visibility check).
func (e *env) stored(id string) *timebox.Request {
	e.t.Helper()
	var r *timebox.Request
	err := e.DB.View(context.Background(), func(tx timebox.Tx) (err error) {
		r, err = tx.FindRequest(id)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// events returns every audit event of request id.
func (e *env) events(t testing.TB, id string) []*timebox.Event {
	t.Helper()
	es, err := e.Svc.FindEvents(context.Background(), "admin", timebox.EventFilter{RequestID: id})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// runner records the requests whose database work a page asked for (the scheduler's
// RunNow); it does no database work itself.
type runner struct {
	mu  sync.Mutex
	ids []string
}

func (r *runner) RunNow(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	return nil
}

func (r *runner) ran() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

// reviewZone makes b's pages render times in zone, as the console's script does.
func (b *browser) reviewZone(zone string) {
	b.c.Jar.SetCookies(mustURL(b.t, b.e.URL), []*http.Cookie{{Name: "tz", Value: zone, Path: "/"}})
}

// approve approves request id as user through the Service.
func (e *env) approve(user, id string) *timebox.Request {
	e.t.Helper()
	r, err := e.Svc.Approve(context.Background(), user, id, timebox.ApproveInput{})
	if err != nil {
		e.t.Fatalf("approve %s by %s: %v", id, user, err)
	}
	return r
}

// regexpFind returns the first group of pattern in s, failing the test without a match.
func regexpFind(t testing.TB, s, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%s", pattern, s)
	}
	return m[1]
}

// htmlUnescape undoes the escaping of an attribute value.
func htmlUnescape(s string) string { return html.UnescapeString(s) }

// regexpAll returns the first group of every match of pattern in s.
func regexpAll(s, pattern string) []string {
	var out []string
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// regexpOpt returns the first group of pattern in s, "" without a match.
func regexpOpt(s, pattern string) string {
	if m := regexp.MustCompile(pattern).FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// allEvents returns the whole audit log.
func (e *env) allEvents(t testing.TB) []*timebox.Event {
	t.Helper()
	es, err := e.Svc.FindEvents(context.Background(), "admin", timebox.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}
