package http

import (
	"net/http"

	"github.com/timebox-dev/timebox"
)

// Routes returns the "METHOD /path" pattern of every route s serves.
func Routes(s *Server) []string {
	var out []string
	for _, rt := range s.routes() {
		out = append(out, rt.Method+" "+rt.Path)
	}
	return out
}

// QueryParams returns the query parameters each route accepts, by "METHOD /path".
func QueryParams(s *Server) map[string][]string {
	out := map[string][]string{}
	for _, rt := range s.routes() {
		out[rt.Method+" "+rt.Path] = rt.Query
	}
	return out
}

// CodeStatus is errorStatus, for tests.
func CodeStatus(code string) int { return errorStatus(code) }

// Fail is Server.fail, for tests.
func Fail(s *Server, w http.ResponseWriter, r *http.Request, err error) { s.fail(w, r, err) }

// ErrorCodes lists every error code.
var ErrorCodes = []string{
	timebox.EINVALID, timebox.EUNAUTHORIZED, timebox.EFORBIDDEN, timebox.ENOTFOUND,
	timebox.ECONFLICT, timebox.EUNAVAILABLE, timebox.EINTERNAL,
}
