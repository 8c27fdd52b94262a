package testdb

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// sharedStartTimeout bounds the start of a shared server.
const sharedStartTimeout = 2 * time.Minute

// shared holds the servers shared by all tests of one test binary.
var shared struct {
	mu       sync.Mutex
	pg       *Postgres
	pgErr    error
	maria    *MariaDB
	mariaErr error
}

// RequirePostgres returns the PostgreSQL cluster shared by all tests of the
// test binary, starting it on first use. Tests must not Close or Stop it;
// they create their own databases (CreateDatabase) to stay independent.
// Call CloseShared from TestMain after m.Run to remove it.
//
// When the PostgreSQL binaries are missing the test is skipped, or fails
// when the environment variable CI is true; the message says what to
// install. Any other start error fails the test.
func RequirePostgres(tb testing.TB) *Postgres {
	tb.Helper()
	shared.mu.Lock()
	if shared.pg == nil && shared.pgErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedStartTimeout)
		shared.pg, shared.pgErr = StartPostgres(ctx)
		cancel()
	}
	pg, err := shared.pg, shared.pgErr
	shared.mu.Unlock()
	if err != nil {
		skipOrFail(tb, err)
	}
	return pg
}

// RequireMariaDB returns the MariaDB server shared by all tests of the test
// binary, starting it on first use. Tests must not Close or Stop it. Call
// CloseShared from TestMain after m.Run to remove it.
//
// When the MariaDB binaries are missing the test is skipped, or fails when
// the environment variable CI is true; the message says what to install.
// Any other start error fails the test.
func RequireMariaDB(tb testing.TB) *MariaDB {
	tb.Helper()
	shared.mu.Lock()
	if shared.maria == nil && shared.mariaErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedStartTimeout)
		shared.maria, shared.mariaErr = StartMariaDB(ctx)
		cancel()
	}
	m, err := shared.maria, shared.mariaErr
	shared.mu.Unlock()
	if err != nil {
		skipOrFail(tb, err)
	}
	return m
}

// CloseShared closes the servers started by RequirePostgres and
// RequireMariaDB. Call it from TestMain after m.Run. A later Require call
// starts a new server. (Should a test binary die before calling it, the
// watchdog of each server removes the server within seconds.)
func CloseShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg != nil {
		_ = shared.pg.Close()
	}
	if shared.maria != nil {
		_ = shared.maria.Close()
	}
	shared.pg, shared.pgErr = nil, nil
	shared.maria, shared.mariaErr = nil, nil
}

// skipOrFail ends the test because a server could not be started: it skips
// when binaries are missing and CI is not true, and fails otherwise.
func skipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, errNotInstalled) && !inCI() {
		tb.Skip(err.Error())
	}
	tb.Fatal(err.Error())
}
