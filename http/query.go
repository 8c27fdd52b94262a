package http

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// query is a request's query string, read with validation. Every error is EINVALID and
// names the parameter.
type query struct{ v url.Values }

// parseQuery reads r's query string and refuses parameters outside allowed, so that a typo
// does not silently widen a search.
func parseQuery(r *http.Request, allowed ...string) (query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, timebox.Errorf(timebox.EINVALID, "the query string is malformed")
	}
	for name := range v {
		switch {
		case slices.Contains(allowed, name):
		case len(allowed) == 0:
			return query{}, timebox.Errorf(timebox.EINVALID, "unknown query parameter %q: %s takes none", name, r.URL.Path)
		default:
			return query{}, timebox.Errorf(timebox.EINVALID, "unknown query parameter %q (known: %s)", name, strings.Join(allowed, ", "))
		}
	}
	return query{v}, nil
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
		return 0, timebox.Errorf(timebox.EINVALID, "query parameter limit=%q must be a positive integer", s)
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
		return false, timebox.Errorf(timebox.EINVALID, "query parameter %s=%q must be true or false", name, s)
	}
	return b, nil
}

// time returns parameter name as an RFC 3339 time, or the zero time when absent. A "+" that
// the client left unescaped (and so arrived as a space) is put back.
func (q query) time(name string) (time.Time, error) {
	s, err := q.string(name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, strings.ReplaceAll(s, " ", "+"))
	if err != nil {
		return time.Time{}, timebox.Errorf(timebox.EINVALID, "query parameter %s=%q must be an RFC 3339 time, such as 2026-01-02T15:04:05Z", name, s)
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
			return nil, timebox.Errorf(timebox.EINVALID, "unknown state %q (known: %s)", s, strings.Join(names, ", "))
		}
		states = append(states, st)
	}
	return states, nil
}
