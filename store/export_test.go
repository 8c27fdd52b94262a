package store

import (
	"context"
	"time"
)

// ExecRaw runs one statement, written with ? placeholders, on the database behind the store's
// back. Tests use it to tamper with the tables.
func (db *DB) ExecRaw(ctx context.Context, query string, args ...any) (int64, error) {
	if db.dialect == dialectPostgres {
		query = rebind(query)
	}
	res, err := db.write.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// QueryRaw returns the single value of a one-row, one-column query run on the writer.
func (db *DB) QueryRaw(ctx context.Context, query string, args ...any) (string, error) {
	if db.dialect == dialectPostgres {
		query = rebind(query)
	}
	var v string
	err := db.write.QueryRowContext(ctx, query, args...).Scan(&v)
	return v, err
}

// TimeArg returns v as the store passes a time to its dialect, for ExecRaw.
func (db *DB) TimeArg(v time.Time) any { return (&tx{dialect: db.dialect}).timeArg(v) }
