package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// TestDev runs `timebox dev` as a user would and walks through it: alice asks for read-only
// access to shop-prod (PostgreSQL) and orders-dev (MariaDB), bob approves, the credentials
// read the demo tables; Ctrl-C stops everything.
func TestDev(t *testing.T) {
	testdb.RequirePostgres(t) // fails in CI, skips elsewhere, when PostgreSQL is missing
	testdb.RequireMariaDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	data := t.TempDir()
	var out, logs syncBuffer
	exited := make(chan struct{}) // closed when runDev returned runErr
	var runErr error
	go func() { runErr = runDev(ctx, &out, &logs, data, "127.0.0.1:0"); close(exited) }()
	t.Cleanup(func() { // also when the test fails: the database servers go before the test ends
		cancel()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Error("timebox dev did not stop")
		}
	})
	var info devInfo
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(data, "dev.json")); err == nil && json.Unmarshal(b, &info) == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("timebox dev stopped: %v", runErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("timebox dev did not start")
		}
	}
	if info.MariaDB == nil {
		t.Fatal("timebox dev started no MariaDB although its binaries are installed")
	}
	alice, bob := tbhttp.NewClient(info.URL, info.Tokens["alice"]), tbhttp.NewClient(info.URL, info.Tokens["bob"])
	// dave is on call (the dev rotation): approved without anyone; the plan shows the SQL.
	dave := tbhttp.NewClient(info.URL, info.Tokens["dave"])
	if r, err := dave.CreateRequest(ctx, timebox.RequestInput{Database: "shop-prod", Access: "read-only", Duration: "1m", Reason: "INC-7", Ticket: "INC-7"}); err != nil ||
		r.Rule != "prod-read-oncall" || r.State == timebox.StatePending {
		t.Errorf("dave on call: %v %v", r, err)
	}
	adhoc, err := alice.CreateRequest(ctx, timebox.RequestInput{Database: "shop-prod", Tables: []timebox.TableGrant{{Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"id", "total"}}},
		Duration: "1m", Reason: "totals", Ticket: "OPS-2"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := bob.Plan(ctx, adhoc.ID); err != nil || !strings.Contains(strings.Join(p.Grant, "\n"), `("id", "total") ON "public"."orders"`) {
		t.Errorf("ad-hoc plan: %v %v", p, err)
	}
	for _, db := range []string{"shop-prod", "orders-dev"} {
		r, err := alice.CreateRequest(ctx, timebox.RequestInput{Database: db, Access: "read-only", Duration: "2m", Reason: "check order 42", Ticket: "OPS-1"})
		if err != nil {
			t.Fatalf("%s: request: %v", db, err)
		}
		if r, err = bob.Approve(ctx, r.ID, timebox.ApproveInput{Note: "ok"}); err != nil || r.State != timebox.StateActive {
			t.Fatalf("%s: approve: %v (%v)", db, err, r)
		}
		c, err := alice.Credentials(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if db == "shop-prod" {
			conn, err := pgx.Connect(ctx, c.URI+"?sslmode=disable")
			if err != nil {
				t.Fatalf("%s: login: %v", db, err)
			}
			err = conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n)
			conn.Close(ctx)
			if err != nil {
				t.Fatal(err)
			}
		} else {
			conn, close, err := mariaConn(&testdb.MariaDB{Host: c.Host, Port: c.Port}, c.User, c.Password, c.Database)
			if err != nil {
				t.Fatalf("%s: login: %v", db, err)
			}
			err = conn.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n)
			close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if n != 3 {
			t.Fatalf("%s: %d demo orders, want 3", db, n)
		}
	}
	// Every audit event reached the local webhook consumer, signed.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(data, "webhooks.log"))
		if strings.Contains(string(b), "request.auto_approved") && strings.Contains(string(b), "signature OK") && !strings.Contains(string(b), "REFUSED") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("webhooks.log:\n%s", b)
		}
	}
	cancel()
	select {
	case <-exited:
		if runErr != nil {
			t.Fatalf("timebox dev: %v", runErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("timebox dev did not stop")
	}
	if s := out.String(); !strings.Contains(s, "MariaDB (throwaway) is on") || !strings.Contains(s, "TIMEBOX_TOKEN=") {
		t.Fatalf("walkthrough:\n%s", s)
	}
}

// timebox dev's data directory is 0700 whatever the umask, and an existing one that others
// may read is made private.
func TestDevDataDirMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "new", "data")
	if err := dataDir(dir); err != nil {
		t.Fatal(err)
	}
	wide := filepath.Join(t.TempDir(), "wide")
	if err := os.Mkdir(wide, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := dataDir(wide); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, wide} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700", d, fi.Mode().Perm(), err)
		}
	}
}
