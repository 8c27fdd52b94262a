package store_test

import (
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
	"github.com/timebox-dev/timebox/store"
)

func TestSQLiteOneTimeCodes(t *testing.T) { testOneTimeCodes(t, openSQLite(t)) }

func TestPostgresOneTimeCodes(t *testing.T) {
	testdb.RequirePostgres(t)
	testOneTimeCodes(t, openPostgres(t))
}

// testOneTimeCodes: a code round-trips, is used once (ECONFLICT the second time, ENOTFOUND
// when unknown), a hash cannot be stored twice, and expired codes are deleted.
func testOneTimeCodes(t *testing.T, db *store.DB) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	c := &timebox.OneTimeCode{Hash: "h1", Kind: timebox.CodeCLILogin, User: "alice", Challenge: "ch", ClientName: "laptop",
		CreatedAt: now, ExpiresAt: now.Add(2 * time.Minute), MAC: "mac"}
	old := &timebox.OneTimeCode{Hash: "h0", Kind: timebox.CodeSignInState, CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute), UsedAt: now.Add(-time.Hour)}
	update := func(fn func(tx timebox.Tx) error) error { return db.Update(t.Context(), fn) }
	if err := update(func(tx timebox.Tx) error {
		if err := tx.CreateOneTimeCode(c); err != nil {
			return err
		}
		return tx.CreateOneTimeCode(old)
	}); err != nil {
		t.Fatal(err)
	}
	if err := update(func(tx timebox.Tx) error { return tx.CreateOneTimeCode(c) }); timebox.ErrorCode(err) != timebox.ECONFLICT {
		t.Fatalf("the same hash twice: %v", err)
	}
	var got *timebox.OneTimeCode
	db.View(t.Context(), func(tx timebox.Tx) (err error) { got, err = tx.FindOneTimeCode("h1"); return err })
	if got == nil || *got != *c {
		t.Fatalf("FindOneTimeCode = %+v, want %+v", got, c)
	}
	if err := update(func(tx timebox.Tx) error { return tx.UseOneTimeCode("h1", now) }); err != nil {
		t.Fatal(err)
	}
	if err := update(func(tx timebox.Tx) error { return tx.UseOneTimeCode("h1", now) }); timebox.ErrorCode(err) != timebox.ECONFLICT {
		t.Fatalf("used twice: %v", err)
	}
	if err := update(func(tx timebox.Tx) error { return tx.UseOneTimeCode("nope", now) }); timebox.ErrorCode(err) != timebox.ENOTFOUND {
		t.Fatalf("unknown: %v", err)
	}
	if err := update(func(tx timebox.Tx) error { return tx.DeleteOneTimeCodes(now) }); err != nil {
		t.Fatal(err)
	}
	err := db.View(t.Context(), func(tx timebox.Tx) error {
		if _, err := tx.FindOneTimeCode("h0"); timebox.ErrorCode(err) != timebox.ENOTFOUND {
			t.Errorf("expired code kept: %v", err)
		}
		got, err := tx.FindOneTimeCode("h1")
		if err != nil || !got.UsedAt.Equal(now) {
			t.Errorf("live code after the purge: %+v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
