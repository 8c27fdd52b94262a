package main

import (
	"context"
	"log/slog"
	"net/url"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/http/console"
)

// ConsoleConfig is the `console:` section: the web console's sessions and external URL.
type ConsoleConfig struct {
	// URL is the console's external address (https://timebox.example.com), for the
	// provider's redirect URI and for links; default: the address the server listens on.
	URL string `yaml:"url"`
	// SessionIdle ends a console session after this long without use (default 30m).
	SessionIdle timebox.Duration `yaml:"session_idle"`
	// SessionMaxAge ends a console session this long after sign-in (default 12h).
	SessionMaxAge timebox.Duration `yaml:"session_max_age"`
}

// validate checks the console section.
func (cc ConsoleConfig) validate() error {
	if cc.URL != "" {
		u, err := url.Parse(cc.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return timebox.Errorf(timebox.EINVALID, "console.url: %q must be an http(s) URL with no path, such as https://timebox.example.com", timebox.Clip(cc.URL))
		}
	}
	if cc.SessionIdle < 0 || cc.SessionMaxAge < 0 {
		return timebox.Errorf(timebox.EINVALID, "console: session_idle and session_max_age must be positive")
	}
	if cc.SessionIdle > 0 && cc.SessionMaxAge > 0 && cc.SessionIdle > cc.SessionMaxAge {
		return timebox.Errorf(timebox.EINVALID, "console.session_idle (%s) is longer than console.session_max_age (%s)",
			time.Duration(cc.SessionIdle), time.Duration(cc.SessionMaxAge))
	}
	return nil
}

// policy returns the session policy the service enforces.
func (cc ConsoleConfig) policy() timebox.SessionPolicy {
	return timebox.SessionPolicy{Idle: time.Duration(cc.SessionIdle), Absolute: time.Duration(cc.SessionMaxAge)}
}

// loadDirectory reads the people who signed in through the provider, before anything
// (the startup cascade included) asks who exists.
func (in *instance) loadDirectory(ctx context.Context, logger *slog.Logger) error {
	rejected, err := in.Service.LoadDirectory(ctx)
	if err != nil {
		return err
	} else if len(rejected) > 0 {
		logger.Error("identities in the store fail their check with secret_key (made or edited outside Timebox); they cannot sign in or approve", "names", rejected)
	}
	return nil
}

// followDirectory reloads the directory when someone signs in (on this replica or another
// sharing the store), so that a person's groups from their latest sign-in decide what they
// may approve everywhere; and after a gap in the change feed. It ends with ctx.
func (in *instance) followDirectory(ctx context.Context, logger *slog.Logger) {
	changes, stop := in.Store.Feed().Subscribe()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ch, ok := <-changes:
			if !ok {
				return
			}
			if ch.Seq != 0 && ch.Action != "user.signed_in" {
				continue
			}
			if err := in.loadDirectory(ctx, logger); err != nil && ctx.Err() == nil {
				logger.Warn("could not reload the people who signed in; retried at the next sign-in", "err", err)
			}
		}
	}
}

// startConsole mounts the console on the instance's HTTP server.
func (in *instance) startConsole(c *Config, logger *slog.Logger) error {
	cs := console.New(in.Service)
	cs.Runner, cs.Reporter, cs.Logger = in.Scheduler, in.Scheduler, logger
	cs.Feed = in.Store.Feed()
	cs.DevSignIn = c.devSignIn
	cs.Secure = in.HTTP.TLS != nil || c.TLS.TerminatedByProxy
	cs.BaseURL = c.Console.URL
	if c.OIDC.enabled() {
		o, err := c.OIDC.newOIDC(logger)
		if err != nil {
			return err
		}
		cs.OIDC = o
	}
	h, err := cs.Handler()
	if err != nil {
		return err
	}
	in.Console = cs
	in.HTTP.Console = h
	return nil
}
