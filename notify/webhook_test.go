package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/timebox-dev/timebox"
)

// The signing secrets of the tests: Standard Webhooks secrets of 32 bytes.
var (
	testSecret  = "whsec_" + base64.StdEncoding.EncodeToString([]byte("timebox-webhook-test-secret-32b!"))
	otherSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("another-webhook-secret-of-32-by!"))
)

// openTestWebhook opens a webhook channel to rc, signing with testSecret, its clock at clock.
func openTestWebhook(t *testing.T, rc *receiver, c WebhookConfig, clock *time.Time) (*Webhook, string) {
	t.Helper()
	ref, raw := rc.secretURL(t, "TB_HOOK_URL")
	t.Setenv("TB_HOOK_SECRET", testSecret)
	c.URL, c.Secret = ref, "env:TB_HOOK_SECRET"
	s, err := openWebhook("siem", &c, Env{ConsoleURL: testConsole + "/", Client: rc.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	w := s.(*Webhook)
	w.now = func() time.Time { return *clock }
	return w, raw
}

func approvedEvent() *timebox.Event {
	return &timebox.Event{
		Seq: 42, Time: time.Date(2026, 12, 3, 14, 2, 7, 123456000, time.UTC), Actor: "bob", Action: "request.approved",
		RequestID: "r-7f3a", Database: "orders", Details: map[string]any{"note": "ok for INC-4411"},
		PrevHash: strings.Repeat("a", 64), Hash: strings.Repeat("b", 64), KeyID: "3f9c21d0",
	}
}

// verifySpec checks a request's signature as the Standard Webhooks text says, written here
// apart from the sender's code: the key is the base64 after whsec_; the signed content is
// "{webhook-id}.{webhook-timestamp}.{body}"; the header holds space-separated "v1,<base64
// HMAC-SHA256>"; the timestamp must be within 5 minutes of now.
func verifySpec(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	ts, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if err != nil {
		return err
	}
	if d := now.Sub(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp out of tolerance")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Split(h.Get("webhook-signature"), " ") {
		v, b64, _ := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if v == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// verifyLib checks a request's signature with the Standard Webhooks Go library.
func verifyLib(t *testing.T, secret string, r received) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh.Verify(r.body, r.header)
}

// TestWebhookEnvelope checks the CloudEvents envelope, every field of the event in it, the
// head and the request link, and the Standard Webhooks headers, verified by the library and
// by the spec's recipe.
func TestWebhookEnvelope(t *testing.T) {
	rc := newReceiver(t, false)
	now := time.Now()
	w, _ := openTestWebhook(t, rc, WebhookConfig{}, &now)
	m := &Message{Kind: KindEvent, Event: approvedEvent(), Delivery: &timebox.Delivery{Key: "siem:e42"},
		Head: Head{Seq: 45, Hash: strings.Repeat("c", 64)}}
	if _, err := w.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	r := rc.requests()[0]
	if ct := r.header.Get("Content-Type"); ct != "application/cloudevents+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if r.header.Get("webhook-id") != "siem:e42" || r.header.Get("webhook-timestamp") != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("webhook-id %q, webhook-timestamp %q", r.header.Get("webhook-id"), r.header.Get("webhook-timestamp"))
	}
	if err := verifyLib(t, testSecret, r); err != nil {
		t.Errorf("standard-webhooks library: %v", err)
	}
	if err := verifySpec(testSecret, r.header, r.body, time.Now()); err != nil {
		t.Errorf("spec recipe: %v", err)
	}

	var ce map[string]any
	if err := json.Unmarshal(r.body, &ce); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"specversion": "1.0", "id": "siem:e42", "source": testConsole, "type": "dev.timebox.request.approved",
		"subject": "r-7f3a", "time": "2026-12-03T14:02:07.123456Z", "datacontenttype": "application/json",
	}
	for k, v := range want {
		if ce[k] != v {
			t.Errorf("%s = %v, want %v", k, ce[k], v)
		}
	}
	if len(ce) != len(want)+1 {
		t.Errorf("envelope has %d attributes, want %d and data: %v", len(ce), len(want), ce)
	}
	data := ce["data"].(map[string]any)
	if data["request_url"] != testConsole+"/requests/r-7f3a" {
		t.Errorf("request_url = %v", data["request_url"])
	}
	if head := data["head"].(map[string]any); head["seq"] != 45.0 || head["hash"] != strings.Repeat("c", 64) {
		t.Errorf("head = %v", head)
	}
	ev := data["event"].(map[string]any)
	for _, k := range []string{"seq", "time", "actor", "action", "request_id", "database", "details", "prev_hash", "hash", "key_id"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("data.event has no %s: %v", k, ev)
		}
	}
	var back CloudEvent
	if err := json.Unmarshal(r.body, &back); err != nil || !eventsEqual(back.Data.Event, m.Event) {
		t.Errorf("data.event decodes to %+v, want %+v (%v)", back.Data.Event, m.Event, err)
	}
}

func eventsEqual(a, b *timebox.Event) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return a != nil && string(ja) == string(jb)
}

// TestWebhookEventWithoutRequest checks an event about no request: no subject, no link, and
// the default source without a console.
func TestWebhookEventWithoutRequest(t *testing.T) {
	rc := newReceiver(t, false)
	ref, _ := rc.secretURL(t, "TB_HOOK_URL")
	t.Setenv("TB_HOOK_SECRET", testSecret)
	s, err := openWebhook("siem", &WebhookConfig{URL: ref, Secret: "env:TB_HOOK_SECRET"}, Env{Client: rc.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	e := &timebox.Event{Seq: 7, Time: time.Now().UTC(), Actor: "admin", Action: "user.disabled", Details: map[string]any{"user": "mallory"}}
	if _, err := s.Send(context.Background(), &Message{Kind: KindEvent, Event: e, Delivery: &timebox.Delivery{Key: "siem:e7"}}); err != nil {
		t.Fatal(err)
	}
	var ce map[string]any
	_ = json.Unmarshal(rc.requests()[0].body, &ce)
	if _, ok := ce["subject"]; ok || ce["source"] != "urn:timebox" || ce["type"] != "dev.timebox.user.disabled" {
		t.Errorf("envelope = %v, want no subject, source urn:timebox", ce)
	}
	if _, ok := ce["data"].(map[string]any)["request_url"]; ok {
		t.Errorf("data has a request_url without a request: %v", ce["data"])
	}
}

// TestWebhookRetry checks that a retried delivery carries the same webhook-id and body with
// a fresh timestamp and signature, each verifying; and that a wrong secret, an edited body
// or a stale timestamp fail verification.
func TestWebhookRetry(t *testing.T) {
	rc := newReceiver(t, false)
	now := time.Now().Add(-time.Minute)
	w, _ := openTestWebhook(t, rc, WebhookConfig{}, &now)
	m := &Message{Kind: KindEvent, Event: approvedEvent(), Delivery: &timebox.Delivery{Key: "siem:e42"}, Head: Head{Seq: 42}}
	rc.answerWith(http.StatusServiceUnavailable, nil, "down for maintenance")
	if _, err := w.Send(context.Background(), m); err == nil || IsPermanent(err) {
		t.Fatalf("503: err = %v, want a retryable error", err)
	}
	now = now.Add(37 * time.Second)
	rc.answerWith(http.StatusNoContent, nil, "")
	if _, err := w.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := rc.requests()
	a, b := got[0], got[1]
	if a.header.Get("webhook-id") != b.header.Get("webhook-id") || string(a.body) != string(b.body) {
		t.Errorf("retry changed webhook-id (%q, %q) or body", a.header.Get("webhook-id"), b.header.Get("webhook-id"))
	}
	if a.header.Get("webhook-timestamp") == b.header.Get("webhook-timestamp") || a.header.Get("webhook-signature") == b.header.Get("webhook-signature") {
		t.Errorf("retry kept timestamp %s and signature %s", a.header.Get("webhook-timestamp"), a.header.Get("webhook-signature"))
	}
	for i, r := range got {
		if err := verifyLib(t, testSecret, r); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}

	if err := verifyLib(t, otherSecret, b); err == nil {
		t.Error("a wrong secret verified the signature")
	}
	if err := verifySpec(otherSecret, b.header, b.body, time.Now()); err == nil {
		t.Error("a wrong secret verified the signature (spec recipe)")
	}
	edited := received{header: b.header, body: []byte(strings.Replace(string(b.body), `"actor":"bob"`, `"actor":"eve"`, 1))}
	if err := verifyLib(t, testSecret, edited); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("edited body: %v, want no matching signature", err)
	}
	now = time.Now().Add(-10 * time.Minute)
	_, _ = w.Send(context.Background(), m)
	if err := verifyLib(t, testSecret, rc.requests()[2]); !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
		t.Errorf("10-minute-old timestamp: %v, want too old", err)
	}
}

// TestWebhookAnswers checks the receiver's answers (410 Gone and redirects permanent, 429
// and 503 after Retry-After, 500 retried, 400 permanent) and that no error shows the URL or
// the secret, even when the receiver echoes them.
func TestWebhookAnswers(t *testing.T) {
	rc := newReceiver(t, false)
	now := time.Now()
	w, raw := openTestWebhook(t, rc, WebhookConfig{}, &now)
	m := &Message{Kind: KindEvent, Event: approvedEvent(), Delivery: &timebox.Delivery{Key: "siem:e42"}}
	b64 := strings.TrimPrefix(testSecret, "whsec_")
	cases := []struct {
		status    int
		header    http.Header
		body      string
		perm      bool
		wantAfter time.Duration
	}{
		{status: 410, body: "endpoint disabled", perm: true},
		{status: 429, header: http.Header{"Retry-After": {"30"}}, wantAfter: 30 * time.Second},
		{status: 503, header: http.Header{"Retry-After": {"120"}}, wantAfter: 2 * time.Minute},
		{status: 500, body: "failed to post to " + raw},
		{status: 400, body: "bad signature, expected secret " + testSecret, perm: true},
		{status: 401, body: b64, perm: true},
		{status: 308, header: http.Header{"Location": {raw + "/v2"}}, perm: true},
	}
	for _, c := range cases {
		rc.answerWith(c.status, c.header, c.body)
		_, err := w.Send(context.Background(), m)
		if err == nil || IsPermanent(err) != c.perm || retryAfter(err) != c.wantAfter {
			t.Errorf("HTTP %d: err = %v (permanent %v, after %s), want permanent %v, after %s",
				c.status, err, IsPermanent(err), retryAfter(err), c.perm, c.wantAfter)
		}
		checkNoSecret(t, err, raw, testSig, "5b1c0a7e9d", testSecret, b64[:20])
	}
	if n := len(rc.requests()); n != len(cases) {
		t.Errorf("receiver got %d requests, want %d (a redirect must not be followed)", n, len(cases))
	}
	bad := *m
	bad.Delivery = &timebox.Delivery{Key: "siem.e42"}
	if _, err := w.Send(context.Background(), &bad); !IsPermanent(err) {
		t.Errorf("a key with a dot: err = %v, want permanent", err)
	}
	rc.srv.Close()
	_, err := w.Send(context.Background(), m)
	if err == nil || IsPermanent(err) {
		t.Errorf("receiver down: err = %v, want retryable", err)
	}
	checkNoSecret(t, err, raw, testSig, "5b1c0a7e9d")
}

// TestWebhookRotation checks that with previous_secrets each secret's signature is sent, so
// a receiver still on the old secret verifies as well as one on the new.
func TestWebhookRotation(t *testing.T) {
	rc := newReceiver(t, false)
	now := time.Now()
	t.Setenv("TB_HOOK_OLD", otherSecret)
	w, _ := openTestWebhook(t, rc, WebhookConfig{PreviousSecrets: []string{"env:TB_HOOK_OLD"}}, &now)
	m := &Message{Kind: KindEvent, Event: approvedEvent(), Delivery: &timebox.Delivery{Key: "siem:e42"}}
	if _, err := w.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	r := rc.requests()[0]
	if n := len(strings.Fields(r.header.Get("webhook-signature"))); n != 2 {
		t.Errorf("webhook-signature has %d signatures, want 2", n)
	}
	for _, s := range []string{testSecret, otherSecret} {
		if err := verifyLib(t, s, r); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// TestOpenWebhook checks the refusals of openWebhook: each names its field and shows
// neither the URL nor the secret.
func TestOpenWebhook(t *testing.T) {
	t.Setenv("TB_W_URL", "https://siem.example.com/ingest?token=tok3nVALUE99")
	t.Setenv("TB_W_SECRET", testSecret)
	t.Setenv("TB_W_RAW", "my-webhook-password-123456")
	t.Setenv("TB_W_B64", "whsec_not*base64!!")
	t.Setenv("TB_W_SHORT", "whsec_"+base64.StdEncoding.EncodeToString([]byte("sixteen-bytes-ok")))
	ok := WebhookConfig{URL: "env:TB_W_URL", Secret: "env:TB_W_SECRET"}
	with := func(f func(c *WebhookConfig)) WebhookConfig { c := ok; f(&c); return c }
	for _, c := range []struct {
		cfg  WebhookConfig
		want string
	}{
		{ok, ""},
		{with(func(c *WebhookConfig) { c.Events = []string{"*", "request.*", "user.signed_in", "notify.retried"} }), ""},
		{with(func(c *WebhookConfig) { c.Source = "urn:timebox:prod" }), ""},
		{with(func(c *WebhookConfig) { c.URL = "https://siem.example.com/ingest?token=tok3nVALUE99" }), "webhook.url: literal secrets are refused"},
		{with(func(c *WebhookConfig) { c.URL = "" }), "webhook.url: required"},
		{with(func(c *WebhookConfig) { c.Secret = "" }), "webhook.secret: required"},
		{with(func(c *WebhookConfig) { c.Secret = testSecret }), "webhook.secret: literal secrets are refused"},
		{with(func(c *WebhookConfig) { c.Secret = "env:TB_W_RAW" }), "openssl rand -base64 32"},
		{with(func(c *WebhookConfig) { c.Secret = "env:TB_W_B64" }), "not standard base64"},
		{with(func(c *WebhookConfig) { c.Secret = "env:TB_W_SHORT" }), "decodes to 16 bytes"},
		{with(func(c *WebhookConfig) { c.PreviousSecrets = []string{"env:TB_W_RAW"} }), "webhook.previous_secrets[0]: "},
		{with(func(c *WebhookConfig) { c.Events = []string{"request.*", "Request.Approved"} }), "webhook.events[1]: "},
		{with(func(c *WebhookConfig) { c.Events = []string{"*.approved"} }), "webhook.events[0]: "},
		{with(func(c *WebhookConfig) { c.Events = []string{"request."} }), "webhook.events[0]: "},
		{with(func(c *WebhookConfig) { c.Source = "not a uri" }), "webhook.source: "},
	} {
		_, err := openWebhook("siem", &c.cfg, Env{})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.want != "" && (err == nil || timebox.ErrorCode(err) != timebox.EINVALID || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: err = %v, want EINVALID …%s…", c.cfg, err, c.want)
		}
		checkNoSecret(t, err, "tok3nVALUE99", testSecret, strings.TrimPrefix(testSecret, "whsec_"), "my-webhook-password")
	}
}

// TestMatchAction checks the event patterns.
func TestMatchAction(t *testing.T) {
	for _, c := range []struct {
		patterns []string
		action   string
		want     bool
	}{
		{nil, "request.approved", true},
		{[]string{"*"}, "user.signed_in", true},
		{[]string{"request.*"}, "request.approved", true},
		{[]string{"request.*"}, "requests.approved", false},
		{[]string{"request.*"}, "extension.requested", false},
		{[]string{"request.approved"}, "request.approved", true},
		{[]string{"request.approved"}, "request.approval_added", false},
		{[]string{"user.*", "request.denied"}, "request.denied", true},
	} {
		if got := matchAction(c.patterns, c.action); got != c.want {
			t.Errorf("matchAction(%v, %s) = %v", c.patterns, c.action, got)
		}
	}
}
