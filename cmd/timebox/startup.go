package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// openStore opens the configured store. When it cannot, the error is one line naming the
// cause a person can act on (a missing or unwritable directory, a file that is not a
// database, an unreachable PostgreSQL), with the store's URL stripped of its password.
func openStore(ctx context.Context, c *Config) (*store.DB, error) {
	dsn, err := c.storeDSN()
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, dsn)
	if err == nil || timebox.ErrorCode(err) != timebox.EINTERNAL {
		return db, err
	}
	where := redactURL(c.Store)
	if scheme, rest, _ := strings.Cut(c.Store, ":"); strings.EqualFold(scheme, "sqlite") {
		return nil, timebox.WrapError(timebox.EUNAVAILABLE, err, "store %s cannot be opened: %s", where, sqliteProblem(strings.TrimPrefix(rest, "//")))
	}
	reason := timebox.ErrorMessage(err)
	if cause := errors.Unwrap(err); cause != nil {
		reason = timebox.ConnReason(cause)
	}
	return nil, timebox.WrapError(timebox.EUNAVAILABLE, err, "store %s cannot be opened: %s", where, reason)
}

// sqliteProblem says why the SQLite file at path could not be opened, from what the file
// system shows.
func sqliteProblem(path string) string {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "directory " + dir + " does not exist"
	case err != nil:
		return "directory " + dir + " cannot be read"
	case !st.IsDir():
		return dir + " is not a directory"
	case syscall.Access(dir, 0o2) != nil: // W_OK: SQLite creates its -wal and -shm files there
		return "directory " + dir + " is not writable"
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return path + " is a directory"
	} else if err == nil && syscall.Access(path, 0o6) != nil {
		return "file " + path + " is not readable and writable"
	} else if err == nil {
		return "file " + path + " is not a Timebox SQLite store (corrupt, or another program's file)"
	}
	return "the file cannot be created"
}
