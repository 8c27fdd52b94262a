package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/timebox-dev/timebox"
)

// webhookDoc returns docs/notify-webhooks.md.
func webhookDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/notify-webhooks.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fenced returns the first fenced block of lang in doc.
func fenced(t *testing.T, doc, lang string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "```"+lang+"\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("docs/notify-webhooks.md has no %s block", lang)
	}
	return block
}

// TestWebhookDocSample checks that the sample request in the docs is real: its signature
// verifies with the secret the docs give.
func TestWebhookDocSample(t *testing.T) {
	doc := webhookDoc(t)
	head, body, ok := strings.Cut(fenced(t, doc, "http"), "\n\n")
	if !ok {
		t.Fatal("the sample request has no body")
	}
	h := http.Header{}
	for _, line := range strings.Split(head, "\n")[1:] {
		k, v, _ := strings.Cut(line, ": ")
		h.Add(k, v)
	}
	const secret = "whsec_dGltZWJveC13ZWJob29rLXRlc3Qtc2VjcmV0LTMyYiE="
	if !strings.Contains(doc, secret) || secret != testSecret {
		t.Fatal("the docs' secret is not the tests' secret")
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.VerifyIgnoringTimestamp([]byte(strings.TrimSuffix(body, "\n")), h); err != nil {
		t.Errorf("the docs' sample does not verify: %v", err)
	}
}

// TestWebhookDocPython runs the docs' Python recipe (with python3, when installed) on a
// real delivery, then on an edited one.
func TestWebhookDocPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	rc := newReceiver(t, false)
	now := time.Now()
	w, _ := openTestWebhook(t, rc, WebhookConfig{}, &now)
	m := &Message{Kind: KindEvent, Event: approvedEvent(), Delivery: &timebox.Delivery{Key: "siem:e42"}, Head: Head{Seq: 42}}
	if _, err := w.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	r := rc.requests()[0]
	dir := t.TempDir()
	headers := map[string]string{}
	for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		headers[k] = r.header.Get(k)
	}
	hj, _ := json.Marshal(headers)
	script := fenced(t, webhookDoc(t), "python") + `
import json, sys
headers = json.load(open(sys.argv[1]))
body = open(sys.argv[2], "rb").read()
try:
    verify(sys.argv[3], headers, body)
except ValueError as e:
    print("refused:", e)
    sys.exit(1)
print("verified")
`
	for name, data := range map[string][]byte{"verify.py": []byte(script), "headers.json": hj, "body": r.body,
		"edited": []byte(strings.Replace(string(r.body), `"bob"`, `"eve"`, 1))} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(body, secret string) (string, error) {
		out, err := exec.Command(py, filepath.Join(dir, "verify.py"), filepath.Join(dir, "headers.json"), filepath.Join(dir, body), secret).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := run("body", testSecret); err != nil || out != "verified" {
		t.Errorf("the docs' recipe on a real delivery: %s (%v)", out, err)
	}
	if out, err := run("edited", testSecret); err == nil || !strings.Contains(out, "no matching signature") {
		t.Errorf("the docs' recipe on an edited body: %s (%v), want refused", out, err)
	}
	if out, err := run("body", otherSecret); err == nil {
		t.Errorf("the docs' recipe with a wrong secret: %s, want refused", out)
	}
}
