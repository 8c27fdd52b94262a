package notify

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/slack-go/slack"
)

const (
	testToken       = "xoxb-test-0000-secret-token"
	slackTestSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	testBot         = "UBOT"
	testTeam        = "T1"
)

// fakeSlack stands in for Slack's Web API (and its response_url endpoint): it keeps the
// messages posted, answers the methods the Slack channel calls, and records every call.
type fakeSlack struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	calls   []fakeCall
	msgs    map[string][]*fakeMsg // channel → messages, oldest first
	users   map[string]slack.User // users.info and users.lookupByEmail
	fail    map[string]fakeFail   // method → how it fails (once per entry in times)
	answers []map[string]any      // bodies posted to /respond/…
	views   []map[string]any      // views.open requests
	n       int
}

type fakeCall struct {
	Method string
	Args   url.Values
	JSON   map[string]any
}

type fakeMsg struct {
	TS, Thread, Text string
	Blocks           []map[string]any
	Metadata         map[string]any
}

type fakeFail struct {
	Status     int
	RetryAfter string
	Err        string // an ok:false error
	Times      int
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{t: t, msgs: map[string][]*fakeMsg{}, users: map[string]slack.User{}, fail: map[string]fakeFail{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlack) apiURL() string { return f.srv.URL + "/api/" }

// addUser adds a Slack account of team T1 with a confirmed e-mail.
func (f *fakeSlack) addUser(id, email string, edit ...func(*slack.User)) {
	u := slack.User{ID: id, TeamID: testTeam, Name: strings.ToLower(id), IsEmailConfirmed: true, Profile: slack.UserProfile{Email: email}}
	for _, e := range edit {
		e(&u)
	}
	f.mu.Lock()
	f.users[id] = u
	f.mu.Unlock()
}

func (f *fakeSlack) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/respond/") {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.answers = append(f.answers, body)
		f.mu.Unlock()
		return
	}
	method, ok := strings.CutPrefix(r.URL.Path, "/api/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	call := fakeCall{Method: method}
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &call.JSON); err != nil {
			f.t.Errorf("%s: body is not JSON: %v", method, err)
		}
	} else {
		r.ParseForm()
		call.Args = r.Form
		if t := r.Form.Get("token"); t != "" {
			token = t
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if token != testToken {
		f.t.Errorf("%s: called with token %q, want the configured one", method, token)
		writeJSON(w, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	if fl, ok := f.fail[method]; ok && fl.Times > 0 {
		fl.Times--
		f.fail[method] = fl
		if fl.RetryAfter != "" {
			w.Header().Set("Retry-After", fl.RetryAfter)
		}
		if fl.Status != 0 {
			w.WriteHeader(fl.Status)
			io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
			return
		}
		writeJSON(w, map[string]any{"ok": false, "error": fl.Err})
		return
	}
	writeJSON(w, f.answer(method, call))
}

// answer is the Web API's answer to a call (f.mu held).
func (f *fakeSlack) answer(method string, c fakeCall) map[string]any {
	a := c.Args
	switch method {
	case "auth.test":
		return map[string]any{"ok": true, "user_id": testBot, "team_id": testTeam}
	case "chat.postMessage":
		f.n++
		m := &fakeMsg{TS: fmt.Sprintf("1700000000.%06d", f.n), Thread: a.Get("thread_ts"), Text: a.Get("text")}
		json.Unmarshal([]byte(a.Get("blocks")), &m.Blocks)
		json.Unmarshal([]byte(a.Get("metadata")), &m.Metadata)
		f.msgs[a.Get("channel")] = append(f.msgs[a.Get("channel")], m)
		return map[string]any{"ok": true, "channel": a.Get("channel"), "ts": m.TS}
	case "chat.update":
		for _, m := range f.msgs[a.Get("channel")] {
			if m.TS == a.Get("ts") {
				m.Text, m.Blocks = a.Get("text"), nil
				json.Unmarshal([]byte(a.Get("blocks")), &m.Blocks)
				return map[string]any{"ok": true, "channel": a.Get("channel"), "ts": m.TS, "text": m.Text}
			}
		}
		return map[string]any{"ok": false, "error": "message_not_found"}
	case "conversations.history", "conversations.replies":
		if a.Get("include_all_metadata") != "1" {
			f.t.Errorf("%s without include_all_metadata", method)
		}
		var out []map[string]any
		for _, m := range f.msgs[a.Get("channel")] {
			top := m.Thread == ""
			if method == "conversations.history" && top || method == "conversations.replies" && (m.TS == a.Get("ts") || m.Thread == a.Get("ts")) {
				out = append(out, map[string]any{"type": "message", "user": testBot, "ts": m.TS, "thread_ts": m.Thread, "text": m.Text, "metadata": m.Metadata})
			}
		}
		if method == "conversations.history" {
			slices.Reverse(out) // newest first
		}
		return map[string]any{"ok": true, "messages": out, "has_more": false}
	case "conversations.open":
		return map[string]any{"ok": true, "channel": map[string]any{"id": "D" + a.Get("users")}}
	case "users.info", "users.lookupByEmail":
		for _, u := range f.users {
			if u.ID == a.Get("user") || a.Get("email") != "" && strings.EqualFold(u.Profile.Email, a.Get("email")) {
				return map[string]any{"ok": true, "user": u}
			}
		}
		if method == "users.info" {
			return map[string]any{"ok": false, "error": "user_not_found"}
		}
		return map[string]any{"ok": false, "error": "users_not_found"}
	case "views.open":
		f.views = append(f.views, c.JSON)
		return map[string]any{"ok": true, "view": map[string]any{"id": "V1"}}
	}
	f.t.Errorf("unexpected Slack method %s", method)
	return map[string]any{"ok": false, "error": "unknown_method"}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// count returns how many times method was called.
func (f *fakeSlack) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.Method == method {
			n++
		}
	}
	return n
}

// last returns the last call of method.
func (f *fakeSlack) last(method string) fakeCall {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.calls) - 1; i >= 0; i-- {
		if f.calls[i].Method == method {
			return f.calls[i]
		}
	}
	f.t.Fatalf("%s was not called", method)
	return fakeCall{}
}

// messages returns the messages of channel.
func (f *fakeSlack) messages(channel string) []*fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.msgs[channel])
}

// answered returns the texts posted to response_urls.
func (f *fakeSlack) answered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, a := range f.answers {
		if a["response_type"] != "ephemeral" {
			f.t.Errorf("answer %v is not ephemeral", a)
		}
		s, _ := a["text"].(string)
		out = append(out, s)
	}
	return out
}
