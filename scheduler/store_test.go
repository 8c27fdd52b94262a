package scheduler

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// openStore opens a fresh SQLite store, closed when the test ends.
func openStore(t *testing.T) *store.DB {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// putRequest stores r and, when g is not nil, its grant.
func putRequest(t *testing.T, st timebox.Store, r *timebox.Request, g *timebox.Grant) {
	t.Helper()
	err := st.Update(context.Background(), func(tx timebox.Tx) error {
		if err := tx.CreateRequest(r); err != nil || g == nil {
			return err
		}
		return tx.PutGrant(g)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// loadRequest returns request id as stored.
func loadRequest(t *testing.T, st timebox.Store, id string) *timebox.Request {
	t.Helper()
	var r *timebox.Request
	if err := st.View(context.Background(), func(tx timebox.Tx) (err error) { r, err = tx.FindRequest(id); return err }); err != nil {
		t.Fatal(err)
	}
	return r
}

// putSealed stores r and g as the service and the scheduler would have authenticated them.
func putSealed(t *testing.T, st timebox.Store, keys *timebox.Keyring, r *timebox.Request, g *timebox.Grant) {
	t.Helper()
	keys.SealDecision(r)
	if g != nil {
		keys.SealIntent(g)
	}
	putRequest(t, st, r, g)
}
