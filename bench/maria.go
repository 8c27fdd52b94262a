package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/mysql"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// The MariaDB benchmark (`go run ./bench -mysql`): one throwaway MariaDB with the event
// scheduler on, a database of 100 tables, the real server as a child process; n grants whose
// ends are spread over the same 10 seconds, some with a session running SELECT SLEEP across
// its end; then n grants ending at one instant, beside the engine's statements issued
// directly in a loop.

const mariaDB = "bench"

// runMaria runs the MariaDB benchmark with n grants on a database of tables tables, sessions
// of them with a session open across the end, and prints its figures.
func runMaria(n, tables, sessions int) error {
	benchStart = time.Now()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "timebox-maria-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &scaleEnv{dir: dir, bin: filepath.Join(dir, "timebox"), admin: "tbx_bench_admin", adminPassword: timebox.RandomPassword(24), maxConns: maxConns}
	if err := buildTimebox(ctx, e.bin); err != nil {
		return err
	}
	m, err := testdb.StartMariaDB(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	stmts := []string{"SET GLOBAL event_scheduler = ON", "SET GLOBAL max_connections = 1000", "CREATE DATABASE " + mariaDB}
	for i := range tables {
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE %s.t%04d (id int PRIMARY KEY, v text)", mariaDB, i))
	}
	stmts = append(stmts, mysql.SetupStatements(e.admin, e.adminPassword, "%", []string{mariaDB}, nil)...)
	for _, s := range stmts {
		if err := m.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	e.catalog = fmt.Sprintf(`servers:
  - {name: maria, engine: mysql, url: "mysql://%s@127.0.0.1:%d/", password: "file:%s", max_conns: %d}
databases:
  - {name: %s, server: maria, database: %s, environment: bench, owners: [owners]}
access_levels:
  - {name: read-only, mysql: {privileges: [SELECT]}}
`, e.admin, m.Port, e.write("admin.password", e.adminPassword), e.maxConns, mariaDB, mariaDB)
	if err := e.startServer(ctx); err != nil {
		return err
	}
	defer e.close()
	var version string
	if db, err := m.Open("root", m.RootPassword, ""); err == nil {
		db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version)
		db.Close()
	}
	progress("MariaDB %s on 127.0.0.1:%d, database %s with %d tables, event scheduler on; %d CPUs", version, m.Port, mariaDB, tables, numCPU())

	// Expiry: n grants ending within the same 10 seconds.
	start := time.Now()
	lead := time.Duration(float64(n)/80*float64(time.Second)) + 10*time.Second
	base := start.Add(lead)
	specs := make([]grantSpec, n)
	for i := range specs {
		specs[i] = grantSpec{db: mariaDB, server: "maria", end: base.Add(time.Duration(i) * 10 * time.Second / time.Duration(n))}
	}
	progress("expiry: activating %d grants ending %s … %s from now", n, fmtD(lead), fmtD(lead+10*time.Second))
	rs, took, err := e.activateAll(ctx, "expiry", specs, base)
	if err != nil {
		return err
	}
	progress("expiry: %d grants active in %s (%.0f/s); RSS %s", n, fmtD(took), float64(n)/took.Seconds(), mb(e.memory().rss))
	sess, err := openMariaSessions(ctx, e, m, rs, sessions)
	if err != nil {
		return err
	}
	lags, err := waitAllExpired(ctx, e, rs, base.Add(10*time.Second+2*time.Minute))
	if err != nil {
		return err
	}
	sessLags, survived := sessionLags(sess, 30*time.Second)
	left := mariaAccounts(ctx, m)

	// Throughput: n grants ending at one instant, then the same statements directly. The
	// event scheduler is off for this part: with every backstop due in the same second, n
	// events would fire together (within a second of the end) and race Timebox's removals,
	// which measures MariaDB running n events, not Timebox.
	if err := m.Exec(ctx, "SET GLOBAL event_scheduler = OFF"); err != nil {
		return err
	}
	end := time.Now().Add(time.Duration(float64(n)/80*float64(time.Second)) + 10*time.Second)
	for i := range specs {
		specs[i].end = end
	}
	progress("burst: activating %d grants ending at the same instant", n)
	burst, _, err := e.activateAll(ctx, "burst", specs, end)
	if err != nil {
		return err
	}
	time.Sleep(time.Until(end))
	burstLags, err := waitAllExpired(ctx, e, burst, end.Add(2*time.Minute))
	if err != nil {
		return err
	}
	// Until the last removal was confirmed, as the server stored it (the polling that finds
	// out adds its own delay and load).
	timeboxTook := pct(burstLags, 100)
	direct, err := directMaria(ctx, m, e, n)
	if err != nil {
		return err
	}

	fmt.Println()
	fmt.Println("figure                                                     p50        p99        max     target / baseline")
	row := func(name string, d []time.Duration, note string) {
		fmt.Printf("%-52s %9s  %9s  %9s     %s\n", name, fmtD(pct(d, 50)), fmtD(pct(d, 99)), fmtD(pct(d, 100)), note)
	}
	row(fmt.Sprintf("MariaDB: end → request expired (n=%d in 10s)", len(lags)), lags, "target p99 ≤ 1s")
	row(fmt.Sprintf("MariaDB: end → session killed (n=%d)", len(sessLags)), sessLags, fmt.Sprintf("%d survived", survived))
	fmt.Printf("  accounts left after the run: %d\n", left)
	fmt.Printf("\nrevocation throughput (%d accounts ending at one instant, event scheduler off):\n", n)
	tb := float64(n) / timeboxTook.Seconds()
	dr := float64(n) / direct.Seconds()
	fmt.Printf("  timebox (scheduler, max_conns %d)             %7.1f accounts/s  (%s)\n", e.maxConns, tb, fmtD(timeboxTook))
	fmt.Printf("  baseline: same statements, one connection    %7.1f accounts/s  (%s)\n", dr, fmtD(direct))
	fmt.Printf("  ratio timebox / direct                       %7.2f×\n", tb/dr)
	return nil
}

// openMariaSessions logs in with every k-th request's credentials and starts SELECT SLEEP on
// each, which must be killed at its end.
func openMariaSessions(ctx context.Context, e *scaleEnv, m *testdb.MariaDB, rs []*tbhttp.RequestView, n int) ([]*session, error) {
	var out []*session
	for i := 0; i < len(rs) && len(out) < n; i += max(len(rs)/max(n, 1), 1) {
		c, err := e.requester.Credentials(ctx, rs[i].ID)
		if err != nil {
			return nil, err
		}
		db, err := m.Open(c.User, c.Password, mariaDB)
		if err != nil {
			return nil, err
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("login %s: %w", c.User, err)
		}
		s := &session{end: rs[i].End, died: make(chan time.Time, 1)}
		out = append(out, s)
		go func() {
			defer db.Close()
			defer conn.Close()
			var x int
			err := conn.QueryRowContext(ctx, "SELECT SLEEP(3600)").Scan(&x)
			if err != nil || x == 1 { // SLEEP returns 1 when its query was killed
				s.died <- time.Now()
				return
			}
			s.died <- time.Time{}
		}()
	}
	return out, nil
}

// waitAllExpired lists the expired requests of the benchmark's database (one call a pass)
// until each of rs is among them, and returns end → ended (as stored).
func waitAllExpired(ctx context.Context, e *scaleEnv, rs []*tbhttp.RequestView, deadline time.Time) ([]time.Duration, error) {
	want := map[string]bool{}
	for _, r := range rs {
		want[r.ID] = true
	}
	lags := map[string]time.Duration{}
	for ; len(lags) < len(want); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d requests not expired in time", len(want)-len(lags))
		}
		list, err := e.owner.Requests(ctx, tbhttp.RequestQuery{Database: mariaDB, States: []string{string(timebox.StateExpired)}})
		if err != nil {
			return nil, err
		}
		for _, v := range list {
			if want[v.ID] {
				lags[v.ID] = v.EndedAt.Sub(v.End)
			}
		}
	}
	out := make([]time.Duration, 0, len(lags))
	for _, d := range lags {
		out = append(out, d)
	}
	return out, nil
}

// mariaAccounts counts the accounts Timebox made that still exist.
func mariaAccounts(ctx context.Context, m *testdb.MariaDB) int {
	db, err := m.Open("root", m.RootPassword, "")
	if err != nil {
		return -1
	}
	defer db.Close()
	var n int
	db.QueryRowContext(ctx, "SELECT count(*) FROM mysql.global_priv WHERE User LIKE 'tbx\\_dev\\_%'").Scan(&n)
	return n
}

// directMaria creates n accounts the way the engine does (a locked account with a password
// hash, SELECT on the database, the bookkeeping role, a backstop event, unlocked last) and
// times removing them on one admin connection with the engine's statements: lock, kill the
// sessions (a processlist query), drop the account, drop the event.
func directMaria(ctx context.Context, m *testdb.MariaDB, e *scaleEnv, n int) (time.Duration, error) {
	db, err := m.Open(e.admin, e.adminPassword, "")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// A bookkeeping role of the baseline's own: in Timebox's, the running reconciler would take
	// these accounts for its orphans and drop them.
	managed := "'direct_managed'"
	if _, err := db.ExecContext(ctx, "CREATE ROLE IF NOT EXISTS "+managed); err != nil {
		return 0, err
	}
	until := time.Now().Add(time.Hour).UTC().Format("2006-01-02 15:04:05")
	acct := func(i int) (string, string) {
		u := fmt.Sprintf("direct_%d", i)
		return u, mysql.QuoteString(u) + "@'%'"
	}
	event := func(u string) string {
		return mysql.QuoteIdent(mysql.DefaultEventSchema) + "." + mysql.QuoteIdent("tbx_end_"+u)
	}
	progress("direct: creating %d accounts", n)
	for i := range n {
		u, a := acct(i)
		for _, s := range []string{
			"CREATE USER " + a + " IDENTIFIED BY 'Direct-password-1' ACCOUNT LOCK",
			"GRANT SELECT ON " + mysql.QuoteIdent(mariaDB) + ".* TO " + a,
			"GRANT " + managed + " TO " + a,
			"CREATE OR REPLACE EVENT " + event(u) + " ON SCHEDULE AT '" + until + "' ON COMPLETION NOT PRESERVE DO DROP USER IF EXISTS " + a,
			"ALTER USER " + a + " ACCOUNT UNLOCK",
		} {
			if _, err := db.ExecContext(ctx, s); err != nil {
				return 0, fmt.Errorf("%s: %w", s, err)
			}
		}
	}
	progress("direct: removing them")
	start := time.Now()
	for i := range n {
		u, a := acct(i)
		if _, err := db.ExecContext(ctx, "ALTER USER "+a+" ACCOUNT LOCK"); err != nil {
			return 0, err
		}
		rows, err := db.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", u)
		if err != nil {
			return 0, err
		}
		rows.Close()
		for _, s := range []string{"DROP USER IF EXISTS " + a, "DROP EVENT IF EXISTS " + event(u)} {
			if _, err := db.ExecContext(ctx, s); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}
