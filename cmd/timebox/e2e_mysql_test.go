package main

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/mysql"
	"github.com/timebox-dev/timebox/internal/testdb"
	"github.com/timebox-dev/timebox/scheduler"
)

// setupMaria prepares e's MariaDB server: the requested database with a table, a locked
// shared account (mmaint), alice's own account (mteam), and the admin made by
// mysql.SetupStatements with e.myAdminPassword; the event scheduler is on, for the backstop.
func (e *env) setupMaria() {
	e.t.Helper()
	db := mysql.QuoteIdent(e.mdb)
	acct := func(name string) string { return mysql.QuoteString(name) + "@'%'" }
	e.myExec(append([]string{
		"SET GLOBAL event_scheduler = ON",
		"CREATE DATABASE " + db,
		"CREATE TABLE " + db + ".orders (id int PRIMARY KEY, customer text)",
		"INSERT INTO " + db + ".orders VALUES (1, 'Ada'), (2, 'Grace')",
		"CREATE USER " + acct(e.maint) + " IDENTIFIED BY " + mysql.QuoteString(timebox.RandomPassword(24)) + " ACCOUNT LOCK",
		"GRANT SELECT ON " + db + ".* TO " + acct(e.maint),
		"CREATE USER " + acct(e.personal) + " IDENTIFIED BY " + mysql.QuoteString(e.personalPassword),
	}, mysql.SetupStatements(e.admin, e.myAdminPassword, "%", []string{e.mdb}, nil)...)...)
}

// mariaConn logs in to MariaDB server m as user with password, on database db, and returns
// the session and the function that closes it.
func mariaConn(m *testdb.MariaDB, user, password, db string) (*sql.Conn, func(), error) {
	pool, err := m.Open(user, password, db)
	if err != nil {
		return nil, nil, err
	}
	conn, err := pool.Conn(context.Background())
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return conn, func() { conn.Close(); pool.Close() }, nil
}

// mariaConn logs in to e's MariaDB as user with password, on database db.
func (e *env) mariaConn(user, password, db string) (*sql.Conn, func(), error) {
	return mariaConn(e.my, user, password, db)
}

// mariaLogin logs in to e's MariaDB with c on database db, failing the test when it cannot;
// the session is closed when the test ends.
func (e *env) mariaLogin(c creds, db string) *sql.Conn {
	e.t.Helper()
	conn, done, err := e.mariaConn(c.User, c.Password, db)
	if err != nil {
		e.t.Fatalf("login as %s: %v", c.User, err)
	}
	e.t.Cleanup(done)
	return conn
}

// mariaTry logs in to e's MariaDB as user with password on database db and logs out: nil
// when the login works.
func (e *env) mariaTry(user, password, db string) error {
	_, done, err := e.mariaConn(user, password, db)
	if err == nil {
		done()
	}
	return err
}

// myExec runs statements as root on e's MariaDB, failing the test at the first error.
func (e *env) myExec(stmts ...string) {
	e.t.Helper()
	for _, s := range stmts {
		if err := e.my.Exec(context.Background(), s); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
}

// mariaAccount reports whether the account user@'%' exists, and whether it is locked.
func (e *env) mariaAccount(user string) (exists, locked bool) {
	e.t.Helper()
	db, err := e.my.Open("root", e.my.RootPassword, "")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	var v sql.NullString
	err = db.QueryRowContext(context.Background(),
		"SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv WHERE User = ? AND Host = '%'", user).Scan(&v)
	if err == sql.ErrNoRows {
		return false, false
	} else if err != nil {
		e.t.Fatal(err)
	}
	return true, v.String == "true" || v.String == "1"
}

// deniedOrGone reports whether err says the server refused the access or ended the session.
func deniedOrGone(err error) bool {
	var me *gomysql.MySQLError
	return err != nil && (errors.As(err, &me) || errors.Is(err, gomysql.ErrInvalidConn) || strings.Contains(err.Error(), "invalid connection") ||
		strings.Contains(err.Error(), "bad connection") || strings.Contains(err.Error(), "EOF"))
}

// TestE2EMariaDBLifecycle: request → approve → the login reads but cannot write, and
// reaches no other database → `timebox connect` runs the mariadb client → at the end the open
// session is killed, the login refused and the account dropped; the audit has one event of
// each kind and verifies; no password reaches the server's log.
func TestE2EMariaDBLifecycle(t *testing.T) {
	e := newEnv(t, envOptions{maria: true})
	e.start()
	ctx := context.Background()
	id := e.request("alice", "--db", "mshop", "--access", "read-only", "--for", "4s", "--reason", "check an order", "--ticket", "OPS-7")
	e.ok("bob", "approve", id, "--note", "ok")
	r := e.waitState("alice", id, "active", 5*time.Second)
	c := e.creds("alice", id)
	if len(c.User) > 32 || !strings.HasPrefix(c.User, "tbx_alice_") || c.Port != e.my.Port || !strings.HasPrefix(e.ok("alice", "creds", id, "-o", "uri"), "mysql://") {
		t.Fatalf("credentials %+v", c)
	}
	if env := e.ok("alice", "creds", id, "-o", "env"); !strings.Contains(env, "MYSQL_HOST=") || !strings.Contains(env, "MYSQL_TCP_PORT='"+strconv.Itoa(e.my.Port)+"'") {
		t.Fatalf("creds -o env for MariaDB:\n%s", env)
	}
	conn := e.mariaLogin(c, e.mdb)
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
		t.Fatalf("read: %d, %v", n, err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO orders VALUES (3, 'Linus')"); err == nil {
		t.Fatal("a read-only login could write")
	}
	if _, err := conn.ExecContext(ctx, "USE mysql"); err == nil {
		t.Fatal("the login reached another database")
	}
	if _, err := conn.ExecContext(ctx, "USE "+mysql.QuoteIdent(e.mdb)); err != nil {
		t.Fatal(err)
	}
	if client, err := findClient("TIMEBOX_MYSQL", "mariadb-client", "mariadb", "mysql"); err == nil {
		out := e.ok("alice", "connect", id, "--", "--batch", "--skip-column-names", "-e", "SELECT customer FROM orders ORDER BY id")
		if out != "Ada\nGrace\n" {
			t.Fatalf("timebox connect (%s) printed %q", client, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Fatalf("the mariadb client is needed: %v", err)
	}

	// A session open across the end is killed; the login is refused; the account is gone.
	time.Sleep(time.Until(r.End) + 50*time.Millisecond)
	got := e.waitState("alice", id, "expired", 5*time.Second)
	if _, err := conn.ExecContext(ctx, "SELECT 1"); !deniedOrGone(err) {
		t.Fatalf("the session open across the end still works: %v", err)
	}
	if e.mariaTry(c.User, c.Password, e.mdb) == nil {
		t.Fatal("login after the end")
	}
	if exists, _ := e.mariaAccount(c.User); exists {
		t.Fatal("the account is still there")
	}
	if got.Grant.Outcome != "dropped" {
		t.Fatalf("outcome %q", got.Grant.Outcome)
	}
	es := e.events(id)
	for _, a := range []string{"request.created", "request.approved", "grant.create_intent", "request.activated", "grant.revoke_intent", "request.expired"} {
		if n := countActions(es, a); n != 1 {
			t.Errorf("%d %s events, want 1", n, a)
		}
	}
	if out := e.ok("audrey", "audit", "--verify"); !strings.Contains(out, "OK") {
		t.Fatalf("verify: %s", out)
	}
	if strings.Contains(e.log.String(), c.Password) {
		t.Fatal("the password is in the server's log")
	}
}

// TestE2EMariaDBBackstop: with the Timebox server stopped across the end, the backstop event
// on the database kills the session and drops the account on time; when the server comes
// back the request ends expired, with nothing left to do.
func TestE2EMariaDBBackstop(t *testing.T) {
	e := newEnv(t, envOptions{maria: true})
	e.start()
	ctx := context.Background()
	id := e.request("alice", "--db", "mshop", "--access", "read-only", "--for", "3s", "--reason", "backstop", "--ticket", "OPS-8")
	e.ok("bob", "approve", id)
	r := e.waitState("alice", id, "active", 5*time.Second)
	c := e.creds("alice", id)
	conn := e.mariaLogin(c, e.mdb)
	e.stop()
	time.Sleep(time.Until(r.End) + 2*time.Second) // the event fires at the whole second
	if exists, _ := e.mariaAccount(c.User); exists {
		t.Fatal("the backstop did not drop the account while Timebox was down")
	}
	if _, err := conn.ExecContext(ctx, "SELECT 1"); !deniedOrGone(err) {
		t.Fatalf("the session survived the backstop: %v", err)
	}
	e.start()
	got := e.waitState("alice", id, "expired", 5*time.Second)
	if got.Grant.Outcome != "dropped" {
		t.Fatalf("outcome %q", got.Grant.Outcome)
	}
}

// TestE2EMariaDBUnlockAndMembership: the shared account is unlocked with a fresh password
// for the window and locked again at revocation; alice's own account gets SELECT on the
// database for the window and loses it at the end.
func TestE2EMariaDBUnlockAndMembership(t *testing.T) {
	e := newEnv(t, envOptions{maria: true})
	e.start()
	ctx := context.Background()
	id := e.request("alice", "--db", "mmaint", "--access", "read-only", "--for", "10m", "--reason", "maintenance", "--ticket", "T")
	e.ok("bob", "approve", id)
	e.waitState("alice", id, "active", 5*time.Second)
	c := e.creds("alice", id)
	if c.User != e.maint || c.Password == "" {
		t.Fatalf("credentials %q", c.User)
	}
	conn := e.mariaLogin(c, e.mdb)
	e.ok("bob", "revoke", id, "--note", "done")
	e.waitState("alice", id, "revoked", 5*time.Second)
	if exists, locked := e.mariaAccount(e.maint); !exists || !locked {
		var priv string
		if db, err := e.my.Open("root", e.my.RootPassword, ""); err == nil {
			db.QueryRowContext(ctx, "SELECT Priv FROM mysql.global_priv WHERE User = ?", e.maint).Scan(&priv)
			db.Close()
		}
		t.Fatalf("shared account after revocation: exists %v locked %v: %s", exists, locked, priv)
	}
	if _, err := conn.ExecContext(ctx, "SELECT 1"); !deniedOrGone(err) {
		t.Fatalf("the shared account's session survived: %v", err)
	}

	own := func() error {
		conn, done, err := e.mariaConn(e.personal, e.personalPassword, e.mdb)
		if err != nil {
			return err
		}
		defer done()
		var n int
		return conn.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n)
	}
	if own() == nil {
		t.Fatal("alice's own account reads the database before any grant")
	}
	id = e.request("alice", "--db", "mteam", "--access", "read-only", "--for", "3s", "--reason", "team", "--ticket", "T")
	e.ok("bob", "approve", id)
	e.waitState("alice", id, "active", 5*time.Second)
	if err := own(); err != nil {
		t.Fatalf("alice's own account during the grant: %v", err)
	}
	e.waitState("alice", id, "expired", 8*time.Second)
	if own() == nil {
		t.Fatal("alice's own account still reads the database after the end")
	}
	if exists, locked := e.mariaAccount(e.personal); !exists || locked {
		t.Fatal("alice's own account was dropped or locked")
	}
}

// TestE2EMariaDBCrash kills the server (SIGKILL) at each labelled step of activation and of
// removal; after a restart the request ends in the right state, the account is gone, nothing
// is duplicated and the audit chain verifies.
func TestE2EMariaDBCrash(t *testing.T) {
	for _, step := range []string{scheduler.StepActivateIntent, scheduler.StepActivateDB, scheduler.StepRevokeIntent, scheduler.StepRevokeDB} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, envOptions{maria: true})
			activation := strings.HasPrefix(step, "activate")
			kill := ""
			if activation {
				kill = step
			}
			p := e.startProcess(kill)
			id := e.request("alice", "--db", "mshop", "--access", "read-only", "--for", "5s", "--reason", "crash", "--ticket", "T")
			e.cli("bob", "approve", id) // with an activation step, the server dies answering
			if !activation {
				e.waitState("alice", id, "active", 5*time.Second)
				p.cmd.Process.Kill()
				p.waitExit(t, 5*time.Second)
				p = e.startProcess(step)
				e.cli("bob", "revoke", id, "--note", "crash") // the server dies answering
			}
			p.waitExit(t, 10*time.Second)
			r := e.storedRequest(id)
			e.startProcess("")
			final := "expired"
			if !activation {
				final = "revoked"
			}
			e.waitState("alice", id, final, 10*time.Second)
			if exists, _ := e.mariaAccount(r.Grant.Principal); exists {
				t.Fatal("the account was left behind")
			}
			es := e.events(id)
			for _, a := range []string{"grant.create_intent", "request.activated", "grant.revoke_intent", "request." + final} {
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

// TestE2EMariaDBReconcile: a live grant's account widened by hand is put back to its plan, its
// password changed by hand is put back, a shared account unlocked by hand is locked again, an
// account dropped by hand is recreated, an orphan (in the bookkeeping role, unknown to the
// store) is dropped.
func TestE2EMariaDBReconcile(t *testing.T) {
	e := newEnv(t, envOptions{maria: true})
	e.start()
	ctx := context.Background()
	id := e.request("alice", "--db", "mshop", "--access", "read-only", "--for", "10m", "--reason", "drift", "--ticket", "T")
	e.ok("bob", "approve", id)
	e.waitState("alice", id, "active", 5*time.Second)
	c := e.creds("alice", id)
	e.in.Scheduler.Reconcile(ctx)
	if n := countActions(e.eventsAll(), "drift.repaired"); n != 0 {
		t.Fatalf("%d repairs with nothing changed", n)
	}
	// Widened by hand: a write privilege on the database (named exactly, `_` escaped, as the
	// engine grants: an unescaped name is a pattern, which the more specific exact grant
	// overrides, and which the admin — with GRANT OPTION on the exact name only — cannot
	// revoke: that repair fails and is logged).
	e.myExec("GRANT INSERT ON " + mysql.QuoteIdent(strings.ReplaceAll(e.mdb, "_", `\_`)) + ".* TO " + mysql.QuoteString(c.User) + "@'%'")
	e.in.Scheduler.Reconcile(ctx)
	conn, done, err := e.mariaConn(c.User, c.Password, e.mdb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO orders VALUES (9, 'x')"); err == nil {
		t.Fatal("the privilege added by hand was not revoked")
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Fatalf("the planned privilege went with the extra ones: %v", err)
	}
	done()
	if n := countActions(e.eventsAll(), "drift.repaired"); n != 1 {
		t.Fatalf("%d drift events after widening, want 1", n)
	}
	// A new password set by hand: found by a login with the planned one, and put back.
	e.myExec("ALTER USER " + mysql.QuoteString(c.User) + "@'%' IDENTIFIED BY 'Changed-by-hand-1'")
	e.in.Scheduler.Reconcile(ctx)
	if err := e.mariaTry(c.User, c.Password, e.mdb); err != nil {
		t.Fatalf("the password changed by hand was not put back: %v", err)
	}
	// The shared account unlocked by hand with no grant holding it is locked again.
	e.myExec("ALTER USER " + mysql.QuoteString(e.maint) + "@'%' ACCOUNT UNLOCK")
	e.in.Scheduler.Reconcile(ctx)
	if _, locked := e.mariaAccount(e.maint); !locked {
		t.Fatal("the shared account unlocked by hand was not locked again")
	}
	if n := countActions(e.eventsAll(), "drift.repaired"); n != 3 {
		t.Fatalf("%d drift events after password and unlock, want 3", n)
	}
	ghost := "tbx_ghost_" + strings.ToLower(timebox.RandomID(6))
	e.myExec("DROP USER "+mysql.QuoteString(c.User)+"@'%'",
		"CREATE USER "+mysql.QuoteString(ghost)+"@'%' IDENTIFIED BY 'Ghost-password-1'",
		"GRANT SELECT ON "+mysql.QuoteIdent(e.mdb)+".* TO "+mysql.QuoteString(ghost)+"@'%'")
	// As the admin (only it holds the bookkeeping role WITH ADMIN OPTION), as if the store
	// lost track of a login it made.
	adm, done, err := e.mariaConn(e.admin, e.myAdminPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.ExecContext(ctx, "GRANT "+mysql.QuoteString(mysql.ManagedRoleName(e.admin))+" TO "+mysql.QuoteString(ghost)+"@'%'"); err != nil {
		t.Fatal(err)
	}
	done()
	e.in.Scheduler.Reconcile(ctx)
	if exists, _ := e.mariaAccount(ghost); exists {
		t.Fatal("the orphan survived the reconciler")
	}
	if err := e.mariaTry(c.User, c.Password, e.mdb); err != nil {
		t.Fatalf("the account dropped by hand was not recreated: %v", err)
	}
	if n := countActions(e.eventsAll(), "drift.repaired"); n != 5 {
		t.Fatalf("%d drift events, want 5 (widened, password, unlocked, dropped, orphan)", n)
	}
}

// TestE2EMariaDBNoBackstop: on a server where the admin cannot place backstop events (here it
// lacks EVENT on the event schema; the event scheduler off reads the same), the activation
// says so in its event, `show` flags the grant and `status` counts it; the removal clears it.
func TestE2EMariaDBNoBackstop(t *testing.T) {
	e := newEnv(t, envOptions{maria: true})
	e.myExec("REVOKE EVENT ON " + mysql.QuoteIdent(mysql.DefaultEventSchema) + ".* FROM " + mysql.QuoteString(e.admin) + "@'%'")
	e.start()
	id := e.request("alice", "--db", "mshop", "--access", "read-only", "--for", "1m", "--reason", "no backstop", "--ticket", "OPS-9")
	e.ok("bob", "approve", id)
	e.waitState("alice", id, "active", 5*time.Second)
	var detail string
	for _, ev := range e.events(id) {
		if ev.Action == "request.activated" {
			detail, _ = ev.Details["backstop"].(string)
		}
	}
	if !strings.HasPrefix(detail, "none: the admin lacks the EVENT privilege") {
		t.Fatalf("request.activated backstop detail %q", detail)
	}
	if out := e.ok("alice", "show", id); !strings.Contains(out, "backstop") || !strings.Contains(out, "NONE: the admin lacks the EVENT privilege") {
		t.Fatalf("show does not flag the missing backstop:\n%s", out)
	}
	if out := e.ok("root", "status"); !strings.Contains(out, "NO BACKSTOP") || !strings.Contains(out, "1 (ends only through Timebox)") {
		t.Fatalf("status does not count the grant without backstop:\n%s", out)
	}
	e.ok("bob", "revoke", id, "--note", "done")
	got := e.waitState("alice", id, "revoked", 5*time.Second)
	if got.Grant.Outcome != "dropped" {
		t.Fatalf("after the removal: outcome %q", got.Grant.Outcome)
	}
}
