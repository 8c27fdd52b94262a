package http

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// maxBodyBytes bounds a request body.
const maxBodyBytes = 64 << 10

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

// errorCode is the inverse of errorStatus, for answers that carry no error body (such as a
// proxy's 502).
func errorCode(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
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

// decodeJSON reads r's body, at most maxBodyBytes of one JSON value with only known fields,
// into v. Errors are EINVALID and say what is wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return timebox.Errorf(timebox.EINVALID, "the request body must be JSON (Content-Type: application/json), not %q", ct)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return bodyError(err)
		}
		return timebox.Errorf(timebox.EINVALID, "the request body has data after its JSON value")
	}
	return nil
}

// bodyError turns a JSON decoding error into an EINVALID error naming the problem.
func bodyError(err error) error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		timeErr   *time.ParseError
	)
	switch {
	case errors.As(err, &maxErr):
		return timebox.Errorf(timebox.EINVALID, "the request body is larger than %d KiB", maxBodyBytes>>10)
	case errors.Is(err, io.EOF):
		return timebox.Errorf(timebox.EINVALID, "the request body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return timebox.Errorf(timebox.EINVALID, "the request body is truncated JSON")
	case errors.As(err, &syntaxErr):
		return timebox.Errorf(timebox.EINVALID, "the request body is not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return timebox.Errorf(timebox.EINVALID, "field %q must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &typeErr):
		return timebox.Errorf(timebox.EINVALID, "the request body must be a JSON object, not %s", typeErr.Value)
	case errors.As(err, &timeErr):
		return timebox.Errorf(timebox.EINVALID, "invalid time %q: use RFC 3339, such as 2026-01-02T15:04:05Z", timeErr.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return timebox.Errorf(timebox.EINVALID, "unknown field %s in the request body", name)
	}
	return timebox.Errorf(timebox.EINVALID, "the request body is not valid JSON")
}

// jsonKind names a Go kind the way a JSON user would.
func jsonKind(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"), strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "true or false"
	case kind == "slice", kind == "array":
		return "an array"
	}
	return "an object"
}
