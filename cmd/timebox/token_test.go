package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// tokenRow is one token of `timebox token list -o json`.
type tokenRow struct {
	ID, User, Name, State string
	CreatedAt             time.Time `json:"created_at"`
	ExpiresAt             time.Time `json:"expires_at"`
	LastUsedAt            time.Time `json:"last_used_at"`
	RevokedBy             string    `json:"revoked_by"`
}

// tokens lists tokens through the CLI, as the current user, and checks that no secret or
// hash is in the output.
func (ct *cliTest) tokenList(args ...string) []tokenRow {
	ct.t.Helper()
	out := ct.ok(append([]string{"token", "list", "-o", "json"}, args...)...)
	for _, s := range ct.tokens {
		if strings.Contains(out, s) || strings.Contains(out, timebox.TokenHash(s)) {
			ct.t.Fatalf("token list shows a secret or its hash:\n%s", out)
		}
	}
	if strings.Contains(out, "tbx_") || strings.Contains(out, "hash") {
		ct.t.Fatalf("token list shows a secret:\n%s", out)
	}
	var rows []tokenRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		ct.t.Fatalf("token list -o json: %v\n%s", err, out)
	}
	return rows
}

// storeToken stores a token for user made at created that expires at expires (zero: a
// token made before tokens expired) and returns its secret.
func (ct *cliTest) storeToken(user string, created, expires time.Time) string {
	ct.t.Helper()
	secret, tok := timebox.NewToken(user, created)
	tok.ExpiresAt = expires
	tok.Sign(ct.svc.Keys)
	if err := ct.db.Update(context.Background(), func(tx timebox.Tx) error { return tx.CreateToken(tok) }); err != nil {
		ct.t.Fatal(err)
	}
	return secret
}

// TestTokenListAndRevoke: people list and revoke their own tokens, admins anyone's; others'
// are not found; the list shows the last use and never a secret; a revoked token is refused
// with a message saying who issues new ones.
func TestTokenListAndRevoke(t *testing.T) {
	ct := newCLITest(t)
	mine := ct.tokenList()
	if len(mine) != 1 || mine[0].User != "alice" || mine[0].State != "active" || mine[0].ExpiresAt.IsZero() {
		t.Fatalf("alice's tokens = %+v, want her one active token with an expiry", mine)
	}
	if mine[0].LastUsedAt.IsZero() || time.Since(mine[0].LastUsedAt) > time.Minute {
		t.Errorf("last_used_at = %v, want the time of this call", mine[0].LastUsedAt)
	}
	if out := ct.ok("token", "list"); !strings.Contains(out, "LAST USED") || !strings.Contains(out, mine[0].ID) {
		t.Errorf("token list table:\n%s", out)
	}
	ct.fails(4, "only admins and auditors", "token", "list", "--all")
	ct.fails(4, "only admins and auditors", "token", "list", "--user", "bob")

	ct.as("audrey") // an auditor lists anyone's, revokes only her own
	all := ct.tokenList("--all")
	if len(all) != 4 {
		t.Fatalf("all tokens = %+v, want 4", all)
	}
	id := map[string]string{}
	for _, r := range all {
		id[r.User] = r.ID
	}
	ct.fails(5, "no token "+id["bob"], "token", "revoke", id["bob"])

	ct.as("alice")
	ct.fails(5, "no token "+id["bob"], "token", "revoke", id["bob"])
	ct.as("bob")
	if out := ct.ok("whoami"); !strings.Contains(out, "bob") {
		t.Fatalf("bob's token was revoked by someone else: %q", out)
	}
	if out := ct.ok("token", "revoke", id["bob"]); strings.TrimSpace(out) != "token "+id["bob"]+" of bob revoked" {
		t.Errorf("revoke: %q", out)
	}
	ct.fails(4, "the API token "+id["bob"]+" was revoked by bob at ", "whoami")
	ct.fails(4, "ask an admin for a new one (timebox admin token create --user bob)", "whoami")

	ct.as("admin")
	ct.ok("token", "revoke", id["alice"])
	ct.fails(6, "already revoked", "token", "revoke", id["alice"])
	if rows := ct.tokenList("--user", "alice"); len(rows) != 1 || rows[0].State != "revoked" || rows[0].RevokedBy != "admin" {
		t.Errorf("alice's tokens after an admin revoked hers: %+v", rows)
	}
	ct.as("alice")
	ct.fails(4, "was revoked by admin", "whoami")
}

// TestTokenExpiry: a token past its expiry is refused with a message saying when it expired
// and who issues new ones; a token stored without an expiry lives tokens.max_ttl.
func TestTokenExpiry(t *testing.T) {
	ct := newCLITest(t)
	now := time.Now()
	t.Setenv("TIMEBOX_TOKEN", ct.storeToken("alice", now.Add(-2*time.Hour), now.Add(-time.Hour)))
	ct.fails(4, "expired at "+now.Add(-time.Hour).UTC().Format("2006-01-02T15:04"), "whoami")
	ct.fails(4, "ask an admin for a new one (timebox admin token create --user alice)", "whoami")

	t.Setenv("TIMEBOX_TOKEN", ct.storeToken("alice", now.Add(-2*time.Hour), now.Add(time.Hour)))
	ct.ok("whoami")

	// Made before expiries existed: 91 days ago is past the default max_ttl (90d), 89 is not.
	t.Setenv("TIMEBOX_TOKEN", ct.storeToken("bob", now.Add(-91*24*time.Hour), time.Time{}))
	ct.fails(4, "expired at", "whoami")
	t.Setenv("TIMEBOX_TOKEN", ct.storeToken("bob", now.Add(-89*24*time.Hour), time.Time{}))
	ct.ok("whoami")

	t.Setenv("TIMEBOX_TOKEN", "tbx_unknown")
	ct.fails(4, "the API token is not valid (unknown, expired or revoked): ask an admin for a new one (timebox admin token create --user NAME)", "whoami")
}

// TestTokenReenableDoesNotRevive: disabling a user revokes their tokens, and enabling them
// again (through the API, or in the configuration) does not bring those back.
func TestTokenReenableDoesNotRevive(t *testing.T) {
	ct := newCLITest(t)
	ct.ok("whoami")
	ct.as("admin")
	if out := ct.ok("users", "disable", "alice", "--note", "laptop stolen"); !strings.Contains(out, "tokens are revoked") {
		t.Errorf("disable: %q", out)
	}
	if out := ct.ok("users", "enable", "alice"); !strings.Contains(out, "timebox admin token create --user alice") {
		t.Errorf("enable: %q", out)
	}
	ct.as("alice")
	ct.fails(4, "was revoked by admin", "whoami")

	// Disabled in the configuration: the server's start (Cascade) revokes them.
	keys, _ := timebox.NewKeyring("test secret key, long enough")
	cat := testCatalog(t)
	cat.Users[1].Disabled = true // bob
	if _, err := timebox.NewService(ct.db, cat, keys).Cascade(context.Background()); err != nil {
		t.Fatal(err)
	}
	ct.as("admin")
	for _, r := range ct.tokenList("--all") {
		if want := map[string]string{"alice": "revoked", "bob": "revoked"}[r.User]; want != "" && r.State != want {
			t.Errorf("%s's token is %s, want %s", r.User, r.State, want)
		} else if want == "" && r.State != "active" {
			t.Errorf("%s's token is %s, want active", r.User, r.State)
		}
	}
	ct.as("bob") // enabled again in the catalog the API serves: still refused
	ct.fails(4, "was revoked by timebox", "whoami")
}

// TestLoginTokenNotOnArgv: login reads the token from standard input and refuses one on the
// command line without echoing it.
func TestLoginTokenNotOnArgv(t *testing.T) {
	ct := newCLITest(t)
	t.Setenv("TIMEBOX_SERVER", "")
	t.Setenv("TIMEBOX_TOKEN", "")
	secret := ct.tokens["bob"]
	for _, args := range [][]string{
		{"login", "--server", ct.url, "--token", secret},
		{"login", "--server", ct.url, "--token=" + secret},
		{"login", "--server", ct.url, secret},
	} {
		_, errOut, code := ct.run(args...)
		if code != 2 || strings.Contains(errOut, secret) || !strings.Contains(errOut, "pipe it in") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("timebox %s: exit %d, %q; want exit 2, one line saying how, without the token", args[0], code, errOut)
		}
	}
	if out, errOut, code := ct.runIn(secret+"\n", "login", "--server", ct.url); code != 0 || !strings.Contains(out, "as bob") {
		t.Fatalf("login from stdin: exit %d, %q %q", code, out, errOut)
	}
	if out := ct.ok("whoami"); !strings.Contains(out, "bob") {
		t.Errorf("whoami after login: %q", out)
	}
	ct.fails(2, "no token on standard input", "login", "--server", ct.url)
}
