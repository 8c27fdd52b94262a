package main

import (
	"context"
	"log/slog"
	nethttp "net/http"
	"strings"

	"github.com/timebox-dev/timebox/notify"
)

// startNotify opens the channels of the notify section, mounts their callback endpoints
// (Slack's interactivity) on the HTTP server and returns the outbox to run; nil without a
// notify section. Links point at console.url, else at the address the server listens on.
func (in *instance) startNotify(c *Config, logger *slog.Logger) (*notify.Outbox, error) {
	if c.Notify == nil || len(c.Notify.Channels) == 0 {
		return nil, nil
	}
	base := c.Console.URL
	if base == "" {
		base = in.URL()
		logger.Warn("notify: console.url is not set; links in notifications point at the address the server listens on", "url", base)
	}
	channels, err := notify.Open(c.Notify, notify.Env{ConsoleURL: base, Service: in.Service, Logger: logger})
	if err != nil {
		return nil, err
	}
	hooks := nethttp.NewServeMux()
	mounted := false
	for _, ch := range channels {
		if in.Console != nil {
			in.Console.NotifyChannels = append(in.Console.NotifyChannels, ch.Name)
		}
		if ch.Hook != nil {
			hooks.Handle("POST "+ch.HookPath(), ch.Hook)
			mounted = true
		}
	}
	if mounted {
		in.HTTP.Hooks = hooks
	}
	o := notify.New(in.Store, in.Service, in.Store.Feed(), c.Notify, channels, base)
	o.Logger, o.Hook = logger, faultHook()
	o.Register(in.HTTP.Registry)
	o.SingleProcess = strings.HasPrefix(c.Store, "sqlite:")
	if err := o.Start(context.Background()); err != nil {
		return nil, err
	}
	return o, nil
}

// runNotify runs the outbox until ctx ends.
func (in *instance) runNotify(ctx context.Context) {
	if in.Outbox != nil {
		in.Outbox.Run(ctx)
	}
}
