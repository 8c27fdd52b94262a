package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/notify"
	"github.com/timebox-dev/timebox/oncall"
	"gopkg.in/yaml.v3"
)

// Config is the server's configuration file: where it listens and stores, its secret key,
// and the catalog of people, servers, databases, access levels and limits.
type Config struct {
	Listen string `yaml:"listen"`
	Store  string `yaml:"store"`
	// StorePassword is a secret reference for a PostgreSQL store's password.
	StorePassword string `yaml:"store_password"`
	SecretKey     string `yaml:"secret_key"`
	// PreviousSecretKeys are secret references to earlier secret keys, kept after a rotation
	// so that what they sealed or authenticated (passwords, grants, the audit chain) stays
	// readable; new values always use secret_key.
	PreviousSecretKeys []string `yaml:"previous_secret_keys"`
	// AuditCheckpoint is the file where the server checkpoints the audit head outside the
	// store (default: audit-checkpoint.log next to a SQLite store, in the working directory
	// for a PostgreSQL store). Give each server replica its own.
	AuditCheckpoint string `yaml:"audit_checkpoint"`
	// SweepInterval is the longest the scheduler goes without looking at the store.
	SweepInterval timebox.Duration `yaml:"sweep_interval"`
	// ReconcileInterval is how often the databases are compared with the store (default 10s).
	ReconcileInterval timebox.Duration `yaml:"reconcile_interval"`
	LogLevel          string           `yaml:"log_level"`
	// OnCall are the on-call schedules that rules' auto_approve name.
	OnCall []oncall.Schedule `yaml:"on_call"`
	// Tokens bounds the lifetimes of API tokens.
	Tokens TokensConfig `yaml:"tokens"`
	// TLS is how the API is served: with a certificate, or behind a TLS-terminating proxy.
	TLS TLSConfig `yaml:"tls"`
	// Metrics configures GET /metrics.
	Metrics MetricsConfig `yaml:"metrics"`
	// Console configures the web console's sessions and URL.
	Console ConsoleConfig `yaml:"console"`
	// OIDC signs people in to the console through an OpenID Connect provider.
	OIDC *OIDCConfig `yaml:"oidc"`
	// Notify sends notifications to Slack, Teams, e-mail and webhooks (docs/notify.md).
	Notify          *notify.Config `yaml:"notify"`
	timebox.Catalog `yaml:",inline"`

	// devSignIn offers the console's one-click sign-in as each user: timebox dev only.
	devSignIn bool
	// devHook is timebox dev's local webhook consumer (nil otherwise).
	devHook *devHook

	path      string
	tlsConfig *tls.Config // loaded from TLS by Validate
}

// defaultConfig returns a Config with every default set.
func defaultConfig() *Config {
	return &Config{Listen: "127.0.0.1:8080", Store: "sqlite://timebox.db", LogLevel: "info"}
}

// loadConfig reads and validates a configuration file. Errors name the file, the field and
// what is wrong.
func loadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "%s: cannot read the configuration file", path)
	}
	c, err := parseConfig(b)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "%s: %s", path, timebox.ErrorMessage(err))
	}
	c.path = path
	return c, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// durationFields are the configuration keys whose values are durations.
var durationFields = map[string]bool{"sweep_interval": true, "reconcile_interval": true, "max_duration": true, "min_duration": true,
	"max_lead_time": true, "longer_than": true, "unused_after": true, "refresh": true, "shift": true,
	"default_ttl": true, "max_ttl": true, "expiry_warning": true, "retry_min": true, "retry_max": true, "give_up_after": true, "keep": true}

// checkDurations walks the YAML tree and returns an error naming the line and field of the
// first duration that does not parse (the decoder itself would name neither).
func checkDurations(n *yaml.Node, path string) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkDurations(c, path); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := checkDurations(c, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			field := strings.TrimPrefix(path+"."+key, ".")
			if durationFields[key] && val.Kind == yaml.ScalarNode {
				if _, err := timebox.ParseDuration(val.Value); err != nil {
					return timebox.Errorf(timebox.EINVALID, "line %d: %s: %s", val.Line, field, timebox.ErrorMessage(err))
				}
			} else if err := checkDurations(val, field); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseConfig decodes YAML strictly (unknown fields are errors) and validates it.
func parseConfig(b []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err == nil {
		if err := checkDurations(&root, ""); err != nil {
			return nil, err
		}
	}
	c := defaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = strings.ReplaceAll(strings.TrimPrefix(msg, "unmarshal errors:\n"), "\n", ";")
		msg = yamlLine.ReplaceAllString(strings.TrimSpace(msg), "line $1: unknown field $2")
		return nil, timebox.Errorf(timebox.EINVALID, "%s", msg)
	}
	return c, c.Validate()
}

// Validate checks the server settings and the catalog.
func (c *Config) Validate() error {
	switch {
	case c.Listen == "":
		return timebox.Errorf(timebox.EINVALID, "listen: required (e.g. 127.0.0.1:8080)")
	case !strings.HasPrefix(c.Store, "sqlite://") && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://"):
		return timebox.Errorf(timebox.EINVALID, "store: %q is not supported (use sqlite:///path/timebox.db or postgres://…)", redactURL(c.Store))
	}
	if u, err := url.Parse(c.Store); err == nil && strings.HasPrefix(c.Store, "postgres") {
		if _, ok := u.User.Password(); ok || strings.Contains(strings.ToLower(u.RawQuery), "password=") {
			return timebox.Errorf(timebox.EINVALID, "store: the URL must not contain a password: put it in store_password as env:NAME or file:PATH")
		}
	}
	if c.StorePassword != "" {
		if err := timebox.CheckSecretRef(c.StorePassword); err != nil {
			return timebox.Errorf(timebox.EINVALID, "store_password: %s", err.Error())
		}
	}
	if err := timebox.CheckSecretRef(c.SecretKey); err != nil {
		return timebox.Errorf(timebox.EINVALID, "secret_key: %s", err.Error())
	}
	for i, ref := range c.PreviousSecretKeys {
		if err := timebox.CheckSecretRef(ref); err != nil {
			return timebox.Errorf(timebox.EINVALID, "previous_secret_keys[%d]: %s", i, err.Error())
		}
	}
	if _, err := logLevel(c.LogLevel); err != nil {
		return err
	} else if err := c.Console.validate(); err != nil {
		return err
	} else if err := c.OIDC.validate(c.Console); err != nil {
		return err
	} else if err := c.validateTransport(); err != nil {
		return err
	}
	// The provider fills groups too: a rule may name a group no configuration user is in.
	c.Catalog.OpenGroups = c.OIDC.enabled()
	if err := c.Catalog.Validate(); err != nil {
		return err
	} else if err := checkOwnerRoles(&c.Catalog); err != nil {
		return err
	} else if err := oncall.ValidateSchedules("on_call", c.OnCall); err != nil {
		return err
	}
	for i, r := range c.Rules {
		if a := r.AutoApprove; a != nil && a.OnCall != "" && !slices.ContainsFunc(c.OnCall, func(s oncall.Schedule) bool { return s.Name == a.OnCall }) {
			return timebox.Errorf(timebox.EINVALID, "rules[%d].auto_approve.on_call: unknown on-call schedule %q (declare it under on_call)", i, a.OnCall)
		}
	}
	if c.Notify != nil {
		return c.Notify.Validate(&c.Catalog)
	}
	return nil
}

// keyring resolves secret_key and previous_secret_keys and derives Timebox's keys from them.
func (c *Config) keyring() (*timebox.Keyring, error) {
	secret, err := timebox.ResolveSecret(c.SecretKey)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "secret_key: %s", timebox.ErrorMessage(err))
	}
	var previous []string
	for i, ref := range c.PreviousSecretKeys {
		v, err := timebox.ResolveSecret(ref)
		if err != nil {
			return nil, timebox.Errorf(timebox.EINVALID, "previous_secret_keys[%d]: %s", i, timebox.ErrorMessage(err))
		}
		previous = append(previous, v)
	}
	return timebox.NewKeyring(secret, previous...)
}

// checkpointPath returns the audit checkpoint file: audit_checkpoint, or audit-checkpoint.log
// in the SQLite store's directory, or in the working directory for PostgreSQL.
func (c *Config) checkpointPath() string {
	if c.AuditCheckpoint != "" {
		return c.AuditCheckpoint
	}
	if rest, ok := strings.CutPrefix(c.Store, "sqlite://"); ok {
		return filepath.Join(filepath.Dir(rest), defaultCheckpointName)
	}
	return defaultCheckpointName
}

// defaultCheckpointName is the audit checkpoint's file name when audit_checkpoint is unset.
const defaultCheckpointName = "audit-checkpoint.log"

// storeDSN returns the store's data source name, with store_password filled in.
func (c *Config) storeDSN() (string, error) {
	if c.StorePassword == "" {
		return c.Store, nil
	}
	password, err := timebox.ResolveSecret(c.StorePassword)
	if err != nil {
		return "", timebox.Errorf(timebox.EINVALID, "store_password: %s", timebox.ErrorMessage(err))
	}
	u, err := url.Parse(c.Store)
	if err != nil || u.User == nil {
		return "", timebox.Errorf(timebox.EINVALID, "store: store_password needs a user in the URL (postgres://USER@host/db)")
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String(), nil
}

// redactURL hides a password in a URL so it can appear in an error.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.LastIndex(s, "@"); j > i {
			if k := strings.Index(s[i+3:j], ":"); k >= 0 {
				return s[:i+3+k] + ":xxxxx" + s[j:]
			}
		}
	}
	return s
}

// unresolvedSecrets lists the secret references that cannot be read on this machine now.
func (c *Config) unresolvedSecrets() []string {
	var out []string
	check := func(field, ref string) {
		if _, err := timebox.ResolveSecret(ref); err != nil {
			out = append(out, fmt.Sprintf("%s: %s", field, timebox.ErrorMessage(err)))
		}
	}
	check("secret_key", c.SecretKey)
	for i, ref := range c.PreviousSecretKeys {
		check(fmt.Sprintf("previous_secret_keys[%d]", i), ref)
	}
	if c.StorePassword != "" {
		check("store_password", c.StorePassword)
	}
	if c.Metrics.Token != "" {
		check("metrics.token", c.Metrics.Token)
	}
	if c.OIDC.enabled() {
		check("oidc.client_secret", c.OIDC.ClientSecret)
	}
	for i, s := range c.Servers {
		check(fmt.Sprintf("servers[%d].password", i), s.Password)
	}
	if c.Notify != nil {
		for i := range c.Notify.Channels {
			ch := &c.Notify.Channels[i]
			fields := ch.Secrets()
			names := make([]string, 0, len(fields))
			for f := range fields {
				names = append(names, f)
			}
			slices.Sort(names)
			for _, f := range names {
				if fields[f] != "" {
					check(fmt.Sprintf("notify.channels[%d].%s", i, f), fields[f])
				}
			}
		}
	}
	return out
}
