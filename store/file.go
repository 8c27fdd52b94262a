package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/timebox-dev/timebox"
)

// File modes of a SQLite store: the database and its -wal and -shm files hold every decision
// and every sealed password, so only Timebox's own OS user may read or write them.
const (
	storeFileMode = 0o600
	storeDirMode  = 0o700
)

// prepareSQLite makes the directory of path (0700, when it does not exist yet) and the file
// itself (0600), whatever the umask, and takes away any wider mode of an existing file.
func prepareSQLite(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, storeDirMode); err != nil {
			return timebox.Errorf(timebox.EINTERNAL, "store: cannot create the directory %s of the sqlite database", dir)
		} else if err := os.Chmod(dir, storeDirMode); err != nil {
			return timebox.Errorf(timebox.EINTERNAL, "store: cannot make the directory %s private (0700)", dir)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, storeFileMode)
	if err != nil {
		return timebox.Errorf(timebox.EINTERNAL, "store: cannot open or create the sqlite database %s", path)
	}
	f.Close()
	return protectSQLite(path)
}

// protectSQLite sets the database file of path and its -wal and -shm files (those that
// exist) to 0600.
func protectSQLite(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return timebox.Errorf(timebox.EINTERNAL, "store: cannot read the mode of %s", p)
		case fi.Mode().Perm() == storeFileMode:
			continue
		}
		if err := os.Chmod(p, storeFileMode); err != nil {
			return timebox.Errorf(timebox.EINTERNAL, "store: cannot make %s private (0600)", p)
		}
	}
	return nil
}
