package notify

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/timebox-dev/timebox"
)

// What someone who can write the store (but holds no secret_key) may try through the
// outbox's tables, and why it fails:
//   - a delivery row is not authenticated: its kind, request, recipient and key must agree
//     with its event (which is) or, for an expiry warning (which has no event), with an
//     active request's end; the recipient must be someone the routes can write to about
//     the request (checked by check);
//   - a thread row (which chat message stands for a request) is authenticated with a key
//     derived from secret_key (sealThread): one pointed at another message is not used, so
//     chat.update never rewrites a message the store chose.

// errEdited is the start of every refusal of check.
const errEdited = "not sent: this notification does not match "

// check reports, as a Permanent error, a delivery d whose fields disagree with its
// authentic event e (nil for an expiry warning) and its request r (nil when none).
func (o *Outbox) check(d *timebox.Delivery, e *timebox.Event, r *timebox.Request) error {
	refuse := func(format string, args ...any) error {
		return Permanent(fmt.Errorf(errEdited+format+" (edited in the store?)", args...))
	}
	k := Kind(d.Kind)
	id := ""
	switch {
	case e == nil:
		if k != KindExpiryWarning {
			return refuse("an audit event: it names none")
		}
		if r == nil || r.State != timebox.StateActive || r.ID != d.RequestID {
			return Permanent(errors.New("not sent: the request of this expiry warning is no longer active"))
		}
		if o.service.Keys == nil {
			return refuse("an audit event: there is no secret_key to check its request with")
		} else if bad := o.service.Keys.CheckRequest(r); len(bad) > 0 {
			return refuse("its request, whose %s fail their check with secret_key", strings.Join(bad, ", "))
		}
		id = fmt.Sprintf("warn-%s-%d", r.ID, r.End.Unix())
	case e.RequestID != d.RequestID:
		return refuse("its audit event %d, which is about another request", e.Seq)
	case k == KindEvent:
		ch := o.channel(d.Channel)
		if ch == nil || ch.Events == nil || !matchAction(ch.Events, e.Action) || d.Recipient != "" {
			return refuse("the events channel %s sends", timebox.Clip(d.Channel))
		}
		id = "e" + strconv.FormatInt(e.Seq, 10)
	default:
		id = "e" + strconv.FormatInt(e.Seq, 10)
		switch {
		case k == KindFollowUpDue && ended(e):
			id += "-follow-up"
		case kindOf(e, nil, r) != k:
			return refuse("its audit event %d (%s)", e.Seq, timebox.Clip(e.Action))
		}
	}
	key := d.Channel + ":" + id
	if d.Recipient != "" {
		key += ":" + d.Recipient
	}
	if d.Key != key {
		if e == nil {
			return Permanent(errors.New("not sent: the end of this expiry warning's request moved; a new warning is planned"))
		}
		return refuse("its key")
	}
	if d.Recipient != "" && !o.mayWrite(d.Recipient, r) {
		return refuse("its recipient %s, who is neither the requester nor an approver or owner of the request", timebox.Clip(d.Recipient))
	}
	return nil
}

// mayWrite reports whether the routes' direct messages about r can ever go to user name:
// its requester, an approver or an owner of its database.
func (o *Outbox) mayWrite(name string, r *timebox.Request) bool {
	if r == nil {
		return false
	}
	if name == r.Requester {
		return true
	}
	is := func(u *timebox.User) bool { return u.Name == name }
	return slices.ContainsFunc(o.service.Reviewers(r), is) || slices.ContainsFunc(o.service.Owners(r), is)
}

// sealThread returns what is stored for the message thread that stands for request on
// channel: thread, then "|" and its MAC (which binds the channel and the request).
func (o *Outbox) sealThread(channel, request, thread string) string {
	return thread + "|" + o.service.Keys.MAC(timebox.PurposeNotify, threadMessage(channel, request, thread))
}

// openThread returns the thread of a stored value, "" (and false) when its MAC does not
// verify: written by someone who can write the store, or by nobody ("" stored).
func (o *Outbox) openThread(channel, request, stored string) (string, bool) {
	i := strings.LastIndexByte(stored, '|')
	if stored == "" || i < 0 || o.service.Keys == nil {
		return "", stored == ""
	}
	thread := stored[:i]
	if !o.service.Keys.VerifyMAC(timebox.PurposeNotify, threadMessage(channel, request, thread), stored[i+1:]) {
		return "", false
	}
	return thread, true
}

func threadMessage(channel, request, thread string) []byte {
	return []byte("thread\x00" + channel + "\x00" + request + "\x00" + thread)
}

// thread returns the authentic thread of request on channel ("" when none, or when the
// stored one fails its check: a new message is then posted).
func (o *Outbox) thread(tx timebox.Tx, channel, request string) (string, error) {
	stored, err := tx.Thread(channel, request)
	if err != nil {
		return "", err
	}
	th, ok := o.openThread(channel, request, stored)
	if !ok {
		o.Logger.Warn("notify: the message recorded for a request fails its check with secret_key (edited in the store); posting a new one",
			"channel", channel, "request", request)
	}
	return th, nil
}
