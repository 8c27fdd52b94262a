package http_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

func TestErrorStatus(t *testing.T) {
	want := map[string]int{
		timebox.EINVALID: 400, timebox.EUNAUTHORIZED: 401, timebox.EFORBIDDEN: 403,
		timebox.ENOTFOUND: 404, timebox.ECONFLICT: 409, timebox.EUNAVAILABLE: 503,
		timebox.EINTERNAL: 500, "something new": 500,
	}
	if len(tbhttp.ErrorCodes) != 7 {
		t.Fatalf("ErrorCodes has %d codes", len(tbhttp.ErrorCodes))
	}
	for _, code := range append(tbhttp.ErrorCodes, "something new") {
		if got := tbhttp.CodeStatus(code); got != want[code] {
			t.Errorf("ErrorStatus(%s) = %d, want %d", code, got, want[code])
		}
	}
}

// TestFail checks what every kind of error looks like on the wire and in the log.
func TestFail(t *testing.T) {
	driverErr := fmt.Errorf("pq: password authentication failed for user \"timebox\"")
	for _, tt := range []struct {
		err     error
		status  int
		code    string
		message string
		logged  bool
	}{
		{timebox.Errorf(timebox.EINVALID, "reason is required"), 400, "invalid", "reason is required", false},
		{timebox.Errorf(timebox.EUNAUTHORIZED, "invalid token"), 401, "unauthorized", "invalid token", false},
		{fmt.Errorf("approve: %w", timebox.Errorf(timebox.EFORBIDDEN, "not an owner")), 403, "forbidden", "not an owner", false},
		{timebox.Errorf(timebox.ENOTFOUND, "request x not found"), 404, "not_found", "request x not found", false},
		{timebox.Errorf(timebox.ECONFLICT, "cannot approve a request that is denied"), 409, "conflict", "cannot approve a request that is denied", false},
		{timebox.WrapError(timebox.EUNAVAILABLE, driverErr, "store unreachable"), 503, "unavailable", "store unreachable", true},
		{timebox.WrapError(timebox.EINTERNAL, driverErr, "store: read token"), 500, "internal", "store: read token", true},
		{fmt.Errorf("deny: %w", driverErr), 500, "internal", "internal error", true},
	} {
		var logs syncBuffer
		s := tbhttp.NewServer(nil)
		s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		w := httptest.NewRecorder()
		tbhttp.Fail(s, w, httptest.NewRequest("POST", "/api/v1/requests/x/deny", nil), tt.err)
		var body struct{ Code, Message string }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%v: body %q: %v", tt.err, w.Body, err)
		}
		if w.Code != tt.status || body.Code != tt.code || body.Message != tt.message {
			t.Errorf("%v: got %d %+v, want %d %s %q", tt.err, w.Code, body, tt.status, tt.code, tt.message)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if strings.Contains(w.Body.String(), "pq:") {
			t.Errorf("%v: the driver's message reached the client: %s", tt.err, w.Body)
		}
		if logged := strings.Contains(logs.String(), "pq: password authentication failed"); logged != tt.logged {
			t.Errorf("%v: logged the chain = %v, want %v; log:\n%s", tt.err, logged, tt.logged, logs.String())
		}
		if tt.logged && strings.Count(logs.String(), "\n") != 1 {
			t.Errorf("%v: want one log line, got:\n%s", tt.err, logs.String())
		}
	}
}

// TestStatusesOverTheWire reaches each status through real routes.
func TestStatusesOverTheWire(t *testing.T) {
	e := newEnv(t, nil)
	r := e.create("alice")
	for _, tt := range []struct {
		method, path, user, body string
		status                   int
	}{
		{"GET", "/api/v1/requests?state=bogus", "alice", "", 400},
		{"GET", "/api/v1/me", "", "", 401},
		{"POST", "/api/v1/requests/" + r.ID + "/approve", "alice", "{}", 403},
		{"GET", "/api/v1/requests/nosuchid", "alice", "", 404},
		{"GET", "/api/v1/requests/" + r.ID + "/credentials", "alice", "", 409},
		{"GET", "/api/v1/audit/verify", "alice", "", 403},
	} {
		got := e.raw(tt.method, tt.path, tt.user, tt.body)
		if got.status != tt.status {
			t.Errorf("%s %s as %q = %d %s, want %d", tt.method, tt.path, tt.user, got.status, got.body, tt.status)
		}
		if code, _ := got.apiError(t); tbhttp.CodeStatus(code) != got.status {
			t.Errorf("%s %s: code %s does not match status %d", tt.method, tt.path, code, got.status)
		}
	}
	e.db.Close()
	got := e.raw("GET", "/api/v1/me", "alice", "")
	if code, _ := got.apiError(t); got.status != 500 || code != timebox.EINTERNAL {
		t.Errorf("with the store closed: %d %s, want 500 internal", got.status, got.body)
	}
	if !strings.Contains(e.logs.String(), "internal error") {
		t.Errorf("the internal error was not logged:\n%s", e.logs.String())
	}
}

func TestPanic(t *testing.T) {
	e := newEnv(t, nil)
	broken := *e.svc
	broken.Catalog = nil // every authenticated route dereferences it
	s := tbhttp.NewServer(&broken)
	var logs syncBuffer
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/api/v1/me", nil)
	r.Header.Set("Authorization", "Bearer "+e.tokens["alice"])
	s.Handler().ServeHTTP(w, r)
	if w.Code != 500 || strings.TrimSpace(w.Body.String()) != `{"code":"internal","message":"internal error"}` {
		t.Errorf("panic answered %d %s", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), "http: panic") || !strings.Contains(logs.String(), "status=500") {
		t.Errorf("log:\n%s", logs.String())
	}
}
