package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/timebox-dev/timebox"
)

const (
	// maxInteractionBody bounds an interactivity request (its payload carries the message).
	maxInteractionBody = 1 << 20
	// signatureWindow is how far a request's timestamp may be from now, either way.
	signatureWindow = 5 * time.Minute
	// decideTimeout leaves room in Slack's 3 seconds for the answer.
	decideTimeout = 2500 * time.Millisecond
	denyCallback  = "timebox_deny"
	denyReason    = "reason"
)

// Interactions returns the channel's interactivity endpoint (the Slack app's Request URL,
// served at /hooks/slack/<channel>): it verifies Slack's signature, refuses a replay, maps
// the clicking Slack user to a Timebox user and decides the request through the service,
// where every review rule applies. nil when the channel has no signing_secret (its messages
// then have no buttons).
func (s *Slack) Interactions() http.Handler {
	if !s.interactive() {
		return nil
	}
	return http.HandlerFunc(s.serveInteraction)
}

func (s *Slack) serveInteraction(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Slack's interactivity requests are POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInteractionBody))
	if err != nil {
		http.Error(w, "request too large or cut short", http.StatusRequestEntityTooLarge)
		return
	}
	mac, ts, err := verifySlack(s.signingSecret, r.Header, body, s.now())
	if err != nil {
		s.log.Warn("slack: refused an interactivity request", "reason", err.Error(), "remote", r.RemoteAddr)
		http.Error(w, "not a valid Slack request: "+err.Error(), http.StatusUnauthorized)
		return
	}
	if err := s.env.Service.UseSlackRequest(r.Context(), mac, ts.Add(signatureWindow)); timebox.ErrorCode(err) == timebox.ECONFLICT {
		s.log.Warn("slack: refused a replayed interactivity request", "remote", r.RemoteAddr)
		http.Error(w, "this Slack request was handled already", http.StatusUnauthorized)
		return
	} else if err != nil {
		s.log.Error("slack: cannot record an interactivity request", "error", err)
		http.Error(w, "the store is unavailable: try again", http.StatusServiceUnavailable)
		return
	}
	var cb slack.InteractionCallback
	form, err := url.ParseQuery(string(body))
	if err == nil {
		err = json.Unmarshal([]byte(form.Get("payload")), &cb)
	}
	if err != nil {
		http.Error(w, "the payload is not an interaction", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), decideTimeout)
	defer cancel()
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		s.onAction(ctx, &cb)
		w.WriteHeader(http.StatusOK)
	case slack.InteractionTypeViewSubmission:
		s.onDenySubmit(ctx, w, &cb)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// verifySlack checks a request as Slack specifies: X-Slack-Request-Timestamp within five
// minutes of now, and X-Slack-Signature "v0=" + hex HMAC-SHA256 of "v0:timestamp:body" under
// the signing secret. It returns the signature (lower-case hex) and the timestamp.
func verifySlack(secret string, h http.Header, body []byte, now time.Time) (string, time.Time, error) {
	stamp, sig := h.Get("X-Slack-Request-Timestamp"), h.Get("X-Slack-Signature")
	if stamp == "" || sig == "" {
		return "", time.Time{}, errors.New("X-Slack-Request-Timestamp or X-Slack-Signature is missing")
	}
	secs, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil || len(stamp) > 12 || strings.TrimLeft(stamp, "0123456789") != "" {
		return "", time.Time{}, errors.New("X-Slack-Request-Timestamp is not a Unix time")
	}
	ts := time.Unix(secs, 0)
	if d := now.Sub(ts); d > signatureWindow || d < -signatureWindow {
		return "", time.Time{}, fmt.Errorf("the request's timestamp is %s from now, more than %s", d.Abs().Round(time.Second), signatureWindow)
	}
	hexSig, ok := strings.CutPrefix(sig, "v0=")
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil || len(got) != sha256.Size {
		return "", time.Time{}, errors.New("X-Slack-Signature is not v0=<hex SHA-256>")
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + stamp + ":"))
	m.Write(body)
	want := m.Sum(nil)
	if !hmac.Equal(got, want) {
		return "", time.Time{}, errors.New("the signature does not match (wrong signing_secret, or not from Slack)")
	}
	return hex.EncodeToString(want), ts, nil
}

// onAction handles a click: Approve decides at once; Deny opens a form asking why. Link
// buttons need nothing.
func (s *Slack) onAction(ctx context.Context, cb *slack.InteractionCallback) {
	for _, a := range cb.ActionCallback.BlockActions {
		approveID, approve := strings.CutPrefix(a.ActionID, actionApprove)
		denyID, deny := strings.CutPrefix(a.ActionID, actionDeny)
		if !approve && !deny {
			continue
		}
		user, refusal := s.timeboxUser(ctx, cb)
		switch {
		case refusal != "":
			s.answer(cb.ResponseURL, refusal)
		case approve:
			s.answer(cb.ResponseURL, s.approve(ctx, user, approveID, cb.User.ID))
		default:
			if msg := s.openDeny(ctx, user, denyID, cb); msg != "" {
				s.answer(cb.ResponseURL, msg)
			}
		}
		return
	}
}

// approve approves request id as user and says what happened, or why not.
func (s *Slack) approve(ctx context.Context, user, id, slackID string) string {
	svc := s.env.Service
	r, err := svc.FindRequest(ctx, user, id)
	if err != nil {
		return s.refused("approval", id, err)
	} else if r.State != timebox.StatePending {
		return fmt.Sprintf("Request %s is %s now: there is nothing to approve here. Open it in Timebox to see why.", id, r.State)
	}
	if r, err = svc.Approve(ctx, user, id, timebox.ApproveInput{Via: "slack " + s.name + " " + slackID}); err != nil {
		return s.refused("approval", id, err)
	}
	s.log.Info("slack: approval", "request", id, "user", user, "slack_user", slackID, "state", r.State)
	if r.State == timebox.StatePending {
		return fmt.Sprintf("You approved request %s. It still waits for %s.", id, r.Awaiting)
	}
	return fmt.Sprintf("You approved request %s: it is %s.", id, r.State)
}

// refused is the answer for a decision the service refused: its message (the store's
// failures are logged, not shown).
func (s *Slack) refused(what, id string, err error) string {
	if timebox.ErrorCode(err) == timebox.EINTERNAL {
		s.log.Error("slack: deciding a request", "request", id, "error", err)
	}
	return fmt.Sprintf("Timebox did not record your %s of request %s: %s", what, id, timebox.ErrorMessage(err))
}

// denyMeta is what the deny form carries back to us (in its private_metadata).
type denyMeta struct {
	ID          string `json:"id"`
	ResponseURL string `json:"response_url,omitempty"`
}

// openDeny opens the form that asks user why they deny request id; it returns what to tell
// them when it cannot.
func (s *Slack) openDeny(ctx context.Context, user, id string, cb *slack.InteractionCallback) string {
	r, err := s.env.Service.FindRequest(ctx, user, id)
	if err != nil {
		return s.refused("denial", id, err)
	} else if r.State != timebox.StatePending {
		return fmt.Sprintf("Request %s is %s now: there is nothing to deny here.", id, r.State)
	}
	meta, _ := json.Marshal(denyMeta{ID: id, ResponseURL: cb.ResponseURL})
	input := slack.NewPlainTextInputBlockElement(plain("For example: use the read replica"), denyReason)
	input.Multiline, input.MaxLength = true, 2000
	title := summarize(&Message{Kind: KindNewRequest, Request: r}, "").Title
	view := slack.ModalViewRequest{Type: slack.VTModal, CallbackID: denyCallback, PrivateMetadata: string(meta),
		Title: plain("Deny request"), Submit: plain("Deny"), Close: plain("Cancel"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(mrkdwn(clipRunes("*"+slackEscape(title)+"*\nRequest "+slackEscape(id), maxSectionText)), nil, nil),
			slack.NewInputBlock(denyReason, plain("Why?"), plain("The requester sees this reason."), input),
		}}}
	if _, err := s.api.OpenViewContext(ctx, cb.TriggerID, view); err != nil {
		s.log.Warn("slack: cannot open the deny form", "request", id, "error", s.apiError("views.open", err))
		return fmt.Sprintf("Timebox could not open the form to deny request %s: deny it in Timebox, %s", id, RequestURL(s.env.ConsoleURL, id))
	}
	return ""
}

// onDenySubmit denies the request of a submitted deny form, or shows the service's refusal
// in the form.
func (s *Slack) onDenySubmit(ctx context.Context, w http.ResponseWriter, cb *slack.InteractionCallback) {
	var meta denyMeta
	if cb.View.CallbackID != denyCallback || json.Unmarshal([]byte(cb.View.PrivateMetadata), &meta) != nil || meta.ID == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	note := ""
	if cb.View.State != nil {
		note = cb.View.State.Values[denyReason][denyReason].Value
	}
	user, refusal := s.timeboxUser(ctx, cb)
	if refusal == "" {
		if _, err := s.env.Service.Deny(ctx, user, meta.ID, note); err != nil {
			refusal = s.refused("denial", meta.ID, err)
		}
	}
	if refusal != "" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(slack.ViewSubmissionResponse{ResponseAction: slack.RAErrors,
			Errors: map[string]string{denyReason: clipRunes(refusal, 1000)}})
		return
	}
	s.log.Info("slack: denial", "request", meta.ID, "user", user, "slack_user", cb.User.ID)
	if meta.ResponseURL != "" {
		s.answer(meta.ResponseURL, fmt.Sprintf("You denied request %s.", meta.ID))
	}
	w.WriteHeader(http.StatusOK) // closes the form
}

// answer sends text to the clicking person only (an ephemeral message through the
// interaction's response_url), in the background: Slack wants its answer within 3 s.
func (s *Slack) answer(responseURL, text string) {
	if !s.mayRespond(responseURL) {
		s.log.Warn("slack: not answering to a response_url that is not Slack's", "url", timebox.Clip(responseURL))
		return
	}
	body, _ := json.Marshal(map[string]any{"response_type": "ephemeral", "replace_original": false, "text": slackEscape(text)})
	s.replies.Add(1)
	go func() {
		defer s.replies.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, responseURL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.env.Client.Do(req)
		if err != nil {
			s.log.Warn("slack: answering a click", "error", err)
			return
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			s.log.Warn("slack: answering a click", "status", resp.StatusCode)
		}
	}()
}

// mayRespond reports whether u is a response_url Slack would give: https on slack.com or
// slack-gov.com, or on the host of slack.api_url.
func (s *Slack) mayRespond(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil {
		return false
	}
	if u.Scheme == s.apiURL.Scheme && strings.EqualFold(u.Host, s.apiURL.Host) {
		return true
	}
	host := strings.ToLower(u.Hostname())
	return u.Scheme == "https" && (host == "slack.com" || strings.HasSuffix(host, ".slack.com") ||
		host == "slack-gov.com" || strings.HasSuffix(host, ".slack-gov.com"))
}
