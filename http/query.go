package http

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/timebox-dev/timebox"
)

// maxParamBytes bounds a query parameter's value and a path id: every name, id and time
// that the API takes is much shorter.
const maxParamBytes = 256

// query is a request's query string, read with validation. Every error is EINVALID and
// names the parameter.
type query struct{ v url.Values }

// parseQuery reads r's query string and refuses parameters outside allowed, so that a typo
// does not silently widen a search, and values that checkParam refuses.
func parseQuery(r *http.Request, allowed ...string) (query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, timebox.Errorf(timebox.EINVALID, "the query string is malformed")
	}
	for _, name := range slices.Sorted(maps.Keys(v)) {
		switch {
		case slices.Contains(allowed, name):
		case len(allowed) == 0:
			return query{}, timebox.Errorf(timebox.EINVALID, "unknown query parameter %s: %s takes none", quote(name), clipPath(r.URL.EscapedPath()))
		default:
			return query{}, timebox.Errorf(timebox.EINVALID, "unknown query parameter %s (known: %s)", quote(name), strings.Join(allowed, ", "))
		}
		for _, s := range v[name] {
			if err := checkParam(fmt.Sprintf("query parameter %q", name), s); err != nil {
				return query{}, err
			}
		}
	}
	return query{v}, nil
}

// checkParam refuses a query parameter's value or a path id s that cannot be a name, an id
// or a time: longer than maxParamBytes, not UTF-8, or with control characters. Such values
// must not reach the store, where PostgreSQL refuses NUL and invalid UTF-8 with an internal
// error; what names s in the message.
func checkParam(what, s string) error {
	switch {
	case len(s) > maxParamBytes:
		return timebox.Errorf(timebox.EINVALID, "%s is longer than %d bytes", what, maxParamBytes)
	case !utf8.ValidString(s):
		return timebox.Errorf(timebox.EINVALID, "%s is not valid UTF-8", what)
	case strings.ContainsFunc(s, unicode.IsControl):
		return timebox.Errorf(timebox.EINVALID, "%s contains a control character", what)
	}
	return nil
}

// string returns the one value of parameter name, or "".
func (q query) string(name string) (string, error) {
	vs := q.v[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", timebox.Errorf(timebox.EINVALID, "query parameter %q is given %d times; give it once", name, len(vs))
}

// limit returns parameter "limit": a positive integer, or 0 when absent.
func (q query) limit() (int, error) {
	s, err := q.string("limit")
	if err != nil || s == "" {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, timebox.Errorf(timebox.EINVALID, "query parameter limit=%s must be a positive integer", quote(s))
	}
	return n, nil
}

// bool returns parameter name as a boolean (true, false, 1, 0), false when absent.
func (q query) bool(name string) (bool, error) {
	s, err := q.string(name)
	if err != nil || s == "" {
		return false, err
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, timebox.Errorf(timebox.EINVALID, "query parameter %s=%s must be true or false", name, quote(s))
	}
	return b, nil
}

// time returns parameter name as an RFC 3339 time, or the zero time when absent. A "+" that
// the client left unescaped (and so arrived as a space) is put back. The parsing is that of
// the times in request bodies.
func (q query) time(name string) (time.Time, error) {
	s, err := q.string(name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	var t time.Time
	if err := t.UnmarshalText([]byte(strings.ReplaceAll(s, " ", "+"))); err != nil {
		return time.Time{}, timebox.Errorf(timebox.EINVALID, "query parameter %s=%s must be an RFC 3339 time, such as 2026-01-02T15:04:05Z", name, quote(s))
	}
	return t, nil
}

// states returns every value of parameter "state", each checked against timebox.States.
func (q query) states() ([]timebox.State, error) {
	var states []timebox.State
	for _, s := range q.v["state"] {
		st := timebox.State(s)
		if !slices.Contains(timebox.States, st) {
			names := make([]string, len(timebox.States))
			for i, x := range timebox.States {
				names[i] = string(x)
			}
			return nil, timebox.Errorf(timebox.EINVALID, "unknown state %s (known: %s)", quote(s), strings.Join(names, ", "))
		}
		states = append(states, st)
	}
	return states, nil
}
