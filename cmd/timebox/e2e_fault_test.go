package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
	"github.com/timebox-dev/timebox/scheduler"
	"github.com/timebox-dev/timebox/store"
)

// storedRequest reads a request straight from the store (the server may be dead).
func (e *env) storedRequest(id string) *timebox.Request {
	e.t.Helper()
	ctx := context.Background()
	dsn, err := e.cfg.storeDSN()
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	var r *timebox.Request
	if err := st.View(ctx, func(tx timebox.Tx) (err error) { r, err = tx.FindRequest(id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// TestE2ECrashDuringActivation kills the server (SIGKILL) after the role was created on the
// database but before the activation was committed; on restart the activation completes
// once, and at the end nothing is left behind.
func TestE2ECrashDuringActivation(t *testing.T) {
	for _, step := range []string{scheduler.StepActivateIntent, scheduler.StepActivateDB} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			p := e.startProcess(step)
			id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "6s", "--reason", "crash test", "--ticket", "T")
			e.cli("bob", "approve", id) // the server dies while answering
			p.waitExit(t, 10*time.Second)
			r := e.storedRequest(id)
			if r.State != timebox.StateApproved || r.Grant == nil || r.Grant.Status != timebox.GrantCreating {
				t.Fatalf("after the crash the store says %s, grant %+v", r.State, r.Grant)
			}
			exists, _ := e.roleExists(r.Grant.Principal)
			if want := step == scheduler.StepActivateDB; exists != want {
				t.Fatalf("role exists=%v after a crash at %s", exists, step)
			}
			e.startProcess("")
			got := e.waitState("alice", id, "active", 5*time.Second)
			if got.Grant.Principal != r.Grant.Principal {
				t.Fatalf("principal changed across the restart: %s → %s", r.Grant.Principal, got.Grant.Principal)
			}
			c := e.creds("alice", id)
			conn, err := c.connect(context.Background(), "")
			if err != nil {
				t.Fatalf("login after recovered activation: %v", err)
			}
			conn.Close(context.Background())
			e.waitState("alice", id, "expired", 10*time.Second)
			if roles := e.tbxRoles(id); len(roles) != 0 {
				t.Fatalf("roles left behind: %v", roles)
			}
			es := e.events(id)
			for _, a := range []string{"grant.create_intent", "request.activated", "request.expired"} {
				if n := countActions(es, a); n != 1 {
					t.Errorf("%d %s events, want exactly 1", n, a)
				}
			}
			if out := e.ok("audrey", "audit", "--verify"); !strings.Contains(out, "OK") {
				t.Fatalf("verify after crash: %s", out)
			}
		})
	}
}

// TestE2ECrashDuringRevocation kills the server at each step of removal, and also lets the
// window end while the server is down; on restart the overdue removal runs at once.
func TestE2ECrashDuringRevocation(t *testing.T) {
	for _, step := range []string{scheduler.StepRevokeIntent, scheduler.StepRevokeDB, "down-at-expiry"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			p := e.startProcess("")
			id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "3s", "--reason", "crash test", "--ticket", "T")
			e.ok("bob", "approve", id)
			r := e.waitState("alice", id, "active", 5*time.Second)
			principal := r.Grant.Principal
			c := e.creds("alice", id)
			p.cmd.Process.Kill()
			p.waitExit(t, 5*time.Second)
			if step != "down-at-expiry" {
				p = e.startProcess(step)
				p.waitExit(t, 10*time.Second)
			} else {
				time.Sleep(time.Until(r.End) + 500*time.Millisecond)
				// With Timebox down, VALID UNTIL still refuses the login after the end.
				if conn, err := c.connect(context.Background(), ""); err == nil {
					conn.Close(context.Background())
					t.Fatal("login accepted after the window's end while Timebox was down")
				}
			}
			if s := e.storedRequest(id); s.State != timebox.StateActive {
				t.Fatalf("after the crash the store says %s; the removal was not confirmed", s.State)
			}
			restarted := time.Now()
			e.startProcess("")
			got := e.waitState("alice", id, "expired", 10*time.Second)
			t.Logf("overdue removal finished %s after the restart", time.Since(restarted).Round(time.Millisecond))
			if exists, _ := e.roleExists(principal); exists {
				t.Fatalf("role %s left behind", principal)
			}
			if got.Grant.Outcome != "dropped" {
				t.Fatalf("outcome %q", got.Grant.Outcome)
			}
			if n := countActions(e.events(id), "request.expired"); n != 1 {
				t.Fatalf("%d request.expired events", n)
			}
			if out := e.ok("audrey", "audit", "--verify"); !strings.Contains(out, "OK") {
				t.Fatalf("verify after crash: %s", out)
			}
		})
	}
}

// TestE2ETargetDownAtExpiry stops the target database before the window ends: the request
// stays visibly "expiry pending" with the last error, and becomes expired only after the
// database is back and the role is gone.
func TestE2ETargetDownAtExpiry(t *testing.T) {
	pg, err := testdb.StartPostgres(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	e := newEnv(t, envOptions{pg: pg})
	e.start()
	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "2s", "--reason", "down test", "--ticket", "T")
	e.ok("bob", "approve", id)
	r := e.waitState("alice", id, "active", 5*time.Second)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(r.End) + 1500*time.Millisecond)
	got := e.show("alice", id)
	if got.State != "active" || got.Ending != "expire" || got.Grant.LastError == "" || !strings.Contains(got.Status, "expiry pending since") {
		t.Fatalf("while the database is down the request shows %q (%+v)", got.Status, got.Grant)
	}
	if out := e.ok("alice", "show", id); !strings.Contains(out, "last error") {
		t.Fatalf("show hides the pending removal:\n%s", out)
	}
	var st timebox.Status
	if err := json.Unmarshal([]byte(e.ok("audrey", "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Servers) != 1 || st.Servers[0].Reachable == nil || *st.Servers[0].Reachable || st.Servers[0].Removing != 1 ||
		st.Servers[0].Retrying != 1 || !strings.Contains(st.Servers[0].LastError, "unreachable") || !st.Leader {
		t.Fatalf("status while the server is down: %+v", st)
	}
	e.fails("only admins and auditors", "alice", "status")
	if out := e.ok("root", "status"); !strings.Contains(out, "NO") || !strings.Contains(out, "pg: request "+id+" ("+got.Grant.Principal+"): removal retrying: ") {
		t.Fatalf("status table:\n%s", out)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitState("alice", id, "expired", 10*time.Second)
	if exists, _ := e.roleExists(r.Grant.Principal); exists {
		t.Fatal("role left behind after the database came back")
	}
	es := e.events(id)
	if countActions(es, "grant.revoke_failed") != 1 || countActions(es, "request.expired") != 1 {
		t.Fatalf("audit events: %d revoke_failed, %d expired", countActions(es, "grant.revoke_failed"), countActions(es, "request.expired"))
	}
}

// TestE2ENastyNames uses a database, an access role and a user whose names contain quotes,
// spaces, semicolons and non-ASCII letters.
func TestE2ENastyNames(t *testing.T) {
	e := newEnv(t, envOptions{
		dbName:   `shop "prod"; DROP DATABASE postgres; -- ü` + timebox.RandomID(4),
		roleName: `read'o"nly; ß ` + timebox.RandomID(4),
		user:     `o'brien "zoë"; x`,
	})
	e.start()
	user := `o'brien "zoë"; x`
	id := e.request(user, "--db", "shop", "--access", "read-only", "--for", "3s", "--reason", `it's "urgent"; really`, "--ticket", "T-'1'")
	e.ok("bob", "approve", id)
	r := e.waitState(user, id, "active", 5*time.Second)
	if !strings.HasPrefix(r.Grant.Principal, "tbx_o_brien__zo____x_") {
		t.Fatalf("principal %q", r.Grant.Principal)
	}
	c := e.creds(user, id)
	ctx := context.Background()
	conn, err := c.connect(ctx, "")
	if err != nil {
		t.Fatalf("login to %q: %v", e.db, err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
		t.Fatalf("read through the oddly named role: %d %v", n, err)
	}
	e.waitState(user, id, "expired", 8*time.Second)
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("session survived expiry")
	}
	if exists, _ := e.roleExists(c.User); exists {
		t.Fatal("role left behind")
	}
}

// TestE2ERevokeWhileActivationRetrying: the database was down at approval, so activation is
// waiting out a long backoff (the role may or may not exist); a revocation must not wait for
// that backoff, and must remove whatever the failed attempt left.
func TestE2ERevokeWhileActivationRetrying(t *testing.T) {
	pg, err := testdb.StartPostgres(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	e := newEnv(t, envOptions{pg: pg})
	e.start()
	e.in.Scheduler.MinBackoff, e.in.Scheduler.MaxBackoff = time.Minute, time.Minute
	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "retry test", "--ticket", "T")
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	e.ok("bob", "approve", id)
	r := e.show("alice", id)
	if r.State != "approved" || r.Grant == nil || r.Grant.Status != "creating" || !strings.Contains(r.Status, "activation retrying, last error") {
		t.Fatalf("after a failed activation: %q %+v", r.Status, r.Grant)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	e.ok("bob", "revoke", id, "--note", "not needed any more")
	got := e.waitState("alice", id, "revoked", 5*time.Second)
	if exists, _ := e.roleExists(got.Grant.Principal); exists {
		t.Fatal("role exists after the revocation")
	}
	if n := countActions(e.events(id), "request.activated"); n != 0 {
		t.Fatalf("%d activation events for a request revoked before it was active", n)
	}
}
