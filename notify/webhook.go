package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// WebhookConfig is a webhook channel's configuration: every audit event whose action matches
// Events, POSTed as a CloudEvents 1.0 JSON envelope signed as Standard Webhooks specifies.
type WebhookConfig struct {
	// URL is a secret reference (env:NAME or file:PATH) to the receiver's URL: URLs often
	// carry a token.
	URL string `yaml:"url"`
	// Secret is a secret reference to the Standard Webhooks signing secret, "whsec_" and the
	// base64 of 24 to 64 random bytes (echo "whsec_$(openssl rand -base64 32)").
	Secret string `yaml:"secret"`
	// PreviousSecrets, while the receiver moves to a new Secret, are also signed with: the
	// webhook-signature header then holds one signature per secret.
	PreviousSecrets []string `yaml:"previous_secrets"`
	// Events are the audit actions sent: "*" (default: all), "request.*" (every action
	// under request.), or exact actions ("request.approved").
	Events []string `yaml:"events"`
	// Source is the CloudEvents source attribute (a URI; default: the console's URL, or
	// "urn:timebox" without one).
	Source string `yaml:"source"`
}

// Webhook sends audit events to a webhook receiver. The webhook-id header (and the
// CloudEvents id) is the delivery's key, the same on every attempt: the receiver's
// idempotency key.
type Webhook struct {
	hook       *hookPoster
	keys       [][]byte // current secret first, then previous ones
	source     string
	consoleURL string
	// now is the clock of webhook-timestamp (time.Now; tests move it).
	now func() time.Time
}

var _ Sender = (*Webhook)(nil)

const (
	webhookWhat = "webhook"
	// webhookSecretHelp says how to make a signing secret.
	webhookSecretHelp = `make one with: echo "whsec_$(openssl rand -base64 32)"`
	// EventTypePrefix starts the CloudEvents type of every event: dev.timebox.<action>.
	EventTypePrefix = "dev.timebox."
)

// openWebhook resolves and checks channel name's URL, secrets, events and source.
func openWebhook(name string, c *WebhookConfig, env Env) (Sender, error) {
	if err := checkEvents(c.Events); err != nil {
		return nil, err
	}
	hook, err := openHookURL(webhookWhat, "webhook.url", c.URL, env.Client)
	if err != nil {
		return nil, err
	}
	w := &Webhook{hook: hook, consoleURL: env.ConsoleURL, now: time.Now}
	refs := append([]string{c.Secret}, c.PreviousSecrets...)
	for i, ref := range refs {
		field := "webhook.secret"
		if i > 0 {
			field = fmt.Sprintf("webhook.previous_secrets[%d]", i-1)
		}
		key, raw, err := webhookKey(field, ref)
		if err != nil {
			return nil, err
		}
		w.keys = append(w.keys, key)
		hook.secrets = append(hook.secrets, raw, strings.TrimPrefix(raw, "whsec_"))
	}
	if w.source, err = webhookSource(c.Source, env.ConsoleURL); err != nil {
		return nil, err
	}
	return w, nil
}

// webhookKey resolves ref and decodes the Standard Webhooks secret it holds; it returns the
// key and the secret as written (to scrub it). Errors never contain the secret.
func webhookKey(field, ref string) ([]byte, string, error) {
	if ref == "" {
		return nil, "", timebox.Errorf(timebox.EINVALID, "%s: required: a secret reference env:NAME or file:PATH to a Standard Webhooks secret (%s)", field, webhookSecretHelp)
	}
	raw, err := timebox.ResolveSecret(ref)
	if err != nil {
		return nil, "", timebox.Errorf(timebox.EINVALID, "%s: %s", field, timebox.ErrorMessage(err))
	}
	raw = strings.TrimSpace(raw)
	b64, ok := strings.CutPrefix(raw, "whsec_")
	if !ok {
		return nil, "", timebox.Errorf(timebox.EINVALID, "%s: %s does not hold a Standard Webhooks secret (whsec_ followed by base64): %s", field, ref, webhookSecretHelp)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	switch {
	case err != nil:
		return nil, "", timebox.Errorf(timebox.EINVALID, "%s: the secret in %s is not standard base64 after whsec_: %s", field, ref, webhookSecretHelp)
	case len(key) < 24 || len(key) > 64:
		return nil, "", timebox.Errorf(timebox.EINVALID, "%s: the secret in %s decodes to %d bytes; Standard Webhooks asks for 24 to 64 random bytes: %s", field, ref, len(key), webhookSecretHelp)
	}
	return key, raw, nil
}

// webhookSource returns the CloudEvents source: configured (an absolute URI), else the
// console's URL, else urn:timebox.
func webhookSource(source, consoleURL string) (string, error) {
	if source == "" {
		if consoleURL != "" {
			return strings.TrimRight(consoleURL, "/"), nil
		}
		return "urn:timebox", nil
	}
	u, err := url.Parse(source)
	if err != nil || !u.IsAbs() || strings.ContainsAny(source, " \t\r\n") {
		return "", timebox.Errorf(timebox.EINVALID, "webhook.source: %q is not an absolute URI (e.g. urn:timebox:prod or https://timebox.example.com)", timebox.Clip(source))
	}
	return source, nil
}

// checkEvents checks a webhook's event patterns: "*", "<prefix>.*" or an exact action,
// made of lower-case letters, digits and _ between dots.
func checkEvents(patterns []string) error {
	for i, p := range patterns {
		if p == "*" {
			continue
		}
		name, _ := strings.CutSuffix(p, ".*")
		ok := true
		for _, seg := range strings.Split(name, ".") {
			ok = ok && seg != "" && strings.Trim(seg, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
		}
		if !ok {
			return timebox.Errorf(timebox.EINVALID, `webhook.events[%d]: %q is not "*", "<prefix>.*" (e.g. "request.*") or an audit action (e.g. "request.approved")`, i, timebox.Clip(p))
		}
	}
	return nil
}

// matchAction reports whether the audit action is one a webhook's patterns select: "*"
// selects every action, "request.*" every action under request., anything else itself.
// No patterns select every action.
func matchAction(patterns []string, action string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if p == "*" || p == action {
			return true
		}
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasSuffix(prefix, ".") && strings.HasPrefix(action, prefix) {
			return true
		}
	}
	return false
}

// Send POSTs m's event as a signed CloudEvent. 2xx is delivered; 410 Gone is permanent (the
// receiver wants no more); 3xx is permanent (redirects are not followed); the rest as
// HTTPError says. A delivery found "sending" after a restart is simply sent again: its
// webhook-id is the same, so the receiver drops the copy.
func (w *Webhook) Send(ctx context.Context, m *Message) (Result, error) {
	if m.Event == nil || m.Delivery == nil {
		return Result{}, Permanent(fmt.Errorf("%s: the delivery has no audit event", webhookWhat))
	}
	id := m.Delivery.Key
	if !webhookID(id) {
		return Result{}, Permanent(fmt.Errorf("%s: delivery key %q cannot be a webhook-id (letters, digits and _-:/ only)", webhookWhat, timebox.Clip(id)))
	}
	body, err := json.Marshal(w.envelope(m))
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("%s: cannot encode event %d", webhookWhat, m.Event.Seq))
	}
	ts := w.now().Unix()
	h := http.Header{}
	h.Set("Content-Type", "application/cloudevents+json")
	h.Set("User-Agent", "Timebox-Webhook")
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", w.signature(id, ts, body))
	status, err := w.hook.post(ctx, h, body)
	if status == http.StatusGone {
		return Result{}, Permanent(fmt.Errorf("%s: HTTP 410 Gone: the receiver wants no more of these webhooks: remove the channel, or fix the receiver and retry the failed deliveries", webhookWhat))
	}
	return Result{}, err
}

// webhookID reports whether id can be a webhook-id: Standard Webhooks signs
// "{id}.{timestamp}.{body}", so the id must not hold a dot (nor anything but plain ASCII).
func webhookID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	return strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:/") == ""
}

// signature returns the webhook-signature header: "v1,<base64 HMAC-SHA256>" of
// "{id}.{timestamp}.{body}" for each key, space-separated.
func (w *Webhook) signature(id string, ts int64, body []byte) string {
	sigs := make([]string, 0, len(w.keys))
	for _, key := range w.keys {
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%d.", id, ts)
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// CloudEvent is the body of a webhook: a CloudEvents 1.0 envelope in structured mode.
type CloudEvent struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject,omitempty"`
	Time            string    `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Data            EventData `json:"data"`
}

// EventData is a webhook's data: the audit event as the audit log holds it, the audit head
// when it was sent (a receiver that has fewer events knows more exist), and the console's
// page of the event's request.
type EventData struct {
	Event      *timebox.Event `json:"event"`
	Head       Head           `json:"head"`
	RequestURL string         `json:"request_url,omitempty"`
}

// envelope returns m's CloudEvent.
func (w *Webhook) envelope(m *Message) CloudEvent {
	e := m.Event
	rid := e.RequestID
	if rid == "" && m.Request != nil {
		rid = m.Request.ID
	}
	ce := CloudEvent{
		SpecVersion:     "1.0",
		ID:              m.Delivery.Key,
		Source:          w.source,
		Type:            EventTypePrefix + e.Action,
		Subject:         rid,
		Time:            e.Time.UTC().Format(time.RFC3339Nano),
		DataContentType: "application/json",
		Data:            EventData{Event: e, Head: m.Head},
	}
	if rid != "" && w.consoleURL != "" {
		ce.Data.RequestURL = RequestURL(w.consoleURL, rid)
	}
	return ce
}
