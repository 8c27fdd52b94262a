package timebox_test

import (
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"gopkg.in/yaml.v3"
)

// policyCatalog is a catalog with the rules of the example and a few more.
func policyCatalog(t *testing.T) *timebox.Catalog {
	t.Helper()
	src := `
users:
  - {name: alice, groups: [developers]}
  - {name: olga, groups: [developers, oncall]}
  - {name: bob, groups: [db-owners]}
  - {name: bea, groups: [db-owners]}
  - {name: sam, groups: [security]}
  - {name: dual, groups: [db-owners, security]}
  - {name: root, groups: [platform]}
  - {name: audrey, groups: [audit]}
admin_groups: [platform]
auditor_groups: [audit]
servers:
  - {name: pg1, engine: postgres, url: "postgres://timebox@db:5432/postgres", password: "env:X"}
databases:
  - {name: shop, server: pg1, database: shop, environment: prod, owners: [db-owners], labels: {tier: "1"}}
  - {name: crm, server: pg1, database: crm, environment: prod, owners: [db-owners]}
  - {name: sandbox, server: pg1, database: sandbox, environment: dev, owners: [db-owners]}
  - {name: maint, server: pg1, database: shop, environment: dev, owners: [db-owners], method: unlock_login, login: maint}
access_levels:
  - {name: read-only, postgres: {roles: [ro]}}
  - {name: read-write, postgres: {roles: [rw]}}
  - {name: ddl, postgres: {roles: [ddl]}}
rules:
  - name: prod-default
    match: {environment: prod}
    approvals: 1
    approvers: [db-owners]
    max_duration: 4h
  - name: prod-ddl
    match: {environment: prod, access: [ddl, read-write]}
    approvers: [{group: db-owners, count: 1}, {group: security, count: 1}]
    max_duration: 2h
    ticket: '^CHG-[0-9]+$'
  - name: prod-read-oncall
    match: {environment: prod, access: read-only, requester_groups: [oncall]}
    auto_approve: {on_call: primary}
    max_duration: 4h
  - name: tier1-long
    match: {labels: {tier: "1"}, longer_than: 3h}
    approvals: 2
    approvers: [db-owners]
  - name: prod-adhoc-read
    match: {environment: prod, operations: [SELECT]}
    approvals: 1
  - name: prod-adhoc-write
    match: {environment: prod, operations: [SELECT, INSERT, UPDATE, DELETE]}
    approvals: 2
  - name: dev
    match: {environment: dev}
    auto_approve: {always: true}
  - name: no-crm-ddl
    match: {databases: [crm], access: ddl}
    refuse: "crm schema changes go through migrations"
`
	var c timebox.Catalog
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestRuleMatching(t *testing.T) {
	c := policyCatalog(t)
	for _, tc := range []struct {
		user, db, access string
		ops              []string
		d                time.Duration
		want             string // rule name, or "" for none
	}{
		{"alice", "shop", "read-only", nil, time.Hour, "prod-default"},
		{"alice", "shop", "ddl", nil, time.Hour, "prod-ddl"},
		{"alice", "shop", "read-write", nil, time.Hour, "prod-ddl"},
		{"olga", "shop", "read-only", nil, time.Hour, "prod-read-oncall"},            // requester group is more specific
		{"alice", "shop", "read-only", nil, 3*time.Hour + time.Second, "tier1-long"}, // a label beats an environment
		{"alice", "shop", "read-only", nil, 3 * time.Hour, "prod-default"},           // not longer than 3h
		{"alice", "crm", "ddl", nil, time.Hour, "no-crm-ddl"},                        // a named database beats all
		{"alice", "crm", "read-only", nil, time.Hour, "prod-default"},
		{"alice", "sandbox", "ddl", nil, 8 * time.Hour, "dev"},
		{"alice", "crm", timebox.AdHocAccess, []string{"SELECT"}, time.Hour, "prod-adhoc-read"}, // fewer operations: more specific
		{"alice", "crm", timebox.AdHocAccess, []string{"SELECT", "UPDATE"}, time.Hour, "prod-adhoc-write"},
	} {
		u, _ := c.User(tc.user)
		db, _ := c.Database(tc.db)
		r, _, err := c.Rule(timebox.RuleInput{Requester: u, Database: db, Access: tc.access, Operations: tc.ops, Duration: tc.d})
		if err != nil || r.Name != tc.want {
			t.Errorf("%s %s %s %v %s: rule %v, %v; want %s", tc.user, tc.db, tc.access, tc.ops, tc.d, r, err, tc.want)
		}
	}
}

func TestRuleNoMatchAndChecks(t *testing.T) {
	c := policyCatalog(t)
	c.Rules = c.Rules[1:3] // prod-ddl and prod-read-oncall only
	u, _ := c.User("alice")
	db, _ := c.Database("shop")
	in := timebox.RuleInput{Requester: u, Database: db, Access: "read-only", Duration: time.Hour}
	r, misses, err := c.Rule(in)
	if r != nil || timebox.ErrorCode(err) != timebox.EINVALID || !strings.Contains(err.Error(), "no approval rule allows read-only access to shop") {
		t.Fatalf("rule %v, err %v", r, err)
	}
	if len(misses) != 2 || !strings.Contains(misses[0].Reason, "access read-only is not ddl or read-write") ||
		!strings.Contains(misses[1].Reason, "the requester is in none of oncall") {
		t.Errorf("misses: %+v", misses)
	}
	ddl, _, _ := c.Rule(timebox.RuleInput{Requester: u, Database: db, Access: "ddl", Duration: 3 * time.Hour})
	for _, tc := range []struct {
		d      time.Duration
		ticket string
		want   string
	}{
		{3 * time.Hour, "CHG-1", "duration 3h0m0s exceeds rule prod-ddl's maximum of 2h0m0s"},
		{time.Hour, "", "rule prod-ddl requires a ticket matching ^CHG-[0-9]+$"},
		{time.Hour, "JIRA-12", `ticket "JIRA-12" does not match ^CHG-[0-9]+$ (rule prod-ddl)`},
		{time.Hour, "CHG-12", ""},
	} {
		err := ddl.Check(timebox.RuleInput{Requester: u, Database: db, Access: "ddl", Duration: tc.d}, tc.ticket)
		if got := timebox.ErrorMessage(err); got != tc.want {
			t.Errorf("%s %q: %q, want %q", tc.d, tc.ticket, got, tc.want)
		}
	}
}

func TestQuorum(t *testing.T) {
	c := policyCatalog(t)
	db, _ := c.Database("shop")
	rule := func(name string) *timebox.Rule {
		for i := range c.Rules {
			if c.Rules[i].Name == name {
				return &c.Rules[i]
			}
		}
		t.Fatalf("no rule %s", name)
		return nil
	}
	for _, tc := range []struct {
		rule, requester string
		approvers       []string
		met             bool
		missing         string
	}{
		{"prod-default", "alice", nil, false, "1 more of db-owners"},
		{"prod-default", "alice", []string{"bob"}, true, ""},
		{"prod-default", "bob", []string{"bob"}, false, "1 more of db-owners"}, // the requester never counts
		{"prod-default", "alice", []string{"sam"}, false, "1 more of db-owners"},
		{"tier1-long", "alice", []string{"bob", "bob"}, false, "1 more of db-owners"}, // distinct people
		{"tier1-long", "alice", []string{"bob", "bea"}, true, ""},
		{"tier1-long", "bea", []string{"bob", "bea"}, false, "1 more of db-owners"},
		{"prod-ddl", "alice", []string{"dual"}, false, "1 more of security"}, // one person, two groups: one place
		{"prod-ddl", "alice", []string{"dual", "bob"}, true, ""},             // dual fills security, bob db-owners
		{"prod-ddl", "alice", []string{"bob", "dual"}, true, ""},             // same, whichever came first
		{"prod-ddl", "alice", []string{"dual", "sam"}, true, ""},
		{"prod-ddl", "alice", []string{"bob", "bea"}, false, "1 more of security"},
		{"prod-ddl", "dual", []string{"dual", "bob"}, false, "1 more of security"},
		{"prod-ddl", "alice", []string{"root"}, false, "1 more of db-owners and 1 more of security"}, // admins are not approvers here
	} {
		met, missing := c.Quorum(rule(tc.rule), db, tc.requester, tc.approvers)
		if met != tc.met || missing != tc.missing {
			t.Errorf("%s by %s approved by %v: %v %q, want %v %q", tc.rule, tc.requester, tc.approvers, met, missing, tc.met, tc.missing)
		}
	}
	def := timebox.DefaultRule
	if met, _ := c.Quorum(&def, db, "alice", []string{"root"}); !met {
		t.Error("without rules, an admin approves as before")
	}
}

func TestRuleValidation(t *testing.T) {
	for _, tc := range []struct{ rules, want string }{
		{`[{name: a, match: {access: god}}]`, `rules[0].match.access: unknown access level "god"`},
		{`[{name: a, ticket: "("}]`, "rules[0].ticket: invalid regular expression"},
		{`[{name: a}, {name: a}]`, `rules[1].name: rule "a" is declared twice or reserved`},
		{`[{name: break-glass}]`, `rules[0].name: rule "break-glass" is declared twice or reserved`},
		{`[{name: a, approvals: 3, approvers: [{group: x, count: 1}]}]`, "rules[0].approvals: 3 does not add up with the approvers' counts (1)"},
		{`[{name: a, auto_approve: {}}]`, "rules[0].auto_approve: name an on_call schedule, or set always: true"},
		{`[{name: a, refuse: "no", approvals: 1}]`, "rules[0].refuse: a refusing rule takes no approvers and no auto_approve"},
		{`[{name: a, match: {operations: [TRUNCATE]}}]`, `rules[0].match.operations: unknown operation "TRUNCATE"`},
		{`[{name: a, match: {databases: [nope]}}]`, `rules[0].match.databases: unknown database "nope"`},
		{`[{name: a, approvers: [{group: x, count: 11}]}]`, "rules[0].approvers[0].count: must be 1 to 10"},
		{`[{name: a, approvers: [db-owner]}]`, `rules[0].approvers[0]: no user is in group "db-owner", so nobody could approve`},
		{`[{name: a, match: {environment: production}}]`, `rules[0].match.environment: no database has environment "production"`},
		{`[{name: a, match: {access: ro, operations: [SELECT]}}]`, "rules[0].match: operations match ad-hoc requests only"},
	} {
		src := `
servers: [{name: pg1, engine: postgres, url: "postgres://t@db/postgres", password: "env:X"}]
databases: [{name: shop, server: pg1, database: shop, environment: prod, owners: [o]}]
access_levels: [{name: ro, postgres: {roles: [ro]}}]
rules: ` + tc.rules
		var c timebox.Catalog
		if err := yaml.Unmarshal([]byte(src), &c); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.rules, err, tc.want)
		}
	}
}

// Naming access levels or operations is one criterion (docs/policy.md): among rules that name
// either, fewer operations wins; a rule naming "ad-hoc" counts as naming all four.
func TestRuleSpecificityAccessVsOperations(t *testing.T) {
	c := policyCatalog(t)
	c.Rules = []timebox.Rule{
		{Name: "adhoc-any", Match: timebox.RuleMatch{Environment: timebox.StringList{"prod"}, Access: timebox.StringList{timebox.AdHocAccess}}, Approvals: 2},
		{Name: "adhoc-read", Match: timebox.RuleMatch{Environment: timebox.StringList{"prod"}, Operations: timebox.StringList{"SELECT"}}},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	u, _ := c.User("alice")
	db, _ := c.Database("shop")
	for ops, want := range map[string]string{"SELECT": "adhoc-read", "SELECT,UPDATE": "adhoc-any"} {
		r, _, err := c.Rule(timebox.RuleInput{Requester: u, Database: db, Access: timebox.AdHocAccess, Operations: strings.Split(ops, ","), Duration: time.Hour})
		if err != nil || r.Name != want {
			t.Errorf("%s: %v %v, want %s", ops, r, err, want)
		}
	}
}
