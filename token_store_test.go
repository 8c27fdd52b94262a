package timebox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// intrude runs statements on the store's SQLite file directly, as someone who can write the
// store but does not hold secret_key.
func (e *svcEnv) intrude(stmts ...string) {
	e.t.Helper()
	raw, err := openRawSQLite(e)
	if err != nil {
		e.t.Fatalf("cannot open the SQLite file directly: %v", err)
	}
	defer raw.Close()
	for _, s := range stmts {
		if _, err := raw.ExecContext(e.ctx, s); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
}

// tokenRefused asserts that secret no longer authenticates, with an error that does not hold it.
func (e *svcEnv) tokenRefused(what, secret string) {
	e.t.Helper()
	u, err := e.svc.Authenticate(e.ctx, secret)
	if timebox.ErrorCode(err) != timebox.EUNAUTHORIZED {
		e.t.Errorf("%s: Authenticate = %v, %v; want EUNAUTHORIZED", what, u, err)
	} else if strings.Contains(err.Error(), secret) {
		e.t.Errorf("%s: the error holds the secret", what)
	}
}

// TestTokenStoreWriterCannotWidenAccess: someone who can write the store but lacks
// secret_key cannot mint a token (not even for an admin), extend one, move one to another
// user or revive a revoked one: each edited row is refused.
func TestTokenStoreWriterCannotWidenAccess(t *testing.T) {
	e := newSvcEnv(t)
	if _, err := e.svc.AdoptTokens(e.ctx); err != nil { // the server's first start
		t.Fatal(err)
	}
	// A token of the intruder's own making, for the admin root.
	e.intrude(`INSERT INTO tokens (id, username, name, hash, created_at, expires_at)
		VALUES ('forged', 'root', '', '` + timebox.TokenHash("tbx_forged") + `', '2026-03-10T09:00:00.000000Z', '2026-04-10T09:00:00.000000Z')`)
	e.tokenRefused("a token inserted in the store", "tbx_forged")

	e.svc.Tokens = timebox.TokenPolicy{DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour}
	long, _, err := e.svc.IssueToken(e.ctx, "admin-cli", "alice", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	moved, movedTok, err := e.svc.IssueToken(e.ctx, "admin-cli", "alice", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	revoked, revokedTok, err := e.svc.IssueToken(e.ctx, "admin-cli", "bob", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(e.ctx, moved); err != nil {
		t.Fatalf("an issued token: %v", err)
	}
	if _, err := e.svc.RevokeToken(e.ctx, "bob", revokedTok.ID); err != nil {
		t.Fatal(err)
	}
	e.intrude(
		`UPDATE tokens SET expires_at = '2027-01-01T00:00:00.000000Z' WHERE hash = '`+timebox.TokenHash(long)+`'`,
		`UPDATE tokens SET username = 'root' WHERE id = '`+movedTok.ID+`'`,
		`UPDATE tokens SET revoked_at = NULL, revoked_by = '' WHERE id = '`+revokedTok.ID+`'`,
	)
	e.tokenRefused("a token moved to another user", moved)
	e.tokenRefused("a revoked token revived in the store", revoked)
	e.now = t0.Add(2 * time.Hour) // past the hour the token was issued for
	e.tokenRefused("a token whose expiry was extended in the store", long)
}

// TestTokenAdoption: the tokens a store held before tokens were authenticated are trusted
// once, at the first start after the upgrade (one token.adopted event lists them); a token
// inserted into the store later is never adopted.
func TestTokenAdoption(t *testing.T) {
	e := newSvcEnv(t)
	e.intrude(`INSERT INTO tokens (id, username, name, hash, created_at)
		VALUES ('legacy', 'alice', '', '` + timebox.TokenHash("tbx_legacy") + `', '2026-03-01T09:00:00.000000Z')`)
	e.tokenRefused("a token made before tokens were authenticated, before the upgrade ran", "tbx_legacy")
	n, err := e.svc.AdoptTokens(e.ctx)
	if err != nil || n != 1 {
		t.Fatalf("AdoptTokens = %d, %v; want 1", n, err)
	}
	if u, err := e.svc.Authenticate(e.ctx, "tbx_legacy"); err != nil || u.Name != "alice" {
		t.Fatalf("an adopted token: %v, %v", u, err)
	}
	es := e.events()
	if last := es[len(es)-1]; last.Action != "token.adopted" || !strings.Contains(last.Details["note"].(string), "trust on first use") {
		t.Errorf("the last event is %+v, want token.adopted", last)
	}
	e.intrude(`INSERT INTO tokens (id, username, name, hash, created_at)
		VALUES ('later', 'root', '', '` + timebox.TokenHash("tbx_later") + `', '2026-03-01T09:00:00.000000Z')`)
	if n, err := e.svc.AdoptTokens(e.ctx); err != nil || n != 0 {
		t.Fatalf("AdoptTokens again = %d, %v; want 0 (once only)", n, err)
	}
	e.tokenRefused("a token inserted after the upgrade", "tbx_later")
}
