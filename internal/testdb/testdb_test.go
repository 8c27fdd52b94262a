package testdb

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// crashHelperEnv makes the test binary act as a test process that starts
// servers and then dies without cleaning up (see TestWatchdogAfterCrash).
const crashHelperEnv = "TIMEBOX_TESTDB_CRASH_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) == "1" {
		crashHelper()
		return
	}
	code := m.Run()
	CloseShared()
	os.Exit(code)
}

// Names that need quoting and escaping everywhere.
const (
	weirdDB       = `we"ird; name ü`
	weirdUser     = `us'er "x"; ü@`
	weirdPassword = `p@ss:w/ord?#%&'" ü;`
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// pgQuery connects to url, runs a query returning one text row and closes
// the connection.
func pgQuery(ctx context.Context, url, query string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, query).Scan(&s)
	return s, err
}

func pgErrCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func processAlive(pid int, mark string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), mark+"/")
}

func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatalf("read postmaster.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		t.Fatalf("parse postmaster.pid: %v", err)
	}
	return pid
}

func TestPostgresLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	begin := time.Now()
	pg, err := StartPostgres(ctx)
	if err != nil {
		skipOrFail(t, err)
	}
	t.Logf("StartPostgres took %v (PostgreSQL %d on port %d)", time.Since(begin).Round(time.Millisecond), pg.Version, pg.Port)
	t.Cleanup(func() { _ = pg.Close() })
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", pg.LogTail(40))
		}
	}()

	if pg.Host != "127.0.0.1" || pg.Port <= 0 || pg.SuperUser != "postgres" || pg.SuperPassword == "" || pg.Version < 10 {
		t.Fatalf("unexpected fields: %+v", pg)
	}
	if !strings.HasPrefix(filepath.Base(pg.root), "timebox-pg-") || !strings.HasPrefix(pg.Dir, pg.root+string(filepath.Separator)) {
		t.Errorf("Dir %q is not inside a timebox-pg- temp dir (%q)", pg.Dir, pg.root)
	}
	if fi, err := os.Stat(pg.root); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("temp dir mode %v; want 0700", fi.Mode().Perm())
	}

	// pg_hba.conf allows password logins only.
	hba, err := os.ReadFile(filepath.Join(pg.Dir, "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, line := range strings.Split(string(hba), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			rules = append(rules, strings.Join(strings.Fields(line), " "))
		}
	}
	if want := []string{"local all all scram-sha-256", "host all all 127.0.0.1/32 scram-sha-256"}; strings.Join(rules, "|") != strings.Join(want, "|") {
		t.Errorf("pg_hba.conf rules = %q, want %q", rules, want)
	}

	// The right password works; wrong and empty passwords are refused,
	// over TCP and over the unix socket: password auth, not trust.
	if got, err := pgQuery(ctx, pg.SuperURL("postgres"), "SELECT current_setting('fsync')"); err != nil || got != "off" {
		t.Fatalf("superuser login: %q, %v", got, err)
	}
	for _, pw := range []string{"wrong", ""} {
		_, err := pgQuery(ctx, pg.URL("postgres", pw, "postgres"), "SELECT 1")
		if err == nil {
			t.Fatalf("login with password %q succeeded; want it refused", pw)
		}
		if pw != "" && pgErrCode(err) != "28P01" {
			t.Errorf("login with wrong password: got %v, want SQLSTATE 28P01 (invalid_password)", err)
		}
	}
	for _, pw := range []string{"wrong", pg.SuperPassword} {
		cfg, err := pgx.ParseConfig(pg.URL("postgres", pw, "postgres"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Host = pg.sockDir
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := pgx.ConnectConfig(cctx, cfg)
		cancel()
		if pw == "wrong" {
			if err == nil || pgErrCode(err) != "28P01" {
				t.Errorf("unix socket login with wrong password: got %v, want SQLSTATE 28P01", err)
			}
		} else if err != nil {
			t.Errorf("unix socket login with right password: %v", err)
		}
		if conn != nil {
			conn.Close(ctx)
		}
	}

	// Weird database, role and password names survive quoting and URLs.
	if err := pg.CreateDatabase(ctx, weirdDB); err != nil {
		t.Fatalf("CreateDatabase(%q): %v", weirdDB, err)
	}
	if got, err := pgQuery(ctx, pg.SuperURL(weirdDB), "SELECT current_database()"); err != nil || got != weirdDB {
		t.Fatalf("current_database() = %q, %v; want %q", got, err, weirdDB)
	}
	err = pg.Exec(ctx, "", "CREATE ROLE "+pgx.Identifier{weirdUser}.Sanitize()+
		" LOGIN PASSWORD '"+strings.ReplaceAll(weirdPassword, "'", "''")+"'")
	if err != nil {
		t.Fatalf("create role: %v", err)
	}
	if err := pg.Exec(ctx, weirdDB, "SELECT $1::text", "args work"); err != nil {
		t.Fatalf("Exec with args: %v", err)
	}
	if err := pg.Exec(ctx, weirdDB, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatalf("Exec with two statements: %v", err)
	}
	if got, err := pgQuery(ctx, pg.URL(weirdUser, weirdPassword, weirdDB), "SELECT current_user || '|' || current_database()"); err != nil || got != weirdUser+"|"+weirdDB {
		t.Fatalf("login as weird role: %q, %v", got, err)
	}

	// Stop makes connections fail; Start brings the same server back.
	if err := pg.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := pgQuery(ctx, pg.SuperURL("postgres"), "SELECT 1"); err == nil {
		t.Fatal("connection succeeded after Stop")
	}
	begin = time.Now()
	if err := pg.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start (restart) took %v", time.Since(begin).Round(time.Millisecond))
	if got, err := pgQuery(ctx, pg.SuperURL(weirdDB), "SELECT x::text FROM kept"); err != nil || got != "42" {
		t.Fatalf("data after Start: %q, %v; want 42", got, err)
	}
	if !strings.Contains(pg.LogTail(50), "ready to accept connections") {
		t.Errorf("LogTail(50) lacks the ready message:\n%s", pg.LogTail(50))
	}

	// Close stops the server and removes everything; twice is fine.
	pid := postmasterPID(t, pg.Dir)
	if !processAlive(pid, pg.root) {
		t.Fatalf("postmaster %d not found by its command line, which the watchdog relies on", pid)
	}
	if err := pg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(pg.root); !os.IsNotExist(err) {
		t.Errorf("temp dir %s still exists after Close (%v)", pg.root, err)
	}
	if processAlive(pid, pg.root) {
		t.Errorf("postmaster %d still running after Close", pid)
	}
	if err := pg.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := pgQuery(ctx, pg.SuperURL("postgres"), "SELECT 1"); err == nil {
		t.Error("connection succeeded after Close")
	}
	if pg.LogTail(5) == "" {
		t.Error("LogTail is empty after Close")
	}
}

// mariaOpen opens a database/sql handle for dsn.
func mariaOpen(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := openMaria(dsn)
	if err != nil {
		t.Fatalf("DSN %q: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mariaQuery runs a query returning one text row on a fresh connection.
func mariaQuery(ctx context.Context, t *testing.T, dsn, query string) (string, error) {
	t.Helper()
	db, err := openMaria(dsn)
	if err != nil {
		t.Fatalf("DSN %q: %v", dsn, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var s string
	err = db.QueryRowContext(ctx, query).Scan(&s)
	return s, err
}

func mysqlErrNumber(err error) uint16 {
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number
	}
	return 0
}

func TestMariaDBLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	begin := time.Now()
	m, err := StartMariaDB(ctx)
	if err != nil {
		skipOrFail(t, err)
	}
	t.Logf("StartMariaDB took %v (port %d)", time.Since(begin).Round(time.Millisecond), m.Port)
	t.Cleanup(func() { _ = m.Close() })
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", m.LogTail(40))
		}
	}()

	if m.Host != "127.0.0.1" || m.Port <= 0 || m.RootPassword == "" {
		t.Fatalf("unexpected fields: %+v", m)
	}
	if !strings.HasPrefix(filepath.Base(m.root), "timebox-mariadb-") || !strings.HasPrefix(m.Dir, m.root+string(filepath.Separator)) {
		t.Errorf("Dir %q is not inside a timebox-mariadb- temp dir (%q)", m.Dir, m.root)
	}
	if _, err := os.Stat(filepath.Join(m.root, "init.sql")); !os.IsNotExist(err) {
		t.Errorf("init.sql with the root password left behind (%v)", err)
	}

	// Root logs in with its password only.
	if got, err := mariaQuery(ctx, t, m.DSN("root", m.RootPassword, ""), "SELECT CURRENT_USER()"); err != nil || !strings.HasPrefix(got, "root@") {
		t.Fatalf("root login: %q, %v", got, err)
	}
	for _, pw := range []string{"wrong", ""} {
		_, err := mariaQuery(ctx, t, m.DSN("root", pw, ""), "SELECT 1")
		if mysqlErrNumber(err) != 1045 {
			t.Errorf("root login with password %q: got %v, want error 1045 (access denied)", pw, err)
		}
	}
	if got, err := mariaQuery(ctx, t, m.DSN("root", m.RootPassword, ""), "SELECT CAST(COUNT(*) AS CHAR) FROM mysql.global_priv WHERE User=''"); err != nil || got != "0" {
		t.Errorf("anonymous accounts: %q, %v; want 0", got, err)
	}

	// A user created as 'u'@'%' logs in from 127.0.0.1, which an anonymous
	// ''@'localhost' account would shadow.
	if err := m.Exec(ctx, "CREATE USER 'u'@'%' IDENTIFIED BY 'u-secret'"); err != nil {
		t.Fatalf("create user: %v", err)
	}
	if got, err := mariaQuery(ctx, t, m.DSN("u", "u-secret", ""), "SELECT CURRENT_USER()"); err != nil || got != "u@%" {
		t.Fatalf("login as u: %q, %v; want u@%%", got, err)
	}
	if _, err := mariaQuery(ctx, t, m.DSN("u", "wrong", ""), "SELECT 1"); mysqlErrNumber(err) != 1045 {
		t.Errorf("u with wrong password: got %v, want 1045", err)
	}

	// Weird names survive quoting and the DSN format.
	if err := m.Exec(ctx, "CREATE DATABASE `"+strings.ReplaceAll(weirdDB, "`", "``")+"`"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	if err := m.Exec(ctx, "CREATE USER "+mariaQuote(weirdUser)+"@'%' IDENTIFIED BY "+mariaQuote(weirdPassword)); err != nil {
		t.Fatalf("create weird user: %v", err)
	}
	if err := m.Exec(ctx, "GRANT ALL ON `"+weirdDB+"`.* TO "+mariaQuote(weirdUser)+"@'%'"); err != nil {
		t.Fatalf("grant: %v", err)
	}
	if err := m.Exec(ctx, "SELECT ?", "args work"); err != nil {
		t.Fatalf("Exec with args: %v", err)
	}
	if got, err := mariaQuery(ctx, t, m.DSN(weirdUser, weirdPassword, weirdDB), "SELECT CONCAT(CURRENT_USER(), '|', DATABASE())"); err != nil || got != weirdUser+"@%|"+weirdDB {
		t.Fatalf("login as weird user: %q, %v", got, err)
	}

	// Stop makes connections fail; Start brings the same server back.
	db := mariaOpen(t, m.DSN("u", "u-secret", ""))
	if err := m.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = db.PingContext(pctx)
	cancel()
	if err == nil {
		t.Fatal("ping succeeded after Stop")
	}
	begin = time.Now()
	if err := m.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start (restart) took %v", time.Since(begin).Round(time.Millisecond))
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("ping after Start: %v", err)
	}
	if got, err := mariaQuery(ctx, t, m.DSN(weirdUser, weirdPassword, weirdDB), "SELECT DATABASE()"); err != nil || got != weirdDB {
		t.Fatalf("after Start: %q, %v", got, err)
	}

	// Close kills the server and removes everything; twice is fine.
	pid := m.proc.cmd.Process.Pid
	if !processAlive(pid, m.root) {
		t.Fatalf("mariadbd %d not found by its command line, which the watchdog relies on", pid)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(m.root); !os.IsNotExist(err) {
		t.Errorf("temp dir %s still exists after Close (%v)", m.root, err)
	}
	if processAlive(pid, m.root) {
		t.Errorf("mariadbd %d still running after Close", pid)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if m.LogTail(5) == "" {
		t.Error("LogTail is empty after Close")
	}
}

func TestShared(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	pg := RequirePostgres(t)
	if again := RequirePostgres(t); again != pg {
		t.Fatal("RequirePostgres returned a different cluster on the second call")
	}
	if err := pg.Exec(ctx, "", "SELECT 1"); err != nil {
		t.Fatalf("shared Postgres: %v", err)
	}
	m := RequireMariaDB(t)
	if again := RequireMariaDB(t); again != m {
		t.Fatal("RequireMariaDB returned a different server on the second call")
	}
	if err := m.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("shared MariaDB: %v", err)
	}
}

func TestURLAndDSN(t *testing.T) {
	pg := &Postgres{Host: "127.0.0.1", Port: 5433}
	for _, db := range []string{weirdDB, "a/b?c#d%e", "plain", ""} {
		u := pg.URL(weirdUser, weirdPassword, db)
		cfg, err := pgconn.ParseConfig(u)
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", u, err)
		}
		// An empty database stays empty: the server then uses the user name.
		if cfg.User != weirdUser || cfg.Password != weirdPassword || cfg.Database != db || cfg.Host != "127.0.0.1" || cfg.Port != 5433 || cfg.TLSConfig != nil {
			t.Errorf("URL %q parses to user %q password %q db %q host %s:%d tls %v", u, cfg.User, cfg.Password, cfg.Database, cfg.Host, cfg.Port, cfg.TLSConfig != nil)
		}
	}
	if got, want := pg.URL("u", "p", "d"), "postgres://u:p@127.0.0.1:5433/d?sslmode=disable"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}

	m := &MariaDB{Host: "127.0.0.1", Port: 3307}
	if got, want := m.DSN("u", "p", "d"), "u:p@tcp(127.0.0.1:3307)/d?parseTime=true&multiStatements=false"; got != want {
		t.Errorf("DSN = %q, want %q", got, want)
	}
	for _, db := range []string{weirdDB, "a/b?c", ""} {
		dsn := m.DSN(weirdUser, weirdPassword, db)
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatalf("ParseDSN(%q): %v", dsn, err)
		}
		if cfg.User != weirdUser || cfg.Passwd != weirdPassword || cfg.DBName != db || cfg.Addr != "127.0.0.1:3307" || !cfg.ParseTime || cfg.MultiStatements {
			t.Errorf("DSN %q parses to %+v", dsn, cfg)
		}
	}
}

// fakeTB records whether a test would have been skipped or failed.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skip(args ...any) {
	f.skipped, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) {
	f.failed, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}

func runFake(f func(tb testing.TB)) *fakeTB {
	tb := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	<-done
	return tb
}

func TestMissingBinariesSkipOrFail(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("TIMEBOX_PG_BINDIR", empty)
	t.Setenv("TIMEBOX_MARIADB_BINDIR", empty)
	ctx := testCtx(t)

	_, pgErr := StartPostgres(ctx)
	if pgErr == nil || !errors.Is(pgErr, errNotInstalled) ||
		!strings.Contains(pgErr.Error(), "no PostgreSQL server binaries found (initdb): install Debian package postgresql (apt-get install postgresql) or set TIMEBOX_PG_BINDIR") {
		t.Fatalf("StartPostgres without binaries: %v", pgErr)
	}
	_, myErr := StartMariaDB(ctx)
	if myErr == nil || !errors.Is(myErr, errNotInstalled) || !strings.Contains(myErr.Error(), "mariadb-server") {
		t.Fatalf("StartMariaDB without binaries: %v", myErr)
	}

	for _, ci := range []string{"true", ""} {
		t.Setenv("CI", ci)
		for _, err := range []error{pgErr, myErr} {
			tb := runFake(func(tb testing.TB) { skipOrFail(tb, err) })
			if ci == "true" && (!tb.failed || tb.skipped) {
				t.Errorf("CI=true, missing binaries: failed=%v skipped=%v; want a failure", tb.failed, tb.skipped)
			}
			if ci == "" && (!tb.skipped || tb.failed) {
				t.Errorf("CI unset, missing binaries: failed=%v skipped=%v; want a skip", tb.failed, tb.skipped)
			}
			if tb.msg != err.Error() {
				t.Errorf("message %q, want %q", tb.msg, err.Error())
			}
		}
		// Other start errors always fail.
		tb := runFake(func(tb testing.TB) { skipOrFail(tb, errors.New("initdb: boom")) })
		if !tb.failed {
			t.Errorf("CI=%q, other error: want a failure", ci)
		}
	}

	// The shared helpers go the same way (and do not keep the failure).
	t.Setenv("CI", "true")
	tb := runFake(func(tb testing.TB) { RequirePostgres(tb) })
	if !tb.failed {
		t.Error("RequirePostgres with CI=true and no binaries did not fail")
	}
	tb = runFake(func(tb testing.TB) { RequireMariaDB(tb) })
	if !tb.failed {
		t.Error("RequireMariaDB with CI=true and no binaries did not fail")
	}
	CloseShared()
}

func TestPortCollisionRetry(t *testing.T) {
	ctx := testCtx(t)
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	// The first port handed out is taken, as if another process had
	// grabbed it between freePort and the server's bind.
	collide := func() {
		var calls int
		pickPort = func() (int, error) {
			calls++
			if calls == 1 {
				return busyPort, nil
			}
			return freePort()
		}
	}
	t.Cleanup(func() { pickPort = freePort })

	collide()
	if _, err := PostgresBinDir(); err != nil {
		skipOrFail(t, err)
	}
	begin := time.Now()
	pg, err := StartPostgres(ctx)
	if err != nil {
		t.Fatalf("StartPostgres with a taken port: %v", err)
	}
	t.Logf("StartPostgres with one port collision took %v", time.Since(begin).Round(time.Millisecond))
	defer pg.Close()
	if pg.Port == busyPort {
		t.Fatalf("Postgres claims the taken port %d", busyPort)
	}
	if !strings.Contains(pg.LogTail(100), "could not bind") {
		t.Errorf("no bind failure in the log; was the taken port tried?\n%s", pg.LogTail(100))
	}
	if err := pg.Exec(ctx, "", "SELECT 1"); err != nil {
		t.Fatal(err)
	}

	collide()
	if _, _, err := mariaBinaries(); err != nil {
		skipOrFail(t, err)
	}
	begin = time.Now()
	m, err := StartMariaDB(ctx)
	if err != nil {
		t.Fatalf("StartMariaDB with a taken port: %v", err)
	}
	t.Logf("StartMariaDB with one port collision took %v\n%s", time.Since(begin).Round(time.Millisecond), m.LogTail(30))
	defer m.Close()
	if m.Port == busyPort {
		t.Fatalf("MariaDB claims the taken port %d", busyPort)
	}
	if err := m.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// crashHelper runs in a child test binary: it starts both servers, reports
// their pids and temp dirs and kills itself without cleaning up.
func crashHelper() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := StartPostgres(ctx)
	if err != nil {
		fmt.Printf("ERROR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(3)
	}
	b, _ := os.ReadFile(filepath.Join(pg.Dir, "postmaster.pid"))
	fmt.Printf("PG %s %s\n", strings.SplitN(string(b), "\n", 2)[0], pg.root)
	m, err := StartMariaDB(ctx)
	if err != nil {
		fmt.Printf("ERROR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(3)
	}
	fmt.Printf("MARIA %d %s\n", m.proc.cmd.Process.Pid, m.root)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func TestWatchdogAfterCrash(t *testing.T) {
	t.Parallel()
	if _, err := PostgresBinDir(); err != nil {
		skipOrFail(t, err)
	}
	if _, _, err := mariaBinaries(); err != nil {
		skipOrFail(t, err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1")
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 10 * time.Second // fails the test if a server kept our pipe open
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper did not die by SIGKILL: %v\n%s", err, out)
	}
	type server struct {
		pid  int
		root string
	}
	var servers []server
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) == 3 && (f[0] == "PG" || f[0] == "MARIA") {
			pid, _ := strconv.Atoi(f[1])
			servers = append(servers, server{pid, f[2]})
		}
	}
	if len(servers) != 2 {
		t.Fatalf("helper output: %s", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range servers {
		for {
			_, statErr := os.Stat(s.root)
			alive := processAlive(s.pid, s.root)
			if !alive && os.IsNotExist(statErr) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the test binary died, server %d alive=%v, dir %s: %v", s.pid, alive, s.root, statErr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
