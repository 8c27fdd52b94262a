package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// hookReceiver is a webhook consumer: it verifies every delivery with the Standard Webhooks
// library, counts arrivals per webhook-id (an idempotent consumer processes each id once)
// and keeps the events, in arrival order. It listens on a fixed address, so it can be down
// (nothing listening: connection refused) and come back.
type hookReceiver struct {
	t      *testing.T
	addr   string
	wh     *standardwebhooks.Webhook
	mu     sync.Mutex
	srv    *http.Server
	ids    map[string]int
	events []hookEvent
	bad    int
}

type hookEvent struct {
	ID   string
	Seq  int64  `json:"seq"`
	Act  string `json:"action"`
	Prev string `json:"prev_hash"`
	Hash string `json:"hash"`
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{t: t, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), wh: wh, ids: map[string]int{}}
	t.Cleanup(r.down)
	return r
}

func (r *hookReceiver) up() {
	l, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve)}
	srv := r.srv
	r.mu.Unlock()
	go srv.Serve(l)
}

func (r *hookReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ce struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Event hookEvent `json:"event"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ce); err != nil || ce.ID != req.Header.Get("webhook-id") || ce.Type != "dev.timebox."+ce.Data.Event.Act {
		r.bad++
		http.Error(w, "bad envelope", http.StatusBadRequest)
		return
	}
	r.ids[ce.ID]++
	if r.ids[ce.ID] == 1 {
		ce.Data.Event.ID = ce.ID
		r.events = append(r.events, ce.Data.Event)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *hookReceiver) snapshot() (events []hookEvent, ids map[string]int, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids = map[string]int{}
	for k, v := range r.ids {
		ids[k] = v
	}
	return append([]hookEvent(nil), r.events...), ids, r.bad
}

// notifyEnv is an environment whose server sends every audit event to a hookReceiver.
func notifyEnv(t *testing.T) (*env, *hookReceiver) {
	key := make([]byte, 32)
	rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	dir := t.TempDir()
	recv := newHookReceiver(t, secret)
	for name, v := range map[string]string{"hook.url": "http://" + recv.addr + "/timebox", "hook.secret": secret} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, envOptions{extra: fmt.Sprintf(`notify:
  retry_min: 100ms
  retry_max: 400ms
  channels:
    - name: siem
      rate: 200
      burst: 20
      webhook: {url: file:%s, secret: file:%s}
`, filepath.Join(dir, "hook.url"), filepath.Join(dir, "hook.secret"))})
	return e, recv
}

// checkChain checks what a consumer can check of the events it got: one each, in seq order
// with no gap from the first, each chained to the one before.
func checkChain(t *testing.T, events []hookEvent, ids map[string]int, wantAtLeast int, dupOK bool) {
	t.Helper()
	if len(events) < wantAtLeast {
		t.Fatalf("the receiver got %d events, want at least %d", len(events), wantAtLeast)
	}
	for id, n := range ids {
		if n > 1 && !dupOK {
			t.Errorf("%s arrived %d times", id, n)
		}
	}
	for i := 1; i < len(events); i++ {
		if events[i].Seq != events[i-1].Seq+1 || events[i].Prev != events[i-1].Hash {
			t.Fatalf("event %d (seq %d) does not follow seq %d: a gap or a break in the chain", i, events[i].Seq, events[i-1].Seq)
		}
	}
}

// TestE2ENotifyReceiverDown: a request's whole life while the webhook consumer is down does
// not wait for it (the access is granted and removed on time); once the consumer is back it
// gets every audit event exactly once, signed, in order and chained.
func TestE2ENotifyReceiverDown(t *testing.T) {
	e, recv := notifyEnv(t)
	e.start()
	before := len(e.eventsAll()) // the outbox started at the audit head: history is not replayed
	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "3s", "--reason", "notify e2e", "--ticket", "T-1")
	e.ok("bob", "approve", id)
	e.waitState("alice", id, "active", 10*time.Second)
	e.waitState("alice", id, "expired", 15*time.Second)
	events := e.eventsAll()[before:]
	time.Sleep(300 * time.Millisecond) // a few attempts against the closed port
	recv.up()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, ids, bad := recv.snapshot()
		if len(got) >= len(events) || time.Now().After(deadline) {
			checkChain(t, got, ids, len(events), false)
			if len(got) > 0 && got[0].Seq != events[0].Seq {
				t.Errorf("the first event delivered is seq %d, want %d", got[0].Seq, events[0].Seq)
			}
			if bad != 0 {
				t.Errorf("%d deliveries failed verification", bad)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := e.ok("root", "notify", "list", "--channel", "siem")
	if !strings.Contains(out, "sent") || strings.Contains(out, "pending") || strings.Contains(out, "failed") {
		t.Errorf("timebox notify list:\n%s", out)
	}
}

// TestE2ENotifyRestartMidDelivery: the server is killed after the consumer accepted a
// message and before it recorded that; the next start sends that message again with the
// same webhook-id (so the consumer drops the copy) and nothing else twice.
func TestE2ENotifyRestartMidDelivery(t *testing.T) {
	e, recv := notifyEnv(t)
	recv.up()
	p := e.startProcess("notify.sent")
	e.request("alice", "--db", "other", "--access", "read-only", "--for", "10m", "--reason", "restart mid-delivery")
	p.waitExit(t, 15*time.Second)
	_, ids, _ := recv.snapshot()
	if len(ids) != 1 {
		t.Fatalf("before the crash the consumer got %v, want the one message in flight", ids)
	}
	var inFlight string
	for id := range ids {
		inFlight = id
	}
	e.startProcess("")
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, ids, _ := recv.snapshot()
		if ids[inFlight] >= 2 && len(got) >= 2 || time.Now().After(deadline) {
			checkChain(t, got, ids, 1, true)
			for id, n := range ids {
				if id == inFlight && n != 2 {
					t.Errorf("%s arrived %d times, want twice (once before the crash, once after, same id)", id, n)
				} else if id != inFlight && n != 1 {
					t.Errorf("%s arrived %d times, want once", id, n)
				}
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A later event is sent once.
	e.request("alice", "--db", "other", "--access", "read-only", "--for", "10m", "--reason", "after the restart")
	waitUntil(t, 10*time.Second, func() bool { got, _, _ := recv.snapshot(); return len(got) >= 2 })
	time.Sleep(200 * time.Millisecond)
	got, ids, _ := recv.snapshot()
	if n := ids[got[len(got)-1].ID]; n != 1 {
		t.Errorf("the event after the restart arrived %d times", n)
	}
}

func totalArrivals(ids map[string]int) int {
	n := 0
	for _, v := range ids {
		n += v
	}
	return n
}

func waitUntil(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
