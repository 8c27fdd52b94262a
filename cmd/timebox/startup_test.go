package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox/internal/testdb"
)

// runMain runs the test binary as `timebox args...` in a child process (as a person would
// run it) and returns its stderr and exit code.
func runMain(t *testing.T, within time.Duration, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TIMEBOX_TEST_AS_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return stderr.String(), cmd.ProcessState.ExitCode()
	case <-time.After(within):
		cmd.Process.Kill()
		<-done
		t.Fatalf("timebox %s still running after %s; stderr:\n%s", strings.Join(args, " "), within, stderr.String())
	}
	return "", 0
}

// wantOneLine fails unless stderr is exactly one "error: " line containing want, with no
// panic, and the exit code is not zero.
func wantOneLine(t *testing.T, name, stderr string, code int, want string) {
	t.Helper()
	if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "error: ") ||
		!strings.Contains(stderr, want) || strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine") {
		t.Errorf("%s: exit %d, stderr %q; want one line with %q", name, code, stderr, want)
	}
}

// TestServerStartupFailures starts `timebox server` with each mistake a new user makes: every
// one exits non-zero with one line naming the cause, never a panic.
func TestServerStartupFailures(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "not-a-db"), bytes.Repeat([]byte("not sqlite "), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "short.key"), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	good := map[string]string{"listen": "127.0.0.1:0", "store": "sqlite://" + filepath.Join(dir, "tb.db"), "secret_key": "file:" + key}
	for _, c := range []struct{ name, field, value, want string }{
		{"port taken", "listen", taken.Addr().String(), "cannot listen on " + taken.Addr().String() + ": bind: address already in use"},
		{"store under a file", "store", "sqlite://" + filepath.Join(key, "tb.db"), key + " is not a directory"},
		{"store not a database", "store", "sqlite://" + filepath.Join(dir, "not-a-db"), "is not a Timebox SQLite store"},
		{"store unreachable", "store", "postgres://timebox@127.0.0.1:1/timebox", "cannot be opened: connection refused"},
		{"secret too short", "secret_key", "file:" + filepath.Join(dir, "short.key"), "at least 16 bytes"},
		{"secret file missing", "secret_key", "file:" + filepath.Join(dir, "missing.key"), "cannot read file " + filepath.Join(dir, "missing.key")},
		{"secret file unreadable", "secret_key", "file:" + dir, "cannot read file " + dir}, // a directory: unreadable as a file, even by root
	} {
		fields := map[string]string{}
		for k, v := range good {
			fields[k] = v
		}
		fields[c.field] = c.value
		cfg := filepath.Join(dir, "timebox.yaml")
		body := "listen: " + fields["listen"] + "\nstore: " + fields["store"] + "\nsecret_key: " + fields["secret_key"] + "\nusers: [{name: alice, email: alice@example.com}]\n"
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		stderr, code := runMain(t, 30*time.Second, "server", "--config", cfg)
		wantOneLine(t, c.name, stderr, code, c.want)
	}
}

// TestDevStartupFailure runs `timebox dev` on a taken port: one line naming the cause, no
// panic, and the throwaway database servers it started are stopped again.
func TestDevStartupFailure(t *testing.T) {
	testdb.RequirePostgres(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	data := t.TempDir()
	stderr, code := runMain(t, 120*time.Second, "dev", "--data", data, "--listen", taken.Addr().String())
	wantOneLine(t, "dev, port taken", stderr, code, "cannot listen on "+taken.Addr().String()+": bind: address already in use")
}

// TestServerStartupStoreRefusesLogin: a PostgreSQL store that refuses the password is named
// in one line, without the password.
func TestServerStartupStoreRefusesLogin(t *testing.T) {
	pg := testdb.RequirePostgres(t)
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("timebox.yaml", "listen: 127.0.0.1:0\n"+
		"store: postgres://"+pg.SuperUser+"@127.0.0.1:"+strconv.Itoa(pg.Port)+"/postgres?sslmode=disable\n"+
		"store_password: file:"+write("store.password", "Wrong-password-123")+"\n"+
		"secret_key: file:"+write("secret.key", "0123456789abcdef0123456789abcdef")+"\n"+
		"users: [{name: alice, email: alice@example.com}]\n")
	stderr, code := runMain(t, 30*time.Second, "server", "--config", cfg)
	wantOneLine(t, "wrong store password", stderr, code, "password authentication failed")
	if strings.Contains(stderr, "Wrong-password-123") {
		t.Errorf("the password is in the error: %q", stderr)
	}
}
