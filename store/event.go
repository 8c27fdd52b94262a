package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/timebox-dev/timebox"
)

// head is the audit head: the last event's Seq, Hash and KeyID.
type head struct {
	seq       int64
	hash, key string
}

// AppendEvent chains e to the last recorded event, stores it and moves the audit head to it.
// It sets e.Seq, e.PrevHash, e.KeyID and e.Hash; e.Time becomes UTC to the microsecond (now
// when zero) and e.Details becomes what reading it back returns: its JSON decoded into
// map[string]any, nil when empty. So the hash covers exactly what is stored.
//
// With the store's Keys the hash is keyed; the first keyed event after plain (legacy) ones is
// preceded by the switch event (ActionAuditKeyed). Without Keys a plain event is appended,
// unless the chain is keyed already (EINTERNAL: it would read as forged).
func (t *tx) AppendEvent(e *timebox.Event) error {
	details, text, err := normDetails(e.Details)
	if err != nil {
		return timebox.WrapError(timebox.EINVALID, err, "store: the details of a %q event cannot be encoded as JSON", e.Action)
	}
	h, err := t.head()
	if err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	switch {
	case t.keys == nil && h.key != "":
		return timebox.Errorf(timebox.EINTERNAL, "store: the audit chain is keyed, but this store was opened without the keys of secret_key")
	case t.keys != nil && h.seq > 0 && h.key == "":
		id, _ := t.keys.Key(timebox.PurposeAudit)
		swDetails, swText, _ := normDetails(map[string]any{
			"key_id": id, "note": "from this event on, every event's hash is an HMAC-SHA256 keyed from secret_key",
		})
		sw := &timebox.Event{Time: e.Time, Actor: timebox.Actor, Action: timebox.ActionAuditKeyed, Details: swDetails}
		if h, err = t.insertEvent(sw, h, swText); err != nil {
			return err
		}
	}
	e.Details = details
	_, err = t.insertEvent(e, h, text)
	return err
}

// insertEvent chains e to h, stores it with details text and moves the head to it.
func (t *tx) insertEvent(e *timebox.Event, h head, text any) (head, error) {
	var prev *timebox.Event
	if h.seq > 0 {
		prev = &timebox.Event{Seq: h.seq, Hash: h.hash}
	}
	e.Chain(prev, t.keys)
	_, err := t.exec(`
		INSERT INTO events (seq, time, actor, action, request_id, database, details, prev_hash, hash, key_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, t.timeArg(e.Time), e.Actor, e.Action, e.RequestID, e.Database, text, e.PrevHash, e.Hash, e.KeyID)
	if err != nil {
		return h, internal(err, "insert audit event %d", e.Seq)
	}
	_, err = t.exec(`
		INSERT INTO audit_head (id, seq, hash, key_id) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, key_id = excluded.key_id`,
		e.Seq, e.Hash, e.KeyID)
	if err != nil {
		return h, internal(err, "move the audit head to event %d", e.Seq)
	}
	t.appended = &head{e.Seq, e.Hash, e.KeyID}
	t.changes = append(t.changes, timebox.Change{Seq: e.Seq, Action: e.Action, Actor: e.Actor, RequestID: e.RequestID, Database: e.Database})
	return *t.appended, nil
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

// scanEvent reads one event row. A stored time or details that cannot be read (written into
// the store by hand) do not hide the log: the event is returned with its details replaced by
// {"unreadable": what was stored}, so that its hash no longer matches and verification names
// it as edited.
func scanEvent(row rowScanner) (*timebox.Event, error) {
	var e timebox.Event
	var at, details sql.NullString
	var atTime any
	err := row.Scan(&e.Seq, &atTime, &e.Actor, &e.Action, &e.RequestID, &e.Database,
		&details, &e.PrevHash, &e.Hash, &e.KeyID)
	if err != nil {
		return nil, err
	}
	var unreadable []string
	if err := (timeCol{&e.Time}).Scan(atTime); err != nil {
		at.Scan(atTime)
		unreadable = append(unreadable, "time: "+at.String)
	}
	if details.Valid {
		if e.Details, err = decodeDetails([]byte(details.String)); err != nil {
			unreadable = append(unreadable, "details: "+details.String)
		}
	}
	if unreadable != nil {
		e.Details = map[string]any{"unreadable": strings.Join(unreadable, "; ")}
	}
	return &e, nil
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
	if prefix, ok := strings.CutSuffix(f.Action, "*"); ok {
		where, args = append(where, "substr(action, 1, ?) = ?"), append(args, utf8.RuneCountInString(prefix), prefix)
	} else if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if f.Before > 0 {
		where, args = append(where, "seq < ?"), append(args, f.Before)
	}
	if f.From > 0 {
		where, args = append(where, "seq >= ?"), append(args, f.From)
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
	query := `SELECT seq, time, actor, action, request_id, database, details, prev_hash, hash, key_id
		FROM events` + whereClause(where)
	forward := f.From > 0
	if f.Limit > 0 && forward {
		query, args = query+` ORDER BY seq LIMIT ?`, append(args, f.Limit)
	} else if f.Limit > 0 {
		query, args = query+` ORDER BY seq DESC LIMIT ?`, append(args, f.Limit)
	} else {
		query += ` ORDER BY seq`
	}
	events, err := t.scanEvents(query, args...)
	if err != nil {
		return nil, err
	}
	if f.Limit > 0 && !forward {
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
		e, err := scanEvent(rows)
		if err != nil {
			return nil, internal(err, "read audit events")
		}
		list = append(list, e)
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err, "list audit events")
	}
	return list, nil
}

// AuditHead returns the Seq and Hash of the last event the store recorded, or 0 and "" when
// there is none.
func (t *tx) AuditHead() (int64, string, error) {
	h, err := t.head()
	return h.seq, h.hash, err
}

func (t *tx) head() (head, error) {
	var h head
	err := t.queryRow(`SELECT seq, hash, key_id FROM audit_head WHERE id = 1`).Scan(&h.seq, &h.hash, &h.key)
	switch {
	case err == sql.ErrNoRows:
		return head{}, nil
	case err != nil:
		return head{}, internal(err, "read the audit head")
	}
	return h, nil
}

// NoteHead hands the current audit head to the Checkpoint (when set): after opening the
// store, so that a checkpoint file records the head the server starts from.
func (db *DB) NoteHead(ctx context.Context) error {
	if db.Checkpoint == nil {
		return nil
	}
	return db.View(ctx, func(ttx timebox.Tx) error {
		h, err := ttx.(*tx).head()
		if err == nil {
			db.Checkpoint.Note(h.seq, h.hash, h.key) // head 0 starts a new file on an empty store
		}
		return err
	})
}
