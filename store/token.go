package store

import (
	"database/sql"
	"time"

	"github.com/timebox-dev/timebox"
)

// CreateToken stores tok. A zero CreatedAt becomes now; it is set to what is stored, UTC to
// the microsecond. ECONFLICT when the ID or the hash exists.
func (t *tx) CreateToken(tok *timebox.Token) error {
	if tok.CreatedAt.IsZero() {
		tok.CreatedAt = time.Now()
	}
	tok.CreatedAt = normTime(tok.CreatedAt)
	res, err := t.exec(`
		INSERT INTO tokens (id, username, hash, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		tok.ID, tok.User, tok.Hash, t.timeArg(tok.CreatedAt))
	if err != nil {
		return internal(err, "insert token %s", tok.ID)
	}
	if n, err := res.RowsAffected(); err != nil {
		return internal(err, "insert token %s", tok.ID)
	} else if n == 0 {
		return timebox.Errorf(timebox.ECONFLICT, "token %s already exists", tok.ID)
	}
	return nil
}

// FindToken returns the token whose secret has the given hash, or ENOTFOUND.
func (t *tx) FindToken(hash string) (*timebox.Token, error) {
	var tok timebox.Token
	err := t.queryRow(`SELECT id, username, hash, created_at FROM tokens WHERE hash = ?`, hash).
		Scan(&tok.ID, &tok.User, &tok.Hash, timeCol{&tok.CreatedAt})
	switch {
	case err == sql.ErrNoRows:
		return nil, timebox.Errorf(timebox.ENOTFOUND, "token not found")
	case err != nil:
		return nil, internal(err, "read token")
	}
	return &tok, nil
}
