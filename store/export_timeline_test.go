package store

import (
	"context"
	"strings"

	"github.com/timebox-dev/timebox"
)

// AccessPlan returns the query plan of FindAccess(f), one line per step. On PostgreSQL
// sequential scans are disabled for the plan, so that the indexes it could use show even
// on a table of a few rows.
func (db *DB) AccessPlan(ctx context.Context, f timebox.AccessFilter) (string, error) {
	t := &tx{dialect: db.dialect}
	query, args := t.accessQuery(f)
	explain := "EXPLAIN QUERY PLAN "
	if db.dialect == dialectPostgres {
		query, explain = rebind(query), "EXPLAIN "
	}
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer sqlTx.Rollback()
	if db.dialect == dialectPostgres {
		if _, err := sqlTx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			return "", err
		}
	}
	rows, err := sqlTx.QueryContext(ctx, explain+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		if s, ok := vals[len(vals)-1].(string); ok {
			lines = append(lines, s)
		} else if b, ok := vals[len(vals)-1].([]byte); ok {
			lines = append(lines, string(b))
		}
	}
	return strings.Join(lines, "\n"), rows.Err()
}
