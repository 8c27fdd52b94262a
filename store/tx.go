package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/timebox-dev/timebox"
)

// tx is a transaction on a DB. It implements timebox.Tx.
type tx struct {
	ctx     context.Context
	tx      *sql.Tx
	dialect dialect
	// keys key the audit chain (nil: plain SHA-256); appended is the head after the last
	// event this transaction appended (nil: none), for the checkpoint after the commit.
	keys     *timebox.Keyring
	appended *head
	// changes are the events appended, for the change feed after the commit.
	changes []timebox.Change
	// stmts, when set (SQLite), holds the statements prepared on the transaction's pool.
	stmts *statementCache
}

var _ timebox.Tx = (*tx)(nil)

// sql returns query, written with ? placeholders, in the transaction's dialect.
func (t *tx) sql(query string) string {
	if t.dialect == dialectPostgres {
		return rebind(query)
	}
	return query
}

// stmt returns query prepared on the transaction's connection, or nil to run it as text.
func (t *tx) stmt(query string) *sql.Stmt {
	if t.stmts == nil {
		return nil
	}
	if st := t.stmts.get(query); st != nil {
		return t.tx.StmtContext(t.ctx, st)
	}
	return nil
}

func (t *tx) exec(query string, args ...any) (sql.Result, error) {
	if st := t.stmt(query); st != nil {
		return st.ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, t.sql(query), args...)
}

func (t *tx) query(query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(query); st != nil {
		return st.QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, t.sql(query), args...)
}

func (t *tx) queryRow(query string, args ...any) *sql.Row {
	if st := t.stmt(query); st != nil {
		return st.QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, t.sql(query), args...)
}

// exists reports whether query, a SELECT 1 …, finds a row.
func (t *tx) exists(query string, args ...any) (bool, error) {
	var one int
	switch err := t.queryRow(query, args...).Scan(&one); err {
	case nil:
		return true, nil
	case sql.ErrNoRows:
		return false, nil
	default:
		return false, err
	}
}

// sqliteTime is how SQLite stores times: UTC, fixed width, microseconds, so text order is
// time order.
const sqliteTime = "2006-01-02T15:04:05.000000Z"

// normTime returns v as the store keeps it: UTC to the microsecond (the zero time stays zero).
func normTime(v time.Time) time.Time {
	if v.IsZero() {
		return time.Time{}
	}
	return v.UTC().Truncate(time.Microsecond)
}

// timeArg returns v as a query argument: NULL for the zero time, text on SQLite, a
// timestamptz on PostgreSQL.
func (t *tx) timeArg(v time.Time) any {
	if v.IsZero() {
		return nil
	}
	v = normTime(v)
	if t.dialect == dialectSQLite {
		return v.Format(sqliteTime)
	}
	return v
}

// timeCol scans a time column of either dialect into *T: NULL becomes the zero time, anything
// else a UTC time.
type timeCol struct{ t *time.Time }

// Scan implements sql.Scanner.
func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
	case time.Time:
		*c.t = v.UTC()
	case string:
		return c.parse(v)
	case []byte:
		return c.parse(string(v))
	default:
		return fmt.Errorf("cannot scan %T into a time", src)
	}
	return nil
}

func (c timeCol) parse(s string) error {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("bad stored time %q: %w", s, err)
	}
	*c.t = v.UTC()
	return nil
}

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}
