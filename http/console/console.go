// Package console is Timebox's web console: server-rendered pages from embedded templates,
// signed in through OpenID Connect (or, in timebox dev only, one click per demo user), with
// server-side sessions in the store, CSRF tokens on every form, a strict Content-Security-
// Policy, and pages that update in place from the store's change feed.
//
// It serves every path that is not the API's (package http mounts it); it never accepts an
// API token, and the API never accepts its cookie.
package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Server is the console. Set the optional fields before calling Handler.
type Server struct {
	// Service is the request workflow (required).
	Service *timebox.Service
	// Runner, when set, does the database work of a decision before the page answers.
	Runner tbhttp.Runner
	// Reporter, when set, tells the servers' health for the Servers page.
	Reporter tbhttp.Reporter
	// Feed, when set, makes pages update in place (server-sent events); without it pages
	// refresh every Refresh.
	Feed timebox.Feed
	// OIDC, when set, signs people in through the provider.
	OIDC *OIDC
	// NotifyChannels are the names of the notification channels the server sends to.
	NotifyChannels []string
	// DevSignIn, when true, offers a one-click sign-in as each configuration user. Only
	// timebox dev sets it; it must never be set by timebox server.
	DevSignIn bool
	// Secure marks cookies Secure (and names the session cookie __Host-…): set when the
	// console is served over HTTPS, directly or behind a TLS-terminating proxy.
	Secure bool
	// BaseURL is the console's external URL (for the provider's redirect and links).
	BaseURL string
	// Refresh is how often a page reloads its content when it has no live feed (default 15s).
	Refresh time.Duration
	// Logger receives internal errors.
	Logger *slog.Logger

	pages *pages
	live  liveStreams // the open /events streams (live.go)
}

// New returns a console for svc.
func New(svc *timebox.Service) *Server {
	return &Server{Service: svc, Logger: slog.Default(), Refresh: 15 * time.Second}
}

// call is what a handler knows of the request it serves: who is signed in (nil on public
// routes when nobody is) and the viewer's time zone.
type call struct {
	User    *timebox.User
	Session *timebox.WebSession
	Zone    *time.Location
	// secret is the session cookie's value (for sign-out).
	secret string
}

// handler serves one console route. A returned error is rendered as an error page with
// the API's status for its code.
type handler func(w http.ResponseWriter, r *http.Request, c *call) error

// route is one console route. Public routes are served without a session (the session is
// still read when there is one); every other route redirects to the sign-in page without
// one. Every POST checks the CSRF token, public or not.
type route struct {
	Method, Path string
	Public       bool
	h            handler
	raw          http.Handler // served as is (static files)
}

// routes returns every console route. Each page's file adds its own.
func (s *Server) routes() []route {
	var rs []route
	for _, f := range []func() []route{s.baseRoutes, s.authRoutes, s.accessRoutes, s.requestRoutes,
		s.reviewRoutes, s.auditRoutes, s.timelineRoutes, s.adminRoutes, s.notificationRoutes, s.liveRoutes} {
		rs = append(rs, f()...)
	}
	return rs
}

// Handler returns the console's handler. Every answer carries the security headers.
func (s *Server) Handler() (http.Handler, error) {
	p, err := loadPages()
	if err != nil {
		return nil, err
	}
	s.pages = p
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		h := rt.raw
		if h == nil {
			h = s.serve(rt)
		}
		mux.Handle(rt.Method+" "+rt.Path, h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		if _, pattern := mux.Handler(r); pattern == "" {
			s.renderError(w, r, &call{Zone: zone(r)}, timebox.Errorf(timebox.ENOTFOUND, "there is no page %s", timebox.Clip(r.URL.Path)))
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// contentSecurityPolicy allows only the console's own scripts, styles and images: no inline
// script, no framing, forms posting only to the console.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}

// serve adapts rt: it reads the session, sends the anonymous to the sign-in page (or a 401
// for a POST), checks the CSRF token of every POST, and renders rt's error.
func (s *Server) serve(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c := &call{Zone: zone(r)}
		if err := s.readSession(r, c); err != nil && !rt.Public {
			if r.Method == http.MethodGet {
				s.toSignIn(w, r, err)
				return
			}
			s.renderError(w, r, c, err)
			return
		}
		if r.Method == http.MethodPost {
			if err := s.checkCSRF(r, c); err != nil {
				s.renderError(w, r, c, err)
				return
			}
		}
		if err := rt.h(w, r, c); err != nil {
			s.renderError(w, r, c, err)
		}
	})
}

// checkCSRF refuses a POST that does not come from one of the console's own pages: its
// form must carry the session's CSRF token (or, before sign-in, the pre-session cookie's),
// and a browser's Sec-Fetch-Site or Origin must say same-origin.
func (s *Server) checkCSRF(r *http.Request, c *call) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return timebox.Errorf(timebox.EFORBIDDEN, "refused: the form was not sent from a Timebox page (Sec-Fetch-Site: %s)", timebox.Clip(site))
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			return timebox.Errorf(timebox.EFORBIDDEN, "refused: the form was sent from another site (%s)", timebox.Clip(o))
		}
	}
	if err := r.ParseForm(); err != nil {
		return timebox.Errorf(timebox.EINVALID, "the form cannot be read: %s", timebox.Clip(err.Error()))
	}
	want := s.csrfToken(r, c)
	got := r.PostFormValue(csrfField)
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return timebox.Errorf(timebox.EFORBIDDEN, "refused: the form's CSRF token is missing or stale (reload the page and try again)")
	}
	return nil
}

// zone returns the viewer's time zone from the tz cookie that the console's script sets
// (UTC without it, or when it names no zone).
func zone(r *http.Request) *time.Location {
	if ck, err := r.Cookie("tz"); err == nil && ck.Value != "" && len(ck.Value) < 64 && !strings.Contains(ck.Value, "..") {
		if name, err := url.QueryUnescape(ck.Value); err == nil {
			if loc, err := time.LoadLocation(name); err == nil {
				return loc
			}
		}
	}
	return time.UTC
}

// renderError answers err: as a page (the status of its code) for a browser, or as plain
// text for the console's own script.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, c *call, err error) {
	status := tbhttp.ErrorStatus(err)
	if status >= 500 {
		s.Logger.Error("console: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, c, status, "error", "Error", map[string]any{"Message": timebox.ErrorMessage(err), "Status": status})
}

func (s *Server) ctx(r *http.Request) context.Context { return r.Context() }

// baseRoutes are the static files and the error page's own routes.
func (s *Server) baseRoutes() []route {
	return []route{
		{Method: "GET", Path: "/static/", Public: true, raw: staticHandler()},
	}
}
