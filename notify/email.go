package notify

import "github.com/timebox-dev/timebox"

// PLACEHOLDER — replaced by the e-mail helper.

// EmailConfig is an e-mail channel's configuration.
type EmailConfig struct {
	Host string `yaml:"host"`
}

func openEmail(name string, c *EmailConfig, env Env) (Sender, error) {
	return nil, timebox.Errorf(timebox.EINVALID, "email is not built yet")
}
