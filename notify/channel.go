package notify

import (
	"net/http"
	"time"

	"github.com/timebox-dev/timebox"
	"golang.org/x/time/rate"
)

// Channel is one opened channel.
type Channel struct {
	Name string
	// Type is slack, teams, email or webhook.
	Type   string
	Sender Sender
	// Limit and Burst bound how fast the channel sends.
	Limit rate.Limit
	Burst int
	// Events, for a webhook, are the audit actions it receives ("*", "request.*",
	// "request.approved"); people channels (nil) follow the routes instead.
	Events []string
	// Ordered channels (webhooks: the audit log as a stream) get their messages in the
	// order of the events: a message waits while an earlier one is undelivered (not failed).
	// Other channels keep the order of each request's messages only.
	Ordered bool
	// Hook, when set, is the channel's callback endpoint (Slack's interactivity requests),
	// served at HookPath.
	Hook http.Handler
}

// HookPath returns the path of a channel's callback endpoint: /hooks/<type>/<name>.
func (ch *Channel) HookPath() string { return "/hooks/" + ch.Type + "/" + ch.Name }

// Open opens every channel of c (secrets resolved, clients made); errors name the channel.
func Open(c *Config, env Env) ([]*Channel, error) {
	if env.Client == nil {
		env.Client = &http.Client{Timeout: 15 * time.Second}
	}
	var out []*Channel
	for i := range c.Channels {
		cc := &c.Channels[i]
		ch := &Channel{Name: cc.Name, Burst: cc.Burst}
		var err error
		var perSecond float64
		switch {
		case cc.Slack != nil:
			ch.Type, perSecond = "slack", 1
			var s *Slack
			if s, err = openSlack(cc.Name, cc.Slack, env); err == nil {
				ch.Sender, ch.Hook = s, s.Interactions()
			}
		case cc.Teams != nil:
			ch.Type, perSecond = "teams", 2
			ch.Sender, err = openTeams(cc.Name, cc.Teams, env)
		case cc.Email != nil:
			ch.Type, perSecond = "email", 5
			ch.Sender, err = openEmail(cc.Name, cc.Email, env)
		case cc.Webhook != nil:
			ch.Type, perSecond, ch.Ordered = "webhook", 50, true
			ch.Events = cc.Webhook.Events
			if len(ch.Events) == 0 {
				ch.Events = []string{"*"}
			}
			ch.Sender, err = openWebhook(cc.Name, cc.Webhook, env)
		}
		if err != nil {
			return nil, timebox.Errorf(timebox.ErrorCode(err), "notify: channel %s: %s", cc.Name, timebox.ErrorMessage(err))
		}
		if cc.Rate > 0 {
			perSecond = cc.Rate
		}
		ch.Limit = rate.Limit(perSecond)
		if ch.Burst == 0 {
			ch.Burst = 3
		}
		out = append(out, ch)
	}
	return out, nil
}
