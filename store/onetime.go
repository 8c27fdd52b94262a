package store

import (
	"database/sql"
	"time"

	"github.com/timebox-dev/timebox"
)

const oneTimeCodeColumns = `hash, kind, username, challenge, client_name, created_at, expires_at, used_at, mac`

// CreateOneTimeCode stores c; ECONFLICT when its hash exists.
func (t *tx) CreateOneTimeCode(c *timebox.OneTimeCode) error {
	c.CreatedAt, c.ExpiresAt, c.UsedAt = normTime(c.CreatedAt), normTime(c.ExpiresAt), normTime(c.UsedAt)
	res, err := t.exec(`INSERT INTO one_time_codes (`+oneTimeCodeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		c.Hash, c.Kind, c.User, c.Challenge, c.ClientName, t.timeArg(c.CreatedAt), t.timeArg(c.ExpiresAt), t.timeArg(c.UsedAt), c.MAC)
	if err != nil {
		return internal(err, "insert one-time code")
	}
	if n, err := res.RowsAffected(); err != nil {
		return internal(err, "insert one-time code")
	} else if n == 0 {
		return timebox.Errorf(timebox.ECONFLICT, "the one-time code was used already")
	}
	return nil
}

// FindOneTimeCode returns the code with the given hash, or ENOTFOUND.
func (t *tx) FindOneTimeCode(hash string) (*timebox.OneTimeCode, error) {
	var c timebox.OneTimeCode
	err := t.queryRow(`SELECT `+oneTimeCodeColumns+` FROM one_time_codes WHERE hash = ?`, hash).Scan(
		&c.Hash, &c.Kind, &c.User, &c.Challenge, &c.ClientName, timeCol{&c.CreatedAt}, timeCol{&c.ExpiresAt},
		timeCol{&c.UsedAt}, &c.MAC)
	switch {
	case err == sql.ErrNoRows:
		return nil, timebox.Errorf(timebox.ENOTFOUND, "no such one-time code")
	case err != nil:
		return nil, internal(err, "read one-time code")
	}
	return &c, nil
}

// UseOneTimeCode marks the unused code hash used at at: ENOTFOUND when there is no such
// code, ECONFLICT when it was used already (by this replica or another).
func (t *tx) UseOneTimeCode(hash string, at time.Time) error {
	res, err := t.exec(`UPDATE one_time_codes SET used_at = ? WHERE hash = ? AND used_at IS NULL`, t.timeArg(at), hash)
	if err != nil {
		return internal(err, "use one-time code")
	}
	if n, err := res.RowsAffected(); err != nil {
		return internal(err, "use one-time code")
	} else if n == 1 {
		return nil
	}
	if ok, err := t.exists(`SELECT 1 FROM one_time_codes WHERE hash = ?`, hash); err != nil {
		return internal(err, "use one-time code")
	} else if ok {
		return timebox.Errorf(timebox.ECONFLICT, "the one-time code was used already")
	}
	return timebox.Errorf(timebox.ENOTFOUND, "no such one-time code")
}

// DeleteOneTimeCodes removes the codes that expired before before.
func (t *tx) DeleteOneTimeCodes(before time.Time) error {
	if _, err := t.exec(`DELETE FROM one_time_codes WHERE expires_at < ?`, t.timeArg(before)); err != nil {
		return internal(err, "delete one-time codes")
	}
	return nil
}
