package oncall

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// clock is a settable Resolver.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

var (
	alice = &timebox.User{Name: "alice", Email: "alice@example.com"}
	bob   = &timebox.User{Name: "bob", Email: "BOB@example.com"}
)

// onCall asks r and returns "" when the user is not on call, the end of their shift in UTC
// otherwise, or the error.
func onCall(r *Resolver, schedule string, u *timebox.User, at string) string {
	until, ok, err := r.OnCall(context.Background(), schedule, u, utc(at))
	switch {
	case err != nil:
		return "error: " + err.Error()
	case !ok:
		return ""
	}
	return until.UTC().Format("2006-01-02T15:04")
}

func TestOnCallFixtures(t *testing.T) {
	r := NewResolver([]Schedule{
		{Name: "pd", ICS: "testdata/pagerduty.ics"},
		{Name: "og", ICS: "testdata/opsgenie.ics"},
		{Name: "google", ICS: "testdata/google.ics"},
	})
	alex := &timebox.User{Name: "Alice Example", Email: "alex@example.com"}
	tests := []struct {
		schedule string
		user     *timebox.User
		at, want string
	}{
		{"pd", alice, "2026-11-23T08:59", ""},
		{"pd", alice, "2026-11-23T09:00", "2026-11-25T09:00"}, // two shifts merged (second as Alice@Example.com)
		{"pd", alice, "2026-11-24T20:00", "2026-11-25T09:00"},
		{"pd", bob, "2026-11-24T20:00", ""},
		{"pd", bob, "2026-11-25T09:00", "2026-11-26T09:00"},
		{"pd", alice, "2026-11-26T10:00", "2026-11-26T21:00"}, // an hour's gap is not merged
		{"pd", alice, "2026-11-26T21:30", ""},
		{"pd", alice, "2026-11-26T22:00", "2026-11-27T09:00"},
		{"pd", alex, "2026-11-23T10:00", ""}, // a SUMMARY's name does not count when there are attendees
		{"og", alex, "2026-10-12T07:00", "2026-10-19T07:00"},
		{"og", alice, "2026-10-12T07:00", ""}, // Opsgenie gives only the display name
		{"og", &timebox.User{Name: "alice", OnCallNames: []string{"alice example"}}, "2026-10-12T07:00", "2026-10-19T07:00"}, // unless she lists it
		{"og", bob, "2026-10-19T07:00", "2026-10-26T08:00"},
		{"og", alex, "2026-10-28T13:00", "2026-11-02T08:00"}, // an override for someone else does not cut her shift
		{"google", alice, "2026-10-05T07:00", "2026-10-12T07:00"},
		{"google", alice, "2026-11-16T12:00", ""}, // EXDATE
		{"google", &timebox.User{Name: "Carol"}, "2026-11-16T12:00", "2026-11-23T08:00"},
		{"google", &timebox.User{Name: "Dave"}, "2026-11-20T12:00", ""}, // CANCELLED
		{"google", &timebox.User{Name: "Bob Builder"}, "2026-11-09T12:00", ""},
		{"google", &timebox.User{Name: "Bob Builder"}, "2026-11-10T12:00", "2026-11-16T08:00"},
	}
	for _, tt := range tests {
		if got := onCall(r, tt.schedule, tt.user, tt.at); got != tt.want {
			t.Errorf("%s %s at %s: %q, want %q", tt.schedule, tt.user.Name, tt.at, got, tt.want)
		}
	}
}

func oneEvent(who, start, end string) string {
	return vcal("BEGIN:VEVENT", "DTSTART:"+start, "DTEND:"+end, "SUMMARY:On Call - "+who+" - Primary", "END:VEVENT")
}

func TestFileReread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "oncall.ics")
	mtime := time.Now().Add(-time.Hour)
	write := func(content string) {
		t.Helper()
		mtime = mtime.Add(time.Second)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		} else if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{t: utc("2026-01-05T10:00")}
	var logs bytes.Buffer
	r := NewResolver([]Schedule{{Name: "db", ICS: path}})
	r.Now, r.Logger = clk.now, slog.New(slog.NewTextHandler(&logs, nil))
	const at = "2026-01-05T12:00"

	write(oneEvent("alice", "20260105T090000Z", "20260105T170000Z"))
	if got := onCall(r, "db", alice, at); got != "2026-01-05T17:00" {
		t.Fatalf("first read: %q", got)
	}
	write(oneEvent("bob", "20260105T090000Z", "20260105T170000Z"))
	if got := onCall(r, "db", alice, at) + "|" + onCall(r, "db", bob, at); got != "|2026-01-05T17:00" {
		t.Fatalf("after modification: %q", got)
	}

	clk.add(10 * time.Minute)
	write("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260105T090000Z\n") // saved half-way
	for range 3 {
		if got := onCall(r, "db", bob, at); got != "2026-01-05T17:00" {
			t.Errorf("broken file, copy 10m old: %q", got)
		}
	}
	if !strings.Contains(logs.String(), "using its last copy") || !strings.Contains(logs.String(), "truncated") {
		t.Errorf("log: %s", logs.String())
	}
	clk.add(50*time.Minute - time.Second)
	if got := onCall(r, "db", bob, at); got != "2026-01-05T17:00" {
		t.Errorf("broken file, copy 59m59s old: %q", got)
	}
	clk.add(time.Second)
	want := fmt.Sprintf(`error: on-call schedule "db": %s: truncated: VEVENT is not closed`, path)
	if got := onCall(r, "db", bob, at); !strings.HasPrefix(got, want) {
		t.Errorf("broken file, copy 1h old: %q, want %q", got, want)
	}
	if _, _, err := r.OnCall(context.Background(), "db", bob, utc(at)); timebox.ErrorCode(err) != timebox.EUNAVAILABLE {
		t.Errorf("code %v", err)
	}

	write(oneEvent("alice", "20260105T090000Z", "20260105T170000Z"))
	if got := onCall(r, "db", alice, at); got != "2026-01-05T17:00" {
		t.Errorf("repaired: %q", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clk.add(59 * time.Minute)
	if got := onCall(r, "db", alice, at); got != "2026-01-05T17:00" {
		t.Errorf("removed, copy 59m old: %q", got)
	}
	clk.add(time.Minute)
	if got := onCall(r, "db", alice, at); got != fmt.Sprintf(`error: on-call schedule "db": %s: no such file`, path) {
		t.Errorf("removed, copy 1h old: %q", got)
	}
	// once for the broken version (asked about three times), once for the removed file
	if n := strings.Count(logs.String(), "using its last copy"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, logs.String())
	}
}

func TestCanceledCallerDoesNotPoisonSource(t *testing.T) {
	f := &feed{body: oneEvent("alice", "20260105T090000Z", "20260105T170000Z")}
	srv := httptest.NewServer(f)
	defer srv.Close()
	r := NewResolver([]Schedule{{Name: "pd", ICS: srv.URL + feedPath}})
	r.HTTPClient = srv.Client()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := r.OnCall(ctx, "pd", alice, utc("2026-01-05T12:00")); timebox.ErrorCode(err) != timebox.EUNAVAILABLE || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("canceled: %v", err)
	}
	if got := onCall(r, "pd", alice, "2026-01-05T12:00"); got != "2026-01-05T17:00" {
		t.Errorf("next caller: %q", got)
	}
}

func TestInvalidSourceUnvalidated(t *testing.T) {
	r := NewResolver([]Schedule{{Name: "x", ICS: "ftp://files.example.com/" + token}})
	_, err := r.Shifts(context.Background(), "x", utc("2026-01-05T00:00"), utc("2026-01-06T00:00"))
	if timebox.ErrorCode(err) != timebox.EINVALID || !strings.Contains(err.Error(), `ics: unsupported scheme "ftp"`) || strings.Contains(err.Error(), token) {
		t.Errorf("error %v", err)
	}
}

// feed is an httptest calendar server.
type feed struct {
	mu     sync.Mutex
	body   string
	etag   string
	status int
	hits   int
}

func (f *feed) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits++
	switch {
	case f.status != 0:
		http.Error(w, "boom", f.status)
	case f.etag != "" && req.Header.Get("If-None-Match") == f.etag:
		w.WriteHeader(http.StatusNotModified)
	default:
		w.Header().Set("Content-Type", "text/calendar; charset=utf-8")
		w.Header().Set("ETag", f.etag)
		fmt.Fprint(w, f.body)
	}
}

func (f *feed) set(fn func(f *feed)) { f.mu.Lock(); defer f.mu.Unlock(); fn(f) }

func (f *feed) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.hits }

const (
	token    = "u2Xq9RkP0sEcReTtOkEn"
	query    = "webcalToken=Q7sEcReTqUeRy"
	feedPath = "/private/" + token + "/feed/PABC123?" + query
)

func TestURLSource(t *testing.T) {
	f := &feed{body: oneEvent("alice", "20260105T090000Z", "20260105T170000Z"), etag: `"v1"`}
	srv := httptest.NewServer(f)
	defer srv.Close()
	clk := &clock{t: utc("2026-01-05T10:00")}
	var logs bytes.Buffer
	r := NewResolver([]Schedule{{Name: "pd", ICS: srv.URL + feedPath}})
	r.Now, r.HTTPClient, r.Logger = clk.now, srv.Client(), slog.New(slog.NewTextHandler(&logs, nil))
	const at = "2026-01-05T12:00"
	step := func(name string, advance time.Duration, user *timebox.User, want string, hits int) {
		t.Helper()
		clk.add(advance)
		if got := onCall(r, "pd", user, at); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
		if f.count() != hits {
			t.Errorf("%s: %d requests, want %d", name, f.count(), hits)
		}
	}
	step("first fetch", 0, alice, "2026-01-05T17:00", 1)
	step("within refresh", 4*time.Minute, alice, "2026-01-05T17:00", 1)
	step("refresh, not modified", time.Minute, alice, "2026-01-05T17:00", 2)
	f.set(func(f *feed) { f.body, f.etag = oneEvent("bob", "20260105T090000Z", "20260105T170000Z"), `"v2"` })
	step("refresh, modified", 5*time.Minute, bob, "2026-01-05T17:00", 3) // good copy at +10m
	f.set(func(f *feed) { f.status = http.StatusInternalServerError })
	step("failure, copy 5m old", 5*time.Minute, bob, "2026-01-05T17:00", 4)
	step("failure, retried after 30s only", 10*time.Second, bob, "2026-01-05T17:00", 4)
	step("failure, copy 59m old", 54*time.Minute-10*time.Second, bob, "2026-01-05T17:00", 5)
	redacted := strings.TrimPrefix(srv.URL, "http://")
	want := `error: on-call schedule "pd": http://` + redacted + `/…: HTTP 500 Internal Server Error`
	step("failure, copy 1h old: fail closed", time.Minute, bob, want, 6)
	step("failure, not retried within 30s", 29*time.Second, bob, want, 6)
	if _, _, err := r.OnCall(context.Background(), "pd", bob, utc(at)); timebox.ErrorCode(err) != timebox.EUNAVAILABLE {
		t.Errorf("code %v", err)
	}
	f.set(func(f *feed) { f.status = 0 })
	step("recovered", time.Second, bob, "2026-01-05T17:00", 7)

	if strings.Count(logs.String(), "using its last copy") != 2 || !strings.Contains(logs.String(), redacted) {
		t.Errorf("log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), "Q7sEcReTqUeRy") {
		t.Errorf("the feed's secret is in the log:\n%s", logs.String())
	}
}

func TestURLErrorsAreRedacted(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // connection refused from now on
	r := NewResolver([]Schedule{
		{Name: "down", ICS: strings.Replace(base, "http://", "http://user:pa55w0rdXYZ@", 1) + feedPath},
		{Name: "webcal", ICS: strings.Replace(base, "http://", "webcal://", 1) + feedPath},
	})
	for _, name := range []string{"down", "webcal"} {
		_, err := r.Shifts(context.Background(), name, utc("2026-01-05T00:00"), utc("2026-01-06T00:00"))
		if timebox.ErrorCode(err) != timebox.EUNAVAILABLE {
			t.Fatalf("%s: %v", name, err)
		}
		var full strings.Builder
		for e := error(err); e != nil; {
			full.WriteString(e.Error())
			u, ok := e.(interface{ Unwrap() error })
			if !ok {
				break
			}
			e = u.Unwrap()
		}
		for _, secret := range []string{token, "Q7sEcReTqUeRy", "pa55w0rdXYZ", "/private/", "PABC123"} {
			if strings.Contains(full.String(), secret) {
				t.Errorf("%s: error %q shows %q", name, full.String(), secret)
			}
		}
		if !strings.Contains(err.Error(), "/…") {
			t.Errorf("%s: error %q does not name the source", name, err)
		}
	}
	_, err := r.Shifts(context.Background(), "down", utc("2026-01-05T00:00"), utc("2026-01-06T00:00"))
	if want := "connection refused"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to say %q", err, want)
	}
}

func TestURLHostile(t *testing.T) {
	huge := func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "BEGIN:VCALENDAR\r\nX-PAD:")
		chunk := strings.Repeat("a", 1<<16)
		for range (MaxSourceBytes >> 16) + 2 {
			if _, err := fmt.Fprint(w, chunk); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"huge, streamed", huge, "larger than 10 MB"},
		{"huge, announced", func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(MaxSourceBytes+1))
			huge(w, req)
		}, "larger than 10 MB"},
		{"login page", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "<html><body>Please sign in</body></html>")
		}, "malformed line"},
		{"revoked token", func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) }, "HTTP 404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			r := NewResolver([]Schedule{{Name: "x", ICS: srv.URL + feedPath}})
			r.HTTPClient = srv.Client()
			_, err := r.Shifts(context.Background(), "x", utc("2026-01-05T00:00"), utc("2026-01-06T00:00"))
			if timebox.ErrorCode(err) != timebox.EUNAVAILABLE || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), token) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestConcurrentOnCall(t *testing.T) {
	f := &feed{body: oneEvent("alice", "20260105T090000Z", "20260105T170000Z"), etag: `"v1"`}
	srv := httptest.NewServer(f)
	defer srv.Close()
	clk := &clock{t: utc("2026-01-05T10:00")}
	r := NewResolver([]Schedule{{Name: "pd", ICS: srv.URL + feedPath, Refresh: timebox.Duration(10 * time.Second)}, {Name: "file", ICS: "testdata/google.ics"}})
	r.Now, r.HTTPClient = clk.now, srv.Client()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if g == 0 {
					clk.add(time.Second)
				}
				if got := onCall(r, "pd", alice, "2026-01-05T12:00"); got != "2026-01-05T17:00" {
					t.Errorf("goroutine %d call %d: %q", g, i, got)
					return
				}
				if got := onCall(r, "file", alice, "2026-10-05T07:00"); got != "2026-10-12T07:00" {
					t.Errorf("goroutine %d call %d: %q", g, i, got)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := f.count(); n < 2 || n > 6 { // 50s of fake time with a 10s refresh
		t.Errorf("%d requests", n)
	}
}

// TestSlowRefreshBlocksNobody: while one caller refreshes an URL, the others answer from the
// good copy at once; a caller with no copy to answer from waits, and gives up with its context.
func TestSlowRefreshBlocksNobody(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 10)
	var mu sync.Mutex
	hold := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		h := hold
		mu.Unlock()
		if h {
			arrived <- struct{}{}
			<-release
		}
		fmt.Fprint(w, oneEvent("alice", "20260105T090000Z", "20260105T170000Z"))
	}))
	defer srv.Close()
	clk := &clock{t: utc("2026-01-05T10:00")}
	r := NewResolver([]Schedule{{Name: "pd", ICS: srv.URL + feedPath}, {Name: "cold", ICS: srv.URL + "/cold"}})
	r.Now, r.HTTPClient = clk.now, srv.Client()
	const at = "2026-01-05T12:00"
	if got := onCall(r, "pd", alice, at); got != "2026-01-05T17:00" {
		t.Fatalf("first fetch: %q", got)
	}
	mu.Lock()
	hold = true
	mu.Unlock()
	clk.add(DefaultRefresh)
	refreshed := make(chan string)
	go func() { refreshed <- onCall(r, "pd", alice, at) }()
	<-arrived // the refresh is under way, and held
	answered := make(chan string)
	go func() { answered <- onCall(r, "pd", alice, at) }()
	select {
	case got := <-answered:
		if got != "2026-01-05T17:00" {
			t.Errorf("during the refresh: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Error("a caller with a good copy waited for another's refresh")
	}

	go func() { _ = onCall(r, "cold", alice, at) }() // loads a source with no copy yet
	<-arrived
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error)
	go func() { _, _, err := r.OnCall(ctx, "cold", alice, utc(at)); waited <- err }()
	cancel()
	select {
	case err := <-waited:
		if timebox.ErrorCode(err) != timebox.EUNAVAILABLE || !strings.Contains(err.Error(), "canceled") || strings.Contains(err.Error(), "/cold") {
			t.Errorf("waiting without a copy, canceled: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a canceled caller kept waiting for another's load")
	}
	close(release)
	if got := <-refreshed; got != "2026-01-05T17:00" {
		t.Errorf("refresh: %q", got)
	}
}

// TestFileReplacedKeepingTimeAndSize: a new file renamed over the old one is read even when
// its modification time and size are the old one's (a rota swapping two names of one length).
func TestFileReplacedKeepingTimeAndSize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "oncall.ics")
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	put := func(name, who string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(oneEvent(who, "20260105T090000Z", "20260105T170000Z")), 0o600); err != nil {
			t.Fatal(err)
		} else if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		} else if err := os.Rename(p, path); err != nil {
			t.Fatal(err)
		}
	}
	r := NewResolver([]Schedule{{Name: "db", ICS: path}})
	put("a.tmp", "alice")
	if got := onCall(r, "db", alice, "2026-01-05T12:00"); got != "2026-01-05T17:00" {
		t.Fatalf("alice: %q", got)
	}
	put("b.tmp", "carol")
	if got := onCall(r, "db", alice, "2026-01-05T12:00"); got != "" {
		t.Errorf("alice after the swap: %q", got)
	}
}
