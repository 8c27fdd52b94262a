package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/timebox-dev/timebox"
)

// maxQuoted bounds how much of a caller's value an error message repeats.
const maxQuoted = 64

// errorResponse is the body of every error answer.
type errorResponse struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorStatus is the one mapping from error codes to HTTP statuses.
func errorStatus(code string) int {
	switch code {
	case timebox.EINVALID:
		return http.StatusBadRequest
	case timebox.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case timebox.EFORBIDDEN:
		return http.StatusForbidden
	case timebox.ENOTFOUND:
		return http.StatusNotFound
	case timebox.ECONFLICT:
		return http.StatusConflict
	case timebox.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrorStatus returns the HTTP status of err (through its code): the console answers with
// the same statuses as the API.
func ErrorStatus(err error) int { return errorStatus(timebox.ErrorCode(err)) }

// errorCode is the inverse of errorStatus, for answers that carry no error body (such as a
// proxy's 502).
func errorCode(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge,
		http.StatusRequestURITooLong, http.StatusRequestHeaderFieldsTooLarge:
		return timebox.EINVALID
	case http.StatusUnauthorized:
		return timebox.EUNAUTHORIZED
	case http.StatusForbidden:
		return timebox.EFORBIDDEN
	case http.StatusNotFound:
		return timebox.ENOTFOUND
	case http.StatusConflict:
		return timebox.ECONFLICT
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return timebox.EUNAVAILABLE
	}
	return timebox.EINTERNAL
}

// fail writes err as a JSON error with the status of its code. Internal and unavailable
// errors are logged here, with their whole chain; users only ever see the message.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := timebox.ErrorCode(err)
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		s.logger().Info("http: client went away", "method", r.Method, "path", r.URL.Path)
	case code == timebox.EINTERNAL:
		s.logger().Error("http: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	case code == timebox.EUNAVAILABLE:
		s.logger().Warn("http: unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == timebox.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="timebox"`)
	}
	writeError(w, errorStatus(code), err)
}

// writeError writes err's code and user-facing message with status.
func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorResponse{Code: timebox.ErrorCode(err), Message: timebox.ErrorMessage(err)})
}

// writeJSON writes v as a JSON answer with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only a programming error gets here
		status = http.StatusInternalServerError
		b = []byte(`{"code":"internal","message":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// quote returns s in Go syntax for an error message (control characters and invalid UTF-8
// escaped), cut to maxQuoted bytes: a message says which value is wrong, it does not send a
// megabyte of it back.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:cut]), len(s))
}
