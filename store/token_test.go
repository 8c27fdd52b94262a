package store_test

import (
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// testTokenLifecycle lists, touches and revokes tokens.
func testTokenLifecycle(t *testing.T, db *store.DB) {
	update(t, db, func(tx timebox.Tx) error {
		for i, u := range []string{"alice", "bob", "alice"} {
			id := string(rune('a' + i))
			if err := tx.CreateToken(&timebox.Token{ID: id, User: u, Hash: "h" + id, CreatedAt: at(i), MAC: "mac-" + id}); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, db, func(tx timebox.Tx) error {
		if got := tokenIDs(t, tx, "alice"); got != "ac" {
			t.Errorf("alice's tokens = %q, want ac", got)
		}
		if got := tokenIDs(t, tx, ""); got != "abc" {
			t.Errorf("all tokens = %q, want abc (oldest first)", got)
		}
		_, err := tx.FindTokenByID("zz")
		wantCode(t, err, timebox.ENOTFOUND)
		return nil
	})
	update(t, db, func(tx timebox.Tx) error {
		if err := tx.TouchToken("a", at(10), at(9)); err != nil {
			return err
		}
		return tx.TouchToken("a", at(11), at(10)) // not older than at(10): no write
	})
	update(t, db, func(tx timebox.Tx) error {
		if pending, err := tx.PendingUpgrade(timebox.UpgradeTokens); err != nil || !pending {
			t.Errorf("a new store's upgrade %q: pending %v, %v", timebox.UpgradeTokens, pending, err)
		}
		if err := tx.SetTokenMAC("c", "other"); err != nil { // c has a MAC: not replaced
			return err
		}
		if c, _ := tx.FindTokenByID("c"); c.MAC != "mac-c" {
			t.Errorf("token c's MAC = %q, want mac-c (SetTokenMAC replaces no MAC)", c.MAC)
		}
		if err := tx.FinishUpgrade(timebox.UpgradeTokens); err != nil {
			return err
		}
		if pending, err := tx.PendingUpgrade(timebox.UpgradeTokens); err != nil || pending {
			t.Errorf("upgrade %q after FinishUpgrade: pending %v, %v", timebox.UpgradeTokens, pending, err)
		}
		if err := tx.RevokeToken("b", "root", at(20)); err != nil {
			return err
		}
		wantCode(t, tx.RevokeToken("b", "root", at(21)), timebox.ECONFLICT)
		wantCode(t, tx.RevokeToken("zz", "root", at(21)), timebox.ENOTFOUND)
		ids, err := tx.RevokeUserTokens("alice", "timebox", at(30))
		if len(ids) != 2 {
			t.Errorf("RevokeUserTokens(alice) = %v, want two tokens", ids)
		}
		return err
	})
	view(t, db, func(tx timebox.Tx) error {
		a, err := tx.FindTokenByID("a")
		if err != nil {
			return err
		}
		if !a.LastUsedAt.Equal(utc(at(10))) || !a.RevokedAt.Equal(utc(at(30))) || a.RevokedBy != "timebox" {
			t.Errorf("token a = %+v, want last used at(10), revoked at(30) by timebox", a)
		}
		b, _ := tx.FindTokenByID("b")
		if !b.RevokedAt.Equal(utc(at(20))) || b.RevokedBy != "root" || b.MAC != "" {
			t.Errorf("token b = %+v, want revoked at(20) by root, its MAC cleared", b)
		}
		return nil
	})
}

func tokenIDs(t *testing.T, tx timebox.Tx, user string) string {
	t.Helper()
	toks, err := tx.FindTokens(user)
	if err != nil {
		t.Fatal(err)
	}
	s := ""
	for _, tok := range toks {
		s += tok.ID
	}
	return s
}
