package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/timebox-dev/timebox"
)

// sendBatch is how many deliveries a sender claims at once; sendTimeout bounds one attempt.
const (
	sendBatch   = 20
	sendTimeout = 30 * time.Second
)

// send delivers ch's messages until ctx ends: it claims what is due, sends each at the
// channel's rate and records each outcome at once (so that a crash leaves at most the
// messages in flight uncertain), and sleeps until the next is due or a planner wakes it.
func (o *Outbox) send(ctx context.Context, ch *Channel) {
	lim := limiter(ch)
	var paused time.Time // a receiver's Retry-After holds the whole channel
	for ctx.Err() == nil {
		claimEnd := time.Now().Add(o.Claim)
		ds, err := o.claim(ctx, ch)
		if err != nil && ctx.Err() == nil {
			o.Logger.Warn("notify: could not claim deliveries; trying again", "channel", ch.Name, "err", err)
		}
		for i, d := range ds {
			if wait := time.Until(paused); wait > 0 {
				if !sleep(ctx, min(wait, time.Until(claimEnd))) {
					return // the claim runs out; the next start sends it (as uncertain)
				}
			}
			if lim.Wait(ctx) != nil {
				return
			}
			// Another replica may claim what this one holds once the claim runs out: what is
			// left when it runs low is given back, and no attempt outlasts it.
			left := time.Until(claimEnd) - o.Claim/4
			if left <= 0 || time.Until(paused) > 0 {
				next := o.Now().UTC()
				if paused.After(next) {
					next = paused.UTC()
				}
				o.unclaim(ctx, ds[i:], next)
				ds = nil
				break
			}
			if after := o.attempt(ctx, ch, d, min(sendTimeout, left)); after > 0 {
				paused = time.Now().Add(after)
			}
			if ch.Ordered && d.Status == timebox.DeliveryPending { // it will be tried again: the rest waits for it
				o.unclaim(ctx, ds[i+1:], d.NextAt)
				break
			}
		}
		if len(ds) == sendBatch {
			continue
		}
		o.idle(ctx, ch)
	}
}

// claim takes the channel's due deliveries.
func (o *Outbox) claim(ctx context.Context, ch *Channel) (ds []*timebox.Delivery, err error) {
	now := o.Now()
	err = o.store.Update(ctx, func(tx timebox.Tx) (err error) {
		ds, err = tx.ClaimDeliveries(ch.Name, now, now.Add(o.Claim), sendBatch, ch.Ordered)
		return err
	})
	return ds, err
}

// unclaim gives claimed deliveries back, unsent, due at next (a sending one stays sending:
// an earlier attempt may have reached the receiver).
func (o *Outbox) unclaim(ctx context.Context, ds []*timebox.Delivery, next time.Time) {
	if len(ds) == 0 {
		return
	}
	err := o.store.Update(context.WithoutCancel(ctx), func(tx timebox.Tx) error {
		for _, d := range ds {
			d.Attempts, d.NextAt = d.Attempts-1, next
			if err := tx.SaveDelivery(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		o.Logger.Warn("notify: could not give back claimed deliveries; they are sent when their claim runs out", "err", err)
	}
}

// idle waits until the channel's next delivery is due (at most Sweep), or a wake.
func (o *Outbox) idle(ctx context.Context, ch *Channel) {
	wait := o.Sweep
	var next time.Time
	err := o.store.View(ctx, func(tx timebox.Tx) (err error) {
		next, err = tx.NextDelivery(ch.Name, ch.Ordered)
		return err
	})
	if err == nil && !next.IsZero() {
		wait = min(wait, max(time.Until(next), 0))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-o.wakes[ch.Name]:
	}
}

// attempt sends one claimed delivery and records the outcome; it returns how long the
// receiver asked the channel to wait (a 429), or 0.
func (o *Outbox) attempt(ctx context.Context, ch *Channel, d *timebox.Delivery, timeout time.Duration) time.Duration {
	m, err := o.message(ctx, d)
	var res Result
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, timeout)
		res, err = ch.Sender.Send(sctx, m)
		cancel()
	}
	if ctx.Err() != nil && err != nil {
		return 0 // stopping: the claim runs out and the next attempt knows it is uncertain
	}
	if err == nil && o.Hook != nil {
		o.Hook("notify.sent")
	}
	now := o.Now().UTC()
	after := retryAfter(err)
	switch {
	case err == nil:
		d.Status, d.SentAt, d.LastError, d.ExternalID = timebox.DeliverySent, now, "", res.ExternalID
	case IsPermanent(err) || now.Sub(d.CreatedAt) >= o.giveUpAfter:
		d.Status, d.LastError = timebox.DeliveryFailed, clipError(err)
		o.Logger.Warn("notify: a notification failed for good; see timebox notify failed", "channel", ch.Name,
			"delivery", d.ID, "kind", d.Kind, "request", d.RequestID, "err", d.LastError)
	default:
		d.Status, d.LastError = timebox.DeliveryPending, clipError(err)
		d.NextAt = now.Add(max(o.backoff(d.Attempts), after))
		o.Logger.Info("notify: delivery failed; retrying", "channel", ch.Name, "delivery", d.ID,
			"attempts", d.Attempts, "next", d.NextAt, "err", d.LastError)
	}
	o.metrics.count(ch.Name, d.Status)
	err = o.store.Update(context.WithoutCancel(ctx), func(tx timebox.Tx) error {
		if err := tx.SaveDelivery(d); err != nil {
			return err
		}
		if res.Thread != "" && d.RequestID != "" {
			return tx.PutThread(ch.Name, d.RequestID, o.sealThread(ch.Name, d.RequestID, res.Thread))
		}
		return nil
	})
	if err != nil {
		o.Logger.Error("notify: could not record a delivery's outcome; it is sent again when its claim runs out",
			"channel", ch.Name, "delivery", d.ID, "err", err)
	}
	return after
}

// message gathers what the sender of d needs: its event, request, recipient, thread and
// the audit head.
func (o *Outbox) message(ctx context.Context, d *timebox.Delivery) (*Message, error) {
	m := &Message{Delivery: d, Kind: Kind(d.Kind)}
	err := o.store.View(ctx, func(tx timebox.Tx) error {
		if d.EventSeq > 0 {
			es, err := tx.FindEvents(timebox.EventFilter{From: d.EventSeq, Limit: 1})
			if err != nil {
				return err
			}
			if len(es) == 0 || es[0].Seq != d.EventSeq {
				return Permanent(errors.New("the event of this notification is no longer in the audit log"))
			}
			if !es[0].Authentic(o.service.Keys) {
				// Written or edited by someone who can write the store but has no secret_key.
				return Permanent(fmt.Errorf("audit event %d fails its check with secret_key (edited in the store); not sent: run timebox audit --verify", d.EventSeq))
			}
			m.Event = es[0]
		}
		if d.RequestID != "" {
			r, err := tx.FindRequest(d.RequestID)
			if err != nil && timebox.ErrorCode(err) != timebox.ENOTFOUND {
				return err
			}
			m.Request = r
			if m.Thread, err = o.thread(tx, d.Channel, d.RequestID); err != nil {
				return err
			}
		}
		if err := o.check(d, m.Event, m.Request); err != nil {
			return err
		}
		if m.Request != nil && o.service.Keys != nil {
			// An approval written into the store without secret_key is not shown ("approved by …").
			m.Request.Reviews, _ = o.service.Keys.Genuine(m.Request.ID, m.Request.Reviews)
		}
		seq, hash, err := tx.AuditHead()
		m.Head = Head{Seq: seq, Hash: hash}
		return err
	})
	if err != nil {
		return nil, err
	}
	if d.Recipient != "" {
		u, err := o.catalog().User(d.Recipient)
		if err != nil {
			return nil, Permanent(errors.New("the recipient is no longer a Timebox user"))
		}
		m.Recipient = u
	}
	m.Summary = summarize(m, o.consoleURL)
	return m, nil
}

// clipError returns err's text for the delivery record, at most 500 bytes.
func clipError(err error) string {
	s := err.Error()
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
