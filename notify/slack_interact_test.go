package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/timebox-dev/timebox"
)

// payload is a block_actions interaction of Slack user uid clicking action (each click has
// its own action_ts, as Slack's do).
func (e *slackEnv) payload(uid, action string) string {
	e.n++
	cb := map[string]any{"type": "block_actions", "team": map[string]any{"id": testTeam},
		"user": map[string]any{"id": uid, "team_id": testTeam}, "trigger_id": "trigger-1",
		"response_url": e.fake.srv.URL + "/respond/" + uid, "channel": map[string]any{"id": "C0123"},
		"actions": []map[string]any{{"type": "button", "action_id": action, "block_id": "timebox_actions",
			"action_ts": strconv.FormatInt(time.Now().Unix(), 10) + "." + strconv.FormatInt(e.n, 10)}}}
	b, _ := json.Marshal(cb)
	return "payload=" + url.QueryEscape(string(b))
}

// signed is a POST of body to the hook, signed with secret at ts as Slack signs.
func signed(secret string, ts time.Time, body string) *http.Request {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + stamp + ":" + body))
	r := httptest.NewRequest(http.MethodPost, "/hooks/slack/ops", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Slack-Request-Timestamp", stamp)
	r.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(m.Sum(nil)))
	return r
}

// serve sends r to the hook and waits for the answers it sends in the background.
func (e *slackEnv) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.hook.ServeHTTP(w, r)
	e.s.replies.Wait()
	return w
}

// click is Slack user uid clicking action, signed now; it returns the status and what the
// person was told.
func (e *slackEnv) click(uid, action string) (int, string) {
	e.t.Helper()
	before := len(e.fake.answered())
	w := e.serve(signed(slackTestSecret, time.Now(), e.payload(uid, action)))
	answers := e.fake.answered()
	if len(answers) != before+1 {
		e.t.Fatalf("click by %s on %s: %d answers, want one (status %d, body %q)", uid, action, len(answers)-before, w.Code, w.Body)
	}
	return w.Code, answers[len(answers)-1]
}

func (e *slackEnv) state(id string) timebox.State {
	e.t.Helper()
	r, err := e.svc.FindRequest(e.ctx, "root", id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r.State
}

// events counts the audit events of request id with action.
func (e *slackEnv) events(id, action string) int {
	e.t.Helper()
	es, err := e.svc.FindEvents(e.ctx, "audrey", timebox.EventFilter{RequestID: id, Action: action})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(es)
}

func TestSlackApproveClick(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	code, said := e.click("UBOB", actionApprove+r.ID)
	if code != http.StatusOK || !strings.Contains(said, "You approved request "+r.ID) {
		t.Fatalf("bob's click: %d %q", code, said)
	}
	if got := e.state(r.ID); got != timebox.StateApproved {
		t.Errorf("request is %s after bob's click, want approved", got)
	}
	if n := e.events(r.ID, "request.approved"); n != 1 {
		t.Errorf("%d request.approved events, want 1", n)
	}
	es, err := e.svc.FindEvents(e.ctx, "audrey", timebox.EventFilter{RequestID: r.ID, Action: "request.approved"})
	if err != nil || len(es) != 1 || !strings.HasPrefix(fmt.Sprint(es[0].Details["via"]), "slack ") || !strings.HasSuffix(fmt.Sprint(es[0].Details["via"]), " UBOB") {
		t.Errorf("the approval's audit event does not say it came from Slack: %v %v", es, err)
	}
}

func TestSlackRefusesUnsignedRequests(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	body := e.payload("UBOB", actionApprove+r.ID)
	forged := signed(slackTestSecret, time.Now(), body)
	sig := []byte(forged.Header.Get("X-Slack-Signature"))
	sig[len(sig)-1] ^= 1
	forged.Header.Set("X-Slack-Signature", string(sig))
	tampered := signed(slackTestSecret, time.Now(), body)
	tampered.Body = http.NoBody
	noHeaders := signed(slackTestSecret, time.Now(), body)
	noHeaders.Header.Del("X-Slack-Signature")
	for name, req := range map[string]*http.Request{
		"forged signature":       forged,
		"wrong secret":           signed("not-the-signing-secret", time.Now(), body),
		"body changed":           tampered,
		"no signature":           noHeaders,
		"timestamp 6 min old":    signed(slackTestSecret, time.Now().Add(-6*time.Minute), body),
		"timestamp 6 min ahead":  signed(slackTestSecret, time.Now().Add(6*time.Minute), body),
		"timestamp a day behind": signed(slackTestSecret, time.Now().Add(-24*time.Hour), body),
	} {
		if w := e.serve(req); w.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d %q, want 401", name, w.Code, w.Body)
		}
	}
	if got := e.state(r.ID); got != timebox.StatePending || len(e.fake.answered()) != 0 || e.fake.count("users.info") != 0 {
		t.Fatalf("after refused requests: request %s, %d answers, %d users.info: want nothing done", got, len(e.fake.answered()), e.fake.count("users.info"))
	}
	// 4 minutes old is within the window; the same request again is a replay.
	ok := signed(slackTestSecret, time.Now().Add(-4*time.Minute), body)
	replay := signed(slackTestSecret, time.Now().Add(-4*time.Minute), body)
	replay.Header.Set("X-Slack-Signature", "v0="+strings.ToUpper(strings.TrimPrefix(replay.Header.Get("X-Slack-Signature"), "v0=")))
	if w := e.serve(ok); w.Code != http.StatusOK || e.state(r.ID) != timebox.StateApproved {
		t.Fatalf("a 4-minute-old signed click: %d, request %s", w.Code, e.state(r.ID))
	}
	if w := e.serve(replay); w.Code != http.StatusUnauthorized {
		t.Errorf("replayed request (signature in upper case): %d %q, want 401", w.Code, w.Body)
	}
	if w := e.serve(signed(slackTestSecret, time.Now().Add(-4*time.Minute), body)); w.Code != http.StatusUnauthorized {
		t.Errorf("replayed request: %d %q, want 401", w.Code, w.Body)
	}
	if n := e.events(r.ID, "request.approved"); n != 1 || len(e.fake.answered()) != 1 {
		t.Errorf("%d approvals and %d answers, want 1 each", n, len(e.fake.answered()))
	}
}

func TestSlackHookRefusesOtherMethodsAndHugeBodies(t *testing.T) {
	e := newSlackEnv(t)
	if w := e.serve(httptest.NewRequest(http.MethodGet, "/hooks/slack/ops", nil)); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
	huge := "payload=" + strings.Repeat("x", maxInteractionBody+1)
	if w := e.serve(signed(slackTestSecret, time.Now(), huge)); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the limit: %d", w.Code)
	}
	if w := e.serve(signed(slackTestSecret, time.Now(), "payload=not-json")); w.Code != http.StatusBadRequest {
		t.Errorf("a signed body that is no payload: %d", w.Code)
	}
	// A link button is acknowledged and does nothing.
	before := len(e.fake.calls)
	if w := e.serve(signed(slackTestSecret, time.Now(), e.payload("UBOB", actionLink+"0"))); w.Code != http.StatusOK || len(e.fake.calls) != before {
		t.Errorf("link button: %d, %d Slack calls", w.Code, len(e.fake.calls)-before)
	}
}

func TestSlackRequesterCannotApproveTheirOwnRequest(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	_, said := e.click("UALICE", actionApprove+r.ID) // alice, found by her Slack e-mail
	if !strings.Contains(said, "nobody may approve their own request") {
		t.Errorf("alice was told %q, want the service's refusal", said)
	}
	if got := e.state(r.ID); got != timebox.StatePending {
		t.Errorf("request is %s, want still pending", got)
	}
}

func TestSlackUnknownUsersAreRefused(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	e.fake.addUser("USTRANGER", "bob@example.com", func(u *slack.User) { u.TeamID, u.IsStranger = "T2", true })
	e.fake.addUser("UNOTCONFIRMED", "bob@example.com", func(u *slack.User) { u.IsEmailConfirmed = false })
	e.fake.addUser("UGONE", "bob@example.com", func(u *slack.User) { u.Deleted = true })
	for uid, want := range map[string]string{
		"UEVE":          "no Timebox user has the e-mail eve@example.com",
		"UNOBODY":       "could not look up your Slack account",
		"USTRANGER":     "another workspace",
		"UNOTCONFIRMED": "not confirmed",
		"UGONE":         "deactivated",
	} {
		if _, said := e.click(uid, actionApprove+r.ID); !strings.Contains(said, want) {
			t.Errorf("%s was told %q, want %q", uid, said, want)
		}
	}
	if got := e.state(r.ID); got != timebox.StatePending || e.events(r.ID, "request.approval_added") != 0 {
		t.Errorf("request is %s, want still pending with no approval", got)
	}
}

func TestSlackQuorumCompletedByAClick(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("prod") // prod-two: two owners
	if _, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{}); err != nil {
		t.Fatal(err)
	}
	if got := e.state(r.ID); got != timebox.StatePending {
		t.Fatalf("after one approval the request is %s", got)
	}
	if _, said := e.click("UBOB", actionApprove+r.ID); !strings.Contains(said, "nothing to approve") && !strings.Contains(said, "already approved") {
		t.Errorf("bob's second approval, from Slack: %q", said)
	}
	_, said := e.click("UDAVE", actionApprove+r.ID) // dave, by e-mail (Dave@Example.com in the catalog)
	if !strings.Contains(said, "You approved request "+r.ID+": it is approved") {
		t.Errorf("dave was told %q", said)
	}
	if _, said := e.click("UBOB", actionApprove+r.ID); !strings.Contains(said, "nothing to approve") {
		t.Errorf("a click after the quorum: %q", said)
	}
	if got, n := e.state(r.ID), e.events(r.ID, "request.approved"); got != timebox.StateApproved || n != 1 {
		t.Errorf("request %s with %d request.approved events, want approved once", got, n)
	}
}

func TestSlackDenyAsksWhyThenDenies(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	if w := e.serve(signed(slackTestSecret, time.Now(), e.payload("UBOB", actionDeny+r.ID))); w.Code != http.StatusOK {
		t.Fatalf("deny click: %d", w.Code)
	}
	if len(e.fake.views) != 1 {
		t.Fatalf("views.open called %d times, want 1", len(e.fake.views))
	}
	v := e.fake.views[0]
	view, _ := v["view"].(map[string]any)
	if v["trigger_id"] != "trigger-1" || view["callback_id"] != denyCallback || e.state(r.ID) != timebox.StatePending {
		t.Fatalf("views.open %v; request %s", v, e.state(r.ID))
	}
	submit := func(uid, reason string) *httptest.ResponseRecorder {
		cb := map[string]any{"type": "view_submission", "team": map[string]any{"id": testTeam}, "user": map[string]any{"id": uid},
			"view": map[string]any{"callback_id": denyCallback, "private_metadata": view["private_metadata"],
				"state": map[string]any{"values": map[string]any{denyReason: map[string]any{denyReason: map[string]any{"type": "plain_text_input", "value": reason}}}}}}
		b, _ := json.Marshal(cb)
		return e.serve(signed(slackTestSecret, time.Now(), "payload="+url.QueryEscape(string(b))))
	}
	// The requester cannot deny (the form shows the service's refusal); an empty reason is refused.
	for uid, reason := range map[string]string{"UALICE": "no", "UBOB": "  "} {
		w := submit(uid, reason)
		var resp slack.ViewSubmissionResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.ResponseAction != slack.RAErrors || resp.Errors[denyReason] == "" {
			t.Errorf("%s submitting %q: %d %q, want the form's error", uid, reason, w.Code, w.Body)
		}
	}
	if w := submit("UBOB", "use the read replica"); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("bob's denial: %d %q", w.Code, w.Body)
	}
	if got := e.state(r.ID); got != timebox.StateDenied {
		t.Errorf("request is %s, want denied", got)
	}
	if said := e.fake.answered(); len(said) != 1 || !strings.Contains(said[0], "You denied request "+r.ID) {
		t.Errorf("answers %q", said)
	}
}

func TestSlackAnswersOnlySlacksResponseURLs(t *testing.T) {
	e := newSlackEnv(t)
	for raw, want := range map[string]bool{
		"https://hooks.slack.com/actions/T1/1/abc": true,
		"https://hooks.slack-gov.com/actions/T1/1": true,
		e.fake.srv.URL + "/respond/x":              true, // the host of api_url
		"http://hooks.slack.com/actions/T1/1/abc":  false,
		"https://slack.com.evil.example/actions":   false,
		"https://evil.example/?x=hooks.slack.com":  false,
		"https://user@hooks.slack.com/actions":     false,
		"":                                         false,
	} {
		if got := e.s.mayRespond(raw); got != want {
			t.Errorf("mayRespond(%q) = %v, want %v", raw, got, want)
		}
	}
	s, err := openSlack("ops", &SlackConfig{Token: "env:TBX_SLACK_TOKEN", SigningSecret: "env:TBX_SLACK_SECRET", Channel: "C0123"}, Env{})
	if err != nil {
		t.Fatal(err)
	} else if s.Interactions() != nil {
		t.Errorf("Interactions without a Service to decide with is not nil")
	}
}
