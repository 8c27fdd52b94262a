package console_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// TestIdleSessionNotKeptAliveByLiveUpdates: a tab left open refreshes its content on its own
// (fragment requests); that is not the person using the session, so the idle timeout still
// ends it. A page the person opens does count.
func TestIdleSessionNotKeptAliveByLiveUpdates(t *testing.T) {
	e := newEnv(t, nil)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	e.Svc.Now = func() time.Time { return time.Unix(0, now.Load()) }
	advance := func(d time.Duration) { now.Add(int64(d)) }
	fragment := func(b *browser) int {
		req, _ := http.NewRequest("GET", e.URL+"/", nil)
		req.Header.Set("X-Timebox-Fragment", "1")
		return b.do(req).Status
	}

	idle := e.signIn("alice")
	used := e.signIn("bob")
	for i := 0; i < 4; i++ { // 4 × 10 minutes: past the 30-minute idle timeout
		advance(10 * time.Minute)
		if i < 2 && fragment(idle) != http.StatusOK {
			t.Fatalf("alice's live update after %d0m was refused too early", i+1)
		}
		if p := used.get("/"); p.Status != http.StatusOK {
			t.Fatalf("bob, using his session every 10 minutes, was signed out after %d0m: %d", i+1, p.Status)
		}
	}
	if p := idle.get("/"); p.Status != http.StatusSeeOther {
		t.Fatalf("alice's session, only refreshed by the page itself for 40m, still works: %d", p.Status)
	}
	if timebox.DefaultSessionIdle != 30*time.Minute {
		t.Fatalf("the test assumes a 30m idle timeout, not %s", timebox.DefaultSessionIdle)
	}
}
