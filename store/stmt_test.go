package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/timebox-dev/timebox"
)

// A query runs as text the first time, is prepared after its transaction (the writer's one
// connection is free again, so nothing waits on it) and reused after; queries beyond the
// bound keep running as text; results are the same either way.
func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "tb.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(query string) (n int) {
		t.Helper()
		err := db.Update(ctx, func(t timebox.Tx) error { return t.(*tx).queryRow(query).Scan(&n) })
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	const q = `SELECT count(*) FROM requests`
	for i := range 3 {
		if n := count(q); n != 0 {
			t.Fatalf("run %d: %d requests", i, n)
		}
		db.writeStmts.mu.Lock()
		st, wanted := db.writeStmts.m[q], db.writeStmts.wanted[q]
		db.writeStmts.mu.Unlock()
		if st == nil || wanted {
			t.Fatalf("run %d: prepared %v, still wanted %v", i, st != nil, wanted)
		}
	}
	for i := range maxCachedStatements + 10 {
		if n := count(fmt.Sprintf("SELECT %d + count(*) FROM requests", i)); n != i {
			t.Fatalf("query %d answered %d", i, n)
		}
	}
	db.writeStmts.mu.Lock()
	defer db.writeStmts.mu.Unlock()
	if n := len(db.writeStmts.m) + len(db.writeStmts.wanted); n > maxCachedStatements {
		t.Errorf("%d statements cached, bound %d", n, maxCachedStatements)
	}
}
