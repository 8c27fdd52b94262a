package notify

import (
	"context"
	"net/http"

	"github.com/timebox-dev/timebox"
)

// PLACEHOLDER — replaced by the Slack helper (slack.go, slack_interact.go).

// SlackConfig is a Slack channel's configuration.
type SlackConfig struct {
	Channel string `yaml:"channel"`
}

// Slack sends to Slack.
type Slack struct{}

func openSlack(name string, c *SlackConfig, env Env) (*Slack, error) {
	return nil, timebox.Errorf(timebox.EINVALID, "slack is not built yet")
}

// Send sends m.
func (s *Slack) Send(ctx context.Context, m *Message) (Result, error) { return Result{}, nil }

// Interactions returns the interactivity endpoint.
func (s *Slack) Interactions() http.Handler { return nil }
