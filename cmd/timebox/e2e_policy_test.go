package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/postgres"
)

// policyRules is the approval policy of the end-to-end policy tests: prod needs an owner,
// except read-only for the on-call engineer on shift; break-glass for the oncall group.
const policyRules = `rules:
  - name: prod
    match: {environment: prod}
    approvers: [owners]
    max_duration: 30m
  - name: prod-read-oncall
    match: {environment: prod, access: read-only, requester_groups: [oncall]}
    auto_approve: {on_call: primary}
  - name: dev
    match: {environment: dev}
    approvers: [owners]
break_glass:
  groups: [oncall]
  max_duration: 10m
`

// icsTime formats t as an iCalendar UTC date-time.
func icsTime(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// TestE2EOnCallAutoApproval drives auto-approval from an .ics file (PagerDuty's format) with
// a shift that starts and ends during the test.
func TestE2EOnCallAutoApproval(t *testing.T) {
	start := time.Now().Add(4 * time.Second).Truncate(time.Second)
	end := start.Add(5 * time.Second)
	ics := filepath.Join(t.TempDir(), "primary.ics")
	cal := strings.Join([]string{"BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//PagerDuty Inc.//test//EN",
		"BEGIN:VEVENT", "UID:shift-1", "DTSTART:" + icsTime(start), "DTEND:" + icsTime(end),
		"SUMMARY:On Call - olga - Primary", "END:VEVENT",
		"BEGIN:VEVENT", "UID:shift-0", "DTSTART:" + icsTime(start.Add(-time.Hour)), "DTEND:" + icsTime(start.Add(-time.Minute)),
		"SUMMARY:On Call - bob - Primary", "END:VEVENT", "END:VCALENDAR", ""}, "\r\n")
	if err := os.WriteFile(ics, []byte(cal), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{extra: policyRules + fmt.Sprintf("on_call:\n  - {name: primary, ics: %q}\n", ics)})
	e.start()
	args := []string{"--db", "shop", "--access", "read-only", "--for", "30m", "--reason", "INC-1", "--ticket", "INC-1"}

	// Before the shift: an owner must approve.
	before := e.request("olga", args...)
	if r := e.show("olga", before); r.State != "pending" || !strings.Contains(r.Status, "pending") {
		t.Fatalf("before the shift: %+v", r)
	}
	if out := e.ok("olga", "policy", "explain", "--db", "shop", "--access", "read-only", "--for", "30m"); !strings.Contains(out, "prod-read-oncall") ||
		!strings.Contains(out, "not on call in primary now") ||
		!strings.Contains(out, "ticket         required") || !strings.Contains(out, "prod databases: a ticket is required (--ticket), except for break-glass") ||
		!strings.Contains(out, "prod databases: a window of at most 1h0m0s") {
		t.Errorf("explain before the shift:\n%s", out)
	}
	// During the shift: approved at once, activated, the window cut at the shift's end.
	time.Sleep(time.Until(start.Add(300 * time.Millisecond)))
	during := e.request("olga", args...)
	r := e.waitState("olga", during, "active", 10*time.Second)
	if !r.End.Equal(end) {
		t.Errorf("auto-approved window ends %s, want the shift's end %s", r.End, end)
	}
	es := e.events(during)
	if countActions(es, "request.auto_approved") != 1 {
		t.Fatalf("no auto-approval event: %+v", es)
	}
	for _, ev := range es {
		if ev.Action == "request.auto_approved" && (ev.Actor != "timebox" || ev.Details["rule"] != "prod-read-oncall" ||
			!strings.Contains(fmt.Sprint(ev.Details["note"]), "olga is on call in primary")) {
			t.Errorf("auto-approval event %+v", ev)
		}
	}
	// The auto-approved login works.
	c := e.creds("olga", during)
	conn, err := c.connect(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	// After the shift: the access ends with it, and a new request waits for an owner.
	e.waitState("olga", during, "expired", time.Until(end)+10*time.Second)
	after := e.request("olga", args...)
	if r := e.show("olga", after); r.State != "pending" {
		t.Fatalf("after the shift: %+v", r)
	}
	if r := e.show("olga", before); r.State != "pending" {
		t.Errorf("the request before the shift changed: %+v", r)
	}
}

// TestE2EBreakGlass: members of the break-glass group get access at once on real
// PostgreSQL, loudly; owners close the follow-up review; access ends on time as always.
func TestE2EBreakGlass(t *testing.T) {
	e := newEnv(t, envOptions{extra: policyRules + "on_call: [{name: primary, rotation: {users: [bob], start: 2026-01-01T00:00:00Z, shift: 24h}}]\n"})
	e.start()
	args := []string{"request", "--db", "shop", "--access", "read-only", "--for", "4s", "--reason", "checkout is down", "--break-glass"}
	e.fails("alice is not in a break-glass group", "alice", args...)
	e.fails("exceeds the break-glass maximum of 10m0s", "olga", "request", "--db", "shop", "--access", "read-only", "--for", "1h", "--reason", "x", "--break-glass")
	out := e.ok("olga", args...)
	if !strings.Contains(out, "BREAK-GLASS") || !strings.Contains(out, "follow-up") {
		t.Errorf("request output has no break-glass banner:\n%s", out)
	}
	var list []requestView
	if err := json.Unmarshal([]byte(e.ok("bob", "requests", "--follow-up", "-o", "json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("open follow-ups: %v %v", list, err)
	}
	id := list[0].ID
	r := e.waitState("olga", id, "active", 5*time.Second)
	c := e.creds("olga", id)
	conn, err := c.connect(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
		t.Errorf("break-glass read: %d %v", n, err)
	}
	if table := e.ok("bob", "requests"); !strings.Contains(table, "BREAK-GLASS") {
		t.Errorf("the listing shows no banner:\n%s", table)
	}
	// Ends to the second, session ended, login dropped.
	e.waitState("olga", id, "expired", time.Until(r.End)+5*time.Second)
	if err := conn.Ping(context.Background()); err == nil {
		t.Error("the break-glass session survived its end")
	}
	if exists, _ := e.roleExists(c.User); exists {
		t.Errorf("role %s still exists", c.User)
	}
	// The follow-up stays open after the end until an owner closes it with a note.
	e.fails("nobody may close the follow-up of their own break-glass request", "olga", "follow-up", id, "--note", "fine")
	e.fails("needs a note", "bob", "follow-up", id)
	e.ok("bob", "follow-up", id, "--note", "queries reviewed: read-only, incident INC-7")
	if out := e.ok("bob", "requests", "--follow-up"); strings.Contains(out, id) {
		t.Errorf("closed follow-up still listed:\n%s", out)
	}
	es := e.events(id)
	for _, a := range []string{"request.break_glass", "request.activated", "request.expired", "request.follow_up_closed"} {
		if countActions(es, a) != 1 {
			t.Errorf("%d %s events", countActions(es, a), a)
		}
	}
}

// TestE2EAdHocColumns: an ad-hoc request for single columns, narrowed by the approver, who
// saw the exact statements first; proven on real PostgreSQL.
func TestE2EAdHocColumns(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	for _, s := range []string{
		`CREATE TABLE payments (id int, amount numeric, "card number" text)`,
		`INSERT INTO payments VALUES (1, 9.99, '4111')`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + postgres.QuoteIdent(e.admin) + ` WITH GRANT OPTION`,
	} {
		if err := e.pg.Exec(ctx, e.db, s); err != nil {
			t.Fatal(err)
		}
	}
	e.start()
	e.fails("DELETE cannot be limited to columns", "alice", "request", "--db", "shop", "--table", "payments:delete:id", "--for", "1m", "--reason", "x", "--ticket", "T")
	e.fails("give either --access or --table", "alice", "request", "--db", "shop", "--access", "read-only", "--table", "payments", "--for", "1m", "--reason", "x")
	e.fails("ad-hoc table grants need method ephemeral_login", "alice", "request", "--db", "maint", "--table", "payments", "--for", "1m", "--reason", "x")
	e.fails(`table "public"."refundz" does not exist`, "alice", "request", "--db", "shop", "--table", "refundz", "--for", "1m", "--reason", "x", "--ticket", "T")
	e.fails(`column "cvv" of table "public"."payments" does not exist`, "alice", "request", "--db", "shop", "--table", "payments:select:id,cvv", "--for", "1m", "--reason", "x", "--ticket", "T")
	id := e.request("alice", "--db", "shop", "--table", "public.payments:select:id,amount,card number", "--table", "orders:select,update",
		"--for", "1m", "--reason", "refund INC-3", "--ticket", "INC-3")

	// The approver sees the exact statements before deciding.
	plan := e.ok("bob", "show", id, "--plan")
	for _, want := range []string{`"payments"`, `"card number"`, `"orders"`, "CREATE ROLE", "DROP ROLE"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %s:\n%s", want, plan)
		}
	}
	// Narrowed: no card number, no orders at all.
	out := e.ok("bob", "approve", id, "--table", "public.payments:select:id,amount")
	if !strings.Contains(out, "removed columns card number") || !strings.Contains(out, "removed table public.orders") {
		t.Errorf("approve output:\n%s", out)
	}
	if show := e.ok("alice", "show", id); !strings.Contains(show, "requested tables") || !strings.Contains(show, "public.payments: SELECT (id, amount)") {
		t.Errorf("the requester does not see the difference:\n%s", show)
	}
	e.waitState("alice", id, "active", 5*time.Second)
	c := e.creds("alice", id)
	conn, err := c.connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var amount float64
	if err := conn.QueryRow(ctx, "SELECT amount::float8 FROM payments WHERE id = 1").Scan(&amount); err != nil || amount != 9.99 {
		t.Errorf("granted columns: %v %v", amount, err)
	}
	for _, q := range []string{`SELECT "card number" FROM payments`, "SELECT * FROM payments", "SELECT id FROM orders", "UPDATE payments SET amount = 0"} {
		if _, err := conn.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s: %v, want permission denied", q, err)
		}
	}
	e.ok("bob", "revoke", id, "--note", "done")
	e.waitState("alice", id, "revoked", 5*time.Second)
	if exists, _ := e.roleExists(c.User); exists {
		t.Errorf("role %s left behind", c.User)
	}
}

// TestE2EExtensionWithoutGap: an approved extension moves the end and VALID UNTIL; a session
// open across the old end lives on, and new logins keep working.
func TestE2EExtensionWithoutGap(t *testing.T) {
	e := newEnv(t, envOptions{extra: policyRules + "on_call: [{name: primary, rotation: {users: [bob], start: 2026-01-01T00:00:00Z, shift: 24h}}]\n"})
	e.start()
	ctx := context.Background()
	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "5s", "--reason", "report", "--ticket", "T-1")
	e.ok("bob", "approve", id)
	r := e.waitState("alice", id, "active", 5*time.Second)
	c := e.creds("alice", id)
	conn, err := c.connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	e.fails("exceeds rule prod's maximum of 30m0s", "alice", "extend", id, "--for", "40m", "--reason", "x")
	e.ok("alice", "extend", id, "--for", "1m", "--reason", "report still running")
	if s := e.ok("bob", "show", id); !strings.Contains(s, "extension") {
		t.Errorf("show lacks the pending extension:\n%s", s)
	}
	newEnd := r.End.Add(time.Minute)
	if out := e.ok("bob", "approve", id); !strings.Contains(out, "extended: end ") || strings.Contains(out, "narrowed") {
		t.Errorf("approving the extension says:\n%s", out)
	}
	time.Sleep(time.Until(r.End.Add(1500 * time.Millisecond)))
	if s := e.show("alice", id); s.State != "active" || !s.End.Equal(newEnd) {
		t.Fatalf("after the old end: %s, end %s, want active until %s", s.State, s.End, newEnd)
	}
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(new(int)); err != nil {
		t.Errorf("the session did not survive the old end: %v", err)
	}
	again, err := c.connect(ctx, "")
	if err != nil {
		t.Fatalf("a new login after the old end: %v", err)
	}
	again.Close(ctx)
	var until time.Time
	admin, _ := e.super()
	if err := admin.QueryRow(ctx, "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", c.User).Scan(&until); err != nil || !until.Equal(newEnd) {
		t.Errorf("VALID UNTIL %s (%v), want %s", until, err, newEnd)
	}
	es := e.events(id)
	if countActions(es, "request.extended") != 1 || countActions(es, "grant.extended") != 1 || countActions(es, "request.activated") != 1 {
		t.Errorf("events: %+v", es)
	}
}

// TestE2ECascades: a user disabled through the API, and a database removed from the
// configuration, end their live requests with an event naming the cause.
func TestE2ECascades(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	ctx := context.Background()
	pending := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "r", "--ticket", "T")
	active := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "r", "--ticket", "T")
	e.ok("bob", "approve", active)
	e.waitState("alice", active, "active", 5*time.Second)
	c := e.creds("alice", active)
	conn, err := c.connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	dev := e.request("mallory", "--db", "other", "--access", "read-only", "--for", "10m", "--reason", "r")

	e.fails("only admins may disable users", "bob", "users", "disable", "alice", "--note", "x")
	if out := e.ok("root", "users", "disable", "alice", "--note", "left the company"); !strings.Contains(out, "2 live request(s) ended") {
		t.Errorf("disable: %s", out)
	}
	e.waitState("root", pending, "cancelled", 5*time.Second)
	e.waitState("root", active, "revoked", 5*time.Second)
	if err := conn.Ping(ctx); err == nil {
		t.Error("the disabled user's session survived")
	}
	if exists, _ := e.roleExists(c.User); exists {
		t.Error("the disabled user's login survived")
	}
	e.fails("is disabled", "alice", "requests")
	for _, id := range []string{pending, active} {
		found := false
		for _, ev := range e.events(id) {
			found = found || ev.Action == "request.cascade" && ev.Details["cause"] == timebox.CauseUserDisabled &&
				strings.Contains(fmt.Sprint(ev.Details["note"]), "left the company")
		}
		if !found {
			t.Errorf("no cascade event naming the cause on %s", id)
		}
	}
	e.ok("root", "users", "enable", "alice")
	// Enabling her again does not revive the tokens she had: an admin issues a new one.
	e.fails("was revoked by root", "alice", "requests")
	secret, err := createToken(ctx, e.in.Store, &e.cfg.Catalog, e.in.Service.Keys, "alice")
	if err != nil {
		t.Fatal(err)
	}
	e.tokens["alice"] = secret
	e.ok("alice", "requests")

	// The database "other" leaves the configuration: at the next start, mallory's pending
	// request on it is denied, with the cause.
	e.stop()
	for i, d := range e.cfg.Databases {
		if d.Name == "other" {
			e.cfg.Databases = append(e.cfg.Databases[:i:i], e.cfg.Databases[i+1:]...)
			break
		}
	}
	e.start()
	if r := e.show("root", dev); r.State != "denied" {
		t.Errorf("request on the removed database: %s", r.State)
	}
	if es := e.events(dev); countActions(es, "request.cascade") != 1 || es[len(es)-1].Details["cause"] != timebox.CauseDatabaseRemoved {
		t.Errorf("events: %+v", es)
	}
}

// TestE2EUnusedApproval: an approved request whose credentials nobody fetched within the
// rule's unused_after ends then, on the database too; a used one runs its course.
func TestE2EUnusedApproval(t *testing.T) {
	e := newEnv(t, envOptions{extra: `rules:
  - {name: prod, match: {environment: prod}, approvers: [owners], unused_after: 2s}
  - {name: dev, match: {environment: dev}, approvers: [owners]}
`})
	e.start()
	args := []string{"--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "r", "--ticket", "T"}
	unused, used := e.request("alice", args...), e.request("alice", args...)
	e.ok("bob", "approve", unused)
	e.ok("bob", "approve", used)
	e.waitState("alice", unused, "active", 5*time.Second)
	if s := e.ok("alice", "show", unused); !strings.Contains(s, "unused by") {
		t.Errorf("show does not say when an unused request ends:\n%s", s)
	}
	e.waitState("alice", used, "active", 5*time.Second)
	c := e.creds("alice", used)
	r := e.waitState("alice", unused, "expired", 10*time.Second)
	if r.Grant == nil || r.Grant.Outcome != "dropped" {
		t.Errorf("unused grant: %+v", r.Grant)
	}
	found := false
	for _, ev := range e.events(unused) {
		found = found || strings.Contains(fmt.Sprint(ev.Details["note"]), "unused: nobody fetched its credentials")
	}
	if !found {
		t.Error("no event says the request ended unused")
	}
	if s := e.show("alice", used); s.State != "active" {
		t.Errorf("the used request: %s", s.State)
	}
	conn, err := c.connect(context.Background(), "")
	if err != nil {
		t.Fatalf("the used request's login: %v", err)
	}
	conn.Close(context.Background())
}

// TestE2EMariaDBAdHocAndExtension: a column grant on MariaDB, shown before approval, then
// extended across its end with the session open and the backstop moved.
func TestE2EMariaDBAdHocAndExtension(t *testing.T) {
	e := newEnv(t, envOptions{maria: true})
	e.start()
	ctx := context.Background()
	e.fails("has no column `total`", "alice", "request", "--db", "mshop", "--table", "orders:select:id,total", "--for", "5s", "--reason", "x", "--ticket", "T")
	id := e.request("alice", "--db", "mshop", "--table", "orders:select:id", "--for", "5s", "--reason", "ids", "--ticket", "T-9")
	if plan := e.ok("bob", "show", id, "--plan"); !strings.Contains(plan, "GRANT SELECT (`id`) ON") || strings.Contains(plan, "customer") {
		t.Errorf("plan:\n%s", plan)
	}
	e.ok("bob", "approve", id)
	r := e.waitState("alice", id, "active", 10*time.Second)
	c := e.creds("alice", id)
	conn := e.mariaLogin(c, c.Database)
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(id) FROM orders").Scan(&n); err != nil || n != 2 {
		t.Errorf("granted column: %d %v", n, err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT customer FROM orders"); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Errorf("other column: %v, want denied", err)
	}
	e.ok("alice", "extend", id, "--for", "1m", "--reason", "more ids")
	e.ok("bob", "approve", id)
	time.Sleep(time.Until(r.End.Add(2 * time.Second))) // past the old end and its backstop's second
	if s := e.show("alice", id); s.State != "active" || !s.End.Equal(r.End.Add(time.Minute)) {
		t.Fatalf("after the old end: %s until %s", s.State, s.End)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(id) FROM orders").Scan(&n); err != nil {
		t.Errorf("the session did not survive the old end: %v", err)
	}
	if exists, locked := e.mariaAccount(c.User); !exists || locked {
		t.Errorf("account after the old end: exists %v, locked %v", exists, locked)
	}
	e.ok("bob", "revoke", id, "--note", "done")
	e.waitState("alice", id, "revoked", 10*time.Second)
	if exists, _ := e.mariaAccount(c.User); exists {
		t.Error("account left behind")
	}
}
