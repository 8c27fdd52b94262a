package store_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/timebox-dev/timebox/internal/testdb"
	"github.com/timebox-dev/timebox/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testdb.CloseShared()
	os.Exit(code)
}

var pgDatabases atomic.Int64

// postgresDSN creates a new database on the shared throwaway cluster and returns its URL.
func postgresDSN(t *testing.T) string {
	pg := testdb.RequirePostgres(t)
	name := fmt.Sprintf("store_test_%d", pgDatabases.Add(1))
	if err := pg.CreateDatabase(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return pg.SuperURL(name)
}

func openPostgres(t *testing.T) *store.DB {
	db, err := store.Open(t.Context(), postgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func TestPostgres(t *testing.T) {
	testdb.RequirePostgres(t)
	testStore(t, openPostgres)
}

func TestPostgresReopen(t *testing.T) {
	testReopen(t, postgresDSN(t))
}

func TestPostgresTwoHandles(t *testing.T) {
	testTwoHandles(t, postgresDSN(t))
}

func TestPostgresAuditReplicas(t *testing.T) {
	testAuditReplicas(t, postgresDSN(t))
}
