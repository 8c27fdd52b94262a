package http_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// ids returns the ids of rs.
func ids(rs []*tbhttp.RequestView) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func TestRequestWorkflow(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	alice, bob, stan := e.client("alice"), e.client("bob"), e.client("stan")

	r := e.create("alice")
	if r.State != timebox.StatePending || r.Status != "pending" || r.Requester != "alice" || r.ID == "" {
		t.Fatalf("created %+v", r)
	}
	if _, err := alice.Credentials(ctx, r.ID); err == nil {
		t.Fatal("credentials of a pending request were handed out")
	} else {
		wantCode(t, err, timebox.ECONFLICT)
	}

	// Who sees it: alice (hers), bob (owns prod), not stan.
	for _, tt := range []struct {
		c    *tbhttp.Client
		q    tbhttp.RequestQuery
		want []string
	}{
		{alice, tbhttp.RequestQuery{}, []string{r.ID}},
		{alice, tbhttp.RequestQuery{Mine: true, States: []string{"pending"}, Database: "prod", Limit: 5}, []string{r.ID}},
		{bob, tbhttp.RequestQuery{}, []string{r.ID}},
		{bob, tbhttp.RequestQuery{Mine: true}, []string{}},
		{bob, tbhttp.RequestQuery{States: []string{"approved", "active"}}, []string{}},
		{stan, tbhttp.RequestQuery{}, []string{}},
	} {
		rs, err := tt.c.Requests(ctx, tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(rs); !slices.Equal(got, tt.want) {
			t.Errorf("Requests(%+v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	_, err := stan.Request(ctx, r.ID)
	wantCode(t, err, timebox.ENOTFOUND)

	// Nobody approves their own request; a stranger cannot approve either.
	_, err = alice.Approve(ctx, r.ID, timebox.ApproveInput{})
	wantCode(t, err, timebox.EFORBIDDEN)
	_, err = stan.Approve(ctx, r.ID, timebox.ApproveInput{})
	wantCode(t, err, timebox.ENOTFOUND)
	a, err := bob.Approve(ctx, r.ID, timebox.ApproveInput{Note: "go ahead"})
	if err != nil {
		t.Fatal(err)
	}
	if a.State != timebox.StateApproved || a.Status != "approved" || len(a.Reviews) != 1 || a.Reviews[0].Reviewer != "bob" {
		t.Fatalf("approved %+v", a)
	}
	_, err = bob.Approve(ctx, r.ID, timebox.ApproveInput{})
	wantCode(t, err, timebox.ECONFLICT)

	// Only the requester cancels.
	_, err = bob.Cancel(ctx, r.ID, "")
	wantCode(t, err, timebox.EFORBIDDEN)
	c, err := alice.Cancel(ctx, r.ID, "not needed after all")
	if err != nil {
		t.Fatal(err)
	}
	if c.State != timebox.StateCancelled || c.Status != "cancelled" {
		t.Fatalf("cancelled %+v", c)
	}
	got, err := alice.Request(ctx, r.ID)
	if err != nil || got.State != timebox.StateCancelled || got.Version != c.Version {
		t.Fatalf("Request = %+v, %v", got, err)
	}

	// A denial needs a note.
	d := e.create("alice")
	_, err = bob.Deny(ctx, d.ID, "  ")
	if te := wantCode(t, err, timebox.EINVALID); !strings.Contains(te.Message, "note") {
		t.Errorf("message = %q", te.Message)
	}
	denied, err := bob.Deny(ctx, d.ID, "use the replica")
	if err != nil {
		t.Fatal(err)
	}
	if denied.State != timebox.StateDenied {
		t.Fatalf("denied %+v", denied)
	}
	rs, err := bob.Requests(ctx, tbhttp.RequestQuery{States: []string{"denied", "cancelled"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(rs); !slices.Equal(got, []string{d.ID, r.ID}) {
		t.Errorf("denied and cancelled = %v, want %v (newest first)", got, []string{d.ID, r.ID})
	}
}

func TestCreateRequestAnswer(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.raw("POST", "/api/v1/requests", "alice", `{"database":"prod","access":"read-only","duration":"30m","reason":"x"}`)
	if resp.status != 201 {
		t.Fatalf("status = %d %s", resp.status, resp.body)
	}
	if loc := resp.header.Get("Location"); !strings.HasPrefix(loc, "/api/v1/requests/") {
		t.Errorf("Location = %q", loc)
	}
	for _, want := range []string{`"status":"pending"`, `"state":"pending"`, `"requester":"alice"`} {
		if !strings.Contains(string(resp.body), want) {
			t.Errorf("body lacks %s: %s", want, resp.body)
		}
	}
	_, err := e.client("alice").CreateRequest(context.Background(), timebox.RequestInput{Database: "nope", Access: "read-only", Duration: "1h", Reason: "x"})
	wantCode(t, err, timebox.ENOTFOUND)
	_, err = e.client("alice").CreateRequest(context.Background(), timebox.RequestInput{Database: "prod", Access: "ddl", Duration: "1h", Reason: "x"})
	wantCode(t, err, timebox.EINVALID)
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, nil)
	r := e.create("alice")
	for _, tt := range []struct {
		name, method, path, body, want string
	}{
		{"unknown state", "GET", "/api/v1/requests?state=pending&state=sleeping", "", `unknown state "sleeping"`},
		{"unknown parameter", "GET", "/api/v1/requests?stat=pending", "", `unknown query parameter "stat"`},
		{"parameter on a route without any", "POST", "/api/v1/requests/" + r.ID + "/deny?force=1", `{"note":"x"}`, `unknown query parameter "force"`},
		{"bad limit", "GET", "/api/v1/requests?limit=-1", "", "limit"},
		{"bad mine", "GET", "/api/v1/requests?mine=perhaps", "", "mine"},
		{"repeated database", "GET", "/api/v1/requests?database=a&database=b", "", "database"},
		{"bad since", "GET", "/api/v1/audit?since=yesterday", "", "since"},
		{"inverted report", "GET", "/api/v1/reports/access?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "", "not before"},
		{"unknown field", "POST", "/api/v1/requests", `{"database":"prod","access":"read-only","duration":"1h","reason":"x","bogus":1}`, `unknown field "bogus"`},
		{"unknown approve field", "POST", "/api/v1/requests/" + r.ID + "/approve", `{"notes":"typo"}`, `unknown field "notes"`},
		{"wrong type", "POST", "/api/v1/requests", `{"database":42}`, `field "database" must be a string`},
		{"bad time", "POST", "/api/v1/requests", `{"start":"tomorrow"}`, `invalid time "tomorrow"`},
		{"not JSON", "POST", "/api/v1/requests/" + r.ID + "/deny", `note=hi`, "not valid JSON"},
		{"two values", "POST", "/api/v1/requests/" + r.ID + "/deny", `{"note":"a"}{"note":"b"}`, "after its JSON value"},
		{"array", "POST", "/api/v1/requests/" + r.ID + "/deny", `["a"]`, "must be a JSON object"},
		{"too large", "POST", "/api/v1/requests/" + r.ID + "/deny", `{"note":"` + strings.Repeat("x", 70<<10) + `"}`, "larger than 64 KiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.raw(tt.method, tt.path, "bob", tt.body)
			code, msg := resp.apiError(t)
			if resp.status != 400 || code != timebox.EINVALID || !strings.Contains(msg, tt.want) {
				t.Errorf("got %d %s %q, want 400 invalid containing %q", resp.status, code, msg, tt.want)
			}
		})
	}
	// An empty body and a foreign content type are refused too.
	resp := e.raw("POST", "/api/v1/requests/"+r.ID+"/cancel", "alice", "")
	if code, _ := resp.apiError(t); resp.status != 400 || code != timebox.EINVALID {
		t.Errorf("empty body = %d %s", resp.status, resp.body)
	}
	got, err := e.client("alice").Request(context.Background(), r.ID)
	if err != nil || got.State != timebox.StatePending {
		t.Fatalf("after refused input the request is %+v, %v", got, err)
	}
}

func TestEscapedIDs(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, id := range []string{"a/b", "a?b", "../../me", "%2e%2e", "a b"} {
		_, err := e.client("alice").Request(ctx, id)
		if te := wantCode(t, err, timebox.ENOTFOUND); strings.Contains(te.Message, "no such route") {
			t.Errorf("id %q reached another route: %s", id, te.Message)
		}
	}
	for _, id := range []string{"", ".", ".."} {
		_, err := e.client("alice").Cancel(ctx, id, "")
		wantCode(t, err, timebox.EINVALID)
	}
}

func TestCredentialsNoStore(t *testing.T) {
	e := newEnv(t, nil)
	r := e.create("alice")
	resp := e.raw("GET", "/api/v1/requests/"+r.ID+"/credentials", "alice", "")
	if resp.status != 409 || resp.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("credentials of a pending request = %d, Cache-Control %q", resp.status, resp.header.Get("Cache-Control"))
	}
	resp = e.raw("GET", "/api/v1/requests/"+r.ID+"/credentials", "bob", "")
	if resp.status != 403 {
		t.Fatalf("credentials of someone else's request = %d %s", resp.status, resp.body)
	}
}

// recordingRunner records the calls a Server makes and the deadline it gives them.
type recordingRunner struct {
	mu       sync.Mutex
	calls    []string
	deadline time.Duration
}

func (r *recordingRunner) RunNow(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, id)
	if d, ok := ctx.Deadline(); ok {
		r.deadline = time.Until(d)
	}
	return fmt.Errorf("database unreachable")
}

func TestRunner(t *testing.T) {
	runner := &recordingRunner{}
	e := newEnv(t, runner)
	ctx := context.Background()
	bob := e.client("bob")

	// An approval whose window has started runs at once; a failing run is not an error.
	now := e.create("alice")
	if _, err := bob.Approve(ctx, now.ID, timebox.ApproveInput{}); err != nil {
		t.Fatal(err)
	}
	// One whose window starts later waits for the scheduler.
	start := time.Now().Add(time.Hour)
	later, err := e.client("alice").CreateRequest(ctx, timebox.RequestInput{Database: "prod", Access: "read-only", Start: &start, Duration: "1h", Reason: "later"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Approve(ctx, later.ID, timebox.ApproveInput{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(runner.calls, []string{now.ID}) {
		t.Fatalf("RunNow calls = %v, want [%s]", runner.calls, now.ID)
	}
	if runner.deadline <= 9*time.Second || runner.deadline > 10*time.Second {
		t.Errorf("RunNow deadline in %s, want 10s", runner.deadline)
	}

	// A revocation of access that may exist on the database runs at once and answers with
	// the request as stored afterwards.
	err = e.db.Update(ctx, func(tx timebox.Tx) error {
		return tx.PutGrant(&timebox.Grant{
			RequestID: now.ID, Server: "pg1", Principal: "tbx_test", Method: timebox.MethodEphemeralLogin,
			Status: timebox.GrantCreating, Roles: []string{"shop_reader"}, ValidUntil: now.End,
			CreatedAt: time.Now(), UpdatedAt: time.Now(),
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	rv, err := bob.Revoke(ctx, now.ID, "incident over")
	if err != nil {
		t.Fatal(err)
	}
	if rv.State != timebox.StateApproved || rv.Ending != timebox.EndingRevoke || !strings.Contains(rv.Status, "revoke pending") {
		t.Fatalf("revoked %+v (status %q)", rv.Request, rv.Status)
	}
	if !slices.Equal(runner.calls, []string{now.ID, now.ID}) {
		t.Fatalf("RunNow calls = %v", runner.calls)
	}
	// A cancellation with nothing on the database ends at once, without the runner.
	if _, err := e.client("alice").Cancel(ctx, later.ID, ""); err != nil {
		t.Fatal(err)
	}
	if len(runner.calls) != 2 {
		t.Fatalf("RunNow calls = %v", runner.calls)
	}
	if !strings.Contains(e.logs.String(), "database unreachable") {
		t.Error("the runner's error was not logged")
	}
}
