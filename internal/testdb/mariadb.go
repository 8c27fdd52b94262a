package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
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

	"github.com/go-sql-driver/mysql"
)

// mariaInstallHint is the error message used when no MariaDB server
// binaries can be found.
const mariaInstallHint = "no MariaDB server binaries found (mariadbd, mariadb-install-db): install Debian package mariadb-server (apt-get install mariadb-server) or set TIMEBOX_MARIADB_BINDIR"

// mariaStartAttempts is how often StartMariaDB tries a new port when another
// process took the free port before the server could bind it.
const mariaStartAttempts = 3

// mariaReadyTimeout bounds Start and Stop, which take no context.
const mariaReadyTimeout = 60 * time.Second

// mariaServerArgs are the settings, shared by mariadb-install-db and
// mariadbd, that make the server start fast and run fast for tests. Nothing
// is synced to disk; the data is throwaway.
var mariaServerArgs = []string{
	"--innodb-log-file-size=16M",
	"--innodb-buffer-pool-size=128M",
	"--innodb-flush-log-at-trx-commit=0",
	"--innodb-doublewrite=0",
	"--sync-binlog=0",
	"--character-set-server=utf8mb4",
	"--collation-server=utf8mb4_general_ci",
}

// MariaDB is a throwaway MariaDB server. It listens on Host:Port; root logs
// in with RootPassword, anonymous accounts do not exist. Create one with
// StartMariaDB and remove it with Close.
type MariaDB struct {
	Host         string // Host is the address the server listens on, always "127.0.0.1".
	Port         int    // Port is the TCP port the server listens on.
	RootPassword string // RootPassword is the random password of root.
	Dir          string // Dir is the data directory, inside the temporary directory.

	mariadbd  string     // server binary
	installDB string     // mariadb-install-db binary
	root      string     // temporary directory holding everything
	socket    string     // unix socket path
	sockDir   string     // separate socket directory when root's path is too long
	pidFile   string     // pid file written by mariadbd
	logFile   string     // server stdout and stderr (the error log)
	initFile  string     // SQL run by the first start (accounts), "" after
	runAs     *osUser    // OS user given to mariadbd --user, nil when not root
	reaper    *reaper    // watchdog that cleans up if this process dies
	mu        sync.Mutex // serializes Stop, Start and Close
	proc      *mariaProc // running server, nil when stopped
	closed    bool
	logMu     sync.Mutex // guards lastLog
	lastLog   string     // log tail saved by Close, since the file is gone then
}

// mariaProc is one running mariadbd process.
type mariaProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done is closed
}

// mariaBinaries finds mariadbd and mariadb-install-db. $TIMEBOX_MARIADB_BINDIR
// is searched exclusively when set; otherwise PATH, /usr/sbin and /usr/bin.
func mariaBinaries() (mariadbd, installDB string, err error) {
	find := func(dirs []string, usePath bool, names ...string) string {
		for _, name := range names {
			for _, d := range dirs {
				if p := filepath.Join(d, name); isExecutable(p) {
					return p
				}
			}
			if usePath {
				if p, err := exec.LookPath(name); err == nil {
					return p
				}
			}
		}
		return ""
	}
	if dir := os.Getenv("TIMEBOX_MARIADB_BINDIR"); dir != "" {
		mariadbd = find([]string{dir}, false, "mariadbd", "mysqld")
		installDB = find([]string{dir}, false, "mariadb-install-db", "mysql_install_db")
		if mariadbd == "" || installDB == "" {
			return "", "", &notInstalledError{msg: mariaInstallHint + " (TIMEBOX_MARIADB_BINDIR=" + dir + " has no mariadbd and mariadb-install-db)"}
		}
		return mariadbd, installDB, nil
	}
	dirs := []string{"/usr/sbin", "/usr/bin", "/usr/libexec"}
	mariadbd = find(dirs, true, "mariadbd")
	installDB = find(dirs, true, "mariadb-install-db")
	if mariadbd == "" || installDB == "" {
		return "", "", &notInstalledError{msg: mariaInstallHint}
	}
	return mariadbd, installDB, nil
}

// StartMariaDB creates a new MariaDB data directory in a temporary
// directory with mariadb-install-db, starts mariadbd on a free port on
// 127.0.0.1 and returns once root can log in over TCP with RootPassword.
// The first start sets the root password for 'root'@'localhost', creates
// 'root'@'127.0.0.1' and 'root'@'%' with it and removes anonymous accounts,
// which would otherwise shadow 'user'@'%' for connections from localhost.
// On error nothing is left behind.
func StartMariaDB(ctx context.Context) (*MariaDB, error) {
	mariadbd, installDB, err := mariaBinaries()
	if err != nil {
		return nil, err
	}
	m := &MariaDB{
		Host:         loopback,
		RootPassword: rand.Text(),
		mariadbd:     mariadbd,
		installDB:    installDB,
	}
	if os.Geteuid() == 0 {
		// mariadbd refuses to run as root unless told so; prefer the
		// Debian account and fall back to --user=root.
		if m.runAs, err = lookupOSUser("mysql"); err != nil {
			m.runAs = &osUser{name: "root"}
		}
	}
	if m.root, err = makeTempRoot("timebox-mariadb-", m.runAs); err != nil {
		return nil, err
	}
	m.Dir = filepath.Join(m.root, "data")
	m.socket = filepath.Join(m.root, "mysqld.sock")
	m.pidFile = filepath.Join(m.root, "mysqld.pid")
	m.logFile = filepath.Join(m.root, "mariadbd.log")
	if len(m.socket) > 100 {
		// Unix socket paths are limited to about 107 bytes.
		if m.sockDir, err = os.MkdirTemp("/tmp", "tbmy-"); err != nil {
			_ = os.RemoveAll(m.root)
			return nil, fmt.Errorf("create socket dir: %w", err)
		}
		if m.runAs != nil {
			_ = os.Chown(m.sockDir, int(m.runAs.uid), int(m.runAs.gid))
		}
		m.socket = filepath.Join(m.sockDir, "mysqld.sock")
	}
	if m.reaper, err = startReaper(m.pidFile, m.root, "KILL"); err != nil {
		m.removeDirs()
		return nil, err
	}
	if err := m.setup(ctx); err != nil {
		_ = m.Close()
		return nil, err
	}
	return m, nil
}

// setup runs mariadb-install-db and the first start.
func (m *MariaDB) setup(ctx context.Context) error {
	args := []string{
		"--no-defaults", // must come first
		"--datadir=" + m.Dir,
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
		"--tmpdir=" + m.root,
	}
	if m.runAs != nil {
		args = append(args, "--user="+m.runAs.name)
	}
	args = append(args, mariaServerArgs...)
	cmd := exec.CommandContext(ctx, m.installDB, args...)
	cmd.Dir = m.root
	cmd.Env = childEnv()
	if err := runTool(cmd); err != nil {
		return fmt.Errorf("mariadb-install-db: %w", err)
	}

	pw := mariaQuote(m.RootPassword)
	// One statement per line: that is what --init-file reads.
	initSQL := strings.Join([]string{
		"DELETE FROM mysql.global_priv WHERE User=''",
		"DELETE FROM mysql.proxies_priv WHERE User=''",
		"DELETE FROM mysql.global_priv WHERE User='root' AND Host NOT IN ('localhost','127.0.0.1')",
		"FLUSH PRIVILEGES",
		"ALTER USER 'root'@'localhost' IDENTIFIED BY " + pw,
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY " + pw,
		"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY " + pw,
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
		"CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY " + pw,
		"ALTER USER 'root'@'%' IDENTIFIED BY " + pw,
		"GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION",
		"FLUSH PRIVILEGES",
	}, ";\n") + ";\n"
	m.initFile = filepath.Join(m.root, "init.sql")
	if err := os.WriteFile(m.initFile, []byte(initSQL), 0o600); err != nil {
		return err
	}
	if m.runAs != nil && m.runAs.uid != 0 {
		if err := os.Chown(m.initFile, int(m.runAs.uid), int(m.runAs.gid)); err != nil {
			return err
		}
	}

	for attempt := 1; ; attempt++ {
		port, err := pickPort()
		if err != nil {
			return err
		}
		m.Port = port
		logStart := fileSize(m.logFile)
		err = m.start(ctx)
		if err == nil {
			// The accounts are set up; later starts do not need the file,
			// which holds the root password.
			_ = os.Remove(m.initFile)
			m.initFile = ""
			return nil
		}
		log := readFrom(m.logFile, logStart)
		if attempt < mariaStartAttempts && (strings.Contains(log, "Address already in use") || strings.Contains(log, "Can't start server: Bind on TCP/IP port")) {
			continue
		}
		return err
	}
}

// start starts mariadbd on m.Port and waits until root can log in.
func (m *MariaDB) start(ctx context.Context) error {
	args := []string{
		"--no-defaults", // must come first
		"--datadir=" + m.Dir,
		"--port=" + strconv.Itoa(m.Port),
		"--bind-address=" + loopback,
		"--pid-file=" + m.pidFile,
		"--tmpdir=" + m.root,
		"--max-connections=300",
		"--skip-log-bin",
		"--socket=" + m.socket,
	}
	if m.runAs != nil {
		args = append(args, "--user="+m.runAs.name)
	}
	if m.initFile != "" {
		args = append(args, "--init-file="+m.initFile)
	}
	args = append(args, mariaServerArgs...)

	logStart := fileSize(m.logFile)
	logf, err := os.OpenFile(m.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open MariaDB log: %w", err)
	}
	defer logf.Close() // the child keeps its own copy
	cmd := exec.Command(m.mariadbd, args...)
	cmd.Dir = m.root
	cmd.Env = childEnv()
	cmd.Stdout = logf // without --log-error, the error log goes to stderr
	cmd.Stderr = logf
	// Own process group, like pg_ctl's daemonized postgres: the watchdog,
	// not a terminal's Ctrl-C, decides when it goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	proc := &mariaProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		proc.err = cmd.Wait()
		close(proc.done)
	}()
	m.proc = proc
	if err := m.waitReady(ctx, proc, logStart); err != nil {
		m.kill()
		return fmt.Errorf("start MariaDB: %w\nserver log:\n%s", err, m.LogTail(20))
	}
	return nil
}

// waitReady waits until root can log in over TCP with its password, the
// process exits or logs that it is aborting, or ctx ends. logStart is the
// size of the log before this start.
func (m *MariaDB) waitReady(ctx context.Context, proc *mariaProc, logStart int64) error {
	ctx, cancel := context.WithTimeout(ctx, mariaReadyTimeout)
	defer cancel()
	cfg, err := mysql.ParseDSN(m.DSN("root", m.RootPassword, ""))
	if err != nil {
		return err
	}
	cfg.Timeout = 2 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	for {
		// Bound each attempt: if another program took the port, the
		// connection succeeds but no handshake ever comes.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		var myErr *mysql.MySQLError
		if errors.As(err, &myErr) && myErr.Number == 1045 { // access denied
			return err
		}
		// After a fatal startup error (e.g. the port is taken) mariadbd
		// logs "Aborting" but can take a minute to exit; do not wait.
		if strings.Contains(readFrom(m.logFile, logStart), "[ERROR] Aborting") {
			return errors.New("mariadbd aborted its startup")
		}
		select {
		case <-proc.done:
			return fmt.Errorf("mariadbd exited: %v", proc.err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// kill kills the running server, if any, and waits for it to exit.
func (m *MariaDB) kill() {
	if m.proc == nil {
		return
	}
	_ = m.proc.cmd.Process.Kill()
	<-m.proc.done
	m.proc = nil
}

// DSN returns a go-sql-driver/mysql data source name for the given user,
// password and database ("" for none):
// user:password@tcp(127.0.0.1:port)/database?parseTime=true&multiStatements=false.
// The database name is percent-escaped; the password may contain any
// character. A user name must not contain ':', which the DSN format cannot
// express.
func (m *MariaDB) DSN(user, password, database string) string {
	cfg := mysql.NewConfig()
	cfg.User = user
	cfg.Passwd = password
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(m.Host, strconv.Itoa(m.Port))
	cfg.DBName = database
	cfg.ParseTime = true
	cfg.MultiStatements = false
	dsn := cfg.FormatDSN()
	// multiStatements=false is the driver default, so FormatDSN leaves it
	// out; spell it out so that the DSN documents itself.
	if !strings.Contains(dsn, "multiStatements=") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + "multiStatements=false"
	}
	return dsn
}

// Exec runs one SQL statement as root on a fresh connection, with no
// default database.
func (m *MariaDB) Exec(ctx context.Context, sql string, args ...any) error {
	db, err := m.Open("root", m.RootPassword, "")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, sql, args...)
	return err
}

// Open returns a database/sql handle that logs in as user with password on
// database ("" for none). Each login gives up after 5 seconds, and the
// driver prints nothing: tests and benchmarks kill sessions on purpose, and
// every error comes back to the caller. Close the handle when done.
func (m *MariaDB) Open(user, password, database string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(m.DSN(user, password, database))
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 5 * time.Second
	cfg.Logger = &mysql.NopLogger{}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(connector), nil
}

// openMaria opens a database/sql handle for dsn without the global driver
// registry's name lookup.
func openMaria(dsn string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(connector), nil
}

// Stop shuts the server down cleanly (SIGTERM) but keeps its data and
// port, so that Start can bring it back. Use it to simulate a database
// that is down.
func (m *MariaDB) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("testdb: MariaDB is closed")
	}
	if m.proc == nil {
		return nil
	}
	_ = m.proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.proc.done:
		m.proc = nil
		return nil
	case <-time.After(mariaReadyTimeout):
		m.kill()
		return errors.New("stop MariaDB: no clean shutdown within 60s, killed")
	}
}

// Start starts a stopped server again with the same data directory and
// port and waits until root can log in. It fails if another process took
// the port in the meantime.
func (m *MariaDB) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("testdb: MariaDB is closed")
	}
	if m.proc != nil {
		return errors.New("testdb: MariaDB is already running")
	}
	return m.start(context.Background())
}

// Close kills the server and removes the whole temporary directory.
// Calling it again does nothing and returns nil.
func (m *MariaDB) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.kill()
	m.logMu.Lock()
	m.lastLog = tailFile(m.logFile, 1000)
	m.logMu.Unlock()
	m.removeDirs()
	m.reaper.stop()
	if _, err := os.Stat(m.root); !os.IsNotExist(err) {
		return fmt.Errorf("remove %s: still there", m.root)
	}
	return nil
}

// removeDirs removes the temporary directory and a separate socket
// directory.
func (m *MariaDB) removeDirs() {
	if m.sockDir != "" {
		_ = os.RemoveAll(m.sockDir)
	}
	if m.root != "" {
		_ = os.RemoveAll(m.root)
	}
}

// LogTail returns the last n lines of the server's error log, for test
// failure messages. After Close it returns the tail saved just before the
// log was removed.
func (m *MariaDB) LogTail(n int) string {
	m.logMu.Lock()
	defer m.logMu.Unlock()
	if m.lastLog != "" {
		return lastLines(m.lastLog, n)
	}
	return tailFile(m.logFile, n)
}

// mariaQuote quotes s as a MariaDB string literal.
func mariaQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`, "\x1a", `\Z`)
	return "'" + r.Replace(s) + "'"
}
