package store

import (
	"database/sql"
	"encoding/json"
	"time"

	"github.com/timebox-dev/timebox"
)

const identityColumns = `name, issuer, subject, email, display_name, groups, first_seen, last_sign_in, mac`

// PutIdentity inserts or replaces the identity named id.Name.
func (t *tx) PutIdentity(id *timebox.Identity, mac string) error {
	groups, err := json.Marshal(nonNil(id.Groups))
	if err != nil {
		return internal(err, "encode identity %s", id.Name)
	}
	id.FirstSeen, id.LastSignIn = normTime(id.FirstSeen), normTime(id.LastSignIn)
	_, err = t.exec(`INSERT INTO identities (`+identityColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET issuer = excluded.issuer, subject = excluded.subject, email = excluded.email,
			display_name = excluded.display_name, groups = excluded.groups, last_sign_in = excluded.last_sign_in, mac = excluded.mac`,
		id.Name, id.Issuer, id.Subject, id.Email, id.DisplayName, string(groups), t.timeArg(id.FirstSeen), t.timeArg(id.LastSignIn), mac)
	if err != nil {
		return internal(err, "store identity %s", id.Name)
	}
	return nil
}

// FindIdentity returns the named identity, or ENOTFOUND.
func (t *tx) FindIdentity(name string) (*timebox.Identity, error) {
	id, _, err := scanIdentity(t.queryRow(`SELECT `+identityColumns+` FROM identities WHERE name = ?`, name))
	switch {
	case err == sql.ErrNoRows:
		return nil, timebox.Errorf(timebox.ENOTFOUND, "no identity %q", timebox.Clip(name))
	case err != nil:
		return nil, internal(err, "read identity")
	}
	return id, nil
}

// FindIdentityBySubject returns the identity of issuer and subject, or ENOTFOUND.
func (t *tx) FindIdentityBySubject(issuer, subject string) (*timebox.Identity, error) {
	id, _, err := scanIdentity(t.queryRow(`SELECT `+identityColumns+` FROM identities WHERE issuer = ? AND subject = ?`, issuer, subject))
	switch {
	case err == sql.ErrNoRows:
		return nil, timebox.Errorf(timebox.ENOTFOUND, "no identity for that provider account")
	case err != nil:
		return nil, internal(err, "read identity")
	}
	return id, nil
}

// FindIdentities returns every identity by name, with their MACs.
func (t *tx) FindIdentities() ([]*timebox.Identity, []string, error) {
	rows, err := t.query(`SELECT ` + identityColumns + ` FROM identities ORDER BY name`)
	if err != nil {
		return nil, nil, internal(err, "list identities")
	}
	defer rows.Close()
	var ids []*timebox.Identity
	var macs []string
	for rows.Next() {
		id, mac, err := scanIdentity(rows)
		if err != nil {
			return nil, nil, internal(err, "list identities")
		}
		ids, macs = append(ids, id), append(macs, mac)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, internal(err, "list identities")
	}
	return ids, macs, nil
}

func scanIdentity(row rowScanner) (*timebox.Identity, string, error) {
	var id timebox.Identity
	var groups, mac string
	err := row.Scan(&id.Name, &id.Issuer, &id.Subject, &id.Email, &id.DisplayName, &groups,
		timeCol{&id.FirstSeen}, timeCol{&id.LastSignIn}, &mac)
	if err != nil {
		return nil, "", err
	}
	if err := json.Unmarshal([]byte(groups), &id.Groups); err != nil {
		return nil, "", err
	}
	return &id, mac, nil
}

const webSessionColumns = `id, hash, username, via, client, csrf, created_at, last_seen_at, expires_at, ended_at, mac`

// CreateWebSession stores ws; ECONFLICT when its ID or hash exists.
func (t *tx) CreateWebSession(ws *timebox.WebSession) error {
	ws.CreatedAt, ws.LastSeenAt, ws.ExpiresAt = normTime(ws.CreatedAt), normTime(ws.LastSeenAt), normTime(ws.ExpiresAt)
	res, err := t.exec(`INSERT INTO web_sessions (`+webSessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)
		ON CONFLICT DO NOTHING`,
		ws.ID, ws.Hash, ws.User, ws.Via, ws.Client, ws.CSRF, t.timeArg(ws.CreatedAt), t.timeArg(ws.LastSeenAt), t.timeArg(ws.ExpiresAt), ws.MAC)
	if err != nil {
		return internal(err, "insert session")
	}
	if n, err := res.RowsAffected(); err != nil {
		return internal(err, "insert session")
	} else if n == 0 {
		return timebox.Errorf(timebox.ECONFLICT, "session %s already exists", ws.ID)
	}
	return nil
}

// FindWebSession returns the session with the given hash, or ENOTFOUND.
func (t *tx) FindWebSession(hash string) (*timebox.WebSession, error) {
	var ws timebox.WebSession
	err := t.queryRow(`SELECT `+webSessionColumns+` FROM web_sessions WHERE hash = ?`, hash).Scan(
		&ws.ID, &ws.Hash, &ws.User, &ws.Via, &ws.Client, &ws.CSRF, timeCol{&ws.CreatedAt}, timeCol{&ws.LastSeenAt},
		timeCol{&ws.ExpiresAt}, timeCol{&ws.EndedAt}, &ws.MAC)
	switch {
	case err == sql.ErrNoRows:
		return nil, timebox.Errorf(timebox.ENOTFOUND, "session not found")
	case err != nil:
		return nil, internal(err, "read session")
	}
	return &ws, nil
}

// TouchWebSession sets a session's last use.
func (t *tx) TouchWebSession(id string, at time.Time) error {
	if _, err := t.exec(`UPDATE web_sessions SET last_seen_at = ? WHERE id = ?`, t.timeArg(at), id); err != nil {
		return internal(err, "record the use of a session")
	}
	return nil
}

// EndWebSessions ends the live session id, or (id "") every live session of user.
func (t *tx) EndWebSessions(id, user string, at time.Time) error {
	var err error
	if id != "" {
		_, err = t.exec(`UPDATE web_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL`, t.timeArg(at), id)
	} else if user != "" {
		_, err = t.exec(`UPDATE web_sessions SET ended_at = ? WHERE username = ? AND ended_at IS NULL`, t.timeArg(at), user)
	}
	if err != nil {
		return internal(err, "end sessions")
	}
	return nil
}
