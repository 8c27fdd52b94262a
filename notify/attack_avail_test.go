package notify

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// slowReceiver takes its time to answer 200 (a receiver under load), and counts arrivals.
type slowReceiver struct {
	delay time.Duration
	mu    sync.Mutex
	keys  map[string]int
}

func (s *slowReceiver) Send(ctx context.Context, m *Message) (Result, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[m.Delivery.Key]++
	return Result{}, nil
}

// A receiver that answers slowly must not make two replicas send the same message: a
// sender claims a batch for Claim; what it has not attempted when the claim runs low is
// given back rather than sent after another replica may have claimed it.
func TestAttackSlowReceiverNoDuplicatesAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	slow := &slowReceiver{delay: 60 * time.Millisecond, keys: map[string]int{}}
	replica := func() *Outbox {
		o := New(e.db, e.svc, e.db.Feed(), e.cfg, []*Channel{{Name: "siem", Type: "webhook", Sender: slow, Events: []string{"*"}}}, "https://timebox.example.com")
		o.Sweep, o.Claim = 10*time.Millisecond, 300*time.Millisecond
		o.Logger = e.outbox.Logger
		return o
	}
	a, b := replica(), replica()
	for range 12 {
		e.request("dev")
	}
	if _, err := a.Plan(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.run(a)
	time.Sleep(20 * time.Millisecond)
	e.run(b)
	waitFor(t, "every delivery", func() bool {
		ds := e.deliveries(timebox.DeliveryFilter{Channel: "siem"})
		for _, d := range ds {
			if d.Status != timebox.DeliverySent {
				return false
			}
		}
		return len(ds) == 12
	})
	slow.mu.Lock()
	defer slow.mu.Unlock()
	for k, n := range slow.keys {
		if n != 1 {
			t.Errorf("%s arrived %d times", k, n)
		}
	}
}

// echoReceiver answers every post with an error that echoes the whole request back: its
// URL (with the token in the path and the query), its headers and its body.
func echoReceiver(t *testing.T, status int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(status)
		fmt.Fprintf(w, "bad request to %s%s?%s headers %v body %s", r.Host, r.URL.Path, r.URL.RawQuery, r.Header, b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Secrets (a webhook URL's token, a Teams workflow's sig, a signing secret) reach neither
// the log (at debug) nor a delivery's last_error, even when the receiver echoes them.
func TestAttackSecretsNotInLogsOrErrors(t *testing.T) {
	e := newEnv(t)
	srv := echoReceiver(t, http.StatusBadRequest)
	const token, sig = "T0KEN0123456789", "SIGabcdef0123456789"
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i + 1)
	}
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(key)
	t.Setenv("TBX_HOOK_URL", srv.URL+"/hooks/"+token+"?token="+token)
	t.Setenv("TBX_TEAMS_URL", srv.URL+"/workflows/run?api-version=1&sig="+sig)
	t.Setenv("TBX_HOOK_SECRET", whsec)
	var logs syncLog
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := &Config{Channels: []ChannelConfig{
		{Name: "siem", Webhook: &WebhookConfig{URL: "env:TBX_HOOK_URL", Secret: "env:TBX_HOOK_SECRET"}},
		{Name: "teams", Teams: &TeamsConfig{URL: "env:TBX_TEAMS_URL"}},
	}, Routes: []Route{{Channels: []string{"teams"}}}}
	chs, err := Open(cfg, Env{ConsoleURL: "https://timebox.example.com", Service: e.svc, Logger: logger, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	o := New(e.db, e.svc, e.db.Feed(), cfg, chs, "https://timebox.example.com")
	o.Sweep, o.Logger = 10*time.Millisecond, logger
	e.request("prod")
	e.sendAll(o)
	secrets := []string{token, sig, whsec, base64.StdEncoding.EncodeToString(key)}
	ds := e.deliveries(timebox.DeliveryFilter{})
	if len(ds) != 2 {
		t.Fatalf("%d deliveries, want the webhook's and the Teams card", len(ds))
	}
	for _, d := range ds {
		if d.Status != timebox.DeliveryFailed || d.LastError == "" {
			t.Errorf("%s: %s %q, want failed with an error", d.Key, d.Status, d.LastError)
		}
		for _, s := range secrets {
			if strings.Contains(d.LastError, s) {
				t.Errorf("%s: last_error holds the secret %s: %q", d.Key, s, d.LastError)
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log holds the secret %s:\n%s", s, logs.String())
		}
	}
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
