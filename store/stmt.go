package store

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStatements bounds a statementCache: queries built with a varying number of
// placeholders (IN lists) would otherwise grow it without end; beyond it they are prepared
// each time, as without a cache.
const maxCachedStatements = 256

// statementCache keeps the statements prepared on one SQLite pool, by query text. SQLite
// parses every statement it is given; on the scheduler's hot path (read a request, write it,
// its grant and an event, for each of thousands of removals at one instant) parsing took a
// fifth of the server's CPU. database/sql keeps a prepared copy per connection and a
// transaction reuses the one of its connection (sql.Tx.StmtContext). A query seen for the
// first time runs as text and is prepared after its transaction ended: the writer pool has one
// connection, which the transaction holds. PostgreSQL needs none of this: pgx caches prepared
// statements per connection itself.
type statementCache struct {
	pool   *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	wanted map[string]bool
}

func newStatementCache(pool *sql.DB) *statementCache {
	return &statementCache{pool: pool, m: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

// get returns the statement prepared for query, or nil (run the query as text) when it is not
// prepared yet — it is then noted, for prepare — or the cache is full.
func (c *statementCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	if len(c.m)+len(c.wanted) < maxCachedStatements {
		c.wanted[query] = true
	}
	return nil
}

// prepare prepares the queries get noted; called outside any transaction of the pool. A query
// that does not prepare is not retried (it runs as text, which reports its error).
func (c *statementCache) prepare(ctx context.Context) {
	c.mu.Lock()
	var queries []string
	for q := range c.wanted {
		queries = append(queries, q)
	}
	c.mu.Unlock()
	for _, q := range queries {
		st, _ := c.pool.PrepareContext(ctx, q)
		c.mu.Lock()
		delete(c.wanted, q)
		if st != nil {
			if old, ok := c.m[q]; ok { // prepared meanwhile by another caller
				old.Close()
			}
			c.m[q] = st
		} else {
			c.m[q] = nil // get then answers nil: run as text
		}
		c.mu.Unlock()
	}
}

// pending reports whether queries wait to be prepared.
func (c *statementCache) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.wanted) > 0
}

// close closes every cached statement.
func (c *statementCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		if st != nil {
			st.Close()
		}
		delete(c.m, q)
	}
}
