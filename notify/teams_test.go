package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

const testConsole = "https://timebox.example.com"

// pendingRequest is a request waiting for review, with a reason that tries Markdown.
func pendingRequest() *timebox.Request {
	start := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	return &timebox.Request{
		ID: "r-7f3a", Requester: "alice", Database: "orders", Access: "read-only",
		Start: start, End: start.Add(2 * time.Hour),
		Reason: "INC-4411 [click to approve](https://evil.example) **now**", State: timebox.StatePending,
		Policy: timebox.Policy{Rule: "prod-read", Awaiting: "1 more of dba"},
	}
}

func openTestTeams(t *testing.T, rc *receiver) (*Teams, string) {
	t.Helper()
	ref, raw := rc.secretURL(t, "TB_TEAMS_URL")
	s, err := openTeams("ops", &TeamsConfig{URL: ref}, Env{ConsoleURL: testConsole, Client: rc.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Teams), raw
}

// teamsSend sends the summary of a message of kind k about r and returns what arrived.
func teamsSend(t *testing.T, tm *Teams, rc *receiver, k Kind, r *timebox.Request, e *timebox.Event) map[string]any {
	t.Helper()
	m := &Message{Kind: k, Request: r, Event: e, Delivery: &timebox.Delivery{Key: "ops/1"}}
	m.Summary = summarize(m, testConsole)
	if _, err := tm.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := rc.requests()
	last := got[len(got)-1]
	if last.method != http.MethodPost || last.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %s with Content-Type %q, want a POST of application/json", last.method, last.header.Get("Content-Type"))
	}
	if last.path != "/workflows/5b1c0a7e9d/triggers/manual/paths/invoke" || !strings.Contains(last.query, "sig="+testSig) {
		t.Fatalf("posted to %s?%s, not to the configured trigger URL", last.path, last.query)
	}
	var msg map[string]any
	if err := json.Unmarshal(last.body, &msg); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	return msg
}

// TestTeamsCardEnvelope checks the exact message a Workflows trigger expects: a message
// activity with one inline Adaptive Card (1.4, $schema set), its title, status, facts and
// the actions that open the exact request.
func TestTeamsCardEnvelope(t *testing.T) {
	rc := newReceiver(t, false)
	tm, _ := openTestTeams(t, rc)
	r := pendingRequest()
	msg := teamsSend(t, tm, rc, KindNewRequest, r, &timebox.Event{Seq: 9, Action: "request.created", Actor: "alice", RequestID: r.ID})

	if msg["type"] != "message" || len(msg) != 2 {
		t.Fatalf("envelope = %v, want type message and attachments only", msg)
	}
	atts, _ := msg["attachments"].([]any)
	if len(atts) != 1 {
		t.Fatalf("attachments = %v, want one", msg["attachments"])
	}
	att := atts[0].(map[string]any)
	if att["contentType"] != "application/vnd.microsoft.card.adaptive" {
		t.Errorf("contentType = %v", att["contentType"])
	}
	if v, ok := att["contentUrl"]; !ok || v != nil {
		t.Errorf("contentUrl = %v (present %v), want null", v, ok)
	}
	card := att["content"].(map[string]any)
	if card["type"] != "AdaptiveCard" || card["$schema"] != "http://adaptivecards.io/schemas/adaptive-card.json" || card["version"] != "1.4" {
		t.Errorf("card header = type %v, $schema %v, version %v", card["type"], card["$schema"], card["version"])
	}
	body := card["body"].([]any)
	title := body[0].(map[string]any)
	if title["type"] != "TextBlock" || title["text"] != "alice asks for read-only on orders" || title["weight"] != "Bolder" {
		t.Errorf("title block = %v", title)
	}
	if st := body[1].(map[string]any); st["type"] != "TextBlock" || st["text"] != "Waiting for 1 more of dba" {
		t.Errorf("status block = %v", st)
	}
	facts := body[2].(map[string]any)
	if facts["type"] != "FactSet" {
		t.Fatalf("third block = %v, want a FactSet", facts)
	}
	want := map[string]string{
		"Request": "r-7f3a", "Requester": "alice", "Database": "orders", "Access": "read-only", "Rule": "prod-read",
		"Reason": `INC-4411 \[click to approve\](https://evil.example) \*\*now\*\*`,
	}
	seen := map[string]string{}
	for _, f := range facts["facts"].([]any) {
		fm := f.(map[string]any)
		seen[fm["title"].(string)] = fm["value"].(string)
	}
	for name, v := range want {
		if seen[name] != v {
			t.Errorf("fact %s = %q, want %q", name, seen[name], v)
		}
	}
	checkActions(t, card, map[string]string{
		"Open in Timebox": testConsole + "/requests/r-7f3a",
		"Review":          testConsole + "/requests/r-7f3a#decide",
	})
}

// TestTeamsCardLinks checks the actions of other kinds: no Review once decided, and Extend
// on an expiry warning.
func TestTeamsCardLinks(t *testing.T) {
	rc := newReceiver(t, false)
	tm, _ := openTestTeams(t, rc)
	r := pendingRequest()
	r.State = timebox.StateActive
	r.End = time.Now().Add(15 * time.Minute)
	msg := teamsSend(t, tm, rc, KindExpiryWarning, r, nil)
	card := msg["attachments"].([]any)[0].(map[string]any)["content"].(map[string]any)
	checkActions(t, card, map[string]string{
		"Open in Timebox": testConsole + "/requests/r-7f3a",
		"Extend":          testConsole + "/#req-r-7f3a-h",
	})

	msg = teamsSend(t, tm, rc, KindActivation, r, &timebox.Event{Seq: 12, Action: "request.activated", Actor: "timebox", RequestID: r.ID})
	card = msg["attachments"].([]any)[0].(map[string]any)["content"].(map[string]any)
	checkActions(t, card, map[string]string{"Open in Timebox": testConsole + "/requests/r-7f3a"})
}

func checkActions(t *testing.T, card map[string]any, want map[string]string) {
	t.Helper()
	acts, _ := card["actions"].([]any)
	if len(acts) != len(want) {
		t.Errorf("actions = %v, want %v", acts, want)
	}
	for _, a := range acts {
		am := a.(map[string]any)
		title, _ := am["title"].(string)
		if am["type"] != "Action.OpenUrl" || am["url"] != want[title] {
			t.Errorf("action %v: want Action.OpenUrl to %q", am, want[title])
		}
	}
}

// TestTeamsAnswers checks how each answer of the workflow is taken: 202 and 200 delivered,
// 429 retried after Retry-After, 500 retried, 400 and a redirect permanent; no error shows
// the URL or its signature, even when the receiver echoes it.
func TestTeamsAnswers(t *testing.T) {
	rc := newReceiver(t, false)
	tm, raw := openTestTeams(t, rc)
	m := &Message{Kind: KindNewRequest, Request: pendingRequest(), Delivery: &timebox.Delivery{Key: "ops/2"}}
	m.Summary = summarize(m, testConsole)
	cases := []struct {
		status        int
		header        http.Header
		body          string
		wantErr, perm bool
		wantAfter     time.Duration
	}{
		{status: 202},
		{status: 200},
		{status: 429, header: http.Header{"Retry-After": {"7"}}, body: `{"error":{"code":"WorkflowTriggerIsThrottled"}}`, wantErr: true, wantAfter: 7 * time.Second},
		{status: 500, body: "upstream failed for " + raw, wantErr: true},
		{status: 400, body: `{"error":{"message":"The input body for trigger 'manual' of type 'Request' did not match its schema; url ` + raw + `"}}`, wantErr: true, perm: true},
		{status: 302, header: http.Header{"Location": {raw + "&moved=1"}}, wantErr: true, perm: true},
	}
	for _, c := range cases {
		rc.answerWith(c.status, c.header, c.body)
		_, err := tm.Send(context.Background(), m)
		if (err != nil) != c.wantErr || IsPermanent(err) != c.perm || retryAfter(err) != c.wantAfter {
			t.Errorf("HTTP %d: err = %v (permanent %v, retry after %s), want error %v, permanent %v, after %s",
				c.status, err, IsPermanent(err), retryAfter(err), c.wantErr, c.perm, c.wantAfter)
		}
		checkNoSecret(t, err, raw, testSig, "5b1c0a7e9d")
	}
	if n := len(rc.requests()); n != len(cases) {
		t.Errorf("receiver got %d requests, want %d (a redirect must not be followed)", n, len(cases))
	}

	rc.srv.Close()
	_, err := tm.Send(context.Background(), m)
	if err == nil || IsPermanent(err) {
		t.Errorf("receiver down: err = %v, want a retryable error", err)
	}
	checkNoSecret(t, err, raw, testSig, "5b1c0a7e9d")
}

// TestTeamsTLS sends to an https receiver.
func TestTeamsTLS(t *testing.T) {
	rc := newReceiver(t, true)
	tm, _ := openTestTeams(t, rc)
	msg := teamsSend(t, tm, rc, KindNewRequest, pendingRequest(), nil)
	if msg["type"] != "message" {
		t.Errorf("got %v", msg)
	}
}

// TestOpenTeams checks the refusals of openTeams: each names teams.url, none shows the URL.
func TestOpenTeams(t *testing.T) {
	const sig = "sig=Q9cTOKENzz81"
	t.Setenv("TB_T_PLAIN", "http://prod-17.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?"+sig)
	t.Setenv("TB_T_JUNK", "prod-17 westeurope "+sig)
	t.Setenv("TB_T_FTP", "ftp://files.example.com/x?"+sig)
	t.Setenv("TB_T_OK", "https://prod-17.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?"+sig)
	t.Setenv("TB_T_LOCAL", "http://localhost:8080/hook?"+sig)
	for ref, want := range map[string]string{
		"https://prod-17.westeurope.logic.azure.com/workflows/abc?" + sig: "literal secrets are refused",
		"":               "required",
		"env:TB_T_UNSET": "is not set",
		"env:TB_T_PLAIN": "use https",
		"env:TB_T_JUNK":  "does not hold an absolute URL",
		"env:TB_T_FTP":   "must be https",
		"env:TB_T_OK":    "",
		"env:TB_T_LOCAL": "",
	} {
		_, err := openTeams("ops", &TeamsConfig{URL: ref}, Env{})
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", ref, err)
		case want != "" && (err == nil || timebox.ErrorCode(err) != timebox.EINVALID ||
			!strings.HasPrefix(timebox.ErrorMessage(err), "teams.url: ") || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: err = %v, want EINVALID teams.url: …%s…", ref, err, want)
		}
		checkNoSecret(t, err, sig, "Q9cTOKEN")
	}
}

// TestCardText checks the escaping of card text.
func TestCardText(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, 2026-12-03 14:00": "plain text, 2026-12-03 14:00",
		"[x](https://evil)":            `\[x\](https://evil)`,
		"# big\n\n- item":              `\# big - item`,
		"a_b *c* `d` ~e~ \\":           "a\\_b \\*c\\* \\`d\\` \\~e\\~ \\\\",
	} {
		if got := cardText(in); got != want {
			t.Errorf("cardText(%q) = %q, want %q", in, got, want)
		}
	}
	long := cardText(strings.Repeat("é", 2*maxCardText))
	if len(long) > maxCardText+len("…") || !strings.HasSuffix(long, "…") {
		t.Errorf("a long text is %d bytes, want at most %d and an ellipsis", len(long), maxCardText)
	}
}

// TestTeamsDocSample checks that the card shown in docs/notify-teams.md is the one Timebox
// posts for that request.
func TestTeamsDocSample(t *testing.T) {
	doc, err := os.ReadFile("../docs/notify-teams.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "```json\n")
	block, _, _ := strings.Cut(rest, "```")
	var want any
	if err := json.Unmarshal([]byte(block), &want); err != nil {
		t.Fatalf("the docs' card is not JSON: %v", err)
	}
	rc := newReceiver(t, false)
	tm, _ := openTestTeams(t, rc)
	r := pendingRequest()
	r.Reason, r.Ticket = "INC-4411: refund totals disagree with the ledger", "INC-4411"
	got := teamsSend(t, tm, rc, KindNewRequest, r, &timebox.Event{Seq: 9, Action: "request.created", Actor: "alice", RequestID: r.ID})
	if !reflect.DeepEqual(any(got), want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("docs/notify-teams.md shows another card than Timebox posts:\n%s", g)
	}
}
