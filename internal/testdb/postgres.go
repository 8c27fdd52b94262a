package testdb

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgInstallHint is the error message used when no PostgreSQL server
// binaries can be found.
const pgInstallHint = "no PostgreSQL server binaries found (initdb): install Debian package postgresql (apt-get install postgresql) or set TIMEBOX_PG_BINDIR"

// pgOSUser is the OS account that runs PostgreSQL when we are root, because
// initdb and postgres refuse to run as root.
const pgOSUser = "postgres"

// pgStartAttempts is how often StartPostgres tries a new port when another
// process took the free port before the server could bind it.
const pgStartAttempts = 3

// pgReadyTimeout bounds Start when it is called without a context.
const pgReadyTimeout = 60 * time.Second

// Postgres is a throwaway PostgreSQL cluster. It listens on Host:Port with
// password (SCRAM-SHA-256) authentication only. Create one with
// StartPostgres and remove it with Close.
type Postgres struct {
	Host          string // Host is the address the server listens on, always "127.0.0.1".
	Port          int    // Port is the TCP port the server listens on.
	SuperUser     string // SuperUser is the name of the superuser role, "postgres".
	SuperPassword string // SuperPassword is the random password of SuperUser.
	Dir           string // Dir is the data directory, inside the temporary directory.
	Version       int    // Version is the major server version, e.g. 15.

	binDir  string     // directory with initdb, pg_ctl and postgres
	root    string     // temporary directory holding everything
	sockDir string     // unix socket directory (root unless root's path is too long)
	logFile string     // server log written by pg_ctl -l
	runAs   *osUser    // OS user that runs the tools, nil when not root
	reaper  *reaper    // watchdog that cleans up if this process dies
	mu      sync.Mutex // serializes Stop, Start and Close
	closed  bool
	logMu   sync.Mutex // guards lastLog
	lastLog string     // log tail saved by Close, since the file is gone then
}

// PostgresBinDir returns the directory with the PostgreSQL server binaries
// initdb, pg_ctl and postgres. It uses $TIMEBOX_PG_BINDIR when that is set,
// otherwise the highest version under /usr/lib/postgresql/*/bin (the Debian
// layout), otherwise the directory of initdb found on PATH (symlinks
// resolved). The error says how to install PostgreSQL.
func PostgresBinDir() (string, error) {
	has := func(dir string) bool {
		return isExecutable(filepath.Join(dir, "initdb")) &&
			isExecutable(filepath.Join(dir, "pg_ctl")) &&
			isExecutable(filepath.Join(dir, "postgres"))
	}
	if dir := os.Getenv("TIMEBOX_PG_BINDIR"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", &notInstalledError{msg: pgInstallHint + " (TIMEBOX_PG_BINDIR=" + dir + " has no initdb, pg_ctl and postgres)"}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type cand struct {
		dir string
		ver float64
	}
	var cands []cand
	for _, m := range matches {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(m)), 64)
		if err != nil || !has(m) {
			continue
		}
		cands = append(cands, cand{m, v})
	}
	if len(cands) > 0 {
		sort.Slice(cands, func(i, j int) bool { return cands[i].ver > cands[j].ver })
		return cands[0].dir, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); has(dir) {
			return dir, nil
		}
	}
	return "", &notInstalledError{msg: pgInstallHint}
}

// StartPostgres creates a new cluster in a temporary directory with initdb
// (SCRAM-SHA-256 authentication and a random superuser password), starts it
// on a free port on 127.0.0.1 with settings tuned for tests (no fsync), and
// returns once the superuser can log in with the password. On error nothing
// is left behind.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	binDir, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	p := &Postgres{
		Host:          loopback,
		SuperUser:     "postgres",
		SuperPassword: rand.Text(),
		binDir:        binDir,
	}
	if os.Geteuid() == 0 {
		if p.runAs, err = lookupOSUser(pgOSUser); err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL must run as OS user %q, which cannot be found: %w", pgOSUser, err)
		}
	}
	if p.root, err = makeTempRoot("timebox-pg-", p.runAs); err != nil {
		return nil, err
	}
	p.Dir = filepath.Join(p.root, "data")
	p.logFile = filepath.Join(p.root, "postgres.log")
	p.sockDir = p.root
	if len(p.sockDir)+len("/.s.PGSQL.65535") > 100 {
		// Unix socket paths are limited to about 107 bytes.
		if p.sockDir, err = os.MkdirTemp("/tmp", "tbpg-"); err != nil {
			_ = os.RemoveAll(p.root)
			return nil, fmt.Errorf("create socket dir: %w", err)
		}
		if p.runAs != nil {
			_ = os.Chown(p.sockDir, int(p.runAs.uid), int(p.runAs.gid))
		}
	}
	if p.reaper, err = startReaper(filepath.Join(p.Dir, "postmaster.pid"), p.root, "QUIT"); err != nil {
		p.removeDirs()
		return nil, err
	}
	if err := p.setup(ctx); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// setup runs initdb, writes the configuration and starts the server.
func (p *Postgres) setup(ctx context.Context) error {
	pwFile := filepath.Join(p.root, "pwfile")
	if err := p.writeFile(pwFile, p.SuperPassword+"\n", 0o600); err != nil {
		return err
	}
	err := runTool(p.command(ctx, "initdb",
		"--pgdata="+p.Dir,
		"--username="+p.SuperUser,
		"--pwfile="+pwFile,
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
	))
	_ = os.Remove(pwFile)
	if err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(p.Dir, "PG_VERSION")); err == nil {
		p.Version, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}

	hba := "# Written by timebox testdb: password authentication only.\n" +
		"local all all scram-sha-256\n" +
		"host  all all 127.0.0.1/32 scram-sha-256\n"
	if err := p.writeFile(filepath.Join(p.Dir, "pg_hba.conf"), hba, 0o600); err != nil {
		return err
	}
	conf := "\n# Added by timebox testdb: throwaway server for tests and benchmarks.\n" +
		"listen_addresses = '127.0.0.1'\n" +
		"unix_socket_directories = " + pgQuoteConf(p.sockDir) + "\n" +
		"password_encryption = 'scram-sha-256'\n" +
		"fsync = off\n" +
		"synchronous_commit = off\n" +
		"full_page_writes = off\n" +
		"max_connections = 300\n" +
		"shared_buffers = 64MB\n" +
		"logging_collector = off\n"
	f, err := os.OpenFile(filepath.Join(p.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("postgresql.conf: %w", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return fmt.Errorf("postgresql.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("postgresql.conf: %w", err)
	}

	for attempt := 1; ; attempt++ {
		port, err := pickPort()
		if err != nil {
			return err
		}
		p.Port = port
		logStart := fileSize(p.logFile)
		err = p.start(ctx)
		if err == nil {
			return nil
		}
		if attempt < pgStartAttempts && strings.Contains(readFrom(p.logFile, logStart), "could not bind") {
			continue // someone took the port between freePort and bind
		}
		return err
	}
}

// command builds an exec.Cmd for one of the PostgreSQL binaries, run as the
// postgres OS user when we are root.
func (p *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(p.binDir, name), args...)
	cmd.Dir = p.root // readable for the postgres user, unlike e.g. /root
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr(p.runAs)
	return cmd
}

// writeFile writes a file owned by the server's OS user.
func (p *Postgres) writeFile(path, content string, perm os.FileMode) error {
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		return err
	}
	if p.runAs != nil {
		if err := os.Chown(path, int(p.runAs.uid), int(p.runAs.gid)); err != nil {
			return err
		}
	}
	return nil
}

// start runs pg_ctl start on p.Port and waits until a password login works.
func (p *Postgres) start(ctx context.Context) error {
	err := runTool(p.command(ctx, "pg_ctl", "start",
		"--pgdata="+p.Dir,
		"--log="+p.logFile,
		"--wait", "--timeout=60",
		"--options=-p "+strconv.Itoa(p.Port),
	))
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w\nserver log:\n%s", err, p.LogTail(20))
	}
	if err := p.waitReady(ctx); err != nil {
		return fmt.Errorf("PostgreSQL started but does not accept a password login: %w\nserver log:\n%s", err, p.LogTail(20))
	}
	return nil
}

// waitReady waits until the superuser can log in over TCP with its password.
func (p *Postgres) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pgReadyTimeout)
	defer cancel()
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, p.SuperURL("postgres"))
		cancel()
		if err == nil {
			return conn.Close(ctx)
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != "57P03" { // 57P03: cannot_connect_now (starting up)
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// URL returns a libpq/pgx connection URL for the given role, password and
// database, with each part percent-escaped so that any name works (quotes,
// spaces, semicolons, slashes, non-ASCII). An empty database means the
// server default (the database named like the user).
func (p *Postgres) URL(user, password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(p.Host, strconv.Itoa(p.Port)),
		RawQuery: "sslmode=disable",
	}
	if database != "" {
		u.Path = "/" + database
		// Escape every reserved character, including '/', so that the
		// database name survives any URL parser unchanged.
		u.RawPath = "/" + url.PathEscape(database)
	}
	return u.String()
}

// SuperURL returns the connection URL of the superuser for database.
func (p *Postgres) SuperURL(database string) string {
	return p.URL(p.SuperUser, p.SuperPassword, database)
}

// Exec runs one SQL command as the superuser in database ("" means
// "postgres") on a fresh connection. Without args the simple protocol is
// used, so sql may contain several statements.
func (p *Postgres) Exec(ctx context.Context, database string, sql string, args ...any) error {
	if database == "" {
		database = "postgres"
	}
	conn, err := pgx.Connect(ctx, p.SuperURL(database))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// CreateDatabase creates a database named name. The name is quoted as an
// identifier, so any name is safe; PostgreSQL truncates names longer than 63
// bytes.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	return p.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// Stop shuts the server down (pg_ctl stop -m fast) but keeps its data and
// port, so that Start can bring it back. Use it to simulate a database
// that is down.
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("testdb: Postgres is closed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgReadyTimeout)
	defer cancel()
	if err := runTool(p.command(ctx, "pg_ctl", "stop", "--pgdata="+p.Dir, "--mode=fast", "--wait", "--timeout=60")); err != nil {
		return fmt.Errorf("stop PostgreSQL: %w", err)
	}
	return nil
}

// Start starts a stopped server again with the same data directory and
// port and waits until the superuser can log in. It fails if another
// process took the port in the meantime.
func (p *Postgres) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("testdb: Postgres is closed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgReadyTimeout)
	defer cancel()
	return p.start(ctx)
}

// Close stops the server immediately (pg_ctl stop -m immediate) and removes
// the whole temporary directory. Calling it again does nothing and returns
// nil.
func (p *Postgres) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	if _, err := os.Stat(filepath.Join(p.Dir, "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := runTool(p.command(ctx, "pg_ctl", "stop", "--pgdata="+p.Dir, "--mode=immediate", "--wait", "--timeout=30"))
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("stop PostgreSQL: %w", err))
		}
	}
	p.logMu.Lock()
	p.lastLog = tailFile(p.logFile, 1000)
	p.logMu.Unlock()
	p.removeDirs()
	if _, err := os.Stat(p.root); err == nil || !os.IsNotExist(err) {
		errs = append(errs, fmt.Errorf("remove %s: still there", p.root))
	}
	// The watchdog kills the server if pg_ctl could not, and removes
	// whatever is left.
	p.reaper.stop()
	return errors.Join(errs...)
}

// removeDirs removes the temporary directory and a separate socket
// directory.
func (p *Postgres) removeDirs() {
	if p.sockDir != "" && p.sockDir != p.root {
		_ = os.RemoveAll(p.sockDir)
	}
	if p.root != "" {
		_ = os.RemoveAll(p.root)
	}
}

// LogTail returns the last n lines of the server log, for test failure
// messages. After Close it returns the tail saved just before the log was
// removed.
func (p *Postgres) LogTail(n int) string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	if p.lastLog != "" {
		return lastLines(p.lastLog, n)
	}
	return tailFile(p.logFile, n)
}

// pgQuoteConf quotes a string value for postgresql.conf.
func pgQuoteConf(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
