package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// pgStat, when set (-pgstat), loads pg_stat_statements on the throwaway clusters and prints,
// for each timed phase, the statements Timebox's admin role spent the most time in: where
// PostgreSQL's share of the time goes, measured from outside the server.
var pgStat bool

// enableStatements restarts c with pg_stat_statements loaded (twice: its max setting is known
// only once the library is loaded) and creates the extension.
func (c *cluster) enableStatements(ctx context.Context) error {
	for _, s := range []string{
		"ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
		"ALTER SYSTEM SET pg_stat_statements.max = 20000", // role names make every DDL text distinct
	} {
		if err := c.pg.Exec(ctx, "postgres", s); err != nil {
			return err
		}
		if err := c.pg.Stop(); err != nil {
			return err
		}
		if err := c.pg.Start(); err != nil {
			return err
		}
	}
	return c.pg.Exec(ctx, "postgres", "CREATE EXTENSION pg_stat_statements")
}

// resetStatements clears the statistics on every cluster (a no-op without -pgstat).
func (e *scaleEnv) resetStatements(ctx context.Context) {
	if !pgStat {
		return
	}
	for _, c := range e.clusters {
		c.pg.Exec(ctx, "postgres", "SELECT pg_stat_statements_reset()")
	}
}

// topStatements describes the statements of the admin role with the most execution time on
// every cluster since the last reset, with role names, verifiers and times folded together.
func (e *scaleEnv) topStatements(ctx context.Context, n int) string {
	if !pgStat {
		return ""
	}
	var b strings.Builder
	for _, c := range e.clusters {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rows, err := c.mon.Query(ctx, `
			WITH s AS (
				SELECT left(regexp_replace(regexp_replace(regexp_replace(regexp_replace(query,
					'(tbx|direct)_\w+', 'R', 'g'), '''SCRAM[^'']*''', 'V', 'g'), '''\d{4}-[^'']*''', 'T', 'g'), '\s+', ' ', 'g'), 90) AS q,
					calls, total_exec_time
				FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
				WHERE r.rolname = $1)
			SELECT q, sum(calls)::bigint, sum(total_exec_time), (SELECT sum(total_exec_time) FROM s)
			FROM s GROUP BY q ORDER BY 3 DESC LIMIT $2`, e.admin, n)
		if err != nil {
			fmt.Fprintf(&b, "    %s: %v\n", c.name, err)
			cancel()
			continue
		}
		first := true
		for rows.Next() {
			var q string
			var calls int64
			var total, all float64
			if err := rows.Scan(&q, &calls, &total, &all); err != nil {
				break
			}
			if first {
				fmt.Fprintf(&b, "    %s: %.1fs in all statements of %s\n", c.name, all/1000, e.admin)
				first = false
			}
			fmt.Fprintf(&b, "      %8.2fs %7d calls %8.2fms each  %s\n", total/1000, calls, total/float64(max(calls, 1)), q)
		}
		rows.Close()
		cancel()
	}
	return b.String()
}
