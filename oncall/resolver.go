package oncall

import (
	"context"
	"iter"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/timebox-dev/timebox"
)

// Resolver answers who is on call, for many schedules. It keeps the last good copy of each
// calendar, fetches an URL again every Refresh and re-reads a file when it changes. It is
// safe for concurrent use: while one caller loads a source, the others use its last good
// copy, or wait for the load when there is none.
type Resolver struct {
	// HTTPClient fetches URL sources (nil: http.DefaultClient). A fetch is given at most 30s.
	HTTPClient *http.Client
	// Now tells the time for freshness (default time.Now).
	Now func() time.Time
	// Logger receives a warning when a source cannot be read and its last good copy is used
	// instead (default slog.Default(); nil: no logging). URLs are logged without anything
	// after the host.
	Logger *slog.Logger

	sources map[string]*source
}

var _ timebox.OnCallResolver = (*Resolver)(nil)

// NewResolver returns a resolver for schedules, which should have passed ValidateSchedules
// (of two schedules with one name, the first is used).
func NewResolver(schedules []Schedule) *Resolver {
	r := &Resolver{
		Now:     time.Now,
		Logger:  slog.Default(),
		sources: map[string]*source{},
	}
	for _, s := range schedules {
		if r.sources[s.Name] != nil {
			continue
		}
		src := &source{name: s.Name, refresh: time.Duration(s.Refresh)}
		if src.refresh <= 0 {
			src.refresh = DefaultRefresh
		}
		if s.Rotation != nil {
			rot := *s.Rotation
			rot.Users = slices.Clone(rot.Users)
			src.rotation = &rot
		} else {
			var err error
			src.loc, src.isURL, err = sourceOf(s.ICS)
			src.shown = src.loc
			if src.isURL {
				src.shown = redact(src.loc)
			}
			if err != nil {
				src.configErr = timebox.Errorf(timebox.EINVALID, "on-call schedule %q: ics: %s", s.Name, err.Error())
			}
		}
		r.sources[s.Name] = src
	}
	return r
}

// OnCall reports whether the user is on call in the named schedule at time at, and until when
// their shift, merged with the shifts of theirs that directly follow or overlap it, lasts
// (followed for at most Lookahead). A user matches a shift whose Who is their name, or their
// email or one of their OnCallNames in any case. Errors: ENOTFOUND for an unknown schedule,
// EINVALID for a nil user, EUNAVAILABLE when the source cannot be read and no copy younger
// than MaxStale is held.
func (r *Resolver) OnCall(ctx context.Context, schedule string, user *timebox.User, at time.Time) (until time.Time, ok bool, err error) {
	if user == nil {
		return time.Time{}, false, timebox.Errorf(timebox.EINVALID, "on-call check without a user")
	}
	src, err := r.source(schedule)
	if err != nil {
		return time.Time{}, false, err
	}
	horizon := at.Add(Lookahead)
	var shifts iter.Seq[Shift]
	if src.rotation != nil {
		shifts = src.rotation.turns(at) // walked, not expanded: a rota's turns may be minutes
	} else if list, err := r.calendarShifts(ctx, src, at, horizon); err != nil {
		return time.Time{}, false, err
	} else {
		shifts = slices.Values(list)
	}
	until = at
	for s := range shifts { // sorted by start: a chain only grows from shifts starting within it
		if s.Start.After(until) || !s.Start.Before(horizon) {
			break
		} else if s.End.After(until) && matches(s.Who, user) {
			until, ok = s.End, true
		}
	}
	if !ok {
		return time.Time{}, false, nil
	}
	return until, true, nil
}

// Shifts returns the shifts of the named schedule that overlap [from, to), sorted by start.
// Errors: ENOTFOUND for an unknown schedule, EINVALID for an empty range or one holding more
// than MaxShifts shifts, EUNAVAILABLE when the source cannot be read and no copy younger than
// MaxStale is held.
func (r *Resolver) Shifts(ctx context.Context, schedule string, from, to time.Time) ([]Shift, error) {
	src, err := r.source(schedule)
	if err != nil {
		return nil, err
	} else if !to.After(from) {
		return nil, timebox.Errorf(timebox.EINVALID, "on-call schedule %q: empty time range", schedule)
	}
	if src.rotation != nil {
		shifts, err := src.rotation.shifts(from, to)
		if err != nil {
			return nil, timebox.Errorf(timebox.EINVALID, "on-call schedule %q: %s", schedule, err.Error())
		}
		return shifts, nil
	}
	return r.calendarShifts(ctx, src, from, to)
}

func (r *Resolver) source(schedule string) (*source, error) {
	if src := r.sources[schedule]; src != nil {
		return src, nil
	}
	return nil, timebox.Errorf(timebox.ENOTFOUND, "unknown on-call schedule %q", timebox.Clip(schedule))
}

// calendarShifts expands the calendar of an ics source over [from, to).
func (r *Resolver) calendarShifts(ctx context.Context, src *source, from, to time.Time) ([]Shift, error) {
	cal, err := r.calendar(ctx, src)
	if err != nil {
		return nil, err
	}
	shifts, err := cal.shifts(from, to)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "on-call schedule %q: %s: %s", src.name, src.shown, err.Error())
	}
	return shifts, nil
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
