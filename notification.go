package timebox

import (
	"context"
	"slices"
	"time"
)

// Notifications are delivered from an outbox in the store (package notify). The audit log is
// the outbox's source: every event is committed in the transaction of the change it records,
// so a notification can neither be lost nor made up. The outbox keeps a cursor (the Seq of
// the last event it planned) and one Delivery per message to send; the cursor moves in the
// transaction that adds the deliveries of the events before it, so each event is planned
// exactly once, and nothing is written on the path of an access change.

// DeliveryStatus is where a Delivery stands.
type DeliveryStatus string

// The statuses of a Delivery: pending (waiting for its NextAt), sending (claimed by a sender
// until ClaimedUntil; found so after a crash it is "uncertain": the receiver may have it),
// sent, and failed (given up: the dead-letter list, replayed by RetryDelivery). A sending
// delivery's NextAt is the end of its claim.
const (
	DeliveryPending DeliveryStatus = "pending"
	DeliverySending DeliveryStatus = "sending"
	DeliverySent    DeliveryStatus = "sent"
	DeliveryFailed  DeliveryStatus = "failed"
)

// Delivery is one message of the outbox: what one event (or one scheduled warning) means for
// one channel and, for a direct message, one recipient.
type Delivery struct {
	ID int64 `json:"id"`
	// Key is unique: channel, event (or warning) and recipient. Receivers that deduplicate
	// (webhook-id, Message-ID, Slack message metadata) see it as the idempotency key.
	Key     string `json:"key"`
	Channel string `json:"channel"`
	// Kind is the notification kind (notify.Kind*) or "event" for a webhook's audit event.
	Kind      string `json:"kind"`
	EventSeq  int64  `json:"event_seq,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Recipient is the Timebox user of a direct message; "" for the channel's destination.
	Recipient string         `json:"recipient,omitempty"`
	Status    DeliveryStatus `json:"status"`
	Attempts  int            `json:"attempts"`
	NextAt    time.Time      `json:"next_at,omitzero"`
	LastError string         `json:"last_error,omitempty"`
	// ExternalID is what the receiver called the message (a Slack ts), when it says.
	ExternalID string    `json:"external_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	SentAt     time.Time `json:"sent_at,omitzero"`
}

// DeliveryFilter selects deliveries; zero fields match everything.
type DeliveryFilter struct {
	Status    DeliveryStatus
	Channel   string
	RequestID string
	// Limit keeps the newest Limit (default: all).
	Limit int
}

// Outbox is the store's side of notification delivery (implemented by the store's Tx).
// Methods return EINTERNAL on a store failure and ENOTFOUND for a missing delivery.
type Outbox interface {
	// OutboxCursor returns the Seq of the last event planned; ok is false before the first
	// plan (the outbox then starts at the audit head: history is not replayed).
	OutboxCursor() (seq int64, ok bool, err error)
	// SetOutboxCursor records seq as the last event planned.
	SetOutboxCursor(seq int64) error
	// AddDeliveries stores new pending deliveries, skipping those whose Key exists; it sets
	// the ID of each one it stored.
	AddDeliveries(ds []*Delivery) error
	// ClaimDeliveries marks up to limit deliveries of channel due at now as sending until
	// until (attempts counted) and returns them, oldest first: pending ones with NextAt <= now
	// and sending ones whose claim ran out (their Status is still DeliverySending in what is
	// returned, so that the sender knows the receiver may have them). A delivery about a
	// request waits while an earlier one to the same channel and recipient is undelivered.
	// ordered (a webhook: the audit log in seq order) claims the channel's first undelivered
	// deliveries by ID instead, as far as they are due: none waits behind a later one.
	ClaimDeliveries(channel string, now, until time.Time, limit int, ordered bool) ([]*Delivery, error)
	// SaveDelivery stores the outcome of an attempt: Status, Attempts, NextAt, LastError,
	// ExternalID and SentAt.
	SaveDelivery(d *Delivery) error
	// FindDelivery returns one delivery, or ENOTFOUND.
	FindDelivery(id int64) (*Delivery, error)
	// FindDeliveries returns matching deliveries, newest first.
	FindDeliveries(f DeliveryFilter) ([]*Delivery, error)
	// ReleaseClaims makes every sending delivery due at now (still sending: uncertain). For a
	// store only one process uses (SQLite), at start: the claims were the previous process's.
	ReleaseClaims(now time.Time) error
	// NextDelivery returns the earliest NextAt of channel's undelivered (pending or sending)
	// deliveries that wait for no earlier one (ordered: of the first undelivered), zero when
	// there is none.
	NextDelivery(channel string, ordered bool) (time.Time, error)
	// CountUndelivered returns the number of pending, sending and failed deliveries of each
	// channel: counts[channel][status].
	CountUndelivered() (map[string]map[DeliveryStatus]int, error)
	// DeleteDeliveries removes the sent and failed deliveries created before before (the
	// outbox's retention), and the threads of requests with no delivery left; it returns how
	// many deliveries it removed.
	DeleteDeliveries(before time.Time) (int, error)
	// Thread returns the ExternalID of the message that stands for request on channel (the
	// shared message updated in place), "" when there is none.
	Thread(channel, requestID string) (string, error)
	// PutThread records it.
	PutThread(channel, requestID, externalID string) error
}

// Reviewers returns the people who may decide r now (under its rule, or its pending
// extension's), its requester left out, in the order of Catalog.People.
func (s *Service) Reviewers(r *Request) []*User {
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return nil
	}
	var out []*User
	for _, u := range s.Catalog.People() {
		if u.Name != r.Requester && !u.Disabled && s.mayReview(r, db, u.Name) {
			out = append(out, u)
		}
	}
	return out
}

// Owners returns the people in r's database's owner groups, its requester left out.
func (s *Service) Owners(r *Request) []*User {
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return nil
	}
	var out []*User
	for _, u := range s.Catalog.People() {
		if u.Name != r.Requester && !u.Disabled && slices.ContainsFunc(u.Groups, func(g string) bool { return slices.Contains(db.Owners, g) }) {
			out = append(out, u)
		}
	}
	return out
}

// RetryDelivery puts a failed delivery back in the outbox, due now, with an audit event;
// admins only (EFORBIDDEN), ENOTFOUND for no such delivery, ECONFLICT when it has not failed.
func (s *Service) RetryDelivery(ctx context.Context, actor string, id int64) (*Delivery, error) {
	if !s.Catalog.IsAdmin(actor) {
		return nil, Errorf(EFORBIDDEN, "only admins may retry a notification")
	}
	var d *Delivery
	err := s.Store.Update(ctx, func(tx Tx) (err error) {
		if d, err = tx.FindDelivery(id); err != nil {
			return err
		}
		if d.Status != DeliveryFailed {
			return Errorf(ECONFLICT, "notification %d is %s, not failed", id, d.Status)
		}
		now := s.now()
		d.Status, d.NextAt, d.Attempts = DeliveryPending, now, 0
		if err := tx.SaveDelivery(d); err != nil {
			return err
		}
		return tx.AppendEvent(&Event{Time: now, Actor: actor, Action: "notify.retried", RequestID: d.RequestID,
			Details: map[string]any{"delivery": d.ID, "channel": d.Channel, "kind": d.Kind, "last_error": d.LastError}})
	})
	if err != nil {
		return nil, err
	}
	return d, nil // the outbox follows the change feed: notify.retried wakes it
}

// FailedDeliveries returns the dead-letter list (newest first): Deliveries with status
// failed, for admins and auditors (EFORBIDDEN).
func (s *Service) FailedDeliveries(ctx context.Context, actor string, limit int) ([]*Delivery, error) {
	return s.Deliveries(ctx, actor, DeliveryFilter{Status: DeliveryFailed, Limit: limit})
}
