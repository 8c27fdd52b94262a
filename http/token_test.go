package http_test

import (
	"context"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// TestTokenRoutes: the token routes show no secret or hash, refuse bad queries, and hide
// other users' tokens from those who may not revoke them.
func TestTokenRoutes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	resp := e.raw("GET", "/api/v1/tokens?all=true", "admin", "")
	if resp.status != 200 || strings.Contains(string(resp.body), "tbx_") || strings.Contains(string(resp.body), "hash") {
		t.Fatalf("GET /api/v1/tokens?all=true = %d %s", resp.status, resp.body)
	}
	for _, q := range []string{"?all=maybe", "?all=true&user=bob", "?user=bob&user=alice", "?secret=x"} {
		if r := e.raw("GET", "/api/v1/tokens"+q, "admin", ""); r.status != 400 {
			t.Errorf("GET /api/v1/tokens%s = %d %s, want 400", q, r.status, r.body)
		}
	}
	bobs, err := e.client("bob").Tokens(ctx, "", false)
	if err != nil || len(bobs) != 1 || bobs[0].State != timebox.TokenActive {
		t.Fatalf("bob's tokens = %+v, %v", bobs, err)
	}
	_, err = e.client("alice").RevokeToken(ctx, bobs[0].ID)
	wantCode(t, err, timebox.ENOTFOUND)
	_, err = e.client("alice").Tokens(ctx, "bob", false)
	wantCode(t, err, timebox.EFORBIDDEN)
	if got, err := e.client("audrey").Tokens(ctx, "bob", false); err != nil || len(got) != 1 {
		t.Errorf("an auditor lists bob's tokens: %+v, %v", got, err)
	}
	v, err := e.client("admin").RevokeToken(ctx, bobs[0].ID)
	if err != nil || v.State != timebox.TokenRevoked || v.RevokedBy != "admin" {
		t.Fatalf("admin revokes bob's token: %+v, %v", v, err)
	}
	_, err = e.client("bob").Me(ctx)
	if te := wantCode(t, err, timebox.EUNAUTHORIZED); !strings.Contains(te.Message, "revoked by admin") {
		t.Errorf("bob after the revocation: %q", te.Message)
	}
	_, err = tbhttp.NewClient(e.url, e.tokens["alice"]).RevokeToken(ctx, "..")
	wantCode(t, err, timebox.EINVALID)
}
