package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/notify"
)

// devHook is timebox dev's stand-in for a SIEM: a webhook consumer on loopback that checks
// each delivery's Standard Webhooks signature, drops repeated webhook-ids as a consumer
// should, and writes one line per audit event to a log file, so that the outbox can be
// watched (`tail -f`) without any outside service.
type devHook struct {
	key  []byte
	mu   sync.Mutex
	out  io.Writer
	seen map[string]bool
	srv  *http.Server
	URL  string
}

// startDevHook listens on a loopback port and appends to path; secret is whsec_<base64>.
func startDevHook(path, secret string) (*devHook, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Close()
		return nil, err
	}
	h := &devHook{key: key, out: f, seen: map[string]bool{}, URL: "http://" + l.Addr().String() + "/webhook"}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		h.srv.Serve(l)
		f.Close()
	}()
	return h, nil
}

// Close stops the consumer.
func (h *devHook) Close() { h.srv.Close() }

// ServeHTTP verifies one delivery and logs its event.
func (h *devHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	if err := h.verify(id, ts, r.Header.Get("webhook-signature"), body); err != nil {
		h.write("REFUSED %s: %s\n", timebox.Clip(id), err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var ce notify.CloudEvent
	if err := json.Unmarshal(body, &ce); err != nil || ce.Data.Event == nil {
		http.Error(w, "not a Timebox CloudEvent", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	repeat := h.seen[id]
	h.seen[id] = true
	h.mu.Unlock()
	e := ce.Data.Event
	if repeat {
		h.write("%s  seq %d  (a repeat of %s: dropped)\n", time.Now().Format(time.TimeOnly), e.Seq, id)
	} else {
		h.write("%s  seq %-4d %-28s by %-8s %s %s  signature OK\n", time.Now().Format(time.TimeOnly), e.Seq, e.Action, e.Actor,
			e.RequestID, timebox.DetailsText(e.Details, nil))
	}
	w.WriteHeader(http.StatusNoContent)
}

// verify checks a Standard Webhooks signature: the timestamp within five minutes, one of
// the v1 signatures the HMAC-SHA256 of "id.timestamp.body".
func (h *devHook) verify(id, ts, sigs string, body []byte) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || id == "" {
		return fmt.Errorf("missing webhook-id or webhook-timestamp")
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp is %s off", d.Round(time.Second))
	}
	mac := hmac.New(sha256.New, h.key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no signature matches")
}

func (h *devHook) write(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(h.out, format, args...)
}
