package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

const slackConsole = "https://timebox.example.com"

// slackEnv is a Slack channel talking to a fake Slack, with a real Service on SQLite.
type slackEnv struct {
	t    *testing.T
	ctx  context.Context
	fake *fakeSlack
	svc  *timebox.Service
	s    *Slack
	hook http.Handler
	n    int64
}

func slackCatalog(t *testing.T) *timebox.Catalog {
	c := &timebox.Catalog{
		Users: []timebox.User{
			{Name: "alice", Email: "alice@example.com", Groups: []string{"developers"}},
			{Name: "bob", Email: "bob@example.com", Groups: []string{"shop-owners"}},
			{Name: "dave", Email: "Dave@Example.com", Groups: []string{"shop-owners"}},
			{Name: "audrey", Email: "audrey@example.com", Groups: []string{"audit"}},
			{Name: "root", Groups: []string{"platform"}},
		},
		AdminGroups:   []string{"platform"},
		AuditorGroups: []string{"audit"},
		Servers: []timebox.Server{{Name: "pg1", Engine: timebox.EnginePostgres,
			URL: "postgres://timebox@db.internal:5432/postgres", Password: "env:TBX_TEST_NEVER_READ"}},
		Databases: []timebox.Database{
			{Name: "stage", Server: "pg1", Database: "shop_stage", Environment: "stage", Owners: []string{"shop-owners"}},
			{Name: "prod", Server: "pg1", Database: "shop", Environment: "prod", Owners: []string{"shop-owners"}},
		},
		AccessLevels: []timebox.AccessLevel{{Name: "read-only", Postgres: timebox.EngineRoles{Roles: []string{"shop_ro"}}}},
		Rules: []timebox.Rule{
			{Name: "prod-two", Match: timebox.RuleMatch{Environment: timebox.StringList{"prod"}}, Approvals: 2},
			{Name: "stage-one", Match: timebox.RuleMatch{Environment: timebox.StringList{"stage"}}},
		},
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("catalog: %v", err)
	}
	return c
}

func newSlackEnv(t *testing.T, edit ...func(*SlackConfig)) *slackEnv {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite://"+t.TempDir()+"/s.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := timebox.NewKeyring("slack-test-secret-key-0123")
	if err != nil {
		t.Fatal(err)
	}
	e := &slackEnv{t: t, ctx: ctx, fake: newFakeSlack(t), svc: timebox.NewService(db, slackCatalog(t), keys)}
	t.Setenv("TBX_SLACK_TOKEN", testToken)
	t.Setenv("TBX_SLACK_SECRET", slackTestSecret)
	cfg := &SlackConfig{Token: "env:TBX_SLACK_TOKEN", SigningSecret: "env:TBX_SLACK_SECRET", Channel: "C0123",
		Users: map[string]string{"UBOB": "bob"}, APIURL: e.fake.apiURL()}
	for _, f := range edit {
		f(cfg)
	}
	if e.s, err = openSlack("ops", cfg, Env{ConsoleURL: slackConsole, Service: e.svc, Client: e.fake.srv.Client()}); err != nil {
		t.Fatal(err)
	}
	e.hook = e.s.Interactions()
	e.fake.addUser("UBOB", "bob@example.com")
	e.fake.addUser("UALICE", "alice@example.com")
	e.fake.addUser("UDAVE", "dave@example.com")
	e.fake.addUser("UEVE", "eve@example.com")
	return e
}

// request creates a request of alice on db.
func (e *slackEnv) request(db string) *timebox.Request {
	e.t.Helper()
	r, err := e.svc.CreateRequest(e.ctx, "alice", timebox.RequestInput{Database: db, Access: "read-only",
		Duration: "1h", Reason: "look at <!channel> & the orders"})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// message is the first delivery of a notification of kind about r (read anew).
func (e *slackEnv) message(kind Kind, id string) *Message {
	e.t.Helper()
	r, err := e.svc.FindRequest(e.ctx, "root", id)
	if err != nil {
		e.t.Fatal(err)
	}
	e.n++
	m := &Message{Kind: kind, Request: r,
		Event: &timebox.Event{Seq: e.n, Time: time.Now(), Actor: r.Requester, Action: "request.created", RequestID: r.ID},
		Delivery: &timebox.Delivery{ID: e.n, Key: "ops/" + string(kind) + "/" + r.ID, Channel: "ops", Kind: string(kind),
			RequestID: r.ID, Status: timebox.DeliveryPending, Attempts: 1, CreatedAt: time.Now()}}
	m.Summary = summarize(m, slackConsole)
	return m
}

func (e *slackEnv) send(m *Message) Result {
	e.t.Helper()
	res, err := e.s.Send(e.ctx, m)
	if err != nil {
		e.t.Fatalf("Send: %v", err)
	}
	return res
}

// blockJSON is the blocks of a message as JSON text.
func blockJSON(t *testing.T, m *fakeMsg) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m.Blocks); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestSlackPostThenUpdateInPlace(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	res := e.send(e.message(KindNewRequest, r.ID))
	msgs := e.fake.messages("C0123")
	if len(msgs) != 1 {
		t.Fatalf("posted %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if res.ExternalID != m.TS || res.Thread != "C0123:"+m.TS {
		t.Errorf("Result = %+v, want ts %s and thread C0123:%s", res, m.TS, m.TS)
	}
	blocks := blockJSON(t, m)
	for _, want := range []string{`"type":"header"`, `alice asks for read-only on stage`, `"action_id":"timebox_approve:` + r.ID + `"`,
		`"action_id":"timebox_deny:` + r.ID + `"`, `"style":"primary"`, `"confirm":`, `"url":"` + RequestURL(slackConsole, r.ID) + `"`,
		`Waiting for`, `&lt;!channel&gt; &amp; the orders`, `<!date^`} {
		if !strings.Contains(blocks, want) {
			t.Errorf("blocks lack %s:\n%s", want, blocks)
		}
	}
	if strings.Contains(blocks, "<!channel>") {
		t.Errorf("the reason's <!channel> reached Slack unescaped")
	}
	if m.Metadata["event_type"] != metadataType {
		t.Errorf("metadata = %v", m.Metadata)
	} else if p, _ := m.Metadata["event_payload"].(map[string]any); p["key"] != "ops/new_request/"+r.ID || p["request"] != r.ID {
		t.Errorf("metadata payload = %v", p)
	}
	post := e.fake.last("chat.postMessage")
	if post.Args.Get("channel") != "C0123" || post.Args.Get("unfurl_links") != "false" {
		t.Errorf("chat.postMessage args: channel %q unfurl_links %q", post.Args.Get("channel"), post.Args.Get("unfurl_links"))
	}

	// Bob approves in the console: the decision updates the message and replies in its thread.
	if _, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{Note: "ok for an hour"}); err != nil {
		t.Fatal(err)
	}
	d := e.message(KindDecision, r.ID)
	d.Event.Actor, d.Event.Action, d.Event.Details = "bob", "request.approved", map[string]any{"note": "ok for an hour"}
	d.Summary = summarize(d, slackConsole)
	d.Thread = res.Thread
	res2 := e.send(d)
	if n := e.fake.count("chat.postMessage"); n != 2 {
		t.Errorf("chat.postMessage called %d times, want 2 (the first post and one thread reply)", n)
	}
	up := e.fake.last("chat.update")
	if up.Args.Get("channel") != "C0123" || up.Args.Get("ts") != m.TS {
		t.Errorf("chat.update of %s/%s, want C0123/%s", up.Args.Get("channel"), up.Args.Get("ts"), m.TS)
	}
	msgs = e.fake.messages("C0123")
	blocks = blockJSON(t, msgs[0])
	if strings.Contains(blocks, "timebox_approve") || !strings.Contains(blocks, "Approved by bob") {
		t.Errorf("updated message still has the buttons or lacks the decision:\n%s", blocks)
	}
	if len(msgs) != 2 || msgs[1].Thread != m.TS || !strings.Contains(msgs[1].Text, "bob approved") || !strings.Contains(msgs[1].Text, "ok for an hour") {
		t.Fatalf("thread reply = %+v", msgs[len(msgs)-1])
	}
	if res2.Thread != res.Thread || res2.ExternalID != msgs[1].TS {
		t.Errorf("second Result = %+v, want thread %s and the reply's ts %s", res2, res.Thread, msgs[1].TS)
	}
}

func TestSlackUpdateOfADeletedMessagePostsANewOne(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	m := e.message(KindAwaiting, r.ID)
	m.Thread = "C0123:1600000000.000001" // deleted in Slack
	res := e.send(m)
	msgs := e.fake.messages("C0123")
	if len(msgs) != 1 || res.Thread != "C0123:"+msgs[0].TS {
		t.Fatalf("messages %d, result %+v: want one new message as the thread", len(msgs), res)
	}
}

func TestSlackUncertainResendAdoptsTheMessage(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	first := e.send(e.message(KindNewRequest, r.ID))
	// The server stopped after Slack took the message, before the outbox recorded it.
	m := e.message(KindNewRequest, r.ID)
	m.Delivery.Status, m.Delivery.Attempts = timebox.DeliverySending, 2
	again := e.send(m)
	if n := e.fake.count("chat.postMessage"); n != 1 {
		t.Fatalf("chat.postMessage called %d times, want 1: the re-send must adopt the message", n)
	}
	if again != first {
		t.Errorf("re-send Result = %+v, want %+v", again, first)
	}
	if e.fake.count("conversations.history") != 1 || e.fake.count("chat.update") != 1 {
		t.Errorf("history %d, update %d: want one look and one refresh", e.fake.count("conversations.history"), e.fake.count("chat.update"))
	}
	// Another delivery's key is not adopted.
	other := e.message(KindNewRequest, r.ID)
	other.Delivery.Key, other.Delivery.LastError = "ops/other", "slack chat.postMessage: timeout"
	e.send(other)
	if n := e.fake.count("chat.postMessage"); n != 2 {
		t.Errorf("chat.postMessage called %d times, want 2", n)
	}
	// A thread reply whose first attempt failed after Slack took it is not posted twice.
	reply := e.message(KindDecision, r.ID)
	reply.Thread = first.Thread
	e.send(reply)
	reply.Delivery.Attempts = 2 // its first attempt timed out after Slack took it
	e.send(reply)
	if n := e.fake.count("chat.postMessage"); n != 3 {
		t.Errorf("chat.postMessage called %d times, want 3 (one thread reply)", n)
	}
}

func TestSlackErrors(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	fail := func(method string, f fakeFail) error {
		e.fake.mu.Lock()
		e.fake.fail[method] = f
		e.fake.mu.Unlock()
		_, err := e.s.Send(e.ctx, e.message(KindNewRequest, r.ID))
		if err == nil {
			t.Fatalf("Send with %s failing as %+v: no error", method, f)
		} else if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), slackTestSecret) {
			t.Errorf("error holds a secret: %v", err)
		}
		return err
	}
	err := fail("chat.postMessage", fakeFail{Status: 429, RetryAfter: "7", Times: 1})
	if retryAfter(err) != 7*time.Second || IsPermanent(err) {
		t.Errorf("429: %v (retry after %s, permanent %v), want RetryAfter 7s", err, retryAfter(err), IsPermanent(err))
	}
	for _, code := range []string{"channel_not_found", "not_in_channel", "invalid_auth", "invalid_blocks"} {
		err = fail("chat.postMessage", fakeFail{Err: code, Times: 1})
		if !IsPermanent(err) || !strings.Contains(err.Error(), code) {
			t.Errorf("%s: %v, want a permanent error naming it", code, err)
		}
	}
	for _, f := range []fakeFail{{Status: 503, Times: 1}, {Err: "internal_error", Times: 1}} {
		if err = fail("chat.postMessage", f); IsPermanent(err) {
			t.Errorf("%+v: %v is permanent, want retryable", f, err)
		}
	}
	e.s.channel = ""
	if _, err := e.s.Send(e.ctx, e.message(KindNewRequest, r.ID)); !IsPermanent(err) || !strings.Contains(err.Error(), "slack.channel") {
		t.Errorf("shared message without slack.channel: %v", err)
	}
}

func TestSlackDirectMessages(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	bob, _ := e.svc.Catalog.User("bob")
	alice, _ := e.svc.Catalog.User("alice")
	dave, _ := e.svc.Catalog.User("dave")
	root, _ := e.svc.Catalog.User("root")
	for _, u := range []*timebox.User{bob, alice, dave} {
		if !e.s.Reaches(u) {
			t.Errorf("Reaches(%s) = false", u.Name)
		}
	}
	if e.s.Reaches(root) {
		t.Errorf("Reaches(root) = true: root has neither a Slack id nor an e-mail")
	}
	dm := func(u *timebox.User) *fakeMsg {
		m := e.message(KindNewRequest, r.ID)
		m.Recipient = u
		m.Delivery.Key += "/" + u.Name
		res := e.send(m)
		if res.Thread != "" {
			t.Errorf("a direct message became the request's thread: %+v", res)
		}
		return e.fake.messages("D" + e.fake.last("conversations.open").Args.Get("users"))[0]
	}
	if got := blockJSON(t, dm(bob)); !strings.Contains(got, "timebox_approve:"+r.ID) {
		t.Errorf("bob's (slack.users) direct message has no Approve button")
	}
	if e.fake.last("conversations.open").Args.Get("users") != "UBOB" {
		t.Errorf("conversations.open for bob: %v", e.fake.last("conversations.open").Args)
	}
	if got := blockJSON(t, dm(dave)); !strings.Contains(got, "timebox_approve:") || len(e.fake.messages("DUDAVE")) != 1 {
		t.Errorf("dave (by e-mail) got no direct message with buttons")
	}
	if got := blockJSON(t, dm(alice)); strings.Contains(got, "timebox_approve") {
		t.Errorf("the requester's direct message has Approve / Deny buttons")
	}
	m := e.message(KindNewRequest, r.ID)
	m.Recipient = &timebox.User{Name: "zoe", Email: "zoe@example.com"}
	if _, err := e.s.Send(e.ctx, m); !IsPermanent(err) || !strings.Contains(err.Error(), "zoe") {
		t.Errorf("direct message to someone without a Slack account: %v, want a permanent error naming them", err)
	}
}

func TestSlackOpenValidates(t *testing.T) {
	t.Setenv("TBX_SLACK_TOKEN", testToken)
	t.Setenv("TBX_SLACK_USER_TOKEN", "xoxp-user-token-1234")
	for _, c := range []struct {
		cfg  SlackConfig
		want string
	}{
		{SlackConfig{}, "slack.token"},
		{SlackConfig{Token: testToken}, "slack.token"},
		{SlackConfig{Token: "env:TBX_SLACK_USER_TOKEN"}, "slack.token: env:TBX_SLACK_USER_TOKEN is not a bot token"},
		{SlackConfig{Token: "env:TBX_SLACK_TOKEN", SigningSecret: "s3cret-literal"}, "slack.signing_secret"},
		{SlackConfig{Token: "env:TBX_SLACK_TOKEN", Channel: "#ops"}, "slack.channel"},
		{SlackConfig{Token: "env:TBX_SLACK_TOKEN", Users: map[string]string{"bob": "bob"}}, "slack.users"},
		{SlackConfig{Token: "env:TBX_SLACK_TOKEN", Users: map[string]string{"U1234": ""}}, "slack.users"},
		{SlackConfig{Token: "env:TBX_SLACK_TOKEN", APIURL: "http://slack.example.com/api/"}, "slack.api_url"},
	} {
		_, err := openSlack("ops", &c.cfg, Env{})
		if timebox.ErrorCode(err) != timebox.EINVALID || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want EINVALID naming %s", c.cfg, err, c.want)
		} else if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "xoxp-user") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error echoes a secret: %v", err)
		}
	}
	s, err := openSlack("ops", &SlackConfig{Token: "env:TBX_SLACK_TOKEN", Channel: "C0123"}, Env{})
	if err != nil {
		t.Fatal(err)
	} else if s.apiURL.String() != "https://slack.com/api/" || s.Interactions() != nil {
		t.Errorf("default api_url %s, Interactions without a signing secret %v", s.apiURL, s.Interactions())
	}
}
