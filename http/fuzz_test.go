package http_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// maxSeed bounds the seeds taken from the hostile cases: megabyte inputs make every
// execution slow and are covered by TestHostileInput.
const maxSeed = 80 << 10

// newFuzzEnv returns one server on one SQLite store for all the inputs of a fuzz target (in
// each fuzzing process), with a pending and an approved request of alice's, and its handler.
func newFuzzEnv(f *testing.F) (e *testEnv, h http.Handler, pending, approved *tbhttp.RequestView) {
	e = newEnvOn(f, nil, sqliteDSN(f))
	e.api.Logger = slog.New(slog.DiscardHandler) // millions of lines otherwise
	pending, approved = e.create("alice"), e.create("alice")
	if _, err := e.client("bob").Approve(context.Background(), approved.ID, timebox.ApproveInput{}); err != nil {
		f.Fatal(err)
	}
	return e, e.api.Handler(), pending, approved
}

// fuzzCall sends c to h and checks the answer: never a 5xx; for any other non-2xx a JSON
// {code, message} with a printable message, and the store as it was. It returns the answer.
func fuzzCall(t *testing.T, e *testEnv, h http.Handler, c call) response {
	t.Helper()
	before := snapshot(t, e.db)
	r := serve(t, h, e.tokens, c)
	after := snapshot(t, e.db)
	switch {
	case r.status >= 500:
		t.Fatalf("%s %.200q: status %d %s", c.method, c.path, r.status, clip(string(r.body)))
	case r.status >= 200 && r.status <= 299:
		if !json.Valid(r.body) {
			t.Fatalf("status %d with a body that is not JSON: %s", r.status, clip(string(r.body)))
		}
		return r
	}
	var e2 struct{ Code, Message string }
	if err := json.Unmarshal(r.body, &e2); err != nil || e2.Code == "" || e2.Message == "" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d without a JSON error: %s", r.status, clip(string(r.body)))
	}
	if !utf8.ValidString(e2.Message) || strings.ContainsFunc(e2.Message, unicode.IsControl) {
		t.Fatalf("message is not printable: %q", clip(e2.Message))
	}
	if !after.equal(before) {
		t.Fatalf("status %d (%s) but the store changed: before %s, after %s", r.status, e2.Message, before, after)
	}
	return r
}

// seeds returns the bodies of the hostile cases whose path has prefix and suffix.
func seeds(cases []hostileCase, method, prefix, suffix string) []string {
	var out []string
	for _, c := range cases {
		if c.method == method && strings.HasPrefix(c.path, prefix) && strings.HasSuffix(c.path, suffix) && len(c.body) <= maxSeed {
			out = append(out, c.body)
		}
	}
	return out
}

// FuzzCreateRequest posts arbitrary bodies as a new request. A refusal changes nothing; a
// request that is filed holds exactly the reason and ticket that were sent, trimmed.
func FuzzCreateRequest(f *testing.F) {
	e, h, pending, approved := newFuzzEnv(f)
	for _, body := range seeds(hostileCases(pending, approved), "POST", "/api/v1/requests", "/requests") {
		f.Add([]byte(body))
	}
	for _, text := range hostileText {
		b, _ := json.Marshal(timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "1h", Reason: text, Ticket: text})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := fuzzCall(t, e, h, call{method: "POST", path: "/api/v1/requests", user: "alice", body: string(body)})
		if r.status/100 != 2 {
			return
		}
		var in timebox.RequestInput
		var got tbhttp.RequestView
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("accepted a body that encoding/json refuses: %v", err)
		} else if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		var stored *timebox.Request
		err := e.db.View(context.Background(), func(tx timebox.Tx) (err error) {
			stored, err = tx.FindRequest(got.ID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		reason, ticket := strings.TrimSpace(in.Reason), strings.TrimSpace(in.Ticket)
		for _, x := range []*timebox.Request{got.Request, stored} {
			if x.Reason != reason || x.Ticket != ticket || x.Database != in.Database || x.Access != in.Access || x.Requester != "alice" {
				t.Fatalf("sent reason %q ticket %q, got %+v", reason, ticket, x)
			}
		}
	})
}

// FuzzApprove posts arbitrary bodies to the approval of a pending request, or of an
// arbitrary id. A refusal changes nothing; an approval records the note that was sent.
func FuzzApprove(f *testing.F) {
	e, h, pending, approved := newFuzzEnv(f)
	cases := hostileCases(pending, approved)
	for _, body := range seeds(cases, "POST", "/api/v1/requests/"+pending.ID, "/approve") {
		f.Add("", []byte(body))
	}
	for _, id := range hostileIDs {
		if len(id.id) <= maxSeed {
			f.Add(id.id, []byte(`{"note":"ok"}`))
		}
	}
	f.Add("", []byte(`{"note":"ok","start":null,"end":null}`))
	f.Add(approved.ID, []byte(`{}`))
	for _, text := range hostileText {
		b, _ := json.Marshal(timebox.ApproveInput{Note: text})
		f.Add("", b)
	}
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		if id == "" {
			id = pending.ID
		}
		r := fuzzCall(t, e, h, call{method: "POST", path: "/api/v1/requests/" + url.PathEscape(id) + "/approve", user: "bob", body: string(body)})
		if r.status/100 != 2 {
			return
		}
		var in timebox.ApproveInput
		var got tbhttp.RequestView
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("accepted a body that encoding/json refuses: %v", err)
		} else if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.State != timebox.StateApproved || len(got.Reviews) != 1 || got.Reviews[0].Note != in.Note {
			t.Fatalf("sent note %q, got %+v", in.Note, got.Request)
		}
		if got.ID == pending.ID { // the next inputs need a pending request again
			var err error
			pending, err = e.client("alice").CreateRequest(context.Background(), timebox.RequestInput{
				Database: "prod", Access: "read-only", Duration: "1h", Reason: "fuzz"})
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzQuery sends arbitrary query strings to the routes that take parameters: a query
// never changes anything, never fails with a 5xx and is refused with a JSON error.
func FuzzQuery(f *testing.F) {
	e, h, pending, approved := newFuzzEnv(f)
	routes := []string{"/api/v1/requests", "/api/v1/audit", "/api/v1/reports/access"}
	for _, c := range hostileCases(pending, approved) {
		route, query, ok := strings.Cut(c.path, "?")
		if i := slices.Index(routes, route); ok && c.method == "GET" && i >= 0 && len(query) <= maxSeed {
			f.Add(uint8(i), query)
		}
	}
	for i, q := range []string{"state=pending&state=approved&mine=true&database=prod&limit=5",
		"user=alice&actor=bob&database=prod&request=" + pending.ID + "&since=2026-01-01T00:00:00Z&until=2030-01-01T00:00:00%2B01:00&limit=3",
		"since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00Z"} {
		f.Add(uint8(i), q)
	}
	f.Fuzz(func(t *testing.T, route uint8, query string) {
		fuzzCall(t, e, h, call{method: "GET", path: routes[int(route)%len(routes)] + "?" + query, user: "audrey"})
	})
}
