package store_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// A SQLite store is created 0600 (its -wal and -shm files too) in a directory Timebox creates
// 0700, whatever the umask; an existing file with a wider mode is made 0600 when opened.
func TestSQLiteFileModes(t *testing.T) {
	old := syscall.Umask(0) // the widest umask: the modes must not depend on it
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data", "timebox")
	path := filepath.Join(dir, "timebox.db")
	db, err := store.Open(t.Context(), "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(t.Context(), func(tx timebox.Tx) error {
		return tx.CreateRequest(&timebox.Request{ID: "r1", Requester: "alice", Database: "shop", Access: "ro", State: timebox.StatePending, Version: 1})
	})
	if err != nil {
		t.Fatal(err)
	}
	mode := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(dir); m != 0o700 {
		t.Errorf("data directory %s: mode %o, want 700", dir, m)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if m := mode(p); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
		}
	}
	db.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if _, err := os.Stat(p); err == nil {
			os.Chmod(p, 0o644)
		}
	}
	if db, err = store.Open(t.Context(), "sqlite://"+path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if m := mode(p); m != 0o600 {
			t.Errorf("%s after reopening a 0644 file: mode %o, want 600", filepath.Base(p), m)
		}
	}
}
