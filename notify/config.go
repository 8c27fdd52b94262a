package notify

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// Config is the `notify:` section of the server's configuration.
type Config struct {
	// ExpiryWarning is how long before its end an active request's expiry warning goes out
	// (default 15m; "0s" is refused: leave expiry_warning out of the routes instead).
	ExpiryWarning timebox.Duration `yaml:"expiry_warning"`
	// RetryMin and RetryMax bound the backoff between attempts (default 2s and 10m); a
	// delivery that still fails GiveUpAfter after it was planned (default 24h) goes to the
	// dead-letter list (`timebox notify failed`).
	RetryMin    timebox.Duration `yaml:"retry_min"`
	RetryMax    timebox.Duration `yaml:"retry_max"`
	GiveUpAfter timebox.Duration `yaml:"give_up_after"`
	// Keep is how long sent and failed deliveries stay in the store (default 30d): the
	// history of `timebox notify list` and the dead-letter list.
	Keep     timebox.Duration `yaml:"keep"`
	Channels []ChannelConfig  `yaml:"channels"`
	Routes   []Route          `yaml:"routes"`
}

// ChannelConfig is one channel: a name and exactly one of slack, teams, email, webhook.
type ChannelConfig struct {
	Name string `yaml:"name"`
	// Rate is the most messages a second the channel sends (default per type: Slack 1,
	// Teams 2, e-mail 5, webhook 50); Burst how many may go at once (default 3).
	Rate    float64        `yaml:"rate"`
	Burst   int            `yaml:"burst"`
	Slack   *SlackConfig   `yaml:"slack"`
	Teams   *TeamsConfig   `yaml:"teams"`
	Email   *EmailConfig   `yaml:"email"`
	Webhook *WebhookConfig `yaml:"webhook"`
}

// Route sends notifications of the listed kinds about the matching requests to channels.
// Empty lists match everything.
type Route struct {
	Channels     []string `yaml:"channels"`
	Events       []Kind   `yaml:"events"`
	Databases    []string `yaml:"databases"`
	Environments []string `yaml:"environments"`
	Rules        []string `yaml:"rules"`
	// Shared (default true) posts to the channel's own destination (a Slack or Teams
	// channel, the e-mail `to` list) and, on Slack, updates that message in place.
	Shared *bool `yaml:"shared"`
	// Direct also writes to people directly (Slack direct messages, e-mail): "approvers"
	// (those who may decide the request now; for new_request, awaiting, expiry_warning's
	// owners) and "requester" (every kind about their request).
	Direct []string `yaml:"direct"`
}

// Env is what opening a channel needs besides its configuration.
type Env struct {
	// ConsoleURL is the console's external URL, for links.
	ConsoleURL string
	// Service decides Slack button clicks.
	Service *timebox.Service
	// Client sends HTTP requests (default: one with a 15 s timeout).
	Client *http.Client
	Logger *slog.Logger
}

// Validate checks the section against the catalog; errors name the field.
func (c *Config) Validate(cat *timebox.Catalog) error {
	if c.ExpiryWarning < 0 || c.RetryMin < 0 || c.RetryMax < 0 || c.GiveUpAfter < 0 || c.Keep < 0 {
		return timebox.Errorf(timebox.EINVALID, "notify: expiry_warning, retry_min, retry_max, give_up_after and keep must be positive")
	}
	if c.Keep > 0 && c.GiveUpAfter > 0 && c.Keep < c.GiveUpAfter {
		return timebox.Errorf(timebox.EINVALID, "notify.keep (%s) is shorter than notify.give_up_after (%s)", time.Duration(c.Keep), time.Duration(c.GiveUpAfter))
	}
	if c.RetryMin > 0 && c.RetryMax > 0 && c.RetryMin > c.RetryMax {
		return timebox.Errorf(timebox.EINVALID, "notify.retry_min (%s) is longer than notify.retry_max (%s)", time.Duration(c.RetryMin), time.Duration(c.RetryMax))
	}
	names := map[string]*ChannelConfig{}
	for i := range c.Channels {
		ch := &c.Channels[i]
		if err := ch.validate(); err != nil {
			return timebox.Errorf(timebox.EINVALID, "notify.channels[%d]: %s", i, timebox.ErrorMessage(err))
		}
		if names[ch.Name] != nil {
			return timebox.Errorf(timebox.EINVALID, "notify.channels[%d]: channel %q is declared twice", i, ch.Name)
		}
		names[ch.Name] = ch
	}
	for i, r := range c.Routes {
		if err := r.validate(cat, names); err != nil {
			return timebox.Errorf(timebox.EINVALID, "notify.routes[%d]: %s", i, timebox.ErrorMessage(err))
		}
	}
	return nil
}

// validate checks one channel's name and that it has exactly one type.
func (ch *ChannelConfig) validate() error {
	if ch.Name == "" || strings.ContainsFunc(ch.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return timebox.Errorf(timebox.EINVALID, "name %q must be lower-case letters, digits, - and _", timebox.Clip(ch.Name))
	}
	n := 0
	for _, set := range []bool{ch.Slack != nil, ch.Teams != nil, ch.Email != nil, ch.Webhook != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return timebox.Errorf(timebox.EINVALID, "channel %s: give exactly one of slack, teams, email, webhook", ch.Name)
	}
	for field, ref := range ch.Secrets() {
		if ref == "" {
			continue
		}
		if err := timebox.CheckSecretRef(ref); err != nil {
			return timebox.Errorf(timebox.EINVALID, "channel %s: %s: %s", ch.Name, field, err.Error())
		}
	}
	if ch.Rate < 0 || ch.Burst < 0 {
		return timebox.Errorf(timebox.EINVALID, "channel %s: rate and burst must be positive", ch.Name)
	}
	return nil
}

// Secrets returns the channel's secret references by field name (slack.token, …; empty ones
// included): each must be env:NAME or file:PATH.
func (ch *ChannelConfig) Secrets() map[string]string {
	out := map[string]string{}
	switch {
	case ch.Slack != nil:
		out["slack.token"], out["slack.signing_secret"] = ch.Slack.Token, ch.Slack.SigningSecret
	case ch.Teams != nil:
		out["teams.url"] = ch.Teams.URL
	case ch.Email != nil:
		out["email.password"] = ch.Email.Password
	case ch.Webhook != nil:
		out["webhook.url"], out["webhook.secret"] = ch.Webhook.URL, ch.Webhook.Secret
		for i, ref := range ch.Webhook.PreviousSecrets {
			out[fmt.Sprintf("webhook.previous_secrets[%d]", i)] = ref
		}
	}
	return out
}

// validate checks a route's channels, kinds, databases, environments, rules and direct.
func (r *Route) validate(cat *timebox.Catalog, channels map[string]*ChannelConfig) error {
	if len(r.Channels) == 0 {
		return timebox.Errorf(timebox.EINVALID, "channels: name at least one channel")
	}
	for _, name := range r.Channels {
		ch := channels[name]
		if ch == nil {
			return timebox.Errorf(timebox.EINVALID, "channels: no channel named %q in notify.channels", timebox.Clip(name))
		}
		if ch.Webhook != nil {
			return timebox.Errorf(timebox.EINVALID, "channels: %s is a webhook: it receives every audit event (its own events: list), not routes", name)
		}
	}
	for _, k := range r.Events {
		if !slices.Contains(Kinds, k) {
			return timebox.Errorf(timebox.EINVALID, "events: %q is not one of %s", timebox.Clip(string(k)), kindList())
		}
	}
	for _, d := range r.Databases {
		if _, err := cat.Database(d); err != nil {
			return timebox.Errorf(timebox.EINVALID, "databases: no database %q in the catalog", timebox.Clip(d))
		}
	}
	envs := map[string]bool{}
	for _, d := range cat.Databases {
		envs[d.Environment] = true
	}
	for _, e := range r.Environments {
		if !envs[e] {
			return timebox.Errorf(timebox.EINVALID, "environments: no database has environment %q", timebox.Clip(e))
		}
	}
	rules := map[string]bool{}
	for _, rl := range cat.Rules {
		rules[rl.Name] = true
	}
	for _, rl := range r.Rules {
		if !rules[rl] {
			return timebox.Errorf(timebox.EINVALID, "rules: no rule named %q", timebox.Clip(rl))
		}
	}
	for _, d := range r.Direct {
		if d != "approvers" && d != "requester" {
			return timebox.Errorf(timebox.EINVALID, "direct: %q is not approvers or requester", timebox.Clip(d))
		}
		for _, name := range r.Channels {
			if ch := channels[name]; ch.Teams != nil {
				return timebox.Errorf(timebox.EINVALID, "direct: channel %s is a Teams workflow, which cannot write to people directly", name)
			}
		}
	}
	return nil
}

func kindList() string {
	var s []string
	for _, k := range Kinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// shared reports whether the route posts to its channels' own destinations.
func (r *Route) shared() bool { return r.Shared == nil || *r.Shared }
