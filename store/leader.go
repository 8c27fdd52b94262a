package store

import (
	"context"
	"database/sql"
	"os"
	"sync"
	"syscall"
)

// schedulerLockID is the PostgreSQL session advisory lock held by the one process that runs
// database work for a store.
const schedulerLockID int64 = 0x74696d65626f7802

// leader is the scheduler lock of one process: a session advisory lock on a dedicated
// connection (PostgreSQL) or an exclusive flock on a file beside the database (SQLite). Both
// are released by the operating system or the database when the process dies.
type leader struct {
	mu   sync.Mutex
	conn *sql.Conn // PostgreSQL: the session that holds the lock
	file *os.File  // SQLite: the locked file
}

// Lead reports whether this process holds the store's scheduler lock, taking it when it is
// free. Only the holder may change target databases, so that several server processes on one
// store never work on the same request at once; the others serve the API and take over when
// the holder dies. A lost PostgreSQL session means a lost lock.
func (db *DB) Lead(ctx context.Context) bool {
	l := &db.leader
	l.mu.Lock()
	defer l.mu.Unlock()
	if db.dialect == dialectSQLite {
		if l.file == nil {
			f, err := os.OpenFile(db.path+"-scheduler.lock", os.O_CREATE|os.O_RDWR, 0o600)
			if err != nil {
				return false
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				f.Close()
				return false
			}
			l.file = f
		}
		return true
	}
	if l.conn != nil {
		if l.conn.PingContext(ctx) == nil {
			return true
		}
		l.conn.Close() // the session, and with it the lock, is gone
		l.conn = nil
	}
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return false
	}
	var held bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", schedulerLockID).Scan(&held); err != nil || !held {
		conn.Close()
		return false
	}
	l.conn = conn
	return true
}

func (l *leader) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", schedulerLockID)
		l.conn.Close()
		l.conn = nil
	}
	if l.file != nil {
		l.file.Close() // closing the descriptor releases the flock
		l.file = nil
	}
}
