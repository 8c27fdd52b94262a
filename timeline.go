package timebox

import (
	"context"
	"time"
)

// MaxTimelineSpan is the longest range Service.Timeline answers for: a quarter (92 days), so
// that one page of the console stays bounded whatever the store holds.
const MaxTimelineSpan = 92 * 24 * time.Hour

// AccessFilter selects the access that existed during a time range: requests the database
// confirmed (ActivatedAt set) whose access began before To and had not ended by From.
// Zero Database and Requester match every database and person.
type AccessFilter struct {
	From, To  time.Time
	Database  string
	Requester string
	// Visible, when set, limits the result to what one non-admin user may see (the Service
	// sets it; callers' values are ignored).
	Visible *Visibility
	// Limit, when positive, keeps only the Limit most recently activated.
	Limit int
}

// AccessPeriod is one request's access as the database confirmed it: from its activation to
// its removal, or to now while it lasts.
type AccessPeriod struct {
	RequestID string `json:"request_id"`
	User      string `json:"user"`
	Database  string `json:"database"`
	// Level is the access level, or AdHocAccess.
	Level string `json:"level"`
	State State  `json:"state"`
	// Ending is set while the removal is under way (the access still exists).
	Ending Ending `json:"ending,omitempty"`
	// From is when the database confirmed the access; To when it confirmed its removal
	// (zero while the access lasts); End is the window's end.
	From       time.Time `json:"from"`
	To         time.Time `json:"to,omitzero"`
	End        time.Time `json:"end"`
	BreakGlass bool      `json:"break_glass,omitempty"`
	// Tampered says the request was found edited in the store without the key.
	Tampered bool `json:"tampered,omitempty"`
}

// Live reports whether the access still exists.
func (p *AccessPeriod) Live() bool { return p.To.IsZero() }

// accessStates are the states a request can be in once the database confirmed its access:
// still active, or ended by expiry, revocation or release.
var accessStates = []State{StateActive, StateExpired, StateRevoked, StateReleased}

// AccessStates returns the states of requests whose access existed (see AccessFilter).
func AccessStates() []State { return append([]State(nil), accessStates...) }

// Timeline returns the access that overlapped [f.From, f.To) that actor may see (admins and
// auditors see everyone's; others their own and those of the databases they own or review),
// most recently activated first. Only access that existed counts: requests the database
// confirmed, still active (their access lasts until now) or ended (until they were removed).
// EINVALID when the range is empty or longer than MaxTimelineSpan.
func (s *Service) Timeline(ctx context.Context, actor string, f AccessFilter) (ps []AccessPeriod, err error) {
	switch span := f.To.Sub(f.From); {
	case f.From.IsZero() || f.To.IsZero():
		return nil, Errorf(EINVALID, "a timeline needs a start and an end")
	case span <= 0:
		return nil, Errorf(EINVALID, "the timeline's end %s is not after its start %s", fmtTime(f.To), fmtTime(f.From))
	case span > MaxTimelineSpan+time.Hour: // an hour of slack: a range of whole days may span a DST change
		return nil, Errorf(EINVALID, "the timeline covers at most %d days, not %.0f", int(MaxTimelineSpan/(24*time.Hour)), span.Hours()/24)
	}
	f.Visible = s.visibility(actor)
	err = s.Store.View(ctx, func(tx Tx) error {
		ps, err = tx.FindAccess(f)
		return err
	})
	return ps, err
}
