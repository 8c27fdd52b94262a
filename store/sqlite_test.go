package store_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// sqliteDSN returns the DSN of a new database file in a temporary directory.
func sqliteDSN(t *testing.T) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "timebox.db")
}

func openSQLite(t *testing.T) *store.DB {
	db, err := store.Open(t.Context(), sqliteDSN(t))
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

func TestSQLite(t *testing.T) {
	testStore(t, openSQLite)
}

func TestSQLiteReopen(t *testing.T) {
	testReopen(t, sqliteDSN(t))
}

func TestSQLiteTwoHandles(t *testing.T) {
	testTwoHandles(t, sqliteDSN(t))
}

func TestSQLiteRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	testReopen(t, "sqlite://timebox.db")
}

func TestSQLiteSettings(t *testing.T) {
	db := openSQLite(t)
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "10000"} {
		got, err := db.QueryRaw(t.Context(), "PRAGMA "+pragma)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

func TestSQLiteAuditReplicas(t *testing.T) {
	testAuditReplicas(t, sqliteDSN(t))
}

// TestSQLiteAuditUnreadableTime: an event time that is not a time (SQLite stores text) does
// not hide the log: the event is listed and verification names it as edited.
func TestSQLiteAuditUnreadableTime(t *testing.T) {
	db := openSQLite(t)
	db.Keys = auditKeys
	appendN(t, db, 3, "alice")
	raw(t, db, `UPDATE events SET time = 'yesterday' WHERE seq = 2`)
	events, seq, hash := allEvents(t, db)
	if len(events) != 3 || events[1].Details["unreadable"] != "time: yesterday" {
		t.Fatalf("events %+v, want 3 with event 2's time unreadable", events)
	}
	ps := timebox.VerifyChain(events, seq, hash, auditKeys)
	if len(ps) != 1 || ps[0].Seq != 2 || !strings.Contains(ps[0].Problem, "keyed hash (HMAC)") {
		t.Errorf("problems %+v, want event 2 named", ps)
	}
}
