package notify

import "github.com/timebox-dev/timebox"

// PLACEHOLDER — replaced by the webhook helper.

// WebhookConfig is a webhook channel's configuration.
type WebhookConfig struct {
	URL    string   `yaml:"url"`
	Events []string `yaml:"events"`
}

func openWebhook(name string, c *WebhookConfig, env Env) (Sender, error) {
	return nil, timebox.Errorf(timebox.EINVALID, "webhook is not built yet")
}
