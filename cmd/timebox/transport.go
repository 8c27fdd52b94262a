package main

import (
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// TokensConfig is the `tokens:` section: how long API tokens live.
type TokensConfig struct {
	// DefaultTTL is the lifetime of a token created without --ttl (default 30d).
	DefaultTTL timebox.Duration `yaml:"default_ttl"`
	// MaxTTL is the longest lifetime a token may be given (default 90d).
	MaxTTL timebox.Duration `yaml:"max_ttl"`
}

// policy returns the token policy the service enforces.
func (t TokensConfig) policy() timebox.TokenPolicy {
	return timebox.TokenPolicy{DefaultTTL: time.Duration(t.DefaultTTL), MaxTTL: time.Duration(t.MaxTTL)}
}

// TLSConfig is the `tls:` section: the API's certificate, or the statement that a proxy in
// front of the server terminates TLS.
type TLSConfig struct {
	// CertFile and KeyFile are the PEM certificate (chain) and private key the API serves.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// TerminatedByProxy says that a proxy in front terminates TLS, so that the server may
	// listen on a non-loopback address with plain HTTP.
	TerminatedByProxy bool `yaml:"terminated_by_proxy"`
}

// MetricsConfig is the `metrics:` section.
type MetricsConfig struct {
	// Token is a secret reference (env:NAME, file:PATH) to the bearer token that GET /metrics
	// then requires; without it /metrics is public.
	Token string `yaml:"token"`
}

// validateTransport checks the tokens, tls and metrics sections and loads the certificate,
// so that a bad file is named when the configuration is loaded.
func (c *Config) validateTransport() error {
	if err := c.Tokens.policy().Validate(); err != nil {
		return err
	}
	if c.Metrics.Token != "" {
		if err := timebox.CheckSecretRef(c.Metrics.Token); err != nil {
			return timebox.Errorf(timebox.EINVALID, "metrics.token: %s", err.Error())
		}
	}
	t := c.TLS
	switch {
	case (t.CertFile != "" || t.KeyFile != "") && t.TerminatedByProxy:
		return timebox.Errorf(timebox.EINVALID, "tls: set cert_file and key_file, or terminated_by_proxy, not both")
	case t.CertFile != "" || t.KeyFile != "":
		cfg, err := tbhttp.ServerTLS(t.CertFile, t.KeyFile, time.Now())
		if err != nil {
			return timebox.Errorf(timebox.EINVALID, "tls.%s", timebox.ErrorMessage(err))
		}
		c.tlsConfig = cfg
	case !t.TerminatedByProxy && !loopbackListen(c.Listen):
		return timebox.Errorf(timebox.EINVALID, "listen: %s is not a loopback address and TLS is off: set tls.cert_file and tls.key_file, or tls.terminated_by_proxy: true if a proxy in front terminates TLS", c.Listen)
	}
	return nil
}

// serverTLS returns the TLS configuration the API serves with (nil: plain HTTP).
func (c *Config) serverTLS() *tls.Config { return c.tlsConfig }

// loopbackListen reports whether a listen address is on this machine only: localhost or a
// loopback IP. An empty host listens on every interface.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// configureTransport sets the API's TLS and metrics token from c, and logs when the server
// relies on a proxy for TLS.
func configureTransport(s *tbhttp.Server, c *Config, logger *slog.Logger) error {
	s.TLS = c.serverTLS()
	if c.Metrics.Token != "" {
		token, err := timebox.ResolveSecret(c.Metrics.Token)
		if err != nil {
			return timebox.Errorf(timebox.EINVALID, "metrics.token: %s", timebox.ErrorMessage(err))
		}
		s.MetricsToken = token
	}
	if c.TLS.TerminatedByProxy {
		logger.Info("serving plain HTTP: tls.terminated_by_proxy says a proxy in front terminates TLS", "listen", c.Listen)
	}
	return nil
}
