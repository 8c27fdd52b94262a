package timebox_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

func TestSealerRoundTrip(t *testing.T) {
	s, err := timebox.NewSealer("0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"", "hunter2", "p@ss:w/rd?#% ünïcødé", strings.Repeat("x", 4096)} {
		sealed := s.Seal(pw, "req1")
		if len(pw) >= 4 && bytes.Contains(sealed, []byte(pw)) {
			t.Errorf("sealed form contains the plaintext %q", pw)
		}
		got, err := s.Open(sealed, "req1")
		if err != nil || got != pw {
			t.Errorf("Open(Seal(%q)) = %q, %v", pw, got, err)
		}
	}
	// Fresh nonces: sealing twice gives different ciphertexts.
	if bytes.Equal(s.Seal("same", "a"), s.Seal("same", "a")) {
		t.Error("two seals of the same plaintext are equal")
	}
	// Another sealer with the same key opens it (a restart).
	s2, _ := timebox.NewSealer("0123456789abcdef")
	if got, err := s2.Open(s.Seal("carry", "r"), "r"); err != nil || got != "carry" {
		t.Errorf("same key, new sealer: %q, %v", got, err)
	}
}

func TestSealerRefusesWrongAADKeyOrTampering(t *testing.T) {
	const secret = "correct-horse-battery-staple"
	s, _ := timebox.NewSealer("0123456789abcdef-one")
	other, _ := timebox.NewSealer("0123456789abcdef-two")
	sealed := s.Seal(secret, "req1")

	check := func(name string, got string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: opened to %q", name, got)
			return
		}
		if got != "" {
			t.Errorf("%s: returned %q with the error", name, got)
		}
		if timebox.ErrorCode(err) != timebox.EINTERNAL {
			t.Errorf("%s: code %q", name, timebox.ErrorCode(err))
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(timebox.ErrorMessage(err), secret) {
			t.Errorf("%s: error %q contains the plaintext", name, err)
		}
	}
	got, err := s.Open(sealed, "req2")
	check("wrong aad", got, err)
	got, err = other.Open(sealed, "req1")
	check("wrong key", got, err)
	if err != nil && !strings.Contains(err.Error(), "secret_key") {
		t.Errorf("wrong key: message %q does not hint at secret_key", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	got, err = s.Open(tampered, "req1")
	check("tampered", got, err)
	got, err = s.Open(sealed[:5], "req1")
	check("truncated", got, err)
	got, err = s.Open(nil, "req1")
	check("empty", got, err)
}

func TestNewSealerKeyLength(t *testing.T) {
	for _, k := range []string{"", "short", strings.Repeat("k", 15)} {
		s, err := timebox.NewSealer(k)
		if s != nil {
			t.Errorf("NewSealer(%d bytes) returned a sealer", len(k))
		}
		wantErr(t, err, timebox.EINVALID, "secret_key", "16 bytes")
		if k != "" && strings.Contains(err.Error(), k) {
			t.Errorf("error %q echoes the key", err)
		}
	}
	if _, err := timebox.NewSealer(strings.Repeat("k", 16)); err != nil {
		t.Errorf("16-byte key refused: %v", err)
	}
}

func TestResolveSecret(t *testing.T) {
	const value = "s3cr3t-Value-9f2"
	t.Setenv("TBX_TEST_SECRET", value)
	if got, err := timebox.ResolveSecret("env:TBX_TEST_SECRET"); err != nil || got != value {
		t.Errorf("env: = %q, %v", got, err)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte(value+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := timebox.ResolveSecret("file:" + file); err != nil || got != value {
		t.Errorf("file: = %q, %v", got, err)
	}
	// Inner whitespace and a leading space are part of the secret.
	os.WriteFile(file, []byte(" a b \n\n"), 0o600)
	if got, err := timebox.ResolveSecret("file:" + file); err != nil || got != " a b " {
		t.Errorf("file: with spaces = %q, %v", got, err)
	}
}

func TestResolveSecretErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	t.Setenv("TBX_TEST_EMPTY", "")
	os.Unsetenv("TBX_TEST_UNSET_VAR")

	for _, tc := range []struct {
		ref   string
		parts []string
	}{
		{"env:TBX_TEST_UNSET_VAR", []string{"env:TBX_TEST_UNSET_VAR", "TBX_TEST_UNSET_VAR", "not set"}},
		{"env:TBX_TEST_EMPTY", []string{"TBX_TEST_EMPTY", "not set"}},
		{"file:" + filepath.Join(dir, "missing"), []string{"cannot read", "missing"}},
		{"file:" + empty, []string{"empty"}},
		{"", []string{"required"}},
		{"env:", []string{"literal secrets are refused"}},
		{"file:", []string{"literal secrets are refused"}},
	} {
		got, err := timebox.ResolveSecret(tc.ref)
		if got != "" {
			t.Errorf("ResolveSecret(%q) = %q with error", tc.ref, got)
		}
		wantErr(t, err, timebox.EINVALID, tc.parts...)
	}
}

// A literal secret is refused, and the refusal must not print it: in a configuration file
// the "reference" is the password itself.
func TestResolveSecretLiteralNotEchoed(t *testing.T) {
	for _, literal := range []string{"hunter2", "postgres://u:pw@h/db", "P@ssw0rd!"} {
		got, err := timebox.ResolveSecret(literal)
		if got != "" {
			t.Errorf("literal %q resolved to %q", literal, got)
		}
		wantErr(t, err, timebox.EINVALID, "literal secrets are refused")
		if strings.Contains(err.Error(), literal) {
			t.Errorf("error %q contains the literal secret %q", err.Error(), literal)
		}
	}
}

func TestResolveSecretDirectory(t *testing.T) {
	dir := t.TempDir()
	got, err := timebox.ResolveSecret("file:" + dir)
	if got != "" {
		t.Errorf("a directory resolved to %q", got)
	}
	wantErr(t, err, timebox.EINVALID, "cannot read", dir)
}

func TestRandomPassword(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	seen := map[rune]int{}
	pws := map[string]bool{}
	for range 400 {
		pw := timebox.RandomPassword(32)
		if len(pw) != 32 {
			t.Fatalf("len(%q) = %d", pw, len(pw))
		}
		if pws[pw] {
			t.Fatalf("password %q repeated", pw)
		}
		pws[pw] = true
		for _, c := range pw {
			if !strings.ContainsRune(alphabet, c) {
				t.Fatalf("password %q has %q outside [A-Za-z0-9]", pw, c)
			}
			seen[c]++
		}
	}
	// 12800 characters: every one of the 62 appears, none wildly over-represented (the
	// expectation is about 206 each).
	if len(seen) != len(alphabet) {
		t.Errorf("only %d of %d characters ever appear", len(seen), len(alphabet))
	}
	for c, n := range seen {
		if n < 100 || n > 350 {
			t.Errorf("character %q appears %d times in 12800, expected about 206", c, n)
		}
	}
	if got := timebox.RandomPassword(0); got != "" {
		t.Errorf("RandomPassword(0) = %q", got)
	}
	if got := timebox.RandomPassword(1); len(got) != 1 {
		t.Errorf("RandomPassword(1) = %q", got)
	}
}

func TestRandomID(t *testing.T) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	ids := map[string]bool{}
	for _, n := range []int{1, 7, 8, 10, 13, 40} {
		for range 200 {
			id := timebox.RandomID(n)
			if len(id) != n {
				t.Fatalf("RandomID(%d) = %q (len %d)", n, id, len(id))
			}
			if strings.Trim(id, alphabet) != "" {
				t.Fatalf("RandomID(%d) = %q has characters outside [a-z2-7]", n, id)
			}
			if n >= 10 {
				if ids[id] {
					t.Fatalf("RandomID(%d) repeated %q", n, id)
				}
				ids[id] = true
			}
		}
	}
}

func TestNewToken(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 999, time.FixedZone("X", 3600))
	secret, tok := timebox.NewToken("alice", now)
	if !strings.HasPrefix(secret, "tbx_") || len(secret) != 44 {
		t.Errorf("secret %q", secret)
	}
	if tok.User != "alice" || tok.Hash != timebox.TokenHash(secret) || len(tok.Hash) != 64 || strings.Contains(tok.Hash, secret) {
		t.Errorf("token %+v", tok)
	}
	if !tok.CreatedAt.Equal(now.Truncate(time.Microsecond)) || tok.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v", tok.CreatedAt)
	}
	if s2, _ := timebox.NewToken("alice", now); s2 == secret {
		t.Error("two tokens share a secret")
	}
}

func TestCheckPassword(t *testing.T) {
	for _, bad := range []string{"", "tab\there", "ünï", "nul\x00"} {
		if timebox.CheckPassword(bad) == nil {
			t.Errorf("CheckPassword(%q) accepted it", bad)
		}
	}
	if err := timebox.CheckPassword(`Abc 123 !"#$%&'()*+,-./:;<=>?@[\]^_{|}~` + "`"); err != nil {
		t.Error(err)
	}
}
