package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// receiver is a webhook consumer on loopback, as docs/notify-webhooks.md describes one: it
// verifies each POST's Standard Webhooks signature with the specification's own library
// (which also checks the 5-minute window), parses the CloudEvent, records when each
// webhook-id first arrived and answers 204. While held it answers 503 with Retry-After: 1,
// which holds the channel (the outbox waits at least a second before its next attempt).
type receiver struct {
	srv    *httptest.Server
	secret string
	wh     *standardwebhooks.Webhook

	mu      sync.Mutex
	held    bool
	got     map[string]*arrival // by webhook-id
	order   []*arrival          // in order of arrival
	dups    int                 // a webhook-id received again after a 2xx
	bad     int                 // refused: signature, timestamp or body
	refused int                 // answered 503 while held
}

// arrival is one event as the receiver got it.
type arrival struct {
	at        time.Time // when the POST's body had been read and verified
	seq       int64
	action    string
	requestID string
	eventTime time.Time // data.event.time
}

// newReceiver starts a receiver with a fresh signing secret.
func newReceiver() (*receiver, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	r := &receiver{secret: "whsec_" + base64.StdEncoding.EncodeToString(key), got: map[string]*arrival{}}
	wh, err := standardwebhooks.NewWebhook(r.secret)
	if err != nil {
		return nil, err
	}
	r.wh = wh
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r, nil
}

func (r *receiver) close() { r.srv.Close() }

// url is where the channel posts.
func (r *receiver) url() string { return r.srv.URL + "/ingest" }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil || r.wh.Verify(body, req.Header) != nil {
		r.count(&r.bad)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	at := time.Now()
	var ce struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Event struct {
				Seq       int64     `json:"seq"`
				Time      time.Time `json:"time"`
				Action    string    `json:"action"`
				RequestID string    `json:"request_id"`
			} `json:"event"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ce); err != nil || ce.ID == "" || ce.ID != req.Header.Get("webhook-id") {
		r.count(&r.bad)
		http.Error(w, "not a CloudEvent of this webhook-id", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held {
		r.refused++
		w.Header().Set("Retry-After", "1")
		http.Error(w, "held by the benchmark", http.StatusServiceUnavailable)
		return
	}
	if r.got[ce.ID] != nil {
		r.dups++
	} else {
		e := ce.Data.Event
		a := &arrival{at: at, seq: e.Seq, action: e.Action, requestID: e.RequestID, eventTime: e.Time}
		r.got[ce.ID] = a
		r.order = append(r.order, a)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) count(n *int) {
	r.mu.Lock()
	*n++
	r.mu.Unlock()
}

// hold makes the receiver answer 503 (Retry-After: 1) until release.
func (r *receiver) hold(on bool) {
	r.mu.Lock()
	r.held = on
	r.mu.Unlock()
}

// arrivals returns a copy of what arrived, in order of arrival.
func (r *receiver) arrivals() []*arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*arrival(nil), r.order...)
}

// waitFor waits until ok holds for the arrivals so far, polling every 5 ms, for at most
// timeout.
func (r *receiver) waitFor(timeout time.Duration, what string, ok func([]*arrival) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		done := ok(r.order)
		n := len(r.order)
		r.mu.Unlock()
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("receiver: %s not there after %s (%d events received)", what, timeout, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stats returns the duplicate, refused-signature and held counts.
func (r *receiver) stats() (dups, bad, refused int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dups, r.bad, r.refused
}

// deadURL returns a loopback URL where nothing listens (a refused connection): a port
// that was just free.
func deadURL() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/ingest", nil
}

// webhookSection is the notify: section of one webhook channel named siem posting to the
// URL in $TIMEBOX_BENCH_WEBHOOK_URL, signed with $TIMEBOX_BENCH_WEBHOOK_SECRET; rate 0 keeps
// the default (50 a second, burst 3). extra is added to the section (retry_min, say).
func webhookSection(rate float64, burst int, extra string) string {
	limit := ""
	if rate > 0 {
		limit = fmt.Sprintf(", rate: %g, burst: %d", rate, burst)
	}
	return fmt.Sprintf(`notify:
%s  channels:
    - {name: siem%s, webhook: {url: "env:TIMEBOX_BENCH_WEBHOOK_URL", secret: "env:TIMEBOX_BENCH_WEBHOOK_SECRET"}}
`, extra, limit)
}

// webhookEnv is the environment that webhookSection's references name.
func webhookEnv(url, secret string) []string {
	return []string{"TIMEBOX_BENCH_WEBHOOK_URL=" + url, "TIMEBOX_BENCH_WEBHOOK_SECRET=" + secret}
}
