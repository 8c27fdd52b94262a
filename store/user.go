package store

import "github.com/timebox-dev/timebox"

// DisableUser records that u is disabled (replacing an earlier record of the same user).
func (t *tx) DisableUser(u *timebox.DisabledUser) error {
	u.At = normTime(u.At)
	_, err := t.exec(`
		INSERT INTO disabled_users (username, disabled_by, note, disabled_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (username) DO UPDATE SET disabled_by = excluded.disabled_by,
			note = excluded.note, disabled_at = excluded.disabled_at`,
		u.Name, u.By, u.Note, t.timeArg(u.At))
	if err != nil {
		return internal(err, "disable user")
	}
	return nil
}

// EnableUser removes the record that name is disabled; ENOTFOUND when there is none.
func (t *tx) EnableUser(name string) error {
	res, err := t.exec(`DELETE FROM disabled_users WHERE username = ?`, name)
	if err != nil {
		return internal(err, "enable user")
	}
	if n, err := res.RowsAffected(); err != nil {
		return internal(err, "enable user")
	} else if n == 0 {
		return timebox.Errorf(timebox.ENOTFOUND, "user %q is not disabled", timebox.Clip(name))
	}
	return nil
}

// DisabledUsers returns the users disabled through the API, by name.
func (t *tx) DisabledUsers() (map[string]*timebox.DisabledUser, error) {
	rows, err := t.query(`SELECT username, disabled_by, note, disabled_at FROM disabled_users`)
	if err != nil {
		return nil, internal(err, "list disabled users")
	}
	defer rows.Close()
	out := map[string]*timebox.DisabledUser{}
	for rows.Next() {
		var u timebox.DisabledUser
		if err := rows.Scan(&u.Name, &u.By, &u.Note, timeCol{&u.At}); err != nil {
			return nil, internal(err, "list disabled users")
		}
		out[u.Name] = &u
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err, "list disabled users")
	}
	return out, nil
}
