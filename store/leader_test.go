package store_test

import (
	"testing"

	"github.com/timebox-dev/timebox/store"
)

// testLeader: of two processes (handles) on one store only one leads; when it closes (or
// dies), the other takes over.
func testLeader(t *testing.T, dsn string) {
	ctx := t.Context()
	a, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !a.Lead(ctx) {
		t.Fatal("the first handle cannot take the free scheduler lock")
	}
	if !a.Lead(ctx) {
		t.Fatal("the holder lost the lock on its second call")
	}
	if b.Lead(ctx) {
		t.Fatal("two handles lead at once")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !b.Lead(ctx) {
		t.Fatal("the lock was not taken over after the holder closed")
	}
}

func TestSQLiteLeader(t *testing.T)   { testLeader(t, sqliteDSN(t)) }
func TestPostgresLeader(t *testing.T) { testLeader(t, postgresDSN(t)) }
