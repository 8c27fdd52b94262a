package http_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

func TestUnauthorized(t *testing.T) {
	e := newEnv(t, nil)
	for _, tt := range []struct{ name, header string }{
		{"no header", ""},
		{"unknown token", "Bearer tbx_notarealtoken"},
		{"basic auth", "Basic YWxpY2U6c2VjcmV0"},
		{"empty bearer", "Bearer "},
		{"removed user", "Bearer " + e.tokens["mallory"]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.url+"/api/v1/me", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("status = %d, want 401", resp.StatusCode)
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
		})
	}
	// Through the client: the server's code and message come back as a *timebox.Error.
	_, err := tbhttp.NewClient(e.url, "tbx_wrong").Me(context.Background())
	if te := wantCode(t, err, timebox.EUNAUTHORIZED); te.Message != "the API token is not valid (unknown, expired or revoked): ask an admin for a new one (timebox admin token create --user NAME)" {
		t.Errorf("message = %q", te.Message)
	}
	_, err = e.client("mallory").Databases(context.Background())
	if te := wantCode(t, err, timebox.EUNAUTHORIZED); !strings.Contains(te.Message, "mallory") {
		t.Errorf("message = %q, want it to name the removed user", te.Message)
	}
	_, err = tbhttp.NewClient(e.url, "").Me(context.Background())
	if te := wantCode(t, err, timebox.EUNAUTHORIZED); te.Message != "no token: an admin issues tokens (timebox admin token create --user NAME); set TIMEBOX_TOKEN or run timebox login" {
		t.Errorf("message = %q", te.Message)
	}
	if strings.Contains(e.logs.String(), "tbx_wrong") || strings.Contains(e.logs.String(), "tbx_notarealtoken") {
		t.Error("a presented token reached the log")
	}
}

func TestPublicRoutes(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/healthz", "/metrics", "/api/v1/openapi.json"} {
		if r := e.raw("GET", path, "", ""); r.status != 200 {
			t.Errorf("GET %s without a token = %d, want 200", path, r.status)
		}
	}
}

func TestMe(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for user, want := range map[string]tbhttp.Me{
		"alice":  {User: "alice", Email: "alice@example.com", Groups: []string{"developers"}},
		"admin":  {User: "admin", Groups: []string{"platform"}, Admin: true},
		"audrey": {User: "audrey", Groups: []string{"audit"}, Auditor: true},
		"stan":   {User: "stan", Groups: []string{}},
	} {
		me, err := e.client(user).Me(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*me, want) {
			t.Errorf("Me(%s) = %+v, want %+v", user, *me, want)
		}
	}
	if r := e.raw("GET", "/api/v1/me", "stan", ""); !strings.Contains(string(r.body), `"groups":[]`) {
		t.Errorf("groups of a user without any = %s, want []", r.body)
	}
}

func TestDatabases(t *testing.T) {
	e := newEnv(t, nil)
	for user, owner := range map[string]bool{"alice": false, "bob": true} {
		dbs, err := e.client(user).Databases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := []tbhttp.DatabaseView{{
			Name: "prod", Environment: "prod", Server: "pg1", Owners: []string{"prod-owners"},
			AccessLevels: []string{"read-only"}, Owner: owner,
		}}
		if !reflect.DeepEqual(dbs, want) {
			t.Errorf("Databases as %s = %+v, want %+v", user, dbs, want)
		}
	}
}
