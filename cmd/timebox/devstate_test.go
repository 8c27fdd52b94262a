package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// devRun is one `timebox dev` running in this process.
type devRun struct {
	info devInfo
	out  syncBuffer
	stop func()
}

// startDev runs `timebox dev --data data` until the returned run is stopped, and waits until
// it printed its walkthrough (after writing dev.json).
func startDev(t *testing.T, data string) *devRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &devRun{}
	var logs syncBuffer
	exited := make(chan struct{})
	var runErr error
	go func() { runErr = runDev(ctx, &d.out, &logs, data, "127.0.0.1:0"); close(exited) }()
	d.stop = func() {
		cancel()
		select {
		case <-exited:
			if runErr != nil {
				t.Errorf("timebox dev: %v", runErr)
			}
		case <-time.After(30 * time.Second):
			t.Error("timebox dev did not stop")
		}
	}
	t.Cleanup(d.stop)
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if strings.Contains(d.out.String(), "Press Ctrl-C") {
			b, err := os.ReadFile(filepath.Join(data, "dev.json"))
			if err != nil || json.Unmarshal(b, &d.info) != nil {
				t.Fatalf("dev.json: %v", err)
			}
			return d
		}
		select {
		case <-exited:
			t.Fatalf("timebox dev stopped: %v\n%s", runErr, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("timebox dev did not start")
		}
	}
}

// TestDevAgain runs `timebox dev --data DIR` twice on the same directory: the second run
// says it reuses the key, its tokens are the first run's, and a request made in the first
// run still hands out credentials that log in (its sealed password opens; the reconciler
// puts its login back on the new throwaway PostgreSQL). Without a key, it starts fresh and
// moves the old store aside.
func TestDevAgain(t *testing.T) {
	testdb.RequirePostgres(t)
	ctx := context.Background()
	data := t.TempDir()
	first := startDev(t, data)
	if !strings.Contains(first.out.String(), "new secret key and store in "+data) {
		t.Errorf("first run does not say it starts fresh:\n%s", first.out.String())
	}
	alice := tbhttp.NewClient(first.info.URL, first.info.Tokens["alice"])
	r, err := alice.CreateRequest(ctx, timebox.RequestInput{Database: "shop-dev", Access: "read-only", Duration: "10m", Reason: "across restarts"})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := tbhttp.NewClient(first.info.URL, first.info.Tokens["bob"]).Approve(ctx, r.ID, timebox.ApproveInput{}); err != nil || v.State != timebox.StateActive {
		t.Fatalf("approve: %v %v", v, err)
	}
	key, _ := os.ReadFile(filepath.Join(data, "secret.key"))
	first.stop()

	second := startDev(t, data)
	if !strings.Contains(second.out.String(), "reusing the secret key and store of "+data) {
		t.Errorf("second run does not say it reuses the key:\n%s", second.out.String())
	}
	if k, _ := os.ReadFile(filepath.Join(data, "secret.key")); string(k) != string(key) {
		t.Error("the second run replaced the secret key")
	}
	for name, tok := range first.info.Tokens {
		if second.info.Tokens[name] != tok {
			t.Errorf("token of %s changed", name)
		}
		if !strings.Contains(second.out.String(), "TIMEBOX_TOKEN="+tok) {
			t.Errorf("the walkthrough does not show %s's token", name)
		}
	}
	if env, err := os.ReadFile(filepath.Join(data, "tokens.env")); err != nil || !strings.Contains(string(env), "\nALICE="+first.info.Tokens["alice"]+"\n") ||
		!strings.Contains(string(env), "\nADMIN="+first.info.Tokens["admin"]+"\n") {
		t.Errorf("tokens.env: %v\n%s", err, env)
	}
	alice = tbhttp.NewClient(second.info.URL, first.info.Tokens["alice"])
	c, err := alice.Credentials(ctx, r.ID)
	if err != nil {
		t.Fatalf("credentials of the first run's request: %v", err)
	}
	var n int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		conn, err := pgx.Connect(ctx, c.URI+"?sslmode=disable")
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n)
			conn.Close(ctx)
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the first run's grant does not log in on the second run: %v", err)
		}
	}
	if n != 3 {
		t.Errorf("%d orders, want 3", n)
	}
	if st, err := tbhttp.NewClient(second.info.URL, second.info.Tokens["admin"]).Status(ctx); err != nil {
		t.Fatal(err)
	} else {
		for _, s := range st.Servers {
			if s.Failing != 0 {
				t.Errorf("server %s: %d failing grants: %v", s.Name, s.Failing, s.Problems)
			}
		}
	}
	second.stop()

	// No key: a fresh start, the old store moved aside, never reused.
	if err := os.Remove(filepath.Join(data, "secret.key")); err != nil {
		t.Fatal(err)
	}
	third := startDev(t, data)
	if !strings.Contains(third.out.String(), "new secret key and store in "+data) || third.info.Tokens["alice"] == first.info.Tokens["alice"] {
		t.Errorf("third run, without a key, does not start fresh:\n%s", third.out.String())
	}
	if old, _ := filepath.Glob(filepath.Join(data, "timebox.db.old-*")); len(old) == 0 {
		t.Error("the store without its key was not moved aside")
	}
	if _, err := tbhttp.NewClient(third.info.URL, third.info.Tokens["alice"]).Request(ctx, r.ID); timebox.ErrorCode(err) != timebox.ENOTFOUND {
		t.Errorf("the fresh store knows the old request: %v", err)
	}
	third.stop()
}
