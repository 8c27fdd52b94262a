package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeRoots()
	testdb.CloseShared()
	os.Exit(code)
}

// fixture is one set of databases and roles on a server, with an engine connected as a
// non-root admin made by SetupStatements. Every name carries a random suffix so that tests
// can share a server.
type fixture struct {
	m        *testdb.MariaDB
	eng      *Engine
	admin    string
	password string // the admin's
	db       string // target database: table items (one row, readable) and table log (writable)
	other    string // a database whose name db's matches when _ is read as a wildcard
	writer   string // role with INSERT on db.log only
	reader   string // role with SELECT on every table of db
}

// names are the database and role names of a fixture, before the random suffix.
type names struct{ db, writer, reader string }

// plain are ordinary names; the database name holds an underscore, a GRANT wildcard.
var plain = names{db: "shop_", writer: "writer_", reader: "reader_"}

// nasty are names with quotes, backticks, backslashes, semicolons, percent signs and
// non-ASCII characters.
var nasty = names{
	db:     "sh`op 'eu'; DROP\\ %ü_",
	writer: "w'r`\\; é_",
	reader: "r\"d'%_",
}

// suffix returns a short random string.
func suffix() string { return strings.ToLower(rand.Text()[:6]) }

// newFixture prepares a fixture on m and switches the event scheduler on when scheduler is
// set.
func newFixture(t *testing.T, m *testdb.MariaDB, n names, scheduler bool) *fixture {
	t.Helper()
	s := suffix()
	f := &fixture{m: m, admin: "tbadm_" + s, db: n.db + s, writer: n.writer + s, reader: n.reader + s}
	f.other = strings.Replace(f.db, "_", "X", 1) // matched by the pattern shop_… unless escaped
	db, other := QuoteIdent(f.db), QuoteIdent(f.other)
	for _, stmt := range []string{
		"CREATE DATABASE " + db,
		"CREATE TABLE " + db + ".items (id int)",
		"INSERT INTO " + db + ".items VALUES (1)",
		"CREATE TABLE " + db + ".log (id int)",
		"CREATE DATABASE " + other,
		"CREATE TABLE " + other + ".items (id int)",
		"CREATE ROLE " + QuoteString(f.writer),
		"GRANT INSERT ON " + db + ".log TO " + QuoteString(f.writer),
		"CREATE ROLE " + QuoteString(f.reader),
		"GRANT SELECT ON " + onDB(f.db) + " TO " + QuoteString(f.reader),
	} {
		mustExec(t, m, stmt)
	}
	if scheduler {
		mustExec(t, m, "SET GLOBAL event_scheduler = ON")
	}
	f.password = rand.Text()
	for _, stmt := range SetupStatements(f.admin, f.password, "%", []string{f.db, f.other}, []string{f.writer, f.reader}) {
		mustExec(t, m, stmt)
	}
	f.eng = f.engine(t, f.admin, f.password)
	return f
}

// engine returns an engine connected as user, closed at the end of the test.
func (f *fixture) engine(t *testing.T, user, password string) *Engine {
	t.Helper()
	u := url.URL{Scheme: "mysql", User: url.User(user), Host: net.JoinHostPort(f.m.Host, strconv.Itoa(f.m.Port)), Path: "/"}
	eng, err := New("my-test", u.String(), password, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// plan returns an ephemeral-login plan on the fixture's database, ending in an hour: SELECT
// on the database, and the writer role.
func (f *fixture) plan(principal string) timebox.GrantPlan {
	return timebox.GrantPlan{
		Method:     timebox.MethodEphemeralLogin,
		Principal:  principal + suffix(),
		Password:   rand.Text(),
		Database:   f.db,
		Privileges: []string{"select"},
		Roles:      []string{f.writer},
		ValidUntil: time.Now().Add(time.Hour).Truncate(time.Second).Add(123456789 * time.Nanosecond),
	}
}

// grant runs Grant for p and stops the test when it fails.
func (f *fixture) grant(t testing.TB, p timebox.GrantPlan) {
	t.Helper()
	if err := f.eng.Grant(t.Context(), p); err != nil {
		t.Fatalf("grant to %s: %v", p.Principal, err)
	}
}

// revoke runs Revoke for p and stops the test when it fails.
func (f *fixture) revoke(t testing.TB, p timebox.GrantPlan) timebox.RevokeResult {
	t.Helper()
	res, err := f.eng.Revoke(t.Context(), p)
	if err != nil {
		t.Fatalf("revoke of %s: %v", p.Principal, err)
	}
	return res
}

// login opens one connection as user to the fixture's database and stops the test when it
// fails; the connection is closed at the end of the test.
func (f *fixture) login(t testing.TB, user, password string) *sql.Conn {
	t.Helper()
	conn, err := connect(t, f.m, user, password, f.db)
	if err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
	return conn
}

// refusesEphemeral checks that Grant refuses p, a plan for a person's or shared login, with
// EINVALID when its principal is one of Timebox's ephemeral logins.
func (f *fixture) refusesEphemeral(t *testing.T, p timebox.GrantPlan, what string) {
	t.Helper()
	eph := f.plan("tbx_eph_")
	f.grant(t, eph)
	p.Principal = eph.Principal
	wantCode(t, f.eng.Grant(t.Context(), p), timebox.EINVALID, what)
	f.revoke(t, eph)
}

// mustExec runs one statement as root.
func mustExec(t testing.TB, m *testdb.MariaDB, stmt string, args ...any) {
	t.Helper()
	if err := m.Exec(context.Background(), stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// connConfig returns a driver configuration for user on m.
func connConfig(m *testdb.MariaDB, user, password, db string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = user, password, db
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(m.Host, strconv.Itoa(m.Port))
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 10*time.Second, 10*time.Second
	cfg.Logger = &mysql.NopLogger{}
	cfg.ParseTime = true
	return cfg
}

// connect opens one connection as user to db; it is closed at the end of the test.
func connect(t testing.TB, m *testdb.MariaDB, user, password, db string) (*sql.Conn, error) {
	t.Helper()
	connector, err := mysql.NewConnector(connConfig(m, user, password, db))
	if err != nil {
		t.Fatal(err)
	}
	pool := sql.OpenDB(connector)
	pool.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pool.Conn(ctx)
	if err == nil {
		err = conn.PingContext(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	t.Cleanup(func() { conn.Close(); pool.Close() })
	return conn, nil
}

// roots are the root pools of the servers, opened on first use and closed by TestMain.
var roots struct {
	sync.Mutex
	pools map[*testdb.MariaDB]*sql.DB
}

// root returns the root pool of m.
func root(t testing.TB, m *testdb.MariaDB) *sql.DB {
	t.Helper()
	roots.Lock()
	defer roots.Unlock()
	if db := roots.pools[m]; db != nil {
		return db
	}
	connector, err := mysql.NewConnector(connConfig(m, "root", m.RootPassword, ""))
	if err != nil {
		t.Fatal(err)
	}
	if roots.pools == nil {
		roots.pools = map[*testdb.MariaDB]*sql.DB{}
	}
	db := sql.OpenDB(connector)
	db.SetMaxIdleConns(2)
	roots.pools[m] = db
	return db
}

// closeRoots closes the root pools.
func closeRoots() {
	roots.Lock()
	defer roots.Unlock()
	for m, db := range roots.pools {
		db.Close()
		delete(roots.pools, m)
	}
}

// count runs a one-number query as root.
func count(t testing.TB, m *testdb.MariaDB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := root(t, m).QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// accountExists reports whether user@% exists.
func accountExists(t testing.TB, m *testdb.MariaDB, user string) bool {
	return count(t, m, "SELECT COUNT(*) FROM mysql.global_priv WHERE User = ? AND Host = '%'", user) == 1
}

// eventExists reports whether the backstop event of user exists.
func eventExists(t testing.TB, m *testdb.MariaDB, user string) bool {
	return count(t, m, "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = ?",
		DefaultEventSchema, eventName(user)) == 1
}

// wantErrNumber fails unless err carries the server error number n.
func wantErrNumber(t testing.TB, err error, what string, n ...uint16) {
	t.Helper()
	got := errNumber(err)
	for _, want := range n {
		if got == want {
			return
		}
	}
	t.Errorf("%s: got error %v, want server error %v", what, err, n)
}

// wantCode fails unless err is a *timebox.Error with code.
func wantCode(t testing.TB, err error, code, what string) {
	t.Helper()
	var te *timebox.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Errorf("%s: got %v (%T), want a %s *timebox.Error", what, err, err, code)
	}
}
