package http

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/timebox-dev/timebox"
)

// handlerFunc serves one API route for user u (nil on public routes). A returned error is
// written by Server.fail.
type handlerFunc func(w http.ResponseWriter, r *http.Request, u *timebox.User) error

// route is one API operation. Its Method and Path form a Go ServeMux pattern, and the
// OpenAPI document describes exactly these.
type route struct {
	Method string
	Path   string
	Public bool     // served without a token
	Query  []string // the query parameters it accepts; others are refused
	h      handlerFunc
	raw    http.Handler // served as is, instead of h
}

// routes returns every API route.
func (s *Server) routes() []route {
	return []route{
		{Method: "GET", Path: "/healthz", Public: true, h: s.handleHealth},
		{Method: "GET", Path: "/metrics", Public: true, raw: s.metricsHandler(promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
			ErrorLog:      promLogger{s},
		}))},
		{Method: "GET", Path: "/api/v1/openapi.json", Public: true, h: s.handleOpenAPI},
		{Method: "GET", Path: "/api/v1/me", h: s.handleMe},
		{Method: "GET", Path: "/api/v1/databases", h: s.handleDatabases},
		{Method: "POST", Path: "/api/v1/requests", h: s.handleCreateRequest},
		{Method: "GET", Path: "/api/v1/requests", Query: requestParams, h: s.handleRequests},
		{Method: "GET", Path: "/api/v1/requests/{id}", h: s.handleRequest},
		{Method: "POST", Path: "/api/v1/requests/{id}/approve", h: s.handleApprove},
		{Method: "POST", Path: "/api/v1/requests/{id}/deny", h: s.handleDeny},
		{Method: "POST", Path: "/api/v1/requests/{id}/revoke", h: s.handleRevoke},
		{Method: "POST", Path: "/api/v1/requests/{id}/cancel", h: s.handleCancel},
		{Method: "POST", Path: "/api/v1/requests/{id}/release", h: s.handleRelease},
		{Method: "GET", Path: "/api/v1/requests/{id}/credentials", h: s.handleCredentials},
		{Method: "POST", Path: "/api/v1/requests/{id}/extend", h: s.handleExtend},
		{Method: "POST", Path: "/api/v1/requests/{id}/follow-up", h: s.handleFollowUp},
		{Method: "GET", Path: "/api/v1/requests/{id}/plan", h: s.handlePlan},
		{Method: "POST", Path: "/api/v1/policy/explain", h: s.handleExplain},
		{Method: "GET", Path: "/api/v1/users/disabled", h: s.handleDisabledUsers},
		{Method: "POST", Path: "/api/v1/users/{name}/disable", h: s.handleDisableUser},
		{Method: "POST", Path: "/api/v1/users/{name}/enable", h: s.handleEnableUser},
		{Method: "GET", Path: "/api/v1/tokens", Query: tokenParams, h: s.handleTokens},
		{Method: "POST", Path: "/api/v1/tokens/{id}/revoke", h: s.handleRevokeToken},
		{Method: "POST", Path: "/api/v1/cli/token", Public: true, h: s.handleCLIToken},
		{Method: "GET", Path: "/api/v1/audit", Query: eventParams, h: s.handleEvents},
		{Method: "GET", Path: "/api/v1/audit/verify", h: s.handleVerifyAudit},
		{Method: "GET", Path: "/api/v1/status", h: s.handleStatus},
		{Method: "GET", Path: "/api/v1/reports/access", Query: reportParams, h: s.handleAccessReport},
		{Method: "GET", Path: "/api/v1/notify/deliveries", Query: deliveryParams, h: s.handleDeliveries},
		{Method: "POST", Path: "/api/v1/notify/deliveries/{id}/retry", h: s.handleRetryDelivery},
	}
}

// Handler returns the HTTP handler of every route, which logs one line per request and
// answers unknown routes and methods with a JSON error.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		h := rt.raw
		if h == nil {
			h = s.serve(rt)
		}
		mux.Handle(rt.Method+" "+rt.Path, h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{}
		rec := &statusRecorder{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		defer func() {
			s.recoverPanic(rec, r, recover())
			s.logger().Info("http request", "method", r.Method, "path", r.URL.Path,
				"status", rec.status(), "duration", time.Since(start), "user", info.user)
		}()
		if p := r.URL.EscapedPath(); p != cleanPath(p) {
			// The ServeMux would redirect to the cleaned path, another route: the API never
			// redirects.
			writeError(rec, http.StatusNotFound, timebox.Errorf(timebox.ENOTFOUND,
				"no such route: %s %s (a path has no empty, \".\" or \"..\" segments)", r.Method, clipPath(p)))
			return
		}
		if s.Hooks != nil && strings.HasPrefix(r.URL.Path, "/hooks/") {
			s.Hooks.ServeHTTP(rec, r)
			return
		}
		if s.Console != nil && !apiPath(r.URL.Path) {
			s.Console.ServeHTTP(rec, r)
			return
		}
		var out http.ResponseWriter = rec
		if _, pattern := mux.Handler(r); pattern == "" {
			out = &fallbackWriter{ResponseWriter: rec, r: r}
		}
		mux.ServeHTTP(out, r)
	})
}

// apiPath reports whether p belongs to the API (and the health and metrics endpoints)
// rather than to the console.
func apiPath(p string) bool {
	return p == "/api" || strings.HasPrefix(p, "/api/") || p == "/healthz" || p == "/metrics"
}

// recoverPanic turns a handler's panic v (nil when there was none) into a logged internal
// error, so that the client gets a JSON answer rather than a dropped connection.
func (s *Server) recoverPanic(w *statusRecorder, r *http.Request, v any) {
	if v == nil {
		return
	} else if v == http.ErrAbortHandler {
		panic(v)
	}
	s.logger().Error("http: panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
	if w.code == 0 {
		writeError(w, http.StatusInternalServerError, timebox.Errorf(timebox.EINTERNAL, "internal error"))
	}
}

// serve adapts rt to an http.Handler: it authenticates the caller unless rt is public,
// refuses query parameters rt does not know, and writes rt's error, if any.
func (s *Server) serve(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u *timebox.User
		var err error
		if !rt.Public {
			u, err = s.authenticate(r)
		}
		if err == nil {
			_, err = parseQuery(r, rt.Query...)
		}
		if err == nil {
			err = rt.h(w, r, u)
		}
		if err != nil {
			s.fail(w, r, err)
		}
	})
}

// requestInfo carries what the access log line needs from inside the handlers.
type requestInfo struct{ user string }

type infoKey struct{}

// setUser records the authenticated user of r for the access log.
func setUser(r *http.Request, name string) {
	if info, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		info.user = name
	}
}

// statusRecorder remembers the status code written through it.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusRecorder) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// fallbackWriter turns the ServeMux's plain-text 404 and 405 answers into JSON errors and
// passes anything else (such as a redirect to a cleaned path) through.
type fallbackWriter struct {
	http.ResponseWriter
	r        *http.Request
	replaced bool
}

func (w *fallbackWriter) WriteHeader(code int) {
	var err error
	switch code {
	case http.StatusNotFound:
		err = timebox.Errorf(timebox.ENOTFOUND, "no such route: %s %s", w.r.Method, clipPath(w.r.URL.EscapedPath()))
	case http.StatusMethodNotAllowed:
		err = timebox.Errorf(timebox.EINVALID, "method %s is not allowed on %s (allowed: %s)",
			w.r.Method, clipPath(w.r.URL.EscapedPath()), w.Header().Get("Allow"))
	default:
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = true
	w.Header().Del("X-Content-Type-Options")
	writeError(w.ResponseWriter, code, err)
}

func (w *fallbackWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// cleanPath returns p as a ServeMux cleans it before matching: rooted, without empty, "."
// and ".." segments, with its trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	} else if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// clipPath cuts an escaped path (ASCII) for an error message.
func clipPath(p string) string {
	if len(p) > 2*maxQuoted {
		return p[:2*maxQuoted] + "…"
	}
	return p
}

// promLogger passes promhttp's errors to the server's logger.
type promLogger struct{ s *Server }

func (l promLogger) Println(v ...any) {
	l.s.logger().Error("metrics", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}
