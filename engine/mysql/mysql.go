// Package mysql implements timebox.Engine, timebox.Inventory and timebox.Planner for MySQL 8 and MariaDB 10.6+
// with three methods: ephemeral login (one account per request, created with a password hash
// and removed after its sessions were killed), unlock login (an existing shared account
// unlocked for the window) and role membership (roles and database privileges granted to a
// person's own account).
//
// MySQL has no VALID UNTIL. Where the event scheduler is on, the engine leaves a one-shot
// EVENT in EventSchema at the window's end that locks the account, kills its sessions and (for
// an ephemeral login) drops it, so that the access ends on time even when Timebox is down.
//
// The engine connects as a non-root admin account prepared once by SetupStatements, through
// one database/sql pool opened on first use.
package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/timebox-dev/timebox"
)

var (
	_ timebox.Engine           = (*Engine)(nil)
	_ timebox.Inventory        = (*Engine)(nil)
	_ timebox.Planner          = (*Engine)(nil)
	_ timebox.TableChecker     = (*Engine)(nil)
	_ timebox.BackstopReporter = (*Engine)(nil)
)

// DefaultMaxConns bounds the admin pool when New is given 0.
const DefaultMaxConns = 8

// DefaultEventSchema is the schema that holds the backstop events unless EventSchema says
// otherwise.
const DefaultEventSchema = "timebox"

// Engine creates and removes access on one MySQL or MariaDB server. Its exported fields may be
// changed after New and before the first call.
type Engine struct {
	// AccountHost is the host part of every account the engine creates, unlocks or grants
	// to (default "%").
	AccountHost string
	// EventSchema is the schema that holds the backstop events (default "timebox"). The admin
	// needs the EVENT privilege on it.
	EventSchema string
	// ManagedRole is the bookkeeping role every ephemeral login of this installation is
	// granted (default ManagedRoleName of the admin user). The engine creates it when it is
	// missing.
	ManagedRole string
	// StatementTimeout bounds the server's wait for a lock (lock_wait_timeout) and the
	// client's wait for one answer (default 10s).
	StatementTimeout time.Duration
	// ConnectTimeout bounds establishing one connection (default 5s).
	ConnectTimeout time.Duration

	name    string
	config  *mysql.Config // admin connection, without a default database; copied by connConfig
	maxConn int

	mu      sync.Mutex
	pool    *sql.DB
	stmts   map[string]*sql.Stmt // prepared on pool, see prepared
	flavor  *flavor              // nil until known
	managed bool                 // the bookkeeping role is known to exist
	// selfDefaultRole is set once the admin was refused SET DEFAULT ROLE … FOR (MariaDB).
	selfDefaultRole bool
	closed          bool
	// observe, when set (tests only, before the first call), sees each statement exec runs.
	observe func(stmt string)
}

// New returns an engine for the server called name, reached with adminURL, such as
// mysql://timebox_admin@db1.internal:3306/ (no password: it comes separately), optionally with
// ?tls=true|skip-verify|preferred. The URL names no database: the admin connects without a
// default database, so that no unqualified name can resolve in a database a requester may
// create objects in. No connection is made until the first call. maxConns bounds the pool
// (DefaultMaxConns when 0 or less). It returns an EINVALID error when adminURL cannot be
// parsed, names a database or holds a password.
func New(name, adminURL, password string, maxConns int) (*Engine, error) {
	bad := func(why string) error {
		return timebox.Errorf(timebox.EINVALID, "server %s: %s", name, why)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return nil, bad("invalid admin URL")
	}
	if u.Scheme != "mysql" && u.Scheme != "mariadb" {
		return nil, bad("the admin URL must start with mysql://")
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, bad("the admin URL must name the admin user")
	}
	if _, ok := u.User.Password(); ok {
		return nil, bad("the admin URL must not contain a password")
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = u.User.Username(), password
	cfg.Net, cfg.Addr = "tcp", u.Host
	if u.Port() == "" && u.Hostname() != "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	if u.Hostname() == "" {
		return nil, bad("the admin URL must name the host")
	}
	if strings.TrimPrefix(u.Path, "/") != "" {
		// With a default database, an unqualified name (COUNT followed by a space, a table)
		// resolves there: in a database a requester may create routines and views in.
		return nil, bad("the admin URL must not name a database (end it with /): the admin connects without a default database")
	}
	for k, v := range u.Query() {
		switch {
		case k == "tls" && len(v) == 1 && (v[0] == "true" || v[0] == "false" || v[0] == "skip-verify" || v[0] == "preferred"):
			cfg.TLSConfig = v[0]
		case strings.EqualFold(k, "password"):
			return nil, bad("the admin URL must not contain a password")
		default:
			return nil, bad("unsupported admin URL parameter " + strconv.Quote(timebox.Clip(k)) + " (only tls=true|skip-verify|preferred)")
		}
	}
	cfg.ParseTime, cfg.Loc = true, time.UTC
	cfg.InterpolateParams, cfg.MultiStatements = false, false
	cfg.Logger = &mysql.NopLogger{} // errors come back to the caller; the driver must not print them
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	if err := ValidIdent(cfg.User); err != nil {
		return nil, bad("admin user: " + err.Error())
	}
	return &Engine{
		AccountHost:      "%",
		EventSchema:      DefaultEventSchema,
		ManagedRole:      ManagedRoleName(cfg.User),
		StatementTimeout: 10 * time.Second,
		ConnectTimeout:   5 * time.Second,
		name:             name,
		config:           cfg,
		maxConn:          maxConns,
	}, nil
}

// sessionParams are the session settings of every connection the engine opens, sent by the
// driver right after connecting: UTC for event times, and NO_BACKSLASH_ESCAPES removed from the
// sql_mode so that QuoteString's literals mean exactly what they say.
func (e *Engine) sessionParams() map[string]string {
	return map[string]string{
		"time_zone": "'+00:00'",
		"sql_mode": "TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), " +
			"',NO_BACKSLASH_ESCAPES,', ','))",
		"lock_wait_timeout": strconv.Itoa(max(1, int(e.StatementTimeout.Seconds()))),
	}
}

// connConfig returns a copy of the admin configuration with the engine's timeouts.
func (e *Engine) connConfig() *mysql.Config {
	cfg := e.config.Clone()
	cfg.Timeout = e.ConnectTimeout
	cfg.ReadTimeout = e.StatementTimeout + 2*time.Second
	cfg.WriteTimeout = e.StatementTimeout + 2*time.Second
	cfg.Params = e.sessionParams()
	return cfg
}

// db returns the admin pool, opening it on first use.
func (e *Engine) db() (*sql.DB, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, timebox.Errorf(timebox.EUNAVAILABLE, "server %s unreachable: engine closed", e.name)
	}
	if e.pool != nil {
		return e.pool, nil
	}
	connector, err := mysql.NewConnector(e.connConfig())
	if err != nil {
		return nil, timebox.WrapError(timebox.EINVALID, err, "server %s: admin connection settings", e.name)
	}
	e.pool = sql.OpenDB(connector)
	e.pool.SetMaxOpenConns(e.maxConn)
	e.pool.SetMaxIdleConns(min(e.maxConn, 4))
	e.pool.SetConnMaxIdleTime(time.Minute)
	return e.pool, nil
}

// Ping runs SELECT 1 as the admin. It returns an EUNAVAILABLE error when the server cannot be
// reached or refuses the admin credentials.
func (e *Engine) Ping(ctx context.Context) error {
	db, err := e.db()
	if err != nil {
		return err
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	var one int
	return e.wrap(db.QueryRowContext(ctx, "SELECT 1").Scan(&one), nil)
}

// Close closes the pool. Calls made afterwards fail with EUNAVAILABLE.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for q, st := range e.stmts {
		st.Close()
		delete(e.stmts, q)
	}
	if e.pool == nil {
		return nil
	}
	err := e.pool.Close()
	e.pool = nil
	return err
}

// prepared returns query prepared on the admin pool, preparing it on first use. Values are
// bound (the driver does not interpolate them), so without it each query costs three round
// trips (prepare, execute, close); a removal runs the same few queries thousands of times.
func (e *Engine) prepared(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	e.mu.Lock()
	st := e.stmts[query]
	e.mu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stmts == nil {
		e.stmts = map[string]*sql.Stmt{}
	}
	if old := e.stmts[query]; old != nil { // prepared meanwhile by another call
		st.Close()
		return old, nil
	}
	e.stmts[query] = st
	return st, nil
}

// queryPrepared runs query, whose text is fixed (it is prepared once per engine, see
// prepared), with args.
func (e *Engine) queryPrepared(ctx context.Context, db *sql.DB, query string, args ...any) (*sql.Rows, error) {
	st, err := e.prepared(ctx, db, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// scanRows calls f with the Scan of each row of rows and closes rows. err, the error of the
// query that returned rows, is returned as it is, so that a query's results can be passed on
// directly.
func scanRows(rows *sql.Rows, err error, f func(scan func(dest ...any) error) error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// callContext bounds one round of work with the database: the statement timeout plus the
// time to connect and a margin, so that a hung network never blocks a caller forever.
func (e *Engine) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.StatementTimeout+e.ConnectTimeout+2*time.Second)
}

// exec runs one statement as the admin, bounded by callContext.
func (e *Engine) exec(ctx context.Context, db *sql.DB, query string, args ...any) error {
	if e.observe != nil {
		e.observe(query)
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	_, err := db.ExecContext(ctx, query, args...)
	return err
}

// MySQL and MariaDB error numbers the engine looks at.
const (
	erDBAccessDenied     = 1044 // access denied for user to database
	erAccessDenied       = 1045 // access denied for user (using password)
	erBadDB              = 1049 // unknown database
	erConCount           = 1040 // too many connections
	erNoSuchThread       = 1094 // unknown thread id
	erTableAccessDenied  = 1142 // command denied to user for table
	erSpecificAccess     = 1227 // access denied; you need (at least one of) the X privilege(s)
	erCannotUser         = 1396 // operation CREATE/DROP USER failed
	erInvalidRole        = 1959 // invalid role specification (MariaDB)
	erServerShutdown     = 1053 // server shutdown in progress
	erAccountLocked      = 3118 // MySQL: access denied, account is locked
	erMariaAccountLocked = 4151 // MariaDB: access denied, this account is locked
	crServerGone         = 2006
	crServerLost         = 2013
)

// errNumber returns the server error number of err, or 0.
func errNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// wrap turns a driver error into a *timebox.Error: EUNAVAILABLE when the server cannot be
// reached or refuses the admin, EINTERNAL for an SQL error. Every secret is removed from the
// message and the cause.
func (e *Engine) wrap(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var te *timebox.Error
	if errors.As(err, &te) {
		return err
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) && !unavailableNumber(me.Number) {
		return timebox.Errorf(timebox.EINTERNAL, "mysql %s: %s (error %d)", e.name, timebox.Scrub(me.Message, secrets), me.Number)
	}
	return timebox.WrapError(timebox.EUNAVAILABLE, errors.New(timebox.Scrub(err.Error(), secrets)),
		"server %s unreachable: %s", e.name, timebox.Scrub(shortReason(err), secrets))
}

// unavailableNumber reports whether a server error means the server cannot serve the admin
// now: too many connections, the admin's login refused, shutdown, connection gone.
func unavailableNumber(n uint16) bool {
	switch n {
	case erConCount, erAccessDenied, erServerShutdown, crServerGone, crServerLost, erAccountLocked, erMariaAccountLocked:
		return true
	}
	return false
}

// shortReason describes a connection failure in a few words: the server's message, the
// driver's lost connection, or timebox.ConnReason.
func shortReason(err error) string {
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &me):
		return me.Message
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn):
		return "connection lost"
	case errors.Is(err, sql.ErrConnDone):
		return "connection closed"
	}
	return timebox.ConnReason(err)
}
