package notify

import "github.com/timebox-dev/timebox"

// PLACEHOLDER — replaced by the Teams helper.

// TeamsConfig is a Teams channel's configuration.
type TeamsConfig struct {
	URL string `yaml:"url"`
}

func openTeams(name string, c *TeamsConfig, env Env) (Sender, error) {
	return nil, timebox.Errorf(timebox.EINVALID, "teams is not built yet")
}
