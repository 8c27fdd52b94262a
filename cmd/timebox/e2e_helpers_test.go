package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/postgres"
	"github.com/timebox-dev/timebox/internal/testdb"
	"github.com/timebox-dev/timebox/store"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the timebox binary for tests that run the server as a
	// separate process (to kill it with SIGKILL).
	if os.Getenv("TIMEBOX_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	code := m.Run()
	testdb.CloseShared()
	os.Exit(code)
}

// env is one Timebox configuration against a hardened PostgreSQL cluster: its own admin
// role, databases and access roles, so tests do not see each other's objects.
type env struct {
	t       *testing.T
	pg      *testdb.Postgres
	dir     string
	cfgPath string
	cfg     *Config
	in      *instance
	tokens  map[string]string
	db      string // the server-side name of the requested database
	other   string // another hardened database on the same server
	admin   string // the Timebox admin role
	role    string // the role access level read-only grants
	maint   string // a shared login, unlocked by database "maint" (method unlock_login)
	// personal is the requester's own login (db_user), used by database "team"
	// (method role_membership).
	personal, personalPassword string
	log                        syncBuffer
	// my is the MariaDB server (envOptions.maria), mdb its requested database; the shared
	// account of mmaint is maint, alice's own account is personal (same name and password).
	my              *testdb.MariaDB
	mdb             string
	myAdminPassword string
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// filteredStderr passes warnings and errors to stderr, as the tests' output.
type filteredStderr struct{}

func (filteredStderr) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("level=WARN")) || bytes.Contains(p, []byte("level=ERROR")) {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// envOptions varies the environment.
type envOptions struct {
	pg       *testdb.Postgres // default: the shared cluster
	dbName   string           // default: shop_<random>
	roleName string           // default: ro_<random>
	user     string           // the requester's name (default alice)
	storePG  *testdb.Postgres // when set, the store is a new database on this cluster
	// maria, when set, adds a MariaDB server "my" with databases mshop (ephemeral_login),
	// mmaint (unlock_login) and mteam (role_membership); see setupMaria.
	maria bool
	// extra is appended to the configuration (rules, break_glass, on_call).
	extra string
}

// newEnv creates databases and roles, hardens them, writes a config and creates tokens.
// It does not start the server: see start and startProcess.
func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.pg == nil {
		o.pg = testdb.RequirePostgres(t)
	}
	suffix := timebox.RandomID(6)
	if o.dbName == "" {
		o.dbName = "shop_" + suffix
	}
	if o.roleName == "" {
		o.roleName = "ro_" + suffix
	}
	if o.user == "" {
		o.user = "alice"
	}
	e := &env{t: t, pg: o.pg, dir: t.TempDir(), db: o.dbName, other: "other_" + suffix, admin: "tbx_admin_" + suffix, role: o.roleName}
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("setup: %v\n%s", err, o.pg.LogTail(20))
		}
	}
	must(o.pg.CreateDatabase(ctx, e.db))
	must(o.pg.CreateDatabase(ctx, e.other))
	must(o.pg.Exec(ctx, "postgres", "CREATE ROLE "+postgres.QuoteIdent(o.roleName)+" NOLOGIN"))
	must(o.pg.Exec(ctx, e.db, "CREATE TABLE orders (id int PRIMARY KEY, customer text)"))
	must(o.pg.Exec(ctx, e.db, "INSERT INTO orders VALUES (1, 'Ada'), (2, 'Grace')"))
	must(o.pg.Exec(ctx, e.db, "GRANT SELECT ON orders TO "+postgres.QuoteIdent(o.roleName)))
	// A shared maintenance login, locked, for method unlock_login.
	e.maint = "maint_" + suffix
	must(o.pg.Exec(ctx, "postgres", "CREATE ROLE "+e.maint+" NOLOGIN"))
	must(o.pg.Exec(ctx, "postgres", "GRANT CONNECT ON DATABASE "+postgres.QuoteIdent(e.db)+" TO "+e.maint))
	must(o.pg.Exec(ctx, e.db, "GRANT SELECT ON orders TO "+e.maint))
	// The requester's own login, for method role_membership: it can log in, but has no
	// CONNECT on the hardened databases.
	e.personal, e.personalPassword = "p_"+suffix, timebox.RandomPassword(24)
	must(o.pg.Exec(ctx, "postgres", "CREATE ROLE "+e.personal+" LOGIN PASSWORD '"+e.personalPassword+"'"))
	adminPassword := timebox.RandomPassword(24)
	for _, s := range postgres.SetupStatements(e.admin, adminPassword, []string{e.db, e.other}, []string{o.roleName}) {
		must(o.pg.Exec(ctx, "postgres", s))
	}
	// Prove the hardening: no database of the cluster is open to PUBLIC.
	var open []string
	conn, err := pgx.Connect(ctx, o.pg.SuperURL("postgres"))
	must(err)
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datallowconn AND has_database_privilege('public', datname, 'CONNECT') AND datname = ANY($1)", []string{e.db, e.other, "postgres", "template1"})
	must(err)
	open, err = pgx.CollectRows(rows, pgx.RowTo[string])
	must(err)
	conn.Close(ctx)
	if len(open) > 0 {
		t.Fatalf("databases still open to PUBLIC after hardening: %v", open)
	}
	writeSecret := func(name, v string) string {
		p := filepath.Join(e.dir, name)
		must(os.WriteFile(p, []byte(v+"\n"), 0o600))
		return "file:" + p
	}
	mariaServer, mariaDatabases, mariaLevel := "", "", ""
	if o.maria {
		e.my, e.mdb, e.myAdminPassword = testdb.RequireMariaDB(t), "mshop_"+suffix, timebox.RandomPassword(24)
		e.setupMaria()
		mariaServer = fmt.Sprintf("  - {name: my, engine: mysql, url: %q, password: %s}\n",
			"mysql://"+e.admin+"@127.0.0.1:"+strconv.Itoa(e.my.Port)+"/", writeSecret("my.password", e.myAdminPassword))
		mariaDatabases = fmt.Sprintf(`  - {name: mshop, server: my, database: %q, environment: prod, owners: [owners]}
  - {name: mmaint, server: my, database: %q, environment: dev, owners: [owners], method: unlock_login, login: %q}
  - {name: mteam, server: my, database: %q, environment: dev, owners: [owners], method: role_membership}
`, e.mdb, e.mdb, e.maint, e.mdb)
		mariaLevel = ", mysql: {privileges: [SELECT]}"
	}
	storeLines := "store: sqlite://" + filepath.Join(e.dir, "timebox.db")
	if o.storePG != nil {
		name := "store_" + suffix
		must(o.storePG.CreateDatabase(ctx, name))
		storeLines = fmt.Sprintf("store: postgres://%s@127.0.0.1:%d/%s?sslmode=disable\nstore_password: %s\naudit_checkpoint: %s",
			o.storePG.SuperUser, o.storePG.Port, name, writeSecret("store.password", o.storePG.SuperPassword),
			filepath.Join(e.dir, "audit-checkpoint.log"))
	}
	yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
%s
secret_key: %s
sweep_interval: 2s
log_level: warn
admin_groups: [platform]
auditor_groups: [security]
users:
  - {name: %q, groups: [developers], db_user: %q}
  - {name: bob, groups: [owners]}
  - {name: mallory, groups: [developers]}
  - {name: root, groups: [platform, owners]}
  - {name: audrey, groups: [security]}
  - {name: olga, groups: [developers, oncall]}
servers:
  - {name: pg, engine: postgres, url: %q, password: %s}
%sdatabases:
  - {name: shop, server: pg, database: %q, environment: prod, owners: [owners]}
  - {name: other, server: pg, database: %q, environment: dev, owners: [owners]}
  - {name: maint, server: pg, database: %q, environment: dev, owners: [owners], method: unlock_login, login: %q}
  - {name: team, server: pg, database: %q, environment: dev, owners: [owners], method: role_membership}
%saccess_levels:
  - {name: read-only, postgres: {roles: [%q]}%s}
limits:
  prod: {max_duration: 1h, min_duration: 1s, max_lead_time: 24h, require_ticket: true}
  dev: {max_duration: 1h, min_duration: 1s, max_lead_time: 24h}
%s`, freePort(t), storeLines, writeSecret("secret.key", timebox.RandomPassword(32)),
		o.user, e.personal, "postgres://"+e.admin+"@127.0.0.1:"+strconv.Itoa(o.pg.Port)+"/postgres?sslmode=disable",
		writeSecret("pg.password", adminPassword), mariaServer, e.db, e.other, e.db, e.maint, e.db, mariaDatabases, o.roleName, mariaLevel, o.extra)
	e.cfgPath = filepath.Join(e.dir, "timebox.yaml")
	must(os.WriteFile(e.cfgPath, []byte(yaml), 0o600))
	e.cfg, err = loadConfig(e.cfgPath)
	must(err)
	dsn, err := e.cfg.storeDSN()
	must(err)
	st, err := store.Open(ctx, dsn)
	must(err)
	keys, err := e.cfg.keyring()
	must(err)
	e.tokens = map[string]string{}
	for _, u := range e.cfg.Users {
		e.tokens[u.Name], err = createToken(ctx, st, &e.cfg.Catalog, keys, u.Name)
		must(err)
	}
	must(st.Close())
	return e
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the server in this process.
func (e *env) start() {
	e.t.Helper()
	// Everything the server logs, at debug level, is kept: tests check no secret is in it.
	logger, _ := newLogger(io.MultiWriter(&e.log, filteredStderr{}), "debug")
	in, err := startInstance(context.Background(), e.cfg, logger)
	if err != nil {
		e.t.Fatal(err)
	}
	in.Scheduler.MinBackoff, in.Scheduler.MaxBackoff = 100*time.Millisecond, 500*time.Millisecond
	e.in = in
	e.t.Cleanup(func() { e.stop() })
}

func (e *env) stop() {
	if e.in != nil {
		e.in.Close()
		e.in = nil
	}
}

func (e *env) url() string { return "http://" + e.cfg.Listen }

// process is the server running as a child process (so it can be killed).
type process struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// startProcess runs `timebox server` as a child process, killed with SIGKILL at killAt
// (a scheduler step) when it is not empty, and waits until it answers /healthz.
func (e *env) startProcess(killAt string) *process {
	e.t.Helper()
	p := &process{done: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0], "server", "--config", e.cfgPath)
	p.cmd.Env = append(os.Environ(), "TIMEBOX_TEST_AS_MAIN=1", "TIMEBOX_FAULT_KILL_AT="+killAt)
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	e.t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", e.cfg.Listen); err == nil {
			c.Close()
			return p
		}
		select {
		case err := <-p.done:
			e.t.Fatalf("server exited at start: %v\n%s", err, p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	e.t.Fatalf("server did not start\n%s", p.stderr.String())
	return nil
}

// waitExit waits for the process to die (e.g. by fault injection) and returns its error.
func (p *process) waitExit(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(within):
		t.Fatalf("server still running after %s\n%s", within, p.stderr.String())
	}
	return nil
}

// cli runs the CLI as user against the environment's server.
func (e *env) cli(user string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	e.t.Setenv("TIMEBOX_SERVER", e.url())
	e.t.Setenv("TIMEBOX_TOKEN", e.tokens[user])
	e.t.Setenv("TIMEBOX_CONFIG_DIR", e.dir)
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// ok runs the CLI and fails the test unless it exits 0.
func (e *env) ok(user string, args ...string) string {
	e.t.Helper()
	out, errs, code := e.cli(user, args...)
	if code != 0 {
		e.t.Fatalf("timebox %s (as %s): exit %d\n%s%s", strings.Join(args, " "), user, code, out, errs)
	}
	return out
}

// fails runs the CLI, expects a non-zero exit and an error containing want.
func (e *env) fails(want, user string, args ...string) {
	e.t.Helper()
	out, errs, code := e.cli(user, args...)
	if code == 0 {
		e.t.Fatalf("timebox %s (as %s) succeeded, want error %q\n%s", strings.Join(args, " "), user, want, out)
	}
	if !strings.HasPrefix(errs, "error: ") || !strings.Contains(errs, want) {
		e.t.Fatalf("timebox %s (as %s): stderr %q, want error containing %q", strings.Join(args, " "), user, errs, want)
	}
}

// requestView is the part of a request's JSON the tests read.
type requestView struct {
	ID          string    `json:"id"`
	State       string    `json:"state"`
	Status      string    `json:"status"`
	Requester   string    `json:"requester"`
	Database    string    `json:"database"`
	Access      string    `json:"access"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Reason      string    `json:"reason"`
	Ticket      string    `json:"ticket"`
	Ending      string    `json:"ending"`
	EndingSince time.Time `json:"ending_since"`
	Grant       *struct {
		Principal string `json:"principal"`
		Status    string `json:"status"`
		LastError string `json:"last_error"`
		Outcome   string `json:"outcome"`
	} `json:"grant"`
}

func (e *env) show(user, id string) requestView {
	e.t.Helper()
	var r requestView
	if err := json.Unmarshal([]byte(e.ok(user, "show", id, "-o", "json")), &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// request files a request as the requester and returns its id.
func (e *env) request(user string, args ...string) string {
	e.t.Helper()
	out := e.ok(user, append([]string{"request", "-o", "json"}, args...)...)
	var r requestView
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.ID == "" {
		e.t.Fatalf("request -o json: %v\n%s", err, out)
	}
	return r.ID
}

// waitState polls until the request is in state (and not ending), or fails after within.
func (e *env) waitState(user, id, state string, within time.Duration) requestView {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := e.show(user, id)
		if r.State == state && r.Ending == "" {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("request %s is %q (%s), want %s after %s", id, r.State, r.Status, state, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type creds struct {
	User, Password, Host, Database, URI string
	Port                                int
	ExpiresAt                           time.Time `json:"expires_at"`
}

func (e *env) creds(user, id string) creds {
	e.t.Helper()
	var c creds
	if err := json.Unmarshal([]byte(e.ok(user, "creds", id, "-o", "json")), &c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// connect logs in with c to database db (default c.Database).
func (c creds) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	if db == "" {
		db = c.Database
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d sslmode=disable connect_timeout=5", c.Host, c.Port))
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password, cfg.Database = c.User, c.Password, db
	return pgx.ConnectConfig(ctx, cfg)
}

// super connects to the cluster's postgres database as the superuser for the rest of the
// test, and returns the connection and a function that runs one statement on it, failing the
// test on an error.
func (e *env) super() (*pgx.Conn, func(sql string)) {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pg.SuperURL("postgres"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close(ctx) })
	return conn, func(sql string) {
		e.t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			e.t.Fatalf("%s: %v", sql, err)
		}
	}
}

// roleExists reports whether a role exists on the cluster, and whether it can log in.
func (e *env) roleExists(name string) (exists, canLogin bool) {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pg.SuperURL("postgres"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", name).Scan(&canLogin)
	if err == pgx.ErrNoRows {
		return false, false
	} else if err != nil {
		e.t.Fatal(err)
	}
	return true, canLogin
}

// tbxRoles lists the Timebox-made roles whose name contains part.
func (e *env) tbxRoles(part string) []string {
	e.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pg.SuperURL("postgres"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "SELECT rolname FROM pg_roles WHERE rolname LIKE 'tbx\\_%' AND strpos(rolname, $1) > 0 AND rolname NOT LIKE 'tbx\\_admin\\_%'", part)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		e.t.Fatal(err)
	}
	return names
}

// events returns the audit events of a request (as an admin).
func (e *env) events(id string) []timebox.Event {
	e.t.Helper()
	var es []timebox.Event
	if err := json.Unmarshal([]byte(e.ok("root", "audit", "--request", id, "-o", "json")), &es); err != nil {
		e.t.Fatal(err)
	}
	return es
}

// eventsAll returns the whole audit log (as an admin).
func (e *env) eventsAll() []timebox.Event {
	e.t.Helper()
	var es []timebox.Event
	if err := json.Unmarshal([]byte(e.ok("root", "audit", "-o", "json")), &es); err != nil {
		e.t.Fatal(err)
	}
	return es
}

func countActions(es []timebox.Event, action string) int {
	n := 0
	for _, ev := range es {
		if ev.Action == action {
			n++
		}
	}
	return n
}
