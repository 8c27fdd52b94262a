package timebox

import (
	"context"
	"slices"
	"strings"
)

// DeliveryStatuses lists every DeliveryStatus, in the order a delivery moves through them.
var DeliveryStatuses = []DeliveryStatus{DeliveryPending, DeliverySending, DeliverySent, DeliveryFailed}

// ParseDeliveryStatus returns s as a DeliveryStatus; "" is the zero status (any), and an
// unknown one is EINVALID naming the known ones.
func ParseDeliveryStatus(s string) (DeliveryStatus, error) {
	st := DeliveryStatus(s)
	if s == "" || slices.Contains(DeliveryStatuses, st) {
		return st, nil
	}
	names := make([]string, len(DeliveryStatuses))
	for i, x := range DeliveryStatuses {
		names[i] = string(x)
	}
	return "", Errorf(EINVALID, "unknown notification status %q (known: %s)", Clip(s), strings.Join(names, ", "))
}

// Deliveries returns the outbox's deliveries that f selects, newest first: the dead-letter
// list with f.Status = DeliveryFailed, or the notifications of one request with f.RequestID.
// Admins and auditors only (EFORBIDDEN); EINVALID for an unknown status or a negative limit.
// What a delivery shows (its channel, recipient and last error) never holds a secret: the
// senders keep them out of their errors.
func (s *Service) Deliveries(ctx context.Context, actor string, f DeliveryFilter) (ds []*Delivery, err error) {
	if !s.Catalog.IsAdmin(actor) && !s.Catalog.IsAuditor(actor) {
		return nil, Errorf(EFORBIDDEN, "only admins and auditors may list notifications")
	}
	if _, err := ParseDeliveryStatus(string(f.Status)); err != nil {
		return nil, err
	}
	if f.Limit < 0 {
		return nil, Errorf(EINVALID, "limit must not be negative")
	}
	err = s.Store.View(ctx, func(tx Tx) (err error) {
		ds, err = tx.FindDeliveries(f)
		return err
	})
	return ds, err
}
