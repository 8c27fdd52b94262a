package store

import (
	"database/sql"
	"encoding/json"
	"slices"
	"time"

	"github.com/timebox-dev/timebox"
)

// AppendEvent chains e to the last recorded event, stores it and moves the audit head to it.
// It sets e.Seq, e.PrevHash and e.Hash; e.Time becomes UTC to the microsecond (now when zero)
// and e.Details becomes what reading it back returns: its JSON decoded into map[string]any,
// nil when empty. So the hash covers exactly what is stored.
func (t *tx) AppendEvent(e *timebox.Event) error {
	details, text, err := normDetails(e.Details)
	if err != nil {
		return timebox.WrapError(timebox.EINVALID, err, "store: the details of a %q event cannot be encoded as JSON", e.Action)
	}
	seq, hash, err := t.AuditHead()
	if err != nil {
		return err
	}
	var prev *timebox.Event
	if seq > 0 {
		prev = &timebox.Event{Seq: seq, Hash: hash}
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Details = details
	e.Chain(prev)
	_, err = t.exec(`
		INSERT INTO events (seq, time, actor, action, request_id, database, details, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, t.timeArg(e.Time), e.Actor, e.Action, e.RequestID, e.Database, text, e.PrevHash, e.Hash)
	if err != nil {
		return internal(err, "insert audit event %d", e.Seq)
	}
	_, err = t.exec(`
		INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)
		ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`,
		e.Seq, e.Hash)
	if err != nil {
		return internal(err, "move the audit head to event %d", e.Seq)
	}
	return nil
}

// normDetails returns d as it reads back from the store, and the text to store (NULL when d
// is empty). JSON numbers read back as float64, structs as maps with sorted keys.
func normDetails(d map[string]any) (map[string]any, any, error) {
	if len(d) == 0 {
		return nil, nil, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, nil, err
	}
	norm, err := decodeDetails(b)
	if err != nil {
		return nil, nil, err
	}
	if norm == nil {
		return nil, nil, nil
	}
	if b, err = json.Marshal(norm); err != nil {
		return nil, nil, err
	}
	return norm, string(b), nil
}

// decodeDetails decodes stored details; null and {} both become a nil map.
func decodeDetails(b []byte) (map[string]any, error) {
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	if len(d) == 0 {
		return nil, nil
	}
	return d, nil
}

// FindEvents returns the events that match f in Seq order. With f.Limit > 0 they are the
// last f.Limit matching events.
func (t *tx) FindEvents(f timebox.EventFilter) ([]*timebox.Event, error) {
	var where []string
	var args []any
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if f.User != "" {
		where = append(where, "(actor = ? OR request_id IN (SELECT id FROM requests WHERE requester = ?))")
		args = append(args, f.User, f.User)
	}
	if f.Database != "" {
		where, args = append(where, "database = ?"), append(args, f.Database)
	}
	if f.RequestID != "" {
		where, args = append(where, "request_id = ?"), append(args, f.RequestID)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, t.timeArg(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time < ?"), append(args, t.timeArg(f.Until))
	}
	if v := f.Visible; v != nil {
		cond := "(actor = ? OR request_id IN (SELECT id FROM requests WHERE requester = ?))"
		args = append(args, v.Requester, v.Requester)
		if len(v.Databases) > 0 {
			cond = "(actor = ? OR request_id IN (SELECT id FROM requests WHERE requester = ? OR database IN (" +
				placeholders(len(v.Databases)) + ")))"
			for _, d := range v.Databases {
				args = append(args, d)
			}
		}
		where = append(where, cond)
	}
	query := `SELECT seq, time, actor, action, request_id, database, details, prev_hash, hash
		FROM events` + whereClause(where)
	if f.Limit > 0 {
		query, args = query+` ORDER BY seq DESC LIMIT ?`, append(args, f.Limit)
	} else {
		query += ` ORDER BY seq`
	}
	events, err := t.scanEvents(query, args...)
	if err != nil {
		return nil, err
	}
	if f.Limit > 0 {
		slices.Reverse(events)
	}
	return events, nil
}

func (t *tx) scanEvents(query string, args ...any) ([]*timebox.Event, error) {
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, internal(err, "list audit events")
	}
	defer rows.Close()
	var list []*timebox.Event
	for rows.Next() {
		var e timebox.Event
		var details sql.NullString
		err := rows.Scan(&e.Seq, timeCol{&e.Time}, &e.Actor, &e.Action, &e.RequestID, &e.Database,
			&details, &e.PrevHash, &e.Hash)
		if err != nil {
			return nil, internal(err, "read audit events")
		}
		if details.Valid {
			if e.Details, err = decodeDetails([]byte(details.String)); err != nil {
				return nil, internal(err, "decode the details of audit event %d", e.Seq)
			}
		}
		list = append(list, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err, "list audit events")
	}
	return list, nil
}

// AuditHead returns the Seq and Hash of the last event the store recorded, or 0 and "" when
// there is none.
func (t *tx) AuditHead() (int64, string, error) {
	var seq int64
	var hash string
	err := t.queryRow(`SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &hash)
	switch {
	case err == sql.ErrNoRows:
		return 0, "", nil
	case err != nil:
		return 0, "", internal(err, "read the audit head")
	}
	return seq, hash, nil
}
