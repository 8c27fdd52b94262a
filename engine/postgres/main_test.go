package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testdb.CloseShared()
	os.Exit(code)
}

// setupMu serialises the hardening statements of parallel tests.
var setupMu sync.Mutex

// fixture is one hardened set of databases and roles on a cluster, with an engine connected
// as a non-superuser admin. Every name carries a random suffix so that tests can share a
// cluster.
type fixture struct {
	pg       *testdb.Postgres
	eng      *Engine
	admin    string
	password string // the admin's
	db       string // target database, with a table "items" holding one row
	other    string // another hardened database
	reader   string // role with SELECT on every table of db
	ddl      string // role with CREATE on db's public schema
}

// names are the database, other database and reader role names of a fixture, before the
// random suffix.
type names struct{ db, other, reader string }

// suffix returns a short random string.
func suffix() string { return strings.ToLower(rand.Text()[:8]) }

// newFixture prepares a fixture on pg.
func newFixture(t *testing.T, pg *testdb.Postgres, n names) *fixture {
	t.Helper()
	ctx := t.Context()
	s := suffix()
	f := &fixture{pg: pg, admin: "tbadmin_" + s, db: n.db + s, other: n.other + s, reader: n.reader + s, ddl: `ddl "w"; ` + s}
	for _, db := range []string{f.db, f.other} {
		if err := pg.CreateDatabase(ctx, db); err != nil {
			t.Fatalf("create database %q: %v", db, err)
		}
	}
	mustExec(t, pg, f.db, "CREATE TABLE items (id int); INSERT INTO items VALUES (1);"+
		"CREATE ROLE "+QuoteIdent(f.reader)+" NOLOGIN;"+
		"GRANT USAGE ON SCHEMA public TO "+QuoteIdent(f.reader)+";"+
		"GRANT SELECT ON ALL TABLES IN SCHEMA public TO "+QuoteIdent(f.reader)+";"+
		"CREATE ROLE "+QuoteIdent(f.ddl)+" NOLOGIN;"+
		"GRANT USAGE, CREATE ON SCHEMA public TO "+QuoteIdent(f.ddl))
	password := rand.Text()
	// Parallel fixtures would race on pg_database's access lists ("tuple concurrently updated").
	setupMu.Lock()
	for _, stmt := range SetupStatements(f.admin, password, []string{f.db, f.other}, []string{f.reader, f.ddl}) {
		mustExec(t, pg, "postgres", stmt)
	}
	setupMu.Unlock()
	eng, err := New("pg-test", adminURL(pg, f.admin), password, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	f.eng, f.password = eng, password
	return f
}

// adminURL returns the URL of user on pg's postgres database, without a password.
func adminURL(pg *testdb.Postgres, user string) string {
	u, err := url.Parse(pg.URL(user, "x", "postgres"))
	if err != nil {
		panic(err)
	}
	u.User = url.User(user)
	return u.String()
}

// plan returns a plan for a new principal on the fixture's database, ending in an hour (with
// nanoseconds, to check that VALID UNTIL is truncated, not rounded up).
func (f *fixture) plan(principal string) timebox.GrantPlan {
	return timebox.GrantPlan{
		Method:     timebox.MethodEphemeralLogin,
		Principal:  principal + suffix(),
		Password:   rand.Text(),
		Database:   f.db,
		Roles:      []string{f.reader},
		ValidUntil: time.Now().Add(time.Hour).Truncate(time.Second).Add(123456789 * time.Nanosecond),
	}
}

// mustExec runs sql as the superuser in db.
func mustExec(t *testing.T, pg *testdb.Postgres, db, sql string, args ...any) {
	t.Helper()
	if err := pg.Exec(t.Context(), db, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// connect opens a connection as user.
func connect(t *testing.T, pg *testdb.Postgres, user, password, db string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.URL(user, password, db))
	if err == nil {
		t.Cleanup(func() { conn.Close(context.Background()) })
	}
	return conn, err
}

// superQueryRow runs a one-row query as the superuser in db and scans it into dest.
func superQueryRow(t *testing.T, pg *testdb.Postgres, db, sql string, args []any, dest ...any) error {
	t.Helper()
	conn, err := connect(t, pg, pg.SuperUser, pg.SuperPassword, db)
	if err != nil {
		t.Fatal(err)
	}
	return conn.QueryRow(t.Context(), sql, args...).Scan(dest...)
}

// roleExists reports whether a role called name exists.
func roleExists(t *testing.T, pg *testdb.Postgres, name string) bool {
	t.Helper()
	var n int
	if err := superQueryRow(t, pg, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname = $1", []any{name}, &n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// wantValidUntil fails unless the role called name has VALID UNTIL end, truncated to the
// microsecond (never rounded up).
func wantValidUntil(t *testing.T, pg *testdb.Postgres, name string, end time.Time, what string) {
	t.Helper()
	var until time.Time
	if err := superQueryRow(t, pg, "postgres", "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", []any{name}, &until); err != nil {
		t.Fatal(err)
	}
	if want := end.Truncate(time.Microsecond); !until.Equal(want) {
		t.Errorf("%s = %v, want %v", what, until, want)
	}
}

// wantSQLState fails unless err carries the SQLSTATE code.
func wantSQLState(t *testing.T, err error, code, what string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Errorf("%s: got error %v, want SQLSTATE %s", what, err, code)
	}
}

// wantCode fails unless err is a *timebox.Error with code.
func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	var te *timebox.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Errorf("%s: got %v (%T), want a %s *timebox.Error", what, err, err, code)
	}
}
