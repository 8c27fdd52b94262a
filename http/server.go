// Package http serves Timebox's JSON API over HTTP and holds the client that the CLI uses to
// call it. It is the one place where error codes become HTTP statuses.
package http

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/timebox-dev/timebox"
)

// runTimeout bounds how long an answer waits for the scheduler to finish the database work
// that an approval, revocation or cancellation started.
const runTimeout = 10 * time.Second

// Runner does the database work that one request needs now and waits for it. The scheduler
// implements it.
type Runner interface {
	RunNow(ctx context.Context, id string) error
}

// Reporter tells the health and pending work of the database servers. The scheduler
// implements it.
type Reporter interface {
	Status(ctx context.Context) (*timebox.Status, error)
}

// Server is Timebox's HTTP API. Set the optional fields before calling Handler or Serve.
type Server struct {
	// Service is the request workflow the API exposes (required).
	Service *timebox.Service
	// Runner, when set, is asked to do the database work of an approval whose window has
	// started, a revocation or a cancellation before the answer is written, so that the
	// answer shows the outcome ("active", "revoked") when the database was quick.
	Runner Runner
	// Reporter, when set, answers GET /api/v1/status: the servers' health and pending work.
	Reporter Reporter
	// Registry is what /metrics serves. NewServer creates it and registers the request
	// gauge and the Go and process collectors on it; register other metrics on it too.
	Registry *prometheus.Registry
	// Logger receives one line per HTTP request and every internal error.
	Logger *slog.Logger
	// MetricsToken, when set, is the bearer token GET /metrics requires (compared in
	// constant time); without it /metrics is public.
	MetricsToken string
	// TLS, when set, makes Serve answer HTTPS only, with its certificates; a plain HTTP
	// request gets a 400 answer.
	TLS *tls.Config
	// Console, when set, serves every path outside the API (/api/, /healthz, /metrics): the
	// web console. It gets no API token and the API gets no console cookie.
	Console http.Handler
	// Hooks, when set, serves /hooks/ (the Slack interactivity endpoint): public paths that
	// authenticate each request by the sender's own signature.
	Hooks http.Handler

	mu  sync.Mutex
	ln  net.Listener
	srv *http.Server
}

// NewServer returns a Server for svc with a new metrics registry and the default logger.
func NewServer(svc *timebox.Service) *Server {
	s := &Server{Service: svc, Registry: prometheus.NewRegistry(), Logger: slog.Default()}
	s.Registry.MustRegister(
		newRequestCollector(svc),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	s.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      runTimeout + 50*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	return s
}

// Listen opens a TCP listener on addr (such as ":8080" or "127.0.0.1:0") for Serve and URL.
// It returns EUNAVAILABLE when the address cannot be listened on.
func (s *Server) Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, timebox.WrapError(timebox.EUNAVAILABLE, err, "cannot listen on %s: %s", addr, shortReason(err))
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return ln, nil
}

// Serve answers HTTP requests on l until Close is called, then returns nil.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.ln == nil {
		s.ln = l
	}
	s.srv.Handler = s.Handler()
	s.srv.ErrorLog = slog.NewLogLogger(s.logger().Handler(), slog.LevelWarn)
	s.mu.Unlock()
	var err error
	if s.TLS != nil {
		s.srv.TLSConfig = s.TLS
		err = s.srv.ServeTLS(l, "", "")
	} else {
		err = s.srv.Serve(l)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return timebox.WrapError(timebox.EUNAVAILABLE, err, "serve http")
	}
	return nil
}

// Close stops accepting connections and waits, until ctx is done, for the requests in flight
// to finish. A listener returned by Listen but never served is closed too.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close() // already closed when it was served; the error says so and is moot
	}
	s.mu.Unlock()
	if err != nil {
		return timebox.WrapError(timebox.EUNAVAILABLE, err, "shut the http server down")
	}
	return nil
}

// URL returns the base URL of the listener opened by Listen (or given to Serve), such as
// http://localhost:8080 (https with TLS), or "" before there is one. An unspecified host
// becomes localhost.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	scheme := "http://"
	if s.TLS != nil {
		scheme = "https://"
	}
	addr, ok := s.ln.Addr().(*net.TCPAddr)
	if !ok {
		return scheme + s.ln.Addr().String()
	}
	host := "localhost"
	if !addr.IP.IsUnspecified() && addr.IP != nil {
		host = addr.IP.String()
	}
	return scheme + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// logger returns s.Logger, or the default logger when it is unset.
func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// now returns the service's current time.
func (s *Server) now() time.Time {
	if s.Service.Now != nil {
		return s.Service.Now()
	}
	return time.Now()
}
