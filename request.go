package timebox

import (
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// State is the state of a request.
type State string

// Request states.
const (
	StatePending   State = "pending"
	StateApproved  State = "approved"
	StateActive    State = "active"
	StateExpired   State = "expired"
	StateDenied    State = "denied"
	StateRevoked   State = "revoked"
	StateCancelled State = "cancelled"
	// StateReleased is the end of an active request whose requester gave it up early, once
	// the database confirmed the removal.
	StateReleased State = "released"
)

// States lists every request state.
var States = []State{StatePending, StateApproved, StateActive, StateExpired, StateDenied, StateRevoked, StateCancelled, StateReleased}

// Live reports whether the state may still hold or gain database access.
func (s State) Live() bool { return s == StatePending || s == StateApproved || s == StateActive }

// Action moves a request from one state to another.
type Action string

// Actions on requests.
const (
	ActionApprove  Action = "approve"
	ActionDeny     Action = "deny"
	ActionCancel   Action = "cancel"
	ActionActivate Action = "activate"
	ActionExpire   Action = "expire"
	ActionRevoke   Action = "revoke"
	// ActionRelease is the requester giving up an active grant before its end.
	ActionRelease Action = "release"
	// ActionReopen sends an approved request back to pending when an approval it needed no
	// longer counts (its approver was disabled before the window started).
	ActionReopen Action = "reopen"
	// ActionExtend is recorded as the review that moved a request's end.
	ActionExtend Action = "extend"
)

// transitions is the one table of allowed state changes.
var transitions = map[State]map[Action]State{
	StatePending: {
		ActionApprove: StateApproved,
		ActionDeny:    StateDenied,
		ActionCancel:  StateCancelled,
		ActionExpire:  StateExpired, // the window ended before anyone reviewed it
	},
	StateApproved: {
		ActionActivate: StateActive,
		ActionRevoke:   StateRevoked,
		ActionCancel:   StateCancelled,
		ActionExpire:   StateExpired, // the window ended before activation succeeded
		ActionReopen:   StatePending, // an approval no longer counts (see Service.reopenApprovals)
	},
	StateActive: {
		ActionExpire:  StateExpired,
		ActionRevoke:  StateRevoked,
		ActionRelease: StateReleased, // approved, not yet active: cancel instead
	},
}

// Transition returns the state that action leads to from state, or ECONFLICT when the table
// does not allow it.
func Transition(from State, action Action) (State, error) {
	if to, ok := transitions[from][action]; ok {
		return to, nil
	}
	return "", Errorf(ECONFLICT, "cannot %s a request that is %s", action, from)
}

// Ending says why a live request is being taken off the database.
type Ending string

// Endings of a request whose removal from the database is under way.
const (
	EndingNone   Ending = ""
	EndingExpire Ending = "expire"
	EndingRevoke Ending = "revoke"
	EndingCancel Ending = "cancel"
	// EndingRelease is a removal the requester asked for (see Service.Release).
	EndingRelease Ending = "release"
)

// Action returns the transition that completes the ending.
func (e Ending) Action() Action {
	switch e {
	case EndingRevoke:
		return ActionRevoke
	case EndingCancel:
		return ActionCancel
	case EndingRelease:
		return ActionRelease
	}
	return ActionExpire
}

// DueAt returns when the scheduler next has to act on r, and false when never (a final
// state). A removal under way is due at once (its EndingSince, or the epoch), unless its own
// retry waits; an activation waits for its start and its retries, never past the end; an
// unreviewed or active request is due at its end.
func (r *Request) DueAt() (time.Time, bool) {
	g := r.Grant
	switch {
	case !r.State.Live():
		return time.Time{}, false
	case r.Ending != EndingNone && g != nil && g.Status == GrantRevoking && !g.NextAttemptAt.IsZero():
		return g.NextAttemptAt, true
	case r.Ending != EndingNone && !r.EndingSince.IsZero():
		return r.EndingSince, true
	case r.Ending != EndingNone:
		return time.Unix(0, 0).UTC(), true
	case r.State == StatePending:
		return r.End, true
	case r.State == StateActive && r.ExtensionUnsynced() && !g.NextAttemptAt.IsZero():
		return r.unusedCap(minTime(g.NextAttemptAt, r.End)), true // moving the database's expiry failed: retry
	case r.State == StateActive && r.ExtensionUnsynced():
		return r.UpdatedAt, true // an extension moved the end: the database's expiry follows now
	case r.State == StateActive:
		return r.unusedCap(r.End), true
	}
	due := r.Start // approved
	if g != nil && g.NextAttemptAt.After(due) {
		due = g.NextAttemptAt
	}
	if r.End.Before(due) {
		due = r.End
	}
	return due, true
}

// ExtensionUnsynced reports whether an approved extension moved End past the database-side
// expiry of the active grant, which the scheduler has yet to move.
func (r *Request) ExtensionUnsynced() bool {
	g := r.Grant
	return r.State == StateActive && r.Ending == EndingNone && g != nil && g.Status == GrantActive &&
		!g.ValidUntil.IsZero() && g.ValidUntil.Before(r.End)
}

// Unused reports whether active r has an unused_after deadline that passed at now with its
// credentials never fetched.
func (r *Request) Unused(now time.Time) bool {
	return r.State == StateActive && !r.UnusedBy.IsZero() && r.UsedAt.IsZero() && !r.UnusedBy.After(now) && r.UnusedBy.Before(r.End)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// unusedCap returns due, or the unused deadline when that comes first.
func (r *Request) unusedCap(due time.Time) time.Time {
	if !r.UnusedBy.IsZero() && r.UsedAt.IsZero() && r.UnusedBy.Before(due) {
		return r.UnusedBy
	}
	return due
}

// Review is one decision on a request.
type Review struct {
	Reviewer string `json:"reviewer"`
	Decision Action `json:"decision"`
	Note     string `json:"note,omitempty"`
	Changes  string `json:"changes,omitempty"`
	// Voids names the approvers whose earlier approvals this review (a reopen) cancels.
	Voids []string  `json:"voids,omitempty"`
	At    time.Time `json:"at"`
	// Seal authenticates an approval (Keyring.SealReview): one written into the store
	// without the key never counts.
	Seal string `json:"seal,omitempty"`
}

// Request is a person's request for access to one database at one access level for a window.
type Request struct {
	ID        string    `json:"id"`
	Requester string    `json:"requester"`
	Database  string    `json:"database"`
	Access    string    `json:"access"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	// RequestedStart and RequestedEnd keep the window as asked, when an approver narrowed it.
	RequestedStart time.Time `json:"requested_start"`
	RequestedEnd   time.Time `json:"requested_end"`
	Reason         string    `json:"reason"`
	Ticket         string    `json:"ticket,omitempty"`
	State          State     `json:"state"`
	// Ending is set while access is being removed from the database; the state changes only
	// when the database confirmed the removal.
	Ending      Ending    `json:"ending,omitempty"`
	EndingSince time.Time `json:"ending_since,omitzero"`
	Reviews     []Review  `json:"reviews"`
	// ActivatedAt is when the database confirmed the access; EndedAt when it confirmed the
	// removal (or when the request ended without ever being active).
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	EndedAt     time.Time `json:"ended_at,omitzero"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Version increases with every stored change (optimistic concurrency).
	Version int `json:"version"`
	// Grant is the request's materialisation on the database, when there is one.
	Grant *Grant `json:"grant,omitempty"`
	// Decided authenticates what the approval allowed (see Decision); empty until approved.
	Decided Proof `json:"-"`
	// Tampered names the fields that failed their integrity check when the scheduler found
	// the request edited in the store without the key; its access was then removed.
	Tampered string `json:"tampered,omitempty"`
	Policy
}

// Policy is what the approval policy records on a request.
type Policy struct {
	// Rule is the name of the rule that decided the request (or its last extension).
	Rule string `json:"rule,omitempty"`
	// Awaiting says what a pending request (or extension) still needs, e.g. "1 more of
	// security".
	Awaiting string `json:"awaiting,omitempty"`
	// Tables are the grants of an ad-hoc request (Access is AdHocAccess); RequestedTables
	// keeps them as asked when an approver narrowed them.
	Tables          []TableGrant `json:"tables,omitempty"`
	RequestedTables []TableGrant `json:"requested_tables,omitempty"`
	// BreakGlass marks an emergency activation without approval.
	BreakGlass bool      `json:"break_glass,omitempty"`
	FollowUp   *FollowUp `json:"follow_up,omitempty"`
	// Extension is a pending request for more time on an approved or active request.
	Extension *Extension `json:"extension,omitempty"`
	// UnusedAfter is the deciding rule's unused_after: once the request is active, UnusedBy
	// (its activation plus UnusedAfter) is when it ends if nobody fetched its credentials;
	// UsedAt is when they were first fetched.
	UnusedAfter Duration  `json:"unused_after,omitempty"`
	UnusedBy    time.Time `json:"unused_by,omitzero"`
	UsedAt      time.Time `json:"used_at,omitzero"`
}

// FollowUp is the review owners must close after a break-glass activation.
type FollowUp struct {
	Open     bool      `json:"open"`
	ClosedBy string    `json:"closed_by,omitempty"`
	Note     string    `json:"note,omitempty"`
	ClosedAt time.Time `json:"closed_at,omitzero"`
}

// Extension is a request for more time on an approved or active request: approved under
// the same rules, it moves End (and the database's expiry) with no gap.
type Extension struct {
	End time.Time `json:"end"`
	// Rule is the rule that decides the extended window.
	Rule        string    `json:"rule"`
	Reason      string    `json:"reason"`
	RequestedAt time.Time `json:"requested_at"`
	Reviews     []Review  `json:"reviews"`
}

// PlanFailure starts the last error of an active grant whose plan cannot be applied (its
// sealed password cannot be opened, say), which its status line shows.
const PlanFailure = "its plan cannot be applied"

// Status is a one-line human summary of the request's state, including pending removal.
func (r *Request) Status() string {
	s := string(r.State)
	if r.Ending != EndingNone {
		verb := map[Ending]string{EndingExpire: "expiry", EndingRevoke: "revoke", EndingCancel: "cancel", EndingRelease: "release"}[r.Ending]
		s += ", " + verb + " pending since " + r.EndingSince.UTC().Format(time.RFC3339)
		if r.Grant != nil && r.Grant.LastError != "" {
			s += ", last error: " + r.Grant.LastError
		}
	} else if r.State == StateApproved && r.Grant != nil && r.Grant.LastError != "" {
		s += ", activation retrying, last error: " + r.Grant.LastError
	} else if r.State == StateActive && r.Grant != nil && strings.HasPrefix(r.Grant.LastError, PlanFailure) {
		s += ", last error: " + r.Grant.LastError
	}
	return s
}

// PolicyStatus adds to a status line s what the approval policy says about r: that it was
// found edited in the store without the key, the break-glass banner and its open follow-up, a pending extension, what a pending request
// or extension still awaits. The API's status stays the state and its removal or retry
// (clients match on it); the API carries these as fields, listings show them through this.
func (r *Request) PolicyStatus(s string) string {
	if r.Tampered != "" {
		s = "TAMPERED in the store (" + r.Tampered + " did not verify; access removed) " + s
	}
	if r.BreakGlass {
		s = "BREAK-GLASS " + s
		if r.FollowUp != nil && r.FollowUp.Open {
			s += ", follow-up review open"
		}
	}
	if !r.State.Live() {
		return s
	}
	if r.Extension != nil {
		s += ", extension to " + fmtTime(r.Extension.End) + " pending"
	}
	if r.Awaiting != "" && (r.State == StatePending || r.Extension != nil) {
		s += ", awaiting " + r.Awaiting
	}
	return s
}

// RequestFilter selects requests. Zero fields match everything.
type RequestFilter struct {
	States    []State
	Requester string
	Database  string
	// DueBy, when set, keeps the requests the scheduler has to act on by then (see DueAt).
	DueBy time.Time
	// DueAfter, when set, keeps only those due strictly after it (with DueBy: the requests
	// that became due since the scheduler's last look).
	DueAfter time.Time
	// FollowUpOpen keeps the break-glass requests whose follow-up review is still open.
	FollowUpOpen bool
	// Tampered keeps the requests found edited in the store without the key.
	Tampered bool
	// Visible, when set, limits the result to what one non-admin user may see.
	Visible *Visibility
	Limit   int
}

// Visibility is what a user who is neither admin nor auditor may see: their own requests and
// those of the databases they own.
type Visibility struct {
	Requester string
	Databases []string
}

// RequestInput is what a requester asks for.
type RequestInput struct {
	Database string     `json:"database"`
	Access   string     `json:"access"`
	Start    *time.Time `json:"start,omitempty"` // nil: now
	End      *time.Time `json:"end,omitempty"`
	Duration string     `json:"duration,omitempty"` // Go syntax; used when End is nil
	Reason   string     `json:"reason"`
	Ticket   string     `json:"ticket,omitempty"`
	// Tables, instead of Access, asks for ad-hoc grants on single tables.
	Tables []TableGrant `json:"tables,omitempty"`
	// BreakGlass activates at once without approval (members of the break-glass groups).
	BreakGlass bool `json:"break_glass,omitempty"`
}

// ApproveInput is an approval, optionally narrowing the window or, for an ad-hoc request,
// the tables (the tables to keep, each with the operations and columns to keep).
type ApproveInput struct {
	Note   string       `json:"note,omitempty"`
	Start  *time.Time   `json:"start,omitempty"`
	End    *time.Time   `json:"end,omitempty"`
	Tables []TableGrant `json:"tables,omitempty"`
	// Via, when set, says where the approval came from besides the API and console (e.g.
	// "slack ops U0123ABC"); it is recorded in the audit event. Not settable through the API.
	Via string `json:"-"`
}

// ExtendInput asks for more time on an approved or active request: a duration added to its
// end, or a new end.
type ExtendInput struct {
	Duration string     `json:"duration,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	Reason   string     `json:"reason"`
}

const maxTextLen = 2000

// checkText validates a free-text field: required when asked, valid UTF-8, bounded, printable.
func checkText(field, s string, required bool) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return Errorf(EINVALID, "%s is required", field)
	case !utf8.ValidString(s):
		return Errorf(EINVALID, "%s is not valid UTF-8", field)
	case len(s) > maxTextLen:
		return Errorf(EINVALID, "%s is longer than %d bytes", field, maxTextLen)
	case strings.IndexFunc(s, func(c rune) bool { return unicode.IsControl(c) && c != '\n' && c != '\t' }) >= 0:
		return Errorf(EINVALID, "%s contains a control character", field)
	case strings.IndexFunc(s, isBidiControl) >= 0:
		return Errorf(EINVALID, "%s contains a bidirectional control character (it could make the text read differently to an approver)", field)
	}
	return nil
}

// isBidiControl reports the embedding, override and isolate controls (U+202A–U+202E,
// U+2066–U+2069) that can reorder how text is displayed. Marks such as U+200F stay allowed.
func isBidiControl(c rune) bool {
	return (c >= '\u202a' && c <= '\u202e') || (c >= '\u2066' && c <= '\u2069')
}

// checkWindow validates a window against an environment's limits at time now.
func checkWindow(start, end, now time.Time, l Limits, env string) error {
	d := end.Sub(start)
	span := d.Round(time.Second).String()
	if d == math.MaxInt64 { // time.Time.Sub saturates after about 292 years
		span = "more than 292 years"
	}
	switch {
	case !end.After(start):
		return Errorf(EINVALID, "end %s is not after start %s", fmtTime(end), fmtTime(start))
	case !end.After(now):
		return Errorf(EINVALID, "the window already ended at %s", fmtTime(end))
	case l.MaxDuration > 0 && d > time.Duration(l.MaxDuration):
		return Errorf(EINVALID, "duration %s exceeds the %s limit of %s", span, env, time.Duration(l.MaxDuration))
	case l.MinDuration > 0 && d < time.Duration(l.MinDuration):
		return Errorf(EINVALID, "duration %s is below the %s minimum of %s", d.Round(time.Second), env, time.Duration(l.MinDuration))
	case l.MaxLeadTime > 0 && start.Sub(now) > time.Duration(l.MaxLeadTime):
		return Errorf(EINVALID, "start %s is more than %s ahead, the %s limit", fmtTime(start), time.Duration(l.MaxLeadTime), env)
	}
	return nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
