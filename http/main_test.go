package http_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/timebox-dev/timebox/internal/testdb"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testdb.CloseShared()
	os.Exit(code)
}

var pgDatabases atomic.Int64

// postgresDSN creates a new database on the shared throwaway PostgreSQL cluster and returns
// its URL. The test is skipped when PostgreSQL is not installed (and fails in CI).
func postgresDSN(t testing.TB) string {
	t.Helper()
	pg := testdb.RequirePostgres(t)
	name := fmt.Sprintf("http_test_%d", pgDatabases.Add(1))
	if err := pg.CreateDatabase(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return pg.SuperURL(name)
}

// forEachStore runs fn on a new SQLite store and on a new PostgreSQL database: the two
// refuse different bytes (PostgreSQL takes no NUL and no invalid UTF-8 in text), so input
// that SQLite swallows can still turn into an internal error on PostgreSQL.
func forEachStore(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteDSN(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, postgresDSN(t)) })
}
