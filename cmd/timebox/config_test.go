package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// cfgValidYAML is a complete configuration without listen, log_level or store defaults set.
const cfgValidYAML = `# Timebox test configuration
secret_key: env:TBX_CFGTEST_KEY
users:
  - name: alice
    email: alice@example.com
    groups: [developers]
  - name: bob
    groups: [shop-owners]
admin_groups: [platform]
auditor_groups: [audit]
servers:
  - name: pg1
    engine: postgres
    url: postgres://timebox@db.internal:5432/postgres
    password: env:TBX_CFGTEST_PG
    connect_host: db.example.com
databases:
  - name: shop-prod
    server: pg1
    database: shop
    environment: prod
    owners: [shop-owners]
access_levels:
  - name: read-only
    postgres:
      roles: [shop_ro]
limits:
  prod:
    max_duration: 4h
    min_duration: 15m
    max_lead_time: 2d
    require_ticket: true
sweep_interval: 10s
`

// cfgWrite writes a configuration file and returns its path.
func cfgWrite(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "timebox.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// cfgSetenv sets the secrets cfgValidYAML refers to.
func cfgSetenv(t *testing.T) {
	t.Setenv("TBX_CFGTEST_KEY", "0123456789abcdef0123")
	t.Setenv("TBX_CFGTEST_PG", "admin-password")
}

// cfgUnsetenv makes sure name is not set for the rest of the test.
func cfgUnsetenv(t *testing.T, name string) {
	t.Setenv(name, "") // restores the old value after the test
	os.Unsetenv(name)
}

func cfgWantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	if timebox.ErrorCode(err) != timebox.EINVALID {
		t.Errorf("code %q, want %q (%v)", timebox.ErrorCode(err), timebox.EINVALID, err)
	}
	msg := timebox.ErrorMessage(err)
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("error %q does not contain %q", msg, p)
		}
	}
}

func TestConfigLoadValid(t *testing.T) {
	path := cfgWrite(t, cfgValidYAML)
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.LogLevel != "info" || c.Store != "sqlite://timebox.db" {
		t.Errorf("defaults: listen %q, log_level %q, store %q", c.Listen, c.LogLevel, c.Store)
	}
	if c.SecretKey != "env:TBX_CFGTEST_KEY" || time.Duration(c.SweepInterval) != 10*time.Second || c.path != path {
		t.Errorf("settings: %q %v %q", c.SecretKey, time.Duration(c.SweepInterval), c.path)
	}
	if len(c.Users) != 2 || c.Users[0].Email != "alice@example.com" || len(c.Servers) != 1 || c.Servers[0].ConnectHost != "db.example.com" ||
		len(c.Databases) != 1 || c.Databases[0].Method != timebox.MethodEphemeralLogin || len(c.AccessLevels) != 1 ||
		strings.Join(c.AccessLevels[0].Postgres.Roles, ",") != "shop_ro" {
		t.Errorf("catalog: %+v", c.Catalog)
	}
	l := c.LimitsFor("prod")
	if time.Duration(l.MaxDuration) != 4*time.Hour || time.Duration(l.MinDuration) != 15*time.Minute ||
		time.Duration(l.MaxLeadTime) != 48*time.Hour || !l.RequireTicket {
		t.Errorf("prod limits: %+v", l)
	}
	if !c.IsOwner("bob", &c.Databases[0]) {
		t.Error("bob does not own shop-prod")
	}

	// Settings given explicitly win over defaults.
	c, err = parseConfig([]byte("listen: 0.0.0.0:9000\ntls: {terminated_by_proxy: true}\nlog_level: debug\nstore: postgres://timebox@pg/timebox\n" + cfgValidYAML))
	if err != nil || c.Listen != "0.0.0.0:9000" || c.LogLevel != "debug" || c.Store != "postgres://timebox@pg/timebox" {
		t.Errorf("explicit settings: %+v, %v", c, err)
	}
	// An empty file is a configuration without a secret key.
	_, err = parseConfig(nil)
	cfgWantErr(t, err, "secret_key: required")
}

func TestConfigErrors(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(cfgValidYAML, old) {
			t.Fatalf("fixture has no %q", old)
		}
		return strings.Replace(cfgValidYAML, old, new, 1)
	}
	for _, tc := range []struct {
		name  string
		body  string
		parts []string
		never string // must not appear in the message
	}{
		{"unknown top-level field", "secret_key: env:K\nfoo: 1\n", []string{"line 2: unknown field foo"}, "main.Config"},
		{"unknown nested field", replace("    connect_host: db.example.com\n", "    connect_host: db.example.com\n    bar: x\n"),
			[]string{"line 17: unknown field bar"}, ""},
		{"literal server password", replace("password: env:TBX_CFGTEST_PG", "password: hunter2"),
			[]string{"servers[0].password", "literal secrets are refused"}, "hunter2"},
		{"literal secret_key", replace("secret_key: env:TBX_CFGTEST_KEY", "secret_key: hunter2hunter2hunter2"),
			[]string{"secret_key", "literal secrets are refused"}, "hunter2"},
		{"missing secret_key", replace("secret_key: env:TBX_CFGTEST_KEY\n", ""), []string{"secret_key: required"}, ""},
		{"bad store scheme", "store: mysql://root:hunter2@db/timebox\n" + cfgValidYAML,
			[]string{"store:", "mysql://root:xxxxx@db/timebox", "not supported"}, "hunter2"},
		{"bad log level", "log_level: loud\n" + cfgValidYAML, []string{"log_level", `"loud"`}, ""},
		{"empty listen", "listen: \"\"\n" + cfgValidYAML, []string{"listen: required"}, ""},
		{"catalog field", replace("owners: [shop-owners]", "owners: []"), []string{"databases[0].owners"}, ""},
		{"unknown engine", replace("engine: postgres", "engine: oracle"), []string{"servers[0].engine", `"oracle"`}, ""},
		{"bad limit", replace("min_duration: 15m", "min_duration: 5h"), []string{"limits.prod.min_duration"}, ""},
		{"bad yaml", "secret_key: [unterminated\n", []string{"line"}, ""},
		{"rule with an unknown on-call schedule", cfgValidYAML + "rules:\n  - {name: r, auto_approve: {on_call: primary}}\n",
			[]string{`rules[0].auto_approve.on_call: unknown on-call schedule "primary"`}, ""},
		{"rule with a bad ticket pattern", cfgValidYAML + "rules:\n  - {name: r, ticket: '[a-'}\n", []string{"rules[0].ticket: invalid regular expression"}, ""},
		{"rule with a bad duration", cfgValidYAML + "rules:\n  - {name: r, max_duration: forever}\n", []string{"rules[0].max_duration", "invalid duration"}, ""},
		{"approvers not a list", cfgValidYAML + "rules:\n  - {name: r, approvers: owners}\n", []string{"approvers must be a list"}, ""},
		{"break-glass without groups", cfgValidYAML + "break_glass: {max_duration: 1h}\n", []string{"break_glass.groups"}, ""},
		{"on-call schedule without a source", cfgValidYAML + "on_call: [{name: primary}]\n", []string{"on_call[0]"}, ""},
		{"notify: literal Slack token", cfgValidYAML + "notify: {channels: [{name: ops, slack: {token: xoxb-1-hunter2, channel: C0123}}]}\n",
			[]string{"notify.channels[0]: channel ops: slack.token: literal secrets are refused"}, "hunter2"},
		{"notify: literal webhook URL", cfgValidYAML + "notify: {channels: [{name: siem, webhook: {url: 'https://x.example/?t=hunter2', secret: env:S}}]}\n",
			[]string{"webhook.url: literal secrets are refused"}, "hunter2"},
		{"notify: two types", cfgValidYAML + "notify: {channels: [{name: ops, teams: {url: env:U}, webhook: {url: env:U, secret: env:S}}]}\n",
			[]string{"notify.channels[0]: channel ops: give exactly one of slack, teams, email, webhook"}, ""},
		{"notify: route to an unknown channel", cfgValidYAML + "notify: {channels: [{name: t, teams: {url: env:U}}], routes: [{channels: [nope]}]}\n",
			[]string{`notify.routes[0]: channels: no channel named "nope" in notify.channels`}, ""},
		{"notify: route with an unknown kind", cfgValidYAML + "notify: {channels: [{name: t, teams: {url: env:U}}], routes: [{channels: [t], events: [approved]}]}\n",
			[]string{`notify.routes[0]: events: "approved" is not one of new_request`}, ""},
		{"notify: direct to Teams", cfgValidYAML + "notify: {channels: [{name: t, teams: {url: env:U}}], routes: [{channels: [t], direct: [approvers]}]}\n",
			[]string{"notify.routes[0]: direct: channel t is a Teams workflow"}, ""},
		{"notify: bad duration", cfgValidYAML + "notify: {expiry_warning: soon}\n", []string{"notify.expiry_warning", "invalid duration"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := cfgWrite(t, tc.body)
			c, err := loadConfig(path)
			if c != nil {
				t.Errorf("loadConfig returned a config with its error")
			}
			cfgWantErr(t, err, append([]string{path + ": "}, tc.parts...)...)
			if !strings.HasPrefix(timebox.ErrorMessage(err), path+": ") {
				t.Errorf("error %q does not start with the file name", timebox.ErrorMessage(err))
			}
			if tc.never != "" && strings.Contains(err.Error(), tc.never) {
				t.Errorf("error %q contains %q", err.Error(), tc.never)
			}
		})
	}
}

// TestConfigPolicy loads the example policy: group-name and clause forms of approvers,
// an on-call schedule, break-glass.
func TestConfigPolicy(t *testing.T) {
	// cfgValidYAML's own access levels give way to three.
	base := strings.Replace(cfgValidYAML, "access_levels:\n  - name: read-only\n    postgres:\n      roles: [shop_ro]\n", "", 1)
	base = strings.Replace(base, "    groups: [shop-owners]\n", "    groups: [shop-owners, security]\n", 1)
	path := cfgWrite(t, base+`access_levels:
  - {name: read-only, postgres: {roles: [shop_ro]}}
  - {name: ddl, postgres: {roles: [shop_ddl]}}
  - {name: read-write, postgres: {roles: [shop_rw]}}
rules:
  - name: prod-ddl
    match: {environment: prod, access: [ddl, read-write]}
    approvals: 2
    approvers: [shop-owners]
    max_duration: 2h
    ticket: '^CHG-[0-9]+$'
  - name: prod-two-groups
    match: {environment: prod, access: ddl, longer_than: 1h}
    approvers: [{group: shop-owners, count: 1}, {group: security, count: 1}]
  - name: prod-read-oncall
    match: {environment: prod, access: read-only, requester_groups: [oncall]}
    auto_approve: {on_call: primary-rota}
    max_duration: 4h
    unused_after: 1h
on_call:
  - {name: primary-rota, ics: /etc/timebox/primary.ics, refresh: 10m}
break_glass: {groups: [sre], max_duration: 30m}
`)
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Rules[0]; r.Needed() != 2 || len(r.Approvers) != 1 || r.Approvers[0].Count != 2 {
		t.Errorf("prod-ddl quorum: %+v", r.Approvers)
	}
	if r := c.Rules[1]; r.Needed() != 2 || len(r.Approvers) != 2 || r.Denials != 1 {
		t.Errorf("prod-two-groups quorum: %+v", r)
	}
	if c.OnCall[0].Name != "primary-rota" || c.BreakGlass.MaxDuration != timebox.Duration(30*time.Minute) {
		t.Errorf("on-call %+v, break-glass %+v", c.OnCall, c.BreakGlass)
	}
}

// A bad duration is reported with the field (and line) it is in, like every other error: a
// file with several durations must not leave people guessing which one is wrong.
func TestConfigBadDurationNamesField(t *testing.T) {
	for field, body := range map[string]string{
		"sweep_interval": strings.Replace(cfgValidYAML, "sweep_interval: 10s", "sweep_interval: -1s", 1),
		"max_duration":   strings.Replace(cfgValidYAML, "max_duration: 4h", "max_duration: soon", 1),
		"min_duration":   strings.Replace(cfgValidYAML, "min_duration: 15m", "min_duration: 0s", 1),
	} {
		path := cfgWrite(t, body)
		_, err := loadConfig(path)
		cfgWantErr(t, err, path+": ", "invalid duration")
		if err != nil && !strings.Contains(timebox.ErrorMessage(err), field) {
			t.Errorf("error %q does not name the field %s", timebox.ErrorMessage(err), field)
		}
	}
}

// docs/config.md gives every limit its own default ("max_duration: 4h  # default 8h"): an
// environment that sets only some limits keeps the defaults of the others, rather than
// losing its maximum duration and lead time altogether.
func TestConfigPartialLimitsKeepDefaults(t *testing.T) {
	body := strings.Replace(cfgValidYAML, "    max_duration: 4h\n    min_duration: 15m\n    max_lead_time: 2d\n", "", 1)
	if body == cfgValidYAML {
		t.Fatal("fixture changed")
	}
	c, err := loadConfig(cfgWrite(t, body))
	if err != nil {
		t.Fatal(err)
	}
	l := c.LimitsFor("prod")
	if !l.RequireTicket {
		t.Error("require_ticket lost")
	}
	if l.MaxDuration != timebox.DefaultLimits.MaxDuration || l.MinDuration != timebox.DefaultLimits.MinDuration ||
		l.MaxLeadTime != timebox.DefaultLimits.MaxLeadTime {
		t.Errorf("prod with only require_ticket: max_duration %v, min_duration %v, max_lead_time %v; want the defaults %v, %v, %v",
			time.Duration(l.MaxDuration), time.Duration(l.MinDuration), time.Duration(l.MaxLeadTime),
			time.Duration(timebox.DefaultLimits.MaxDuration), time.Duration(timebox.DefaultLimits.MinDuration), time.Duration(timebox.DefaultLimits.MaxLeadTime))
	}
}

func TestConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := loadConfig(path)
	cfgWantErr(t, err, path, "cannot read")
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h/db":       "postgres://u:xxxxx@h/db",
		"postgres://u:p@ss@h/db":         "postgres://u:xxxxx@h/db",
		"postgres://u@h/db":              "postgres://u@h/db",
		"mysql://h:3306/db":              "mysql://h:3306/db",
		"sqlite:///var/lib/timebox.db":   "sqlite:///var/lib/timebox.db",
		"redis://:only-password@h:6379/": "redis://:xxxxx@h:6379/",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// cfgRun runs the CLI and returns its output and exit code.
func cfgRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func TestConfigCheckCommand(t *testing.T) {
	cfgSetenv(t)
	path := cfgWrite(t, cfgValidYAML)
	for _, args := range [][]string{{"config", "check", path}, {"config", "check", "--config", path}} {
		stdout, stderr, code := cfgRun(t, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
		if want := path + ": OK (2 users, 1 servers, 1 databases, 1 access levels)\n"; stdout != want {
			t.Errorf("%v: stdout %q, want %q", args, stdout, want)
		}
	}

	// A bad file: an error naming the file, nothing on stdout, a non-zero exit.
	bad := cfgWrite(t, strings.Replace(cfgValidYAML, "password: env:TBX_CFGTEST_PG", "password: hunter2", 1))
	stdout, stderr, code := cfgRun(t, "config", "check", bad)
	if code == 0 || stdout != "" {
		t.Errorf("bad file: exit %d, stdout %q", code, stdout)
	}
	if code != 3 {
		t.Errorf("bad file: exit %d, want 3 (invalid)", code)
	}
	if !strings.HasPrefix(stderr, "error: "+bad+": ") || !strings.Contains(stderr, "servers[0].password") || strings.Contains(stderr, "hunter2") {
		t.Errorf("bad file: stderr %q", stderr)
	}

	// No file named: a usage error.
	if _, stderr, code := cfgRun(t, "config", "check"); code != 2 || !strings.Contains(stderr, "name the file") {
		t.Errorf("no file: exit %d, stderr %q", code, stderr)
	}
	if _, _, code := cfgRun(t, "config", "check", path, path); code != 2 {
		t.Errorf("two files: exit %d, want 2", code)
	}
}

func TestConfigCheckWarnsAboutUnreadableSecrets(t *testing.T) {
	cfgSetenv(t)
	cfgUnsetenv(t, "TBX_CFGTEST_PG")
	path := cfgWrite(t, cfgValidYAML)
	stdout, stderr, code := cfgRun(t, "config", "check", path)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, path+": OK (") {
		t.Errorf("stdout %q", stdout)
	}
	want := "warning: " + path + ": servers[0].password: secret env:TBX_CFGTEST_PG: environment variable TBX_CFGTEST_PG is not set"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr %q does not contain %q", stderr, want)
	}
	if strings.Count(stderr, "warning:") != 1 {
		t.Errorf("stderr %q: want exactly one warning", stderr)
	}

	// A key file that does not exist is warned about too, and the key's value never shows.
	cfgUnsetenv(t, "TBX_CFGTEST_KEY")
	keyFile := filepath.Join(t.TempDir(), "missing-key")
	path = cfgWrite(t, strings.Replace(cfgValidYAML, "secret_key: env:TBX_CFGTEST_KEY", "secret_key: file:"+keyFile, 1))
	_, stderr, code = cfgRun(t, "config", "check", path)
	if code != 0 || !strings.Contains(stderr, "warning: "+path+": secret_key: secret file:"+keyFile) || strings.Count(stderr, "warning:") != 2 {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
