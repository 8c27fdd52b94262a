package oncall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/timebox-dev/timebox"
)

// This file loads the calendar of an ics source: a file when it changed, an URL every
// Refresh, one load at a time, keeping the last good copy for MaxStale.

// Loading bounds of a source.
const (
	// retryAfter is how long a source that failed to load is left alone before it is tried
	// again (its last good copy, if young enough, is used meanwhile).
	retryAfter = 30 * time.Second
	// fetchTimeout bounds one fetch of an URL, whatever the caller's context and HTTPClient.
	fetchTimeout = 30 * time.Second
)

// source is one schedule and the state of its calendar.
type source struct {
	name      string
	rotation  *Rotation
	loc       string // file path or URL
	isURL     bool
	shown     string // loc as errors and logs show it
	refresh   time.Duration
	configErr error // an ics that is neither a file path nor an http(s) URL

	mu      sync.Mutex
	loading chan struct{} // closed when the load under way ends; nil when none is
	cal     *calendar
	ver     version   // what cal was loaded from
	good    time.Time // when cal was last known to be current
	tried   time.Time // when loading last failed
	lastErr error
	bad     os.FileInfo // the file version that failed to load with lastErr
}

// version tells a loaded calendar's source apart from a changed one.
type version struct {
	etag, lastMod string      // validators of an HTTP response
	file          os.FileInfo // a file's
}

// calendar returns the source's calendar, loading it when due, or its last good copy when
// loading fails or another caller is loading it, and the copy is younger than MaxStale.
func (r *Resolver) calendar(ctx context.Context, src *source) (*calendar, error) {
	if src.configErr != nil {
		return nil, src.configErr
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	for src.loading != nil && !src.usable(r.now()) { // nothing to answer with: wait for the load
		wait := src.loading
		src.mu.Unlock()
		select {
		case <-wait:
			src.mu.Lock()
		case <-ctx.Done():
			src.mu.Lock()
			return nil, unavailable(src, "%s", timebox.ConnReason(ctx.Err()))
		}
	}
	now := r.now()
	switch {
	case src.loading != nil, src.isURL && src.usable(now) && now.Sub(src.good) < src.refresh:
		return src.cal, nil
	case src.isURL && src.lastErr != nil && now.Sub(src.tried) < retryAfter:
		return src.lastCopy(now, src.lastErr)
	}
	return src.lastCopy(now, r.load(ctx, src, now))
}

// usable reports whether the source holds a copy younger than MaxStale.
func (src *source) usable(now time.Time) bool {
	return src.cal != nil && now.Sub(src.good) < MaxStale
}

// lastCopy returns the calendar when loading it did not fail, or when its copy is usable.
func (src *source) lastCopy(now time.Time, err error) (*calendar, error) {
	if err != nil && !src.usable(now) {
		return nil, err
	}
	return src.cal, nil
}

// load loads the source again and records the outcome. It is called with src.mu held and
// returns with it held, but releases it during the I/O.
func (r *Resolver) load(ctx context.Context, src *source, now time.Time) error {
	done := make(chan struct{})
	src.loading = done
	have, bad, badErr := src.ver, src.bad, src.lastErr
	src.mu.Unlock()
	var cal *calendar // nil without an error: the source did not change
	var ver version
	var err error
	func() {
		defer func() { src.mu.Lock(); src.loading = nil; close(done) }() // even on a panic
		if src.isURL {
			cal, ver, err = r.fetch(ctx, src, have)
		} else {
			cal, ver.file, err = readFile(src, have.file, bad, badErr)
		}
	}()
	switch {
	case err == nil:
		if cal != nil {
			src.cal, src.ver = cal, ver
		}
		src.good, src.lastErr, src.bad = now, nil, nil
	case ctx.Err() != nil: // this caller gave up: that says nothing about the source
	default:
		if err != src.lastErr && src.usable(now) && r.Logger != nil { // a file's same broken version is logged once
			r.Logger.Warn("on-call calendar cannot be read; using its last copy", "schedule", src.name,
				"source", src.shown, "age", now.Sub(src.good).Round(time.Second).String(), "error", timebox.ErrorMessage(err))
		}
		src.lastErr, src.tried, src.bad = err, now, ver.file
	}
	return err
}

// unavailable returns the EUNAVAILABLE error of a source, naming it and what was wrong.
func unavailable(src *source, format string, args ...any) error {
	return timebox.Errorf(timebox.EUNAVAILABLE, "on-call schedule %q: %s: %s", src.name, src.shown, fmt.Sprintf(format, args...))
}

// readFile reads a file source again unless it is the version held (have: the calendar is
// returned nil) or the version that failed last time (bad, with badErr: not parsed again).
// It returns the version it read, broken or not.
func readFile(src *source, have, bad os.FileInfo, badErr error) (*calendar, os.FileInfo, error) {
	fi, err := os.Stat(src.loc)
	switch {
	case err != nil:
		return nil, nil, unavailable(src, "%s", fileReason(err))
	case sameVersion(fi, have):
		return nil, have, nil
	case sameVersion(fi, bad):
		return nil, bad, badErr
	case !fi.Mode().IsRegular():
		return nil, nil, unavailable(src, "not a regular file")
	}
	f, err := os.Open(src.loc)
	if err != nil {
		return nil, nil, unavailable(src, "%s", fileReason(err))
	}
	defer f.Close()
	data, err := readLimited(f)
	if err != nil {
		return nil, nil, unavailable(src, "%s", fileReason(err))
	}
	cal, err := parseICS(data)
	if err != nil {
		return nil, fi, unavailable(src, "%s", err.Error())
	}
	return cal, fi, nil
}

// sameVersion reports whether fi is the file version old was taken from: the same file (a
// new one renamed over it is not), with the same modification time and size.
func sameVersion(fi, old os.FileInfo) bool {
	return old != nil && os.SameFile(fi, old) && fi.ModTime().Equal(old.ModTime()) && fi.Size() == old.Size()
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

// fetch gets an URL source, conditionally when have holds the server's validators of the
// copy held (then a nil calendar without an error means not modified).
func (r *Resolver) fetch(ctx context.Context, src *source, have version) (*calendar, version, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.loc, nil)
	if err != nil {
		return nil, version{}, unavailable(src, "invalid URL")
	}
	req.Header.Set("Accept", "text/calendar")
	req.Header.Set("User-Agent", "timebox-oncall")
	if have.etag != "" {
		req.Header.Set("If-None-Match", have.etag)
	}
	if have.lastMod != "" {
		req.Header.Set("If-Modified-Since", have.lastMod)
	}
	client := r.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, version{}, unavailable(src, "%s", scrubURL(src.loc, httpReason(err)))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && have != (version{}):
		return nil, have, nil
	case resp.StatusCode != http.StatusOK:
		return nil, version{}, unavailable(src, "HTTP %s", timebox.Clip(scrubURL(src.loc, resp.Status)))
	case resp.ContentLength > MaxSourceBytes:
		return nil, version{}, unavailable(src, "%s", errTooLarge.Error())
	}
	data, err := readLimited(resp.Body)
	if errors.Is(err, errTooLarge) {
		return nil, version{}, unavailable(src, "%s", err.Error())
	} else if err != nil {
		return nil, version{}, unavailable(src, "%s", scrubURL(src.loc, httpReason(err)))
	}
	cal, err := parseICS(data)
	if err != nil {
		return nil, version{}, unavailable(src, "%s", scrubURL(src.loc, err.Error()))
	}
	return cal, version{etag: resp.Header.Get("ETag"), lastMod: resp.Header.Get("Last-Modified")}, nil
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
	password, _ := u.User.Password()
	secrets := []string{raw, u.RawQuery, u.Fragment, u.User.String(), password, u.EscapedPath(), u.Path}
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
