package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/postgres"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// scaleReadRole is the one read role name of each cluster, granted SELECT in every database.
const scaleReadRole = "bench_read"

// cluster is one throwaway PostgreSQL server managed by the scale run's Timebox server.
type cluster struct {
	name      string // the server's name in the Timebox configuration
	pg        *testdb.Postgres
	databases []string
	mon       *pgxpool.Pool // superuser pool for monitoring (pg_roles, pg_stat_activity)
}

// scaleEnv is two clusters and one Timebox server running as a child process against them.
type scaleEnv struct {
	dir, bin      string
	admin         string
	adminPassword string
	clusters      []*cluster
	maxConns      int
	server        *exec.Cmd
	serverLog     string // file
	url           string
	requester     *tbhttp.Client
	owner         *tbhttp.Client
	exited        chan struct{}
	// catalog, when set, declares the servers, databases and access levels of the server's
	// configuration instead of the clusters (the MariaDB benchmark).
	catalog string
}

// startClusters starts n clusters in parallel, each with dbs databases of tables tables, a
// read role and the hardening of postgres.SetupStatements.
func (e *scaleEnv) startClusters(ctx context.Context, n, dbs, tables int) error {
	e.clusters = make([]*cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &cluster{name: "pg" + string(rune('a'+i))}
			for j := range dbs {
				c.databases = append(c.databases, fmt.Sprintf("%c%02d", 'a'+i, j+1))
			}
			e.clusters[i] = c
			c.pg, errs[i] = testdb.StartPostgres(ctx)
			if errs[i] == nil {
				errs[i] = e.setupCluster(ctx, c, tables)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (e *scaleEnv) setupCluster(ctx context.Context, c *cluster, tables int) error {
	if pgStat {
		if err := c.enableStatements(ctx); err != nil {
			return fmt.Errorf("%s: pg_stat_statements: %w", c.name, err)
		}
	}
	if err := c.pg.Exec(ctx, "postgres", "CREATE ROLE "+scaleReadRole+" NOLOGIN"); err != nil {
		return err
	}
	var ddl strings.Builder
	for i := range tables {
		fmt.Fprintf(&ddl, "CREATE TABLE t%04d (id bigint PRIMARY KEY, name text, amount numeric, created_at timestamptz);\n", i)
	}
	ddl.WriteString("GRANT SELECT ON ALL TABLES IN SCHEMA public TO " + scaleReadRole + ";")
	for _, db := range c.databases {
		if err := c.pg.CreateDatabase(ctx, db); err != nil {
			return fmt.Errorf("%s: create database %s: %w", c.name, db, err)
		}
		if err := c.pg.Exec(ctx, db, ddl.String()); err != nil {
			return fmt.Errorf("%s: tables in %s: %w", c.name, db, err)
		}
	}
	setup := postgres.SetupStatements(e.admin, e.adminPassword, c.databases, []string{scaleReadRole})
	for _, db := range c.databases {
		setup = append(setup, directConnectSQL(db)) // for the direct baseline
	}
	for _, s := range setup {
		if err := c.pg.Exec(ctx, "postgres", s); err != nil {
			return fmt.Errorf("%s: hardening: %w", c.name, err)
		}
	}
	cfg, err := pgxpool.ParseConfig(c.pg.SuperURL("postgres"))
	if err != nil {
		return err
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	cfg.ConnConfig.RuntimeParams["application_name"] = "bench-monitor"
	c.mon, err = pgxpool.NewWithConfig(ctx, cfg)
	return err
}

// config writes the server's configuration and returns its path: e.catalog, or both
// clusters, every database, one access level.
func (e *scaleEnv) config(addr string) string {
	catalog := e.catalog
	if catalog == "" {
		var b strings.Builder
		b.WriteString("servers:\n")
		pw := e.write("admin.password", e.adminPassword)
		for _, c := range e.clusters {
			fmt.Fprintf(&b, "  - {name: %s, engine: postgres, url: \"postgres://%s@127.0.0.1:%d/postgres?sslmode=disable\", password: \"file:%s\", max_conns: %d}\n",
				c.name, e.admin, c.pg.Port, pw, e.maxConns)
		}
		b.WriteString("databases:\n")
		for _, c := range e.clusters {
			for _, db := range c.databases {
				fmt.Fprintf(&b, "  - {name: %s, server: %s, database: %s, environment: bench, owners: [owners]}\n", db, c.name, db)
			}
		}
		fmt.Fprintf(&b, "access_levels:\n  - {name: read-only, postgres: {roles: [%s]}}\n", scaleReadRole)
		catalog = b.String()
	}
	return e.write("timebox.yaml", benchConfig(addr, e.dir, catalog))
}

// benchConfig is the configuration of a benchmark's server listening on addr, with its store
// and secret key in dir, users dev (the requester) and owner (the owners' group) and limits
// for environment bench; catalog declares the servers, databases and access levels.
func benchConfig(addr, dir, catalog string) string {
	return fmt.Sprintf(`listen: %s
store: sqlite://%s
secret_key: file:%s
log_level: warn
admin_groups: [platform]
users:
  - {name: dev, groups: [developers]}
  - {name: owner, groups: [owners]}
%slimits:
  bench: {max_duration: 8h, min_duration: 1s, max_lead_time: 24h}
`, addr, filepath.Join(dir, "timebox.db"), writeFile(dir, "secret.key", timebox.RandomPassword(32)), catalog)
}

func (e *scaleEnv) write(name, content string) string { return writeFile(e.dir, name, content) }

// writeFile writes content to dir/name, readable by the owner only, and returns its path.
func writeFile(dir, name, content string) string {
	p := filepath.Join(dir, name)
	os.WriteFile(p, []byte(content), 0o600)
	return p
}

// buildTimebox builds the timebox binary into bin.
func buildTimebox(ctx context.Context, bin string) error {
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/timebox")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build timebox: %w", err)
	}
	return nil
}

// startServer starts `timebox server` as a child process (killed with this process) and
// waits until it answers.
func (e *scaleEnv) startServer(ctx context.Context) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := e.config(addr)
	token := func(user string) (string, error) {
		out, err := exec.Command(e.bin, "admin", "token", "create", "--config", cfg, "--user", user).Output()
		return strings.TrimSpace(string(out)), err
	}
	devToken, err := token("dev")
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	ownerToken, err := token("owner")
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	e.serverLog = filepath.Join(e.dir, "server.log")
	logf, err := os.Create(e.serverLog)
	if err != nil {
		return err
	}
	e.server = exec.Command(e.bin, "server", "--config", cfg)
	e.server.Stderr, e.server.Stdout = logf, logf
	e.server.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := e.server.Start(); err != nil {
		logf.Close()
		return err
	}
	e.exited = make(chan struct{})
	go func() { e.server.Wait(); logf.Close(); close(e.exited) }()
	e.url = "http://" + addr
	e.requester, e.owner = tbhttp.NewClient(e.url, devToken), tbhttp.NewClient(e.url, ownerToken)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := e.requester.Me(ctx); err == nil {
			return nil
		}
	}
	return fmt.Errorf("server did not start:\n%s", tailOf(e.serverLog, 20))
}

// close stops the server and removes the clusters.
func (e *scaleEnv) close() {
	if e.server != nil && e.server.Process != nil {
		e.server.Process.Signal(os.Interrupt)
		select {
		case <-e.exited:
		case <-time.After(15 * time.Second):
			e.server.Process.Kill()
			<-e.exited
		}
	}
	for _, c := range e.clusters {
		if c == nil {
			continue
		}
		if c.mon != nil {
			c.mon.Close()
		}
		if c.pg != nil {
			c.pg.Close()
		}
	}
}

// alive reports whether the server process is still running.
func (e *scaleEnv) alive() bool {
	select {
	case <-e.exited:
		return false
	default:
		return true
	}
}

// memory is the server process's resident set size and its peak, from /proc.
type memory struct{ rss, hwm int64 } // bytes

func (e *scaleEnv) memory() memory {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.server.Process.Pid))
	if err != nil {
		return memory{}
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = kb << 10
		case "VmHWM:":
			m.hwm = kb << 10
		}
	}
	return m
}

// cpuTime returns the server process's user and system CPU time so far.
func (e *scaleEnv) cpuTime() time.Duration {
	f := procStat(e.server.Process.Pid)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// storeSize is the size of the SQLite store with its WAL.
func (e *scaleEnv) storeSize() int64 {
	var n int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(filepath.Join(e.dir, "timebox.db"+suffix)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// tbxRoles counts the Timebox roles left on c (-1 when c cannot be reached).
func (c *cluster) tbxRoles(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var n int
	if err := c.mon.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tbx\_%'`).Scan(&n); err != nil {
		return -1
	}
	return n
}

// activity counts c's backends: Timebox's admin connections and the sessions of Timebox
// logins (-1 when c cannot be reached).
func (c *cluster) activity(ctx context.Context) (admin, sessions int) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := c.mon.QueryRow(ctx, `SELECT count(*) FILTER (WHERE application_name = 'timebox'),
		count(*) FILTER (WHERE usename LIKE 'tbx\_%' OR (backend_type = 'client backend' AND usename IS NULL))
		FROM pg_stat_activity`).Scan(&admin, &sessions)
	if err != nil {
		return -1, -1
	}
	return admin, sessions
}

// tailOf returns the last n lines of file path.
func tailOf(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

// cpuSnap is the CPU time used so far by the server, this bench process and each cluster
// (the postmaster, its live children and the children it reaped).
type cpuSnap struct {
	at   time.Time
	used map[string]time.Duration
}

func (e *scaleEnv) cpuSnap() cpuSnap {
	s := cpuSnap{at: time.Now(), used: map[string]time.Duration{"server": e.cpuTime()}}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.used["bench"] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, c := range e.clusters {
		s.used[c.name] = c.cpuTime()
	}
	return s
}

// cpuShare describes the CPU used between a and b, per process group, as a share of the wall
// time and of the machine.
func cpuShare(a, b cpuSnap) string {
	wall := b.at.Sub(a.at).Seconds()
	var total time.Duration
	out := ""
	for _, k := range sortedKeys(b.used) {
		d := b.used[k] - a.used[k]
		if d < 0 {
			out += k + " n/a (restarted), "
			continue
		}
		total += d
		out += fmt.Sprintf("%s %.1fs (%.0f%%), ", k, d.Seconds(), 100*d.Seconds()/wall)
	}
	return out + fmt.Sprintf("total %.0f%% of %d CPUs over %.1fs", 100*total.Seconds()/wall/float64(numCPU()), numCPU(), wall)
}

// cpuTime returns the CPU time of the cluster's postmaster, its live children and the
// children it reaped (zero when it is not running).
func (c *cluster) cpuTime() time.Duration {
	b, err := os.ReadFile(filepath.Join(c.pg.Dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if pid <= 0 {
		return 0
	}
	var ticks int64
	f := procStat(pid)
	if len(f) < 15 {
		return 0
	}
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		child, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if f := procStat(child); len(f) > 12 && f[1] == strconv.Itoa(pid) {
			for _, i := range []int{11, 12} {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				ticks += n
			}
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// procStat returns the fields of /proc/pid/stat from the third (state) on.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil
	}
	return strings.Fields(s[i+2:])
}
