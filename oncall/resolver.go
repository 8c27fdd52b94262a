package oncall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/timebox-dev/timebox"
)

// retryAfter is how long a source that failed to load is left alone before it is tried
// again (its last good copy, if young enough, is used meanwhile).
const retryAfter = 30 * time.Second

// Resolver answers who is on call, for many schedules. It keeps the last good copy of each
// calendar, fetches an URL again every Refresh and re-reads a file when it changes. It is
// safe for concurrent use.
type Resolver struct {
	// HTTPClient fetches URL sources (default: a client with a 30s timeout).
	HTTPClient *http.Client
	// Now tells the time for freshness (default time.Now).
	Now func() time.Time
	// Logger receives a warning when a source cannot be read and its last good copy is used
	// instead (default: no logging). URLs are logged without anything after the host.
	Logger *slog.Logger

	sources map[string]*source
}

// source is one schedule and the state of its calendar.
type source struct {
	mu       sync.Mutex
	name     string
	rotation *Rotation
	loc      string // file path or URL
	isURL    bool
	shown    string // loc as errors and logs show it
	refresh  time.Duration

	cal     *calendar
	good    time.Time // when cal was last known to be current
	tried   time.Time // when loading last failed
	lastErr error
	etag    string
	lastMod string
	modTime time.Time // of the file cal was read from
	size    int64
	badErr  error     // why the file version below failed to load
	badMod  time.Time // of that version
	badSize int64

	configErr error // an ics that is neither a file path nor an http(s) URL
}

// NewResolver returns a resolver for schedules, which should have passed ValidateSchedules
// (of two schedules with one name, the first is used).
func NewResolver(schedules []Schedule) *Resolver {
	r := &Resolver{
		HTTPClient: &http.Client{Timeout: 30 * time.Second},
		Now:        time.Now,
		sources:    map[string]*source{},
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
			rot.Users = append([]string(nil), rot.Users...)
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
// email in any case. Errors: ENOTFOUND for an unknown schedule, EINVALID for a nil user,
// EUNAVAILABLE when the source cannot be read and no copy younger than MaxStale is held.
func (r *Resolver) OnCall(ctx context.Context, schedule string, user *timebox.User, at time.Time) (until time.Time, ok bool, err error) {
	if user == nil {
		return time.Time{}, false, timebox.Errorf(timebox.EINVALID, "on-call check without a user")
	}
	shifts, err := r.Shifts(ctx, schedule, at, at.Add(Lookahead))
	if err != nil {
		return time.Time{}, false, err
	}
	until = at
	for _, s := range shifts { // sorted by start: a chain only grows from shifts starting within it
		if !matches(s.Who, user) {
			continue
		} else if s.Start.After(until) {
			break
		} else if s.End.After(until) {
			until, ok = s.End, true
		}
	}
	if !ok {
		return time.Time{}, false, nil
	}
	return until, true, nil
}

// Shifts returns the shifts of the named schedule that overlap [from, to), sorted by start,
// for `timebox policy explain` and docs. Errors: ENOTFOUND for an unknown schedule, EINVALID
// for an empty range or one holding more than MaxShifts shifts, EUNAVAILABLE when the source
// cannot be read and no copy younger than MaxStale is held.
func (r *Resolver) Shifts(ctx context.Context, schedule string, from, to time.Time) ([]Shift, error) {
	src := r.sources[schedule]
	if src == nil {
		return nil, timebox.Errorf(timebox.ENOTFOUND, "unknown on-call schedule %q", timebox.Clip(schedule))
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
	cal, err := r.calendar(ctx, src)
	if err != nil {
		return nil, err
	}
	shifts, err := cal.shifts(from, to)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "on-call schedule %q: %s: %s", schedule, src.shown, err.Error())
	}
	return shifts, nil
}

// calendar returns the source's calendar, loading it when due, or its last good copy when
// loading fails and the copy is younger than MaxStale.
func (r *Resolver) calendar(ctx context.Context, src *source) (*calendar, error) {
	src.mu.Lock()
	defer src.mu.Unlock()
	now := r.now()
	usable := src.cal != nil && now.Sub(src.good) < MaxStale
	switch {
	case src.isURL && usable && now.Sub(src.good) < src.refresh:
		return src.cal, nil
	case src.isURL && src.lastErr != nil && now.Sub(src.tried) < retryAfter:
		if usable {
			return src.cal, nil
		}
		return nil, src.lastErr
	}
	var err error
	switch {
	case src.configErr != nil:
		return nil, src.configErr
	case src.isURL:
		err = r.fetch(ctx, src, now)
	default:
		err = r.readFile(src, now)
	}
	if err == nil {
		src.lastErr = nil
		return src.cal, nil
	}
	if ctx.Err() != nil { // this caller gave up: that says nothing about the source
		if usable {
			return src.cal, nil
		}
		return nil, err
	}
	repeated := err == src.lastErr // a file's same broken version: not read again, not logged again
	src.lastErr, src.tried = err, now
	if usable {
		if r.Logger != nil && !repeated {
			r.Logger.Warn("on-call calendar cannot be read; using its last copy", "schedule", src.name,
				"source", src.shown, "age", now.Sub(src.good).Round(time.Second).String(), "error", timebox.ErrorMessage(err))
		}
		return src.cal, nil
	}
	return nil, err
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// unavailable returns the EUNAVAILABLE error of a source, naming it and what was wrong.
func unavailable(src *source, format string, args ...any) error {
	return timebox.Errorf(timebox.EUNAVAILABLE, "on-call schedule %q: %s: %s", src.name, src.shown, fmt.Sprintf(format, args...))
}

// readFile re-reads a file source when its modification time or size changed.
func (r *Resolver) readFile(src *source, now time.Time) error {
	fi, err := os.Stat(src.loc)
	switch {
	case err != nil:
		return unavailable(src, "%s", fileReason(err))
	case src.cal != nil && fi.ModTime().Equal(src.modTime) && fi.Size() == src.size:
		src.good = now
		return nil
	case src.badErr != nil && fi.ModTime().Equal(src.badMod) && fi.Size() == src.badSize:
		return src.badErr // the same broken version: not parsed again
	case !fi.Mode().IsRegular():
		return unavailable(src, "not a regular file")
	}
	cal, err := readCalendarFile(src.loc)
	if err != nil {
		src.badErr, src.badMod, src.badSize = unavailable(src, "%s", err.Error()), fi.ModTime(), fi.Size()
		return src.badErr
	}
	src.cal, src.good, src.modTime, src.size, src.badErr = cal, now, fi.ModTime(), fi.Size(), nil
	return nil
}

func readCalendarFile(path string) (*calendar, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errors.New(fileReason(err))
	}
	defer f.Close()
	data, err := readLimited(f)
	if err != nil {
		return nil, errors.New(fileReason(err))
	}
	return parseICS(data)
}

func fileReason(err error) string {
	switch {
	case errors.Is(err, errTooLarge):
		return err.Error()
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return "cannot read"
}

// readLimited reads at most MaxSourceBytes.
func readLimited(rd io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(rd, MaxSourceBytes+1))
	if err == nil && len(data) > MaxSourceBytes {
		err = errTooLarge
	}
	return data, err
}

var errTooLarge = fmt.Errorf("larger than %d MB", MaxSourceBytes>>20)

// fetch gets an URL source, conditionally when the server gave a validator.
func (r *Resolver) fetch(ctx context.Context, src *source, now time.Time) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.loc, nil)
	if err != nil {
		return unavailable(src, "invalid URL")
	}
	req.Header.Set("Accept", "text/calendar")
	req.Header.Set("User-Agent", "timebox-oncall")
	if src.cal != nil && src.etag != "" {
		req.Header.Set("If-None-Match", src.etag)
	}
	if src.cal != nil && src.lastMod != "" {
		req.Header.Set("If-Modified-Since", src.lastMod)
	}
	client := r.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return unavailable(src, "%s", scrubURL(src.loc, httpReason(err)))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && src.cal != nil:
		src.good = now
		return nil
	case resp.StatusCode != http.StatusOK:
		return unavailable(src, "HTTP %s", clip(scrubURL(src.loc, resp.Status)))
	case resp.ContentLength > MaxSourceBytes:
		return unavailable(src, "%s", errTooLarge.Error())
	}
	data, err := readLimited(resp.Body)
	if errors.Is(err, errTooLarge) {
		return unavailable(src, "%s", err.Error())
	} else if err != nil {
		return unavailable(src, "%s", scrubURL(src.loc, httpReason(err)))
	}
	cal, err := parseICS(data)
	if err != nil {
		return unavailable(src, "%s", scrubURL(src.loc, err.Error()))
	}
	src.cal, src.good = cal, now
	src.etag, src.lastMod = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	return nil
}

// httpReason describes a failed request without the URL that *url.Error adds.
func httpReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return timebox.ConnReason(err)
}

// scrubURL removes from msg every part of raw after its host.
func scrubURL(raw, msg string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "request failed"
	}
	secrets := []string{raw, u.RawQuery, u.Fragment, u.User.String(), u.EscapedPath(), u.Path}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 8 {
			secrets = append(secrets, seg)
		}
	}
	for _, kv := range strings.Split(u.RawQuery, "&") {
		if _, v, _ := strings.Cut(kv, "="); len(v) >= 8 {
			secrets = append(secrets, v)
		}
	}
	for i, s := range secrets {
		if s == "/" {
			secrets[i] = ""
		}
	}
	return timebox.Scrub(msg, secrets)
}
