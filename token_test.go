package timebox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// lastUsed returns when the token with id was last used, as stored.
func (e *svcEnv) lastUsed(id string) time.Time {
	e.t.Helper()
	var tok *timebox.Token
	if err := e.db.View(e.ctx, func(tx timebox.Tx) (err error) { tok, err = tx.FindTokenByID(id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return tok.LastUsedAt
}

// TestTokenLifetime: a token lives its ttl (the default, at most the maximum) and is refused
// after it with a message saying when it expired and who issues a new one.
func TestTokenLifetime(t *testing.T) {
	e := newSvcEnv(t)
	e.svc.Tokens = timebox.TokenPolicy{DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour}
	if _, _, err := e.svc.IssueToken(e.ctx, "admin-cli", "alice", "", 25*time.Hour); timebox.ErrorCode(err) != timebox.EINVALID || !strings.Contains(err.Error(), "tokens.max_ttl (1d)") {
		t.Errorf("a ttl over the maximum: %v", err)
	}
	if _, _, err := e.svc.IssueToken(e.ctx, "admin-cli", "nobody", "", 0); timebox.ErrorCode(err) != timebox.EFORBIDDEN {
		t.Errorf("a token for an unknown user: %v", err)
	}
	secret, tok, err := e.svc.IssueToken(e.ctx, "admin-cli", "alice", "laptop", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.ExpiresAt.Equal(t0.Add(time.Hour)) || tok.Name != "laptop" {
		t.Errorf("token = %+v, want the default ttl 1h and its name", tok)
	}
	e.now = t0.Add(time.Hour - time.Second)
	if _, err := e.svc.Authenticate(e.ctx, secret); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	e.now = t0.Add(time.Hour)
	_, err = e.svc.Authenticate(e.ctx, secret)
	if timebox.ErrorCode(err) != timebox.EUNAUTHORIZED || !strings.Contains(err.Error(), "expired at 2026-03-10T10:00:00Z: ask an admin for a new one (timebox admin token create --user alice)") {
		t.Errorf("at expiry: %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Error("the error holds the secret")
	}
}

// TestTokenLastUsed: a request records the token's use, with at most one store write per
// TokenUseInterval.
func TestTokenLastUsed(t *testing.T) {
	e := newSvcEnv(t)
	secret, tok, err := e.svc.IssueToken(e.ctx, "admin-cli", "bob", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !e.lastUsed(tok.ID).IsZero() {
		t.Fatal("a new token is marked used")
	}
	use := func(at time.Time) {
		t.Helper()
		e.now = at
		if _, err := e.svc.Authenticate(e.ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	use(t0.Add(time.Second))
	use(t0.Add(30 * time.Second)) // within the interval: no write
	if got := e.lastUsed(tok.ID); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("last used %v, want the first use %v", got, t0.Add(time.Second))
	}
	use(t0.Add(62 * time.Second))
	if got := e.lastUsed(tok.ID); !got.Equal(t0.Add(62 * time.Second)) {
		t.Errorf("last used %v, want %v", got, t0.Add(62*time.Second))
	}
}
