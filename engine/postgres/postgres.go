// Package postgres implements timebox.Engine for PostgreSQL with the ephemeral-login method:
// one role per request, created with LOGIN, a password and VALID UNTIL the window's end, given
// roles or ad-hoc privileges on tables, and dropped after its sessions were ended. It also
// unlocks shared logins (unlock_login) and grants roles to people's own logins
// (role_membership), and shows the statements of a plan before they run (PlanStatements).
//
// The engine connects as a non-superuser admin role prepared once by SetupStatements. It keeps
// one small connection pool per database it needs, created on first use: the admin URL's own
// database for cluster-wide statements, and each target database for REASSIGN/DROP OWNED.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/timebox-dev/timebox"
)

var (
	_ timebox.Engine       = (*Engine)(nil)
	_ timebox.Planner      = (*Engine)(nil)
	_ timebox.TableChecker = (*Engine)(nil)
)

// DefaultMaxConns bounds the connections of each of the engine's pools when New is given 0.
const DefaultMaxConns = 8

// Engine creates and removes ephemeral login roles on one PostgreSQL server.
// Its exported fields may be changed after New and before the first call.
type Engine struct {
	// StatementTimeout is the server-side statement_timeout of admin sessions (default 10s).
	StatementTimeout time.Duration
	// LockTimeout is the server-side lock_timeout of admin sessions (default 5s).
	LockTimeout time.Duration
	// ConnectTimeout bounds establishing one connection (default 5s).
	ConnectTimeout time.Duration
	// ManagedRole is the bookkeeping role every ephemeral login of this installation is a
	// member of (default ManagedRoleName of the admin role). The engine creates it when it
	// is missing.
	ManagedRole string
	// QuarantineRole receives what a removed login owned in a database without an owner role
	// (default QuarantineRoleName of the admin role): NOLOGIN, member of nothing, holding no
	// privilege. The engine creates it when it is first needed.
	QuarantineRole string
	// OwnerRoles maps a database's name on the server to the role that receives what a removed
	// login owned there, instead of the quarantine role (the catalog's owner_role).
	OwnerRoles map[string]string

	name    string
	config  *pgxpool.Config // admin pool configuration; copied for each database
	adminDB string

	mu      sync.Mutex
	pools   map[string]*pgxpool.Pool
	acls    map[string]*sync.Mutex // per database name, see lockDatabase
	connect map[string]bool        // databases whose connect role holds CONNECT; any entry: the bookkeeping role exists
	closed  bool

	// tableHook, when set (by tests), sees each statement of an ad-hoc table grant before it
	// runs.
	tableHook func(sql string)
}

// New returns an engine for the server called name, reached with adminURL (a PostgreSQL URL or
// keyword/value string without a password) and the admin password. No connection is made
// until the first call. maxConns bounds each per-database pool (DefaultMaxConns when 0 or
// less). It returns an EINVALID error when adminURL cannot be parsed or holds a password.
func New(name, adminURL, password string, maxConns int) (*Engine, error) {
	if u, err := url.Parse(adminURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			return nil, timebox.Errorf(timebox.EINVALID, "server %s: the admin URL must not contain a password", name)
		}
	}
	if strings.Contains(strings.ToLower(adminURL), "password=") { // keyword/value form or URL parameter
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: the admin URL must not contain a password", name)
	}
	cfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: invalid admin URL", name)
	}
	cfg.ConnConfig.Password = password
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	cfg.MaxConns = int32(min(maxConns, 1<<20))
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = time.Minute
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "timebox"
	}
	if err := pinSearchPath(name, cfg.ConnConfig.RuntimeParams); err != nil {
		return nil, err
	}
	db := cfg.ConnConfig.Database
	if db == "" {
		db = cfg.ConnConfig.User // PostgreSQL's default database
	}
	cfg.ConnConfig.Database = db
	return &Engine{
		StatementTimeout: 10 * time.Second,
		LockTimeout:      5 * time.Second,
		ConnectTimeout:   5 * time.Second,
		ManagedRole:      ManagedRoleName(cfg.ConnConfig.User),
		QuarantineRole:   QuarantineRoleName(cfg.ConnConfig.User),
		name:             name,
		config:           cfg,
		adminDB:          db,
		pools:            map[string]*pgxpool.Pool{},
		acls:             map[string]*sync.Mutex{},
		connect:          map[string]bool{},
	}, nil
}

// adminSearchPath is the search_path of every session the engine opens, sent as a startup
// parameter so that no statement runs before it: only PostgreSQL's own catalog, then the
// session's temporary schema (never searched for functions or operators), so that no
// function, operator, type or table a user created can be picked by the engine's SQL (see
// docs/postgres.md, "What Timebox's admin will not run").
const adminSearchPath = "pg_catalog, pg_temp"

// pinSearchPath sets adminSearchPath in params, the startup parameters of an admin session.
// It refuses an admin URL that sets its own search_path, in a parameter or in options: that
// would put a schema users may write to before or beside pg_catalog.
func pinSearchPath(name string, params map[string]string) error {
	for k, v := range params {
		switch {
		case gucName(k) != "search_path":
		case k != "search_path" || strings.ReplaceAll(v, " ", "") != strings.ReplaceAll(adminSearchPath, " ", ""):
			return timebox.Errorf(timebox.EINVALID, "server %s: the admin URL must not set search_path: Timebox pins it to %q", name, adminSearchPath)
		}
	}
	if strings.Contains(gucName(params["options"]), "search_path") {
		return timebox.Errorf(timebox.EINVALID, "server %s: the admin URL's options must not set search_path: Timebox pins it to %q", name, adminSearchPath)
	}
	params["search_path"] = adminSearchPath
	return nil
}

// gucName folds s as PostgreSQL folds setting names: case-insensitive, '-' as '_'.
func gucName(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }

// Ping runs SELECT 1 on the admin database. It returns an EUNAVAILABLE error when the server
// cannot be reached or refuses the admin credentials.
func (e *Engine) Ping(ctx context.Context) error {
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return err
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	var one int
	if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return e.wrap(err, nil)
	}
	return nil
}

// Close closes every pool. Calls made afterwards fail with EUNAVAILABLE.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for db, p := range e.pools {
		p.Close()
		delete(e.pools, db)
	}
	return nil
}

// pool returns the pool of database db, creating it on first use.
func (e *Engine) pool(db string) (*pgxpool.Pool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, timebox.Errorf(timebox.EUNAVAILABLE, "server %s unreachable: engine closed", e.name)
	}
	if p := e.pools[db]; p != nil {
		return p, nil
	}
	cfg := e.config.Copy()
	cfg.ConnConfig.Database = db
	cfg.ConnConfig.ConnectTimeout = e.ConnectTimeout
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = millis(e.StatementTimeout)
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = millis(e.LockTimeout)
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, timebox.WrapError(timebox.EINTERNAL, err, "server %s: admin pool", e.name)
	}
	e.pools[db] = p
	return p, nil
}

// lockDatabase serialises the statements of this engine that rewrite the access list of
// database db (GRANT/REVOKE CONNECT, DROP OWNED). PostgreSQL takes no lock for them: two
// transactions changing the same pg_database row at once make one fail with "tuple
// concurrently updated". It returns the unlock function.
func (e *Engine) lockDatabase(db string) func() {
	e.mu.Lock()
	m := e.acls[db]
	if m == nil {
		m = &sync.Mutex{}
		e.acls[db] = m
	}
	e.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// maxConcurrentRetries bounds the retries of a statement that lost a race on a catalog row.
const maxConcurrentRetries = 5

// retryConcurrent runs f until it does not fail with "tuple concurrently updated", which
// another process (another Timebox replica, a DBA) changing the same catalog row causes; it
// waits a short random time between attempts.
func retryConcurrent(ctx context.Context, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if !concurrentUpdate(err) || attempt == maxConcurrentRetries {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * (5*time.Millisecond + rand.N(10*time.Millisecond))):
		}
	}
}

// concurrentUpdate reports whether err is PostgreSQL's "tuple concurrently updated/deleted".
func concurrentUpdate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "XX000" && strings.HasPrefix(pgErr.Message, "tuple concurrently")
}

// callContext bounds one round of work with the database: the statement timeout plus the
// time to connect and a margin, so that a hung network never blocks a caller forever.
func (e *Engine) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.StatementTimeout+e.ConnectTimeout+2*time.Second)
}

// millis formats d for a PostgreSQL time setting.
func millis(d time.Duration) string {
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// wrap turns a driver error into a *timebox.Error: EUNAVAILABLE when the server cannot be
// reached, EINTERNAL for an SQL error. Every secret is removed from the message and cause.
func (e *Engine) wrap(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var te *timebox.Error
	if errors.As(err, &te) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && !unavailableCode(pgErr.Code) {
		return timebox.Errorf(timebox.EINTERNAL, "postgres %s: %s (SQLSTATE %s)",
			e.name, timebox.Scrub(pgErr.Message, secrets), pgErr.Code)
	}
	return timebox.WrapError(timebox.EUNAVAILABLE, errors.New(timebox.Scrub(err.Error(), secrets)),
		"server %s unreachable: %s", e.name, timebox.Scrub(shortReason(err), secrets))
}

// unavailableCode reports whether an SQLSTATE means the server cannot serve us now:
// connection exceptions, shutdown in progress, too many connections, failed authentication.
func unavailableCode(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "28"):
		return true
	case code == "57P01", code == "57P02", code == "57P03", code == "53300":
		return true
	}
	return false
}

// shortReason describes a connection failure in a few words: the server's message, or
// timebox.ConnReason (pgconn's timeout errors unwrap to the context's error or the network
// timeout it handles).
func shortReason(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	return timebox.ConnReason(err)
}

// sqlState returns the SQLSTATE of err, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
