// Package notify delivers Timebox's notifications: Slack messages with Approve / Deny buttons,
// Microsoft Teams Adaptive Cards, e-mail over SMTP, and signed webhooks (CloudEvents, Standard
// Webhooks signatures) for every audit event.
//
// Delivery goes through an outbox in the store whose source is the audit log (see
// timebox.Outbox): an Outbox plans each event into deliveries exactly once, and one sender per
// channel claims and sends them with retries, backoff with jitter, a rate limit and a
// dead-letter list. Nothing of it is on the path of an access change: a receiver that is down
// slows nothing but its own messages.
package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/timebox-dev/timebox"
)

// Kind is what a notification to people is about.
type Kind string

// The kinds of notification that routes send to Slack, Teams and e-mail.
const (
	KindNewRequest     Kind = "new_request"      // a request waits for review
	KindAwaiting       Kind = "awaiting"         // an approval was added; more are needed
	KindDecision       Kind = "decision"         // approved (as asked or narrowed), auto-approved or denied
	KindActivation     Kind = "activation"       // the database confirmed the access
	KindExpiryWarning  Kind = "expiry_warning"   // the access ends soon (with a link to extend)
	KindExpiry         Kind = "expiry"           // the access ended at the end of its window
	KindRevoke         Kind = "revoke"           // an approver or admin revoked it
	KindRelease        Kind = "release"          // the requester gave it back early
	KindBreakGlass     Kind = "break_glass"      // activated without approval; follow-up open
	KindFollowUpDue    Kind = "follow_up_due"    // a break-glass request ended, its follow-up is open
	KindDriftRepaired  Kind = "drift_repaired"   // the reconciler put a database back in line
	KindStoreTampered  Kind = "store_tampered"   // the store was edited without secret_key
	KindExtension      Kind = "extension"        // more time was asked for, or granted
	KindEvent          Kind = "event"            // a webhook's audit event (every action)
	kindCancelled      Kind = "cancelled"        // the requester withdrew it (updates the thread only)
	kindFollowUpClosed Kind = "follow_up_closed" // (updates the thread only)
)

// Kinds are the kinds a route may name, in the order the docs list them.
var Kinds = []Kind{KindNewRequest, KindAwaiting, KindDecision, KindActivation, KindExpiryWarning, KindExpiry,
	KindRevoke, KindRelease, KindBreakGlass, KindFollowUpDue, KindDriftRepaired, KindStoreTampered, KindExtension}

// Message is one delivery, with what its sender needs to write it.
type Message struct {
	// Delivery is the outbox's record: Key is the idempotency key; Status is
	// timebox.DeliverySending when an earlier attempt may have reached the receiver (the server
	// stopped mid-delivery), so a sender that can look first does.
	Delivery *timebox.Delivery
	Kind     Kind
	// Event is the audit event (nil for an expiry warning).
	Event *timebox.Event
	// Request is the request as it stands now (nil for events without one, or when it is
	// gone); the shared message shows its current state.
	Request *timebox.Request
	// Recipient is the person of a direct message (nil for the channel's destination).
	Recipient *timebox.User
	// Thread is the receiver's id of the message that stands for Request on this channel
	// (a Slack ts), "" when none was sent yet; a sender that updates in place updates it.
	Thread string
	// Head is the audit head when the message was written: a webhook receiver compares it
	// with the events it has, to see that none is missing.
	Head Head
	// Summary is the text of the notification, shared by every sender.
	Summary *Summary
}

// Head is an audit head: the Seq and Hash of the last event committed.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Result is what a receiver said of a sent message.
type Result struct {
	// ExternalID is the receiver's id of the message (a Slack ts), recorded on the delivery.
	ExternalID string
	// Thread, when set, becomes the message that stands for the request on this channel.
	Thread string
}

// Sender sends the messages of one channel. Send returns an error wrapped by Permanent when
// trying again cannot help (the receiver refused the message as malformed or unauthorised:
// the delivery goes to the dead-letter list), one from RetryAfter when the receiver said
// when to come back (HTTP 429), any other error to retry with backoff. Errors must not
// contain secrets (webhook URLs, tokens): they are stored and shown to admins.
type Sender interface {
	Send(ctx context.Context, m *Message) (Result, error)
}

// Directs is implemented by senders that can reach a person directly (Slack, e-mail).
type Directs interface {
	// Reaches reports whether the sender can address u (a Slack account, an e-mail address).
	Reaches(u *timebox.User) bool
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix.
func Permanent(err error) error { return &permanentError{err} }

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as one to retry no sooner than after (a 429's Retry-After).
func RetryAfter(after time.Duration, err error) error { return &retryAfterError{err, after} }

// retryAfter returns the delay of an error made by RetryAfter, 0 for others.
func retryAfter(err error) time.Duration {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.after
	}
	return 0
}

// HTTPError returns the error for an HTTP answer other than 2xx from what (e.g. "slack
// chat.postMessage"): Permanent for 4xx other than 408 and 429, RetryAfter for a 429 with
// Retry-After (seconds), retryable otherwise. body (clipped) must not hold secrets.
func HTTPError(what string, status int, retryAfterHeader string, body string) error {
	err := fmt.Errorf("%s: HTTP %d %s", what, status, timebox.Clip(body))
	switch {
	case status == 429:
		var secs int
		if _, scanErr := fmt.Sscanf(retryAfterHeader, "%d", &secs); scanErr == nil && secs > 0 {
			return RetryAfter(time.Duration(secs)*time.Second, err)
		}
		return err
	case status == 408:
		return err
	case status >= 400 && status < 500:
		return Permanent(err)
	}
	return err
}
