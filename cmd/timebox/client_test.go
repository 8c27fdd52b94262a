package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/store"
)

// cliTest is a real API server on a real SQLite store, driven through run().
type cliTest struct {
	t      *testing.T
	db     *store.DB
	svc    *timebox.Service
	sealer *timebox.Sealer
	url    string
	tokens map[string]string
}

func testCatalog(t *testing.T) *timebox.Catalog {
	c := &timebox.Catalog{
		Users: []timebox.User{
			{Name: "alice", Email: "alice@example.com", Groups: []string{"developers"}},
			{Name: "bob", Email: "bob@example.com", Groups: []string{"shop-owners"}},
			{Name: "admin", Groups: []string{"platform"}},
			{Name: "audrey", Groups: []string{"audit"}},
		},
		AdminGroups:   []string{"platform"},
		AuditorGroups: []string{"audit"},
		// The engine is never contacted: no scheduler runs in these tests.
		Servers: []timebox.Server{{
			Name: "pg1", Engine: timebox.EnginePostgres, URL: "postgres://timebox@127.0.0.1:1/postgres",
			Password: "env:TIMEBOX_TEST_UNUSED", ConnectHost: "db.example.com", ConnectPort: 5433,
		}},
		Databases: []timebox.Database{{
			Name: "shop-prod", Server: "pg1", Database: "shop", Environment: "prod", Owners: []string{"shop-owners"},
		}},
		AccessLevels: []timebox.AccessLevel{{Name: "read-only", Postgres: timebox.EngineRoles{Roles: []string{"shop_ro"}}}},
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("catalog: %v", err)
	}
	return c
}

// newCLITest boots the API in-process and points the CLI at it as alice, with an empty
// configuration directory.
func newCLITest(t *testing.T) *cliTest {
	t.Helper()
	return newCLITestOn(t, "sqlite:///"+filepath.Join(t.TempDir(), "t.db"))
}

// newCLITestOn is newCLITest on the store at dsn.
func newCLITestOn(t *testing.T, dsn string) *cliTest {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := timebox.NewKeyring("test secret key, long enough")
	if err != nil {
		t.Fatal(err)
	}
	svc := timebox.NewService(db, testCatalog(t), keys)
	api := tbhttp.NewServer(svc)
	api.Logger = slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	ct := &cliTest{t: t, db: db, svc: svc, sealer: keys.Sealer(), url: srv.URL, tokens: map[string]string{}}
	err = db.Update(ctx, func(tx timebox.Tx) error {
		for _, u := range []string{"alice", "bob", "admin", "audrey"} {
			secret, tok := timebox.NewToken(u, time.Now())
			tok.Sign(keys)
			if err := tx.CreateToken(tok); err != nil {
				return err
			}
			ct.tokens[u] = secret
		}
		return nil
	})
	if err != nil {
		t.Fatalf("create tokens: %v", err)
	}
	t.Setenv("TIMEBOX_CONFIG_DIR", filepath.Join(t.TempDir(), "config"))
	t.Setenv("TIMEBOX_SERVER", srv.URL)
	ct.as("alice")
	return ct
}

// as makes the following commands run as user.
func (ct *cliTest) as(user string) { ct.t.Setenv("TIMEBOX_TOKEN", ct.tokens[user]) }

// run runs one command line and returns its stdout, stderr and exit code.
func (ct *cliTest) run(args ...string) (string, string, int) {
	return ct.runIn("", args...)
}

func (ct *cliTest) runIn(stdin string, args ...string) (string, string, int) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

// ok runs a command line that must succeed and returns its stdout.
func (ct *cliTest) ok(args ...string) string {
	ct.t.Helper()
	out, errOut, code := ct.run(args...)
	if code != 0 {
		ct.t.Fatalf("timebox %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	return out
}

// fails runs a command line that must fail with code and stderr containing want.
func (ct *cliTest) fails(code int, want string, args ...string) {
	ct.t.Helper()
	out, errOut, got := ct.run(args...)
	if got != code || !strings.HasPrefix(errOut, "error: ") || !strings.Contains(errOut, want) {
		ct.t.Fatalf("timebox %s: exit %d, stderr %q, stdout %q; want exit %d and an error containing %q",
			strings.Join(args, " "), got, errOut, out, code, want)
	}
	if strings.Count(errOut, "error:") != 1 {
		ct.t.Fatalf("timebox %s: the error is printed more than once: %q", strings.Join(args, " "), errOut)
	}
}

// create files a request as the current user and returns its ID.
func (ct *cliTest) create(args ...string) string {
	ct.t.Helper()
	out := ct.ok(append([]string{"request", "--db", "shop-prod", "--access", "read-only", "-o", "json"}, args...)...)
	var r struct{ ID, State string }
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.ID == "" || r.State != "pending" {
		ct.t.Fatalf("request -o json: %v, %q", err, out)
	}
	return r.ID
}

// activate does what the scheduler would: marks request id active with a grant whose
// password is password. No database is touched.
func (ct *cliTest) activate(id, principal, password string) {
	ct.t.Helper()
	err := ct.db.Update(context.Background(), func(tx timebox.Tx) error {
		r, err := tx.FindRequest(id)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		g := &timebox.Grant{
			RequestID: id, Server: "pg1", Principal: principal, Method: timebox.MethodEphemeralLogin,
			Status: timebox.GrantActive, Roles: []string{"shop_ro"}, ValidUntil: r.End,
			SealedPassword: ct.sealer.Seal(password, id), Attempts: 1, CreatedAt: now, UpdatedAt: now,
		}
		if err := tx.PutGrant(g); err != nil {
			return err
		}
		r.State, r.ActivatedAt, r.UpdatedAt = timebox.StateActive, now, now
		if err := tx.UpdateRequest(r); err != nil {
			return err
		}
		return tx.AppendEvent(&timebox.Event{Time: now, Actor: "timebox", Action: "request.activated",
			RequestID: id, Database: r.Database, Details: map[string]any{"principal": principal}})
	})
	if err != nil {
		ct.t.Fatalf("activate %s: %v", id, err)
	}
}

func TestCLIWorkflow(t *testing.T) {
	ct := newCLITest(t)
	id := ct.create("--for", "2h", "--reason", "fix the refunds of INC-42", "--ticket", "INC-42")

	if out := ct.ok("requests"); !strings.Contains(out, id) || !strings.HasPrefix(out, "ID ") || !strings.Contains(out, "INC-42") {
		t.Fatalf("requests table lacks the request:\n%s", out)
	}
	if out := ct.ok("requests", "--state", "denied", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("requests --state denied -o json: %q, want []", out)
	}

	var shown map[string]any
	if err := json.Unmarshal([]byte(ct.ok("show", id, "-o", "json")), &shown); err != nil {
		t.Fatalf("show -o json: %v", err)
	}
	for _, k := range []string{"id", "state", "requester", "database", "access", "start", "end", "reason", "ticket", "status"} {
		if _, ok := shown[k]; !ok {
			t.Errorf("show -o json has no %q: %v", k, shown)
		}
	}
	if shown["id"] != id || shown["requester"] != "alice" || shown["database"] != "shop-prod" || shown["ticket"] != "INC-42" {
		t.Errorf("show -o json: %v", shown)
	}

	ct.fails(4, "nobody may approve their own request", "approve", id)
	ct.as("admin") // an admin may approve others' requests, never their own
	own := ct.create("--for", "1h", "--reason", "admin's own")
	ct.fails(4, "own request", "approve", own)
	ct.ok("cancel", own, "--note", "not needed")
	ct.as("alice")

	// Bob narrows the window to one hour.
	start, err := time.Parse(time.RFC3339Nano, shown["start"].(string))
	if err != nil {
		t.Fatal(err)
	}
	end := start.Add(time.Hour).Truncate(time.Second)
	ct.as("bob")
	out := ct.ok("approve", id, "--end", end.Format(time.RFC3339), "--note", "one hour is enough")
	if !strings.Contains(out, "request "+id+": approved") || !strings.Contains(out, "narrowed: end ") {
		t.Fatalf("approve output: %q", out)
	}

	ct.as("alice")
	out = ct.ok("show", id)
	oldEnd, err := time.Parse(time.RFC3339Nano, shown["end"].(string))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"approved", "requested", "bob", "one hour is enough",
		"end " + oldEnd.UTC().Format(time.RFC3339) + " → " + end.UTC().Format(time.RFC3339), end.Local().Format(localTimeLayout)} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}

	ct.as("bob")
	ct.fails(2, "--note", "deny", id)
	ct.fails(2, "--note", "revoke", id)

	// The scheduler's part, simulated: the request becomes active with a password that
	// needs quoting.
	password := `it's "a" $secret`
	ct.activate(id, "tbx_alice_"+id, password)

	ct.as("alice")
	var creds timebox.Credentials
	if err := json.Unmarshal([]byte(ct.ok("creds", id)), &creds); err != nil || creds.Password != password || creds.Port != 5433 {
		t.Fatalf("creds -o json: %v, %+v", err, creds)
	}
	if out := ct.ok("creds", id, "-o", "uri"); strings.TrimSpace(out) != creds.URI || !strings.HasPrefix(out, "postgres://") {
		t.Fatalf("creds -o uri: %q, want %q", out, creds.URI)
	}
	env := ct.ok("creds", id, "-o", "env")
	if got := shellEval(t, env, `printf '%s|%s|%s|%s|%s' "$PGHOST" "$PGPORT" "$PGUSER" "$PGPASSWORD" "$PGDATABASE"`); got != "db.example.com|5433|tbx_alice_"+id+"|"+password+"|shop" {
		t.Fatalf("eval of creds -o env gave %q\n%s", got, env)
	}

	ct.as("audrey")
	rows, err := csv.NewReader(strings.NewReader(ct.ok("audit", "-o", "csv"))).ReadAll()
	if err != nil || len(rows) < 4 || rows[0][0] != "seq" || rows[0][3] != "action" {
		t.Fatalf("audit -o csv: %v, %q", err, rows)
	}
	actions := map[string]bool{}
	for _, r := range rows[1:] {
		actions[r[3]] = true
	}
	for _, a := range []string{"request.created", "request.approved", "request.activated", "credentials.viewed"} {
		if !actions[a] {
			t.Errorf("audit -o csv lacks %s: %q", a, rows)
		}
	}
	if out := ct.ok("audit", "--request", id, "--since", "1h"); !strings.HasPrefix(out, "SEQ ") || !strings.Contains(out, `note="one hour is enough"`) {
		t.Errorf("audit table:\n%s", out)
	}
	if out := ct.ok("audit", "--verify"); !strings.HasPrefix(out, "audit log OK: ") || !strings.Contains(out, "chain intact") {
		t.Errorf("audit --verify: %q", out)
	}

	var recs []timebox.AccessRecord
	if err := json.Unmarshal([]byte(ct.ok("report", "access", "-o", "json")), &recs); err != nil {
		t.Fatalf("report access -o json: %v", err)
	}
	if len(recs) != 1 || recs[0].RequestID != id || recs[0].User != "alice" || len(recs[0].ApprovedBy) != 1 || recs[0].ApprovedBy[0] != "bob" {
		t.Fatalf("report access: %+v", recs)
	}
	if out := ct.ok("report", "access"); !strings.Contains(out, "still active") || !strings.Contains(out, "APPROVED BY") {
		t.Errorf("report access table:\n%s", out)
	}

	// Bob revokes; without a scheduler the removal stays pending, which the status says.
	ct.as("bob")
	if out := ct.ok("revoke", id, "--note", "incident closed"); !strings.Contains(out, "revoke pending since") {
		t.Errorf("revoke: %q", out)
	}
	if out := ct.ok("requests", "--mine=false", "--state", "active"); !strings.Contains(out, "active, revoke pending since") {
		t.Errorf("requests after revoke:\n%s", out)
	}
}

// shellEval runs script in sh after eval'ing assignments, and returns its output.
func shellEval(t *testing.T, assignments, script string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", `eval "$1" && `+script, "sh", assignments)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh: %v: %s", err, out)
	}
	return string(out)
}

func TestCLIUsageErrors(t *testing.T) {
	ct := newCLITest(t)
	ct.fails(2, "--for DURATION or --until TIME", "request", "--db", "shop-prod", "--access", "read-only", "--reason", "x")
	ct.fails(2, "--for DURATION or --until TIME", "request", "--db", "shop-prod", "--access", "read-only", "--reason", "x", "--for", "1h", "--until", "+2h")
	ct.fails(2, "--for", "request", "--db", "shop-prod", "--access", "read-only", "--reason", "x", "--for", "soon")
	ct.fails(2, "--until", "request", "--db", "shop-prod", "--access", "read-only", "--reason", "x", "--until", "tomorrowish")
	ct.fails(2, "table, json", "requests", "-o", "bogus")
	ct.fails(2, "json, env, uri", "creds", "abc", "-o", "yaml")
	ct.fails(2, "unknown state", "requests", "--state", "sleeping")
	ct.fails(2, "--note", "deny", "abc", "--note", "  ")
	ct.fails(2, "request ID", "show")
	ct.fails(2, "--verify", "audit", "--verify", "--user", "alice")
	ct.fails(3, "exceeds", "request", "--db", "shop-prod", "--access", "read-only", "--reason", "x", "--for", "9h")
	ct.fails(5, "not found", "show", "nosuchid")

	id := ct.create("--until", "+1h", "--reason", "look")
	if out := ct.ok("cancel", id); strings.TrimSpace(out) != "request "+id+": cancelled" {
		t.Errorf("cancel: %q", out)
	}

	t.Setenv("TIMEBOX_TOKEN", "tbx_wrong")
	ct.fails(4, "", "whoami")
}

// TestCLIPolicyUsageErrors: the policy commands name the flag that is wrong before asking
// the server anything.
func TestCLIPolicyUsageErrors(t *testing.T) {
	ct := newCLITest(t)
	ct.fails(2, "--for: invalid duration", "extend", "abc", "--for", "soon", "--reason", "x")
	ct.fails(2, "--for DURATION or --until TIME", "extend", "abc", "--reason", "x")
	ct.fails(2, "--reason", "extend", "abc", "--for", "1h")
	ct.fails(2, "--for: invalid duration", "policy", "explain", "--db", "shop-prod", "--access", "read-only", "--for", "soon")
	ct.fails(2, "exactly one of --access or --table", "policy", "explain", "--db", "shop-prod", "--for", "1h")
	ct.fails(2, "--table", "request", "--db", "shop-prod", "--table", "a:b:c:d", "--for", "1h", "--reason", "x")
	ct.fails(2, "--note", "users", "disable", "bob")
	ct.fails(2, "table, json", "extend", "abc", "--for", "1h", "--reason", "x", "-o", "yaml")
}

func TestCLILogin(t *testing.T) {
	ct := newCLITest(t)
	dir := os.Getenv("TIMEBOX_CONFIG_DIR")
	t.Setenv("TIMEBOX_SERVER", "")
	t.Setenv("TIMEBOX_TOKEN", "")

	ct.fails(4, "no server: set TIMEBOX_SERVER or run timebox login", "whoami")
	if _, errOut, code := ct.runIn("tbx_wrong\n", "login", "--server", ct.url); code != 4 || !strings.Contains(errOut, "ask an admin for a new one") {
		t.Fatalf("login with a wrong token: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "credentials.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed login saved credentials: %v", err)
	}

	out, errOut, code := ct.runIn(ct.tokens["bob"]+"\n", "login", "--server", ct.url+"/")
	if code != 0 || strings.TrimSpace(out) != "logged in to "+ct.url+" as bob" {
		t.Fatalf("login: exit %d, %q, %q", code, out, errOut)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "credentials.json"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: %v, mode %v, want %v", path, err, fi.Mode().Perm(), want)
		}
	}

	if out := ct.ok("whoami"); !strings.Contains(out, "bob") || !strings.Contains(out, "shop-owners") {
		t.Fatalf("whoami after login: %q", out)
	}
	if out := ct.ok("databases"); !strings.Contains(out, "shop-prod") || !strings.Contains(out, "read-only") || !strings.Contains(out, "yes") {
		t.Fatalf("databases after login:\n%s", out)
	}
	ct.as("alice")
	if out := ct.ok("databases"); strings.Contains(out, " \n") || strings.Contains(out, "yes") {
		t.Fatalf("databases for a non-owner (no trailing spaces, not owner):\n%q", out)
	}
	t.Setenv("TIMEBOX_TOKEN", "")

	// The environment wins, and a saved token never goes to another server.
	t.Setenv("TIMEBOX_TOKEN", ct.tokens["alice"])
	if out := ct.ok("whoami", "-o", "json"); !strings.Contains(out, `"alice"`) {
		t.Fatalf("whoami with TIMEBOX_TOKEN: %q", out)
	}
	t.Setenv("TIMEBOX_TOKEN", "")
	t.Setenv("TIMEBOX_SERVER", "http://127.0.0.1:1")
	ct.fails(4, "no token for http://127.0.0.1:1", "whoami")
}

// fakePsql writes a psql stand-in that prints its arguments and libpq environment and exits
// with code 3.
func fakePsql(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "psql")
	script := "#!/bin/sh\necho \"args: $*\"\necho \"env: $PGHOST $PGPORT $PGUSER $PGPASSWORD $PGDATABASE $PGAPPNAME\"\nexit 3\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCLIConnect(t *testing.T) {
	ct := newCLITest(t)
	id := ct.create("--for", "1h", "--reason", "check an order")
	ct.as("bob")
	ct.ok("approve", id)
	ct.activate(id, "tbx_alice_"+id, "s3cret")
	ct.as("alice")

	t.Setenv("TIMEBOX_PSQL", filepath.Join(t.TempDir(), "missing"))
	ct.fails(5, "TIMEBOX_PSQL", "connect", id)
	t.Setenv("TIMEBOX_PSQL", "")
	t.Setenv("PATH", t.TempDir())
	ct.fails(5, "postgresql-client", "connect", id)

	t.Setenv("TIMEBOX_PSQL", fakePsql(t))
	t.Setenv("PGHOSTADDR", "10.9.9.9")
	var stdout, stderr bytes.Buffer
	root := newRootCommand()
	root.SetArgs([]string{"connect", id, "--", "-c", "select 1"})
	root.SetIn(strings.NewReader(""))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(context.Background())
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 {
		t.Fatalf("connect: %v (%T), want psql's exit code 3", err, err)
	}
	want := "args: -c select 1\nenv: db.example.com 5433 tbx_alice_" + id + " s3cret shop timebox\n"
	if stdout.String() != want {
		t.Fatalf("psql saw\n%q\nwant\n%q", stdout.String(), want)
	}
	ct.fails(2, "request ID", "connect", "--", "-c", "select 1")
}

// TestConnectMySQLOptionFile: for MySQL/MariaDB, connect hands the login to the client in an
// option file only the user can read, the only one the client reads, and removes it after;
// the password is never among the client's arguments.
func TestConnectMySQLOptionFile(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "mariadb")
	script := "#!/bin/sh\necho \"args: $*\"\nf=${1#--defaults-file=}\nstat -c %a \"$f\"\ncat \"$f\"\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TIMEBOX_MYSQL", fake)
	creds := &timebox.Credentials{URI: "mysql://x@db:3307/shop", User: `o"brien`, Password: `p\"w s3cret`, Host: "db", Port: 3307, Database: "shop"}
	p, cleanup, err := clientCommand(creds, "id1", []string{"-e", "select 1"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Output()
	cleanup()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if strings.Contains(strings.Join(p.Args, " "), "s3cret") || strings.Contains(strings.Join(p.Env, " "), "s3cret") {
		t.Fatalf("the password is in the client's arguments or environment: %q", p.Args)
	}
	file := strings.TrimPrefix(p.Args[1], "--defaults-file=")
	want := "args: --defaults-file=" + file + " -e select 1 shop\n600\n" +
		"[client]\nuser=\"o\\\"brien\"\nhost=\"db\"\nport=3307\nprotocol=tcp\npassword=\"p\\\\\\\"w s3cret\"\n"
	if string(out) != want {
		t.Fatalf("the client saw\n%s\nwant\n%s", out, want)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the option file is still there: %v", err)
	}
	creds.URI = "oracle://x@db/shop"
	if _, _, err := clientCommand(creds, "id1", nil); err == nil || !strings.Contains(timebox.ErrorMessage(err), "timebox creds id1") {
		t.Fatalf("an unknown engine: %v", err)
	}
}

func TestCLICredentialsEnvQuoting(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "'plain'",
		"":             "''",
		"it's":         `'it'\''s'`,
		`'$(rm -rf)'`:  `''\''$(rm -rf)'\'''`,
		"a b\n\"c\"\\": "'a b\n\"c\"\\'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	var b bytes.Buffer
	c := &timebox.Credentials{User: "o'brien", Password: "p'w", Host: "h", Port: 5432, Database: "d b"}
	if err := outCredentialsEnv(&b, c); err != nil {
		t.Fatal(err)
	}
	want := "PGHOST='h'\nPGPORT='5432'\nPGUSER='o'\\''brien'\nPGPASSWORD='p'\\''w'\nPGDATABASE='d b'\n" +
		"export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE\n"
	if b.String() != want {
		t.Fatalf("env output:\n%s\nwant:\n%s", b.String(), want)
	}
	if got := shellEval(t, b.String(), `sh -c 'printf "%s|%s|%s" "$PGUSER" "$PGPASSWORD" "$PGDATABASE"'`); got != "o'brien|p'w|d b" {
		t.Fatalf("eval and export gave %q", got)
	}
}

func TestCLIOutputHelpers(t *testing.T) {
	if got := cleanText("ok\x1b[31mred\u202e\tx\xff"); got != `ok\x1b[31mred\u202e\tx`+"\ufffd" {
		t.Errorf("cleanText = %q", got)
	}
	d := map[string]any{"note": "two words", "end": "2026-01-02T15:04:05Z", "empty": "", "attempts": 2.0, "roles": []any{"a"}}
	if got := detailsText(d); got != `attempts=2 end=2026-01-02T15:04:05Z note="two words" roles=["a"]` {
		t.Errorf("detailsText = %s", got)
	}
	var b bytes.Buffer
	if err := outCSV(&b, []string{"a", "b"}, [][]string{{"=cmd()", "x,y"}}); err != nil || b.String() != "a,b\n'=cmd(),\"x,y\"\n" {
		t.Errorf("outCSV = %q, %v", b.String(), err)
	}
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &timebox.Request{State: timebox.StateActive, Ending: timebox.EndingRevoke, EndingSince: since,
		Grant: &timebox.Grant{LastError: strings.Repeat("connection refused ", 5)}}
	got := shortStatus(r)
	if !strings.HasPrefix(got, "active, revoke pending since "+since.Local().Format(localTimeLayout)+", last error: connection refused") || !strings.HasSuffix(got, "…") {
		t.Errorf("shortStatus = %q", got)
	}
}
