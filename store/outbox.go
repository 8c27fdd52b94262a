package store

import (
	"database/sql"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// The notification outbox: see timebox.Outbox and migration 00011.

const deliveryColumns = `id, dedup_key, channel, kind, event_seq, request_id, recipient, status, attempts, next_at, last_error, external_id, created_at, sent_at`

// notWaiting is the condition on deliveries d that d waits for no earlier delivery: a
// message about a request waits for the earlier ones about it to the same channel and
// recipient (a thread is updated in order); one given up (failed) holds nothing.
const notWaiting = `NOT EXISTS (SELECT 1 FROM deliveries e WHERE d.request_id <> '' AND e.request_id = d.request_id
	AND e.channel = d.channel AND e.recipient = d.recipient AND e.id < d.id AND e.status IN ('pending', 'sending'))`

// deliveryColumnsD is deliveryColumns of the table aliased d.
var deliveryColumnsD = "d." + strings.ReplaceAll(deliveryColumns, ", ", ", d.")

func scanDelivery(row rowScanner) (*timebox.Delivery, error) {
	var d timebox.Delivery
	var status string
	err := row.Scan(&d.ID, &d.Key, &d.Channel, &d.Kind, &d.EventSeq, &d.RequestID, &d.Recipient, &status, &d.Attempts,
		timeCol{&d.NextAt}, &d.LastError, &d.ExternalID, timeCol{&d.CreatedAt}, timeCol{&d.SentAt})
	d.Status = timebox.DeliveryStatus(status)
	return &d, err
}

// OutboxCursor returns the last planned event's seq; ok is false before the first plan.
func (t *tx) OutboxCursor() (int64, bool, error) {
	var seq int64
	err := t.queryRow(`SELECT seq FROM outbox_cursor WHERE id = 1`).Scan(&seq)
	switch {
	case err == sql.ErrNoRows:
		return 0, false, nil
	case err != nil:
		return 0, false, internal(err, "read the outbox cursor")
	}
	return seq, true, nil
}

// SetOutboxCursor records seq as the last planned event.
func (t *tx) SetOutboxCursor(seq int64) error {
	_, err := t.exec(`INSERT INTO outbox_cursor (id, seq) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET seq = excluded.seq`, seq)
	if err != nil {
		return internal(err, "move the outbox cursor")
	}
	return nil
}

// AddDeliveries stores new deliveries, skipping keys that exist.
func (t *tx) AddDeliveries(ds []*timebox.Delivery) error {
	for _, d := range ds {
		if d.Status == "" {
			d.Status = timebox.DeliveryPending
		}
		if d.CreatedAt.IsZero() {
			d.CreatedAt = time.Now()
		}
		if d.NextAt.IsZero() {
			d.NextAt = d.CreatedAt
		}
		d.NextAt, d.CreatedAt = normTime(d.NextAt), normTime(d.CreatedAt)
		err := t.queryRow(`INSERT INTO deliveries (dedup_key, channel, kind, event_seq, request_id, recipient, status,
			attempts, next_at, last_error, external_id, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (dedup_key) DO NOTHING RETURNING id`,
			d.Key, d.Channel, d.Kind, d.EventSeq, d.RequestID, d.Recipient, string(d.Status), d.Attempts,
			t.timeArg(d.NextAt), d.LastError, d.ExternalID, t.timeArg(d.CreatedAt)).Scan(&d.ID)
		if err != nil && err != sql.ErrNoRows {
			return internal(err, "add a delivery to the outbox")
		}
	}
	return nil
}

// ClaimDeliveries claims up to limit of channel's due deliveries until until.
func (t *tx) ClaimDeliveries(channel string, now, until time.Time, limit int, ordered bool) ([]*timebox.Delivery, error) {
	query := `SELECT ` + deliveryColumnsD + ` FROM deliveries d
		WHERE channel = ? AND status IN ('pending', 'sending') AND next_at <= ? AND ` + notWaiting + `
		ORDER BY next_at, id LIMIT ?`
	args := []any{channel, t.timeArg(now), limit}
	if ordered {
		query = `SELECT ` + deliveryColumnsD + ` FROM deliveries d
		WHERE channel = ? AND status IN ('pending', 'sending') ORDER BY id LIMIT ?`
		args = []any{channel, limit}
	}
	ds, err := t.scanDeliveries(query, args...)
	if err != nil {
		return nil, internal(err, "claim deliveries")
	}
	if ordered { // as far as they are due
		for i, d := range ds {
			if d.NextAt.After(now) {
				ds = ds[:i]
				break
			}
		}
	}
	until = normTime(until)
	for _, d := range ds {
		if _, err := t.exec(`UPDATE deliveries SET status = 'sending', attempts = attempts + 1, next_at = ? WHERE id = ?`,
			t.timeArg(until), d.ID); err != nil {
			return nil, internal(err, "claim delivery %d", d.ID)
		}
		d.Attempts++
	}
	return ds, nil
}

// scanDeliveries runs a query of deliveries.
func (t *tx) scanDeliveries(query string, args ...any) ([]*timebox.Delivery, error) {
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ds []*timebox.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, rows.Err()
}

// SaveDelivery stores the outcome of an attempt.
func (t *tx) SaveDelivery(d *timebox.Delivery) error {
	d.NextAt, d.SentAt = normTime(d.NextAt), normTime(d.SentAt)
	res, err := t.exec(`UPDATE deliveries SET status = ?, attempts = ?, next_at = ?, last_error = ?, external_id = ?, sent_at = ?
		WHERE id = ?`, string(d.Status), d.Attempts, t.timeArg(d.NextAt), d.LastError, d.ExternalID, t.timeArg(d.SentAt), d.ID)
	if err != nil {
		return internal(err, "save delivery %d", d.ID)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return timebox.Errorf(timebox.ENOTFOUND, "no notification %d", d.ID)
	}
	return nil
}

// FindDelivery returns one delivery, or ENOTFOUND.
func (t *tx) FindDelivery(id int64) (*timebox.Delivery, error) {
	d, err := scanDelivery(t.queryRow(`SELECT `+deliveryColumns+` FROM deliveries WHERE id = ?`, id))
	switch {
	case err == sql.ErrNoRows:
		return nil, timebox.Errorf(timebox.ENOTFOUND, "no notification %d", id)
	case err != nil:
		return nil, internal(err, "read delivery %d", id)
	}
	return d, nil
}

// FindDeliveries returns matching deliveries, newest first.
func (t *tx) FindDeliveries(f timebox.DeliveryFilter) ([]*timebox.Delivery, error) {
	var where []string
	var args []any
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.Channel != "" {
		where, args = append(where, "channel = ?"), append(args, f.Channel)
	}
	if f.RequestID != "" {
		where, args = append(where, "request_id = ?"), append(args, f.RequestID)
	}
	query := `SELECT ` + deliveryColumns + ` FROM deliveries` + whereClause(where) + ` ORDER BY id DESC`
	if f.Limit > 0 {
		query, args = query+` LIMIT ?`, append(args, f.Limit)
	}
	ds, err := t.scanDeliveries(query, args...)
	if err != nil {
		return nil, internal(err, "find deliveries")
	}
	return ds, nil
}

// NextDelivery returns the earliest next_at of channel's undelivered deliveries.
func (t *tx) NextDelivery(channel string, ordered bool) (time.Time, error) {
	var next time.Time
	query := `SELECT MIN(next_at) FROM deliveries d WHERE channel = ? AND status IN ('pending', 'sending') AND ` + notWaiting
	if ordered {
		query = `SELECT next_at FROM deliveries WHERE channel = ? AND status IN ('pending', 'sending') ORDER BY id LIMIT 1`
	}
	err := t.queryRow(query, channel).Scan(timeCol{&next})
	if err == sql.ErrNoRows {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, internal(err, "find the next delivery")
	}
	return next, nil
}

// Thread returns the external id of request's message on channel, "" when none.
func (t *tx) Thread(channel, requestID string) (string, error) {
	var id string
	err := t.queryRow(`SELECT external_id FROM notify_threads WHERE channel = ? AND request_id = ?`, channel, requestID).Scan(&id)
	if err != nil && err != sql.ErrNoRows {
		return "", internal(err, "read the message of request %s on %s", requestID, channel)
	}
	return id, nil
}

// PutThread records the external id of request's message on channel.
func (t *tx) PutThread(channel, requestID, externalID string) error {
	_, err := t.exec(`INSERT INTO notify_threads (channel, request_id, external_id) VALUES (?, ?, ?)
		ON CONFLICT (channel, request_id) DO UPDATE SET external_id = excluded.external_id`, channel, requestID, externalID)
	if err != nil {
		return internal(err, "record the message of request %s on %s", requestID, channel)
	}
	return nil
}

// ReleaseClaims makes every sending delivery due at now.
func (t *tx) ReleaseClaims(now time.Time) error {
	if _, err := t.exec(`UPDATE deliveries SET next_at = ? WHERE status = 'sending'`, t.timeArg(now)); err != nil {
		return internal(err, "release the claims of deliveries")
	}
	return nil
}

// CountUndelivered counts the pending, sending and failed deliveries of each channel.
func (t *tx) CountUndelivered() (map[string]map[timebox.DeliveryStatus]int, error) {
	rows, err := t.query(`SELECT channel, status, COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending', 'failed')
		GROUP BY channel, status`)
	if err != nil {
		return nil, internal(err, "count deliveries")
	}
	defer rows.Close()
	out := map[string]map[timebox.DeliveryStatus]int{}
	for rows.Next() {
		var channel, status string
		var n int
		if err := rows.Scan(&channel, &status, &n); err != nil {
			return nil, internal(err, "count deliveries")
		}
		if out[channel] == nil {
			out[channel] = map[timebox.DeliveryStatus]int{}
		}
		out[channel][timebox.DeliveryStatus(status)] = n
	}
	return out, rows.Err()
}

// DeleteDeliveries removes the finished deliveries created before before, and orphaned threads.
func (t *tx) DeleteDeliveries(before time.Time) (int, error) {
	res, err := t.exec(`DELETE FROM deliveries WHERE status IN ('sent', 'failed') AND created_at < ?`, t.timeArg(before))
	if err != nil {
		return 0, internal(err, "delete old deliveries")
	}
	n, _ := res.RowsAffected()
	if _, err := t.exec(`DELETE FROM notify_threads WHERE NOT EXISTS
		(SELECT 1 FROM deliveries d WHERE d.channel = notify_threads.channel AND d.request_id = notify_threads.request_id)`); err != nil {
		return 0, internal(err, "delete old threads")
	}
	return int(n), nil
}
