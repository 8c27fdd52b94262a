// Package store keeps Timebox's state in SQLite or PostgreSQL through database/sql with
// hand-written SQL. It implements timebox.Store.
package store

import (
	"context"
	"database/sql"
	"embed"
	"io/fs"
	"runtime"
	"strconv"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/timebox-dev/timebox"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// writerLockID is the PostgreSQL advisory lock every Update takes first, so that the writers
// of several server replicas are serialised and the audit chain keeps one head.
// It is "timebox" in ASCII followed by 0x01.
const writerLockID int64 = 0x74696d65626f7801

// dialect is the SQL dialect of a DB.
type dialect int

const (
	dialectSQLite dialect = iota + 1
	dialectPostgres
)

// DB is Timebox's store on SQLite or PostgreSQL. It is safe for concurrent use.
type DB struct {
	dialect dialect
	// write runs Update. On SQLite it holds a single connection that begins transactions with
	// BEGIN IMMEDIATE, so writers are serialised; on PostgreSQL it is the one pool.
	write *sql.DB
	// read runs View. On SQLite it is a separate pool of query-only connections (WAL lets them
	// read while the writer writes); on PostgreSQL it is the same pool as write.
	read *sql.DB
	// path is the SQLite file (empty on PostgreSQL); leader holds the scheduler lock.
	path   string
	leader leader
	// writeStmts and readStmts cache the statements prepared on write and read (SQLite only).
	writeStmts, readStmts *statementCache
	// Keys, when set, key the audit chain: each new event's hash is an HMAC-SHA256 with the
	// audit key (cmd sets it; without it events get a plain SHA-256, as before).
	Keys *timebox.Keyring
	// Checkpoint, when set, is told the audit head after every commit that appended events.
	Checkpoint *timebox.CheckpointFile
	// feed announces committed events to subscribers (feed.go).
	feed feed
}

var _ timebox.Store = (*DB)(nil)

// Open connects to the database named by dsn and brings its schema up to date. dsn is
// sqlite:///absolute/path/timebox.db, sqlite://relative/path.db, or a postgres:// or
// postgresql:// URL. It returns EINVALID for any other DSN and EINTERNAL when the database
// cannot be opened or migrated.
func Open(ctx context.Context, dsn string) (*DB, error) {
	scheme, rest, ok := strings.Cut(dsn, ":")
	if !ok {
		return nil, timebox.Errorf(timebox.EINVALID, "store: the database DSN has no scheme; use sqlite:///path/to/timebox.db or postgres://…")
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		return openSQLite(ctx, strings.TrimPrefix(rest, "//"))
	case "postgres", "postgresql":
		return openPostgres(ctx, dsn)
	}
	// Only the scheme is named: the rest of a DSN may hold a password.
	return nil, timebox.Errorf(timebox.EINVALID, "store: unsupported database scheme %q; use sqlite:///path/to/timebox.db or postgres://…", scheme)
}

// sqliteParams configure every SQLite connection: wait for locks held by other processes,
// and enforce foreign keys.
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"

func openSQLite(ctx context.Context, path string) (*DB, error) {
	switch {
	case path == "":
		return nil, timebox.Errorf(timebox.EINVALID, "store: the sqlite DSN has no file path; use sqlite:///path/to/timebox.db")
	case strings.HasPrefix(path, ":"):
		return nil, timebox.Errorf(timebox.EINVALID, "store: in-memory SQLite is not supported; use sqlite:///path/to/timebox.db")
	case strings.ContainsAny(path, "?#"):
		return nil, timebox.Errorf(timebox.EINVALID, "store: the sqlite file path must not contain '?' or '#'")
	}
	if err := prepareSQLite(path); err != nil {
		return nil, err
	}
	// The driver strips the query from a DSN that does not start with "file:", so path is
	// opened as a plain file name.
	write, err := sql.Open("sqlite", path+"?"+sqliteParams+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, internal(err, "open sqlite database")
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	read, err := sql.Open("sqlite", path+"?"+sqliteParams+"&_pragma=query_only(1)")
	if err != nil {
		write.Close()
		return nil, internal(err, "open sqlite database")
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	db := &DB{dialect: dialectSQLite, write: write, read: read, path: path,
		writeStmts: newStatementCache(write), readStmts: newStatementCache(read)}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// SQLite creates the -wal and -shm files with the database file's mode; one left by an
	// older version may be wider.
	if err := protectSQLite(path); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, internal(err, "open postgres database")
	}
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, internal(err, "connect to postgres")
	}
	db := &DB{dialect: dialectPostgres, write: pool, read: pool, feed: feed{dsn: dsn}}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// migrate applies the embedded migrations of the dialect that the database has not seen yet.
// On PostgreSQL a session advisory lock keeps replicas starting together from racing.
func (db *DB) migrate(ctx context.Context) error {
	dir, gd := "migrations/sqlite", goose.DialectSQLite3
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if db.dialect == dialectPostgres {
		dir, gd = "migrations/postgres", goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return internal(err, "create migration lock")
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return internal(err, "read embedded migrations")
	}
	p, err := goose.NewProvider(gd, db.write, fsys, opts...)
	if err != nil {
		return internal(err, "load migrations")
	}
	if _, err := p.Up(ctx); err != nil {
		return internal(err, "migrate the schema")
	}
	return nil
}

// Update runs fn in one read-write transaction and commits it when fn returns nil; fn's error
// is returned unchanged. Writers are serialised: on SQLite by the single writer connection
// and BEGIN IMMEDIATE, on PostgreSQL by a transaction-level advisory lock.
func (db *DB) Update(ctx context.Context, fn func(timebox.Tx) error) error {
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return internal(err, "begin transaction")
	}
	defer sqlTx.Rollback()
	if db.dialect == dialectPostgres {
		if _, err := sqlTx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", writerLockID); err != nil {
			return internal(err, "take the writer lock")
		}
	}
	t := &tx{ctx: ctx, tx: sqlTx, dialect: db.dialect, keys: db.Keys, stmts: db.writeStmts}
	if err := fn(t); err != nil {
		return err
	}
	if db.dialect == dialectPostgres {
		if err := t.notifyChanges(); err != nil {
			return err
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return internal(err, "commit transaction")
	}
	if h := t.appended; h != nil && db.Checkpoint != nil {
		db.Checkpoint.Note(h.seq, h.hash, h.key)
	}
	if db.dialect == dialectSQLite && len(t.changes) > 0 {
		db.feed.publish(t.changes...)
	}
	if c := db.writeStmts; c != nil && c.pending() {
		c.prepare(context.WithoutCancel(ctx))
	}
	return nil
}

// View runs fn in one read-only transaction that sees a single snapshot of the database; fn's
// error is returned unchanged.
func (db *DB) View(ctx context.Context, fn func(timebox.Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.dialect == dialectPostgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	sqlTx, err := db.read.BeginTx(ctx, opts)
	if err != nil {
		return internal(err, "begin read-only transaction")
	}
	defer sqlTx.Rollback()
	err = fn(&tx{ctx: ctx, tx: sqlTx, dialect: db.dialect, stmts: db.readStmts})
	sqlTx.Rollback() // before prepare, which may need this connection
	if c := db.readStmts; c != nil && c.pending() {
		c.prepare(context.WithoutCancel(ctx))
	}
	return err
}

// Close closes the change feed (its subscribers' channels and listener) and the database
// connections.
func (db *DB) Close() error {
	db.closeFeed()
	db.leader.release()
	for _, c := range []*statementCache{db.writeStmts, db.readStmts} {
		if c != nil {
			c.close()
		}
	}
	err := db.write.Close()
	if db.read != db.write {
		if rerr := db.read.Close(); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return internal(err, "close database")
	}
	return nil
}

// internal wraps a driver error into an EINTERNAL *timebox.Error whose message says what failed.
func internal(err error, format string, args ...any) error {
	return timebox.WrapError(timebox.EINTERNAL, err, "store: "+format, args...)
}

// rebind turns the ? placeholders of query into PostgreSQL's $1, $2, …. The store's SQL has no
// question mark anywhere else.
func rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] != '?' {
			b.WriteByte(query[i])
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// placeholders returns "?, ?, …" with n placeholders, for an IN list.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
