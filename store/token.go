package store

import (
	"database/sql"
	"time"

	"github.com/timebox-dev/timebox"
)

// tokenColumns are the columns scanToken reads, in its order.
const tokenColumns = `id, username, name, hash, created_at, expires_at, last_used_at, revoked_at, revoked_by, mac`

// CreateToken stores tok. A zero CreatedAt becomes now; times are set to what is stored, UTC
// to the microsecond. ECONFLICT when the ID or the hash exists.
func (t *tx) CreateToken(tok *timebox.Token) error {
	if tok.CreatedAt.IsZero() {
		tok.CreatedAt = time.Now()
	}
	tok.CreatedAt, tok.ExpiresAt = normTime(tok.CreatedAt), normTime(tok.ExpiresAt)
	res, err := t.exec(`
		INSERT INTO tokens (id, username, name, hash, created_at, expires_at, mac) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		tok.ID, tok.User, tok.Name, tok.Hash, t.timeArg(tok.CreatedAt), t.timeArg(tok.ExpiresAt), tok.MAC)
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
	tok, err := scanToken(t.queryRow(`SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash))
	switch {
	case err == sql.ErrNoRows:
		return nil, timebox.Errorf(timebox.ENOTFOUND, "token not found")
	case err != nil:
		return nil, internal(err, "read token")
	}
	return tok, nil
}

// FindTokenByID returns the token with the given ID, or ENOTFOUND.
func (t *tx) FindTokenByID(id string) (*timebox.Token, error) {
	tok, err := scanToken(t.queryRow(`SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
	switch {
	case err == sql.ErrNoRows:
		return nil, timebox.Errorf(timebox.ENOTFOUND, "no token %s", timebox.Clip(id))
	case err != nil:
		return nil, internal(err, "read token")
	}
	return tok, nil
}

// FindTokens returns the tokens of user, or everyone's when user is "", oldest first.
func (t *tx) FindTokens(user string) ([]*timebox.Token, error) {
	rows, err := t.query(`SELECT `+tokenColumns+` FROM tokens WHERE CAST(? AS text) = '' OR username = ?
		ORDER BY created_at, id`, user, user)
	if err != nil {
		return nil, internal(err, "list tokens")
	}
	defer rows.Close()
	out := []*timebox.Token{}
	for rows.Next() {
		tok, err := scanToken(rows)
		if err != nil {
			return nil, internal(err, "list tokens")
		}
		out = append(out, tok)
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err, "list tokens")
	}
	return out, nil
}

// RevokeToken marks a live token revoked and clears its MAC, so that clearing revoked_at
// in the store does not make it work again. ENOTFOUND when there is no such token, ECONFLICT
// when it was revoked already.
func (t *tx) RevokeToken(id, by string, at time.Time) error {
	res, err := t.exec(`UPDATE tokens SET revoked_at = ?, revoked_by = ?, mac = '' WHERE id = ? AND revoked_at IS NULL`,
		t.timeArg(at), by, id)
	if err != nil {
		return internal(err, "revoke token %s", id)
	}
	if n, err := res.RowsAffected(); err != nil {
		return internal(err, "revoke token %s", id)
	} else if n == 1 {
		return nil
	}
	if _, err := t.FindTokenByID(id); err != nil {
		return err
	}
	return timebox.Errorf(timebox.ECONFLICT, "token %s is already revoked", id)
}

// RevokeUserTokens revokes every token of user that is not revoked yet and returns their IDs.
func (t *tx) RevokeUserTokens(user, by string, at time.Time) ([]string, error) {
	if user == "" {
		return nil, nil // never everyone's
	}
	toks, err := t.FindTokens(user)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, tok := range toks {
		if !tok.RevokedAt.IsZero() {
			continue
		}
		if err := t.RevokeToken(tok.ID, by, at); err != nil {
			return nil, err
		}
		ids = append(ids, tok.ID)
	}
	return ids, nil
}

// TouchToken sets last_used_at to at when it is unset or earlier than before.
func (t *tx) TouchToken(id string, at, before time.Time) error {
	_, err := t.exec(`UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
		t.timeArg(at), id, t.timeArg(before))
	if err != nil {
		return internal(err, "record the use of token %s", id)
	}
	return nil
}

// SetTokenMAC sets the MAC of a live token that has none.
func (t *tx) SetTokenMAC(id, mac string) error {
	_, err := t.exec(`UPDATE tokens SET mac = ? WHERE id = ? AND mac = '' AND revoked_at IS NULL`, mac, id)
	if err != nil {
		return internal(err, "authenticate token %s", id)
	}
	return nil
}

// scanToken reads one row of tokenColumns.
func scanToken(row rowScanner) (*timebox.Token, error) {
	var tok timebox.Token
	err := row.Scan(&tok.ID, &tok.User, &tok.Name, &tok.Hash, timeCol{&tok.CreatedAt},
		timeCol{&tok.ExpiresAt}, timeCol{&tok.LastUsedAt}, timeCol{&tok.RevokedAt}, &tok.RevokedBy, &tok.MAC)
	if err != nil {
		return nil, err
	}
	return &tok, nil
}
