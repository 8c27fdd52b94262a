package timebox

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// AdHocAccess is the access of a request that lists tables instead of naming an access
// level; rules match it as an access level of that name.
const AdHocAccess = "ad-hoc"

// Pseudo-groups an approver clause may name besides the groups users belong to.
const (
	GroupOwners = "owners" // the owner groups of the requested database
	GroupAdmins = "admins" // the catalog's admin groups
)

// Rule is one approval rule: which requests it matches, and what it takes to approve them.
// The most specific matching rule decides (see Specificity); a request no rule matches is
// refused, unless the catalog declares no rule at all (then DefaultRule applies).
type Rule struct {
	Name  string    `yaml:"name" json:"name"`
	Match RuleMatch `yaml:"match" json:"match"`
	// Approvals is how many distinct people must approve when Approvers lists groups only
	// (default 1).
	Approvals int `yaml:"approvals" json:"approvals,omitempty"`
	// Approvers are the clauses of the quorum: each needs Count distinct people from its
	// groups, and one person fills at most one place. Default: Approvals of "owners".
	Approvers Approvers `yaml:"approvers" json:"approvers"`
	// Denials is how many distinct denials end the request (default 1: any single deny).
	Denials int `yaml:"denials" json:"denials,omitempty"`
	// MaxDuration caps the window (and, for an extension, the whole extended window).
	MaxDuration Duration `yaml:"max_duration" json:"max_duration,omitempty"`
	// Ticket, when set, is a regular expression the request's ticket must match.
	Ticket string `yaml:"ticket" json:"ticket,omitempty"`
	// AutoApprove, when set, approves a matching request without a person.
	AutoApprove *AutoApprove `yaml:"auto_approve" json:"auto_approve,omitempty"`
	// UnusedAfter, when set, ends an approved request whose credentials nobody fetched that
	// long after its start.
	UnusedAfter Duration `yaml:"unused_after" json:"unused_after,omitempty"`
	// Refuse, when set, refuses every matching request with this reason.
	Refuse string `yaml:"refuse" json:"refuse,omitempty"`

	ticket *regexp.Regexp
}

// RuleMatch says which requests a rule applies to. Every set field must match; an empty
// field matches everything.
type RuleMatch struct {
	Environment StringList        `yaml:"environment" json:"environment,omitempty"`
	Databases   StringList        `yaml:"databases" json:"databases,omitempty"`
	Labels      map[string]string `yaml:"labels" json:"labels,omitempty"`
	// Access lists access level names; "ad-hoc" matches requests that list tables.
	Access StringList `yaml:"access" json:"access,omitempty"`
	// Operations, for ad-hoc requests, matches when every requested operation is listed.
	Operations StringList `yaml:"operations" json:"operations,omitempty"`
	// RequesterGroups matches requesters in at least one of these groups.
	RequesterGroups StringList `yaml:"requester_groups" json:"requester_groups,omitempty"`
	// LongerThan matches windows longer than this.
	LongerThan Duration `yaml:"longer_than" json:"longer_than,omitempty"`
}

// AutoApprove says when a rule approves by itself.
type AutoApprove struct {
	// OnCall names an on-call schedule: its member on shift is approved, the window cut at
	// the end of their shift.
	OnCall string `yaml:"on_call" json:"on_call,omitempty"`
	// Always approves every matching request (for dev databases).
	Always bool `yaml:"always" json:"always,omitempty"`
}

// ApproverClause is one part of a quorum: Count distinct people from any of Groups.
type ApproverClause struct {
	Groups StringList `yaml:"group" json:"groups"`
	Count  int        `yaml:"count" json:"count"`
}

// Approvers is a rule's quorum. In YAML it is either a list of group names (one clause:
// the rule's Approvals people from any of them) or a list of {group, count} clauses.
type Approvers []ApproverClause

// StringList is a list of strings that YAML may also give as one string.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = StringList{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// UnmarshalYAML accepts group names and {group, count} clauses; group names are gathered
// into one clause whose count the rule's Approvals fills in (see Catalog.Validate).
func (a *Approvers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: approvers must be a list of groups or of {group, count}", n.Line)
	}
	var plain StringList
	var out Approvers
	for _, c := range n.Content {
		if c.Kind == yaml.ScalarNode {
			plain = append(plain, c.Value)
			continue
		}
		var cl struct {
			Group StringList `yaml:"group"`
			Count int        `yaml:"count"`
		}
		dec := c.Decode(&cl)
		if dec != nil {
			return dec
		}
		if cl.Count == 0 {
			cl.Count = 1
		}
		out = append(out, ApproverClause{Groups: cl.Group, Count: cl.Count})
	}
	if len(plain) > 0 {
		out = append(Approvers{{Groups: plain}}, out...) // Count 0: the rule's Approvals
	}
	*a = out
	return nil
}

// DefaultRule applies when the catalog declares no rule: one owner of the database, or an
// admin, approves; the environment's limits apply.
var DefaultRule = Rule{
	Name:      "default",
	Approvers: Approvers{{Groups: StringList{GroupOwners, GroupAdmins}, Count: 1}},
	Denials:   1,
}

// validateRules checks the rules, compiles their ticket patterns and fills in defaults.
// onCall lists the schedules an auto_approve may name (nil: not checked here).
func (c *Catalog) validateRules(levels map[string]bool) error {
	names := map[string]bool{}
	for i := range c.Rules {
		r := &c.Rules[i]
		f := fmt.Sprintf("rules[%d]", i)
		switch {
		case !namePattern.MatchString(r.Name):
			return fieldError(f+".name", "%q is not a valid rule name", r.Name)
		case names[r.Name] || r.Name == DefaultRule.Name || r.Name == BreakGlassRule:
			return fieldError(f+".name", "rule %q is declared twice or reserved", r.Name)
		case r.Approvals < 0 || r.Denials < 0:
			return fieldError(f, "approvals and denials must not be negative")
		case r.MaxDuration < 0 || r.UnusedAfter < 0 || r.Match.LongerThan < 0:
			return fieldError(f, "durations must not be negative")
		case r.AutoApprove != nil && r.AutoApprove.OnCall == "" && !r.AutoApprove.Always:
			return fieldError(f+".auto_approve", "name an on_call schedule, or set always: true")
		case r.AutoApprove != nil && r.AutoApprove.OnCall != "" && r.AutoApprove.Always:
			return fieldError(f+".auto_approve", "on_call and always exclude each other")
		case r.Refuse != "" && (r.AutoApprove != nil || len(r.Approvers) > 0 || r.Approvals > 0):
			return fieldError(f+".refuse", "a refusing rule takes no approvers and no auto_approve")
		}
		names[r.Name] = true
		if r.Ticket != "" {
			re, err := regexp.Compile(r.Ticket)
			if err != nil {
				return fieldError(f+".ticket", "invalid regular expression: %v", err)
			}
			r.ticket = re
		}
		for _, a := range r.Match.Access {
			if a != AdHocAccess && !levels[a] {
				return fieldError(f+".match.access", "unknown access level %q", a)
			}
		}
		for _, op := range r.Match.Operations {
			if !tableOperations[strings.ToUpper(op)] {
				return fieldError(f+".match.operations", "unknown operation %q (supported: DELETE, INSERT, SELECT, UPDATE)", op)
			}
		}
		if len(r.Match.Operations) > 0 && len(r.Match.Access) > 0 && !slices.Equal(r.Match.Access, StringList{AdHocAccess}) {
			return fieldError(f+".match", "operations match ad-hoc requests only; with access levels the rule could never match")
		}
		for _, env := range r.Match.Environment {
			if !slices.ContainsFunc(c.Databases, func(d Database) bool { return d.Environment == env }) {
				return fieldError(f+".match.environment", "no database has environment %q", env)
			}
		}
		for _, d := range r.Match.Databases {
			if _, err := c.Database(d); err != nil {
				return fieldError(f+".match.databases", "unknown database %q", d)
			}
		}
		if err := r.fillApprovers(c, f); err != nil {
			return err
		}
	}
	return nil
}

// fillApprovers gives a rule its default quorum and checks its clauses.
func (r *Rule) fillApprovers(c *Catalog, f string) error {
	if r.Refuse != "" {
		return nil
	}
	if r.Denials == 0 {
		r.Denials = 1
	}
	if len(r.Approvers) == 0 {
		r.Approvers = Approvers{{Groups: StringList{GroupOwners}}}
	}
	for j := range r.Approvers {
		cl := &r.Approvers[j]
		if cl.Count == 0 { // a list of plain group names
			cl.Count = max(r.Approvals, 1)
		}
		if len(cl.Groups) == 0 || slices.Contains(cl.Groups, "") {
			return fieldError(fmt.Sprintf("%s.approvers[%d]", f, j), "name at least one group")
		} else if cl.Count < 1 || cl.Count > 10 {
			return fieldError(fmt.Sprintf("%s.approvers[%d].count", f, j), "must be 1 to 10")
		}
	}
	if r.Approvals > 0 && r.Approvals != r.Needed() {
		return fieldError(f+".approvals", "%d does not add up with the approvers' counts (%d)", r.Approvals, r.Needed())
	}
	for j, cl := range r.Approvers {
		for _, g := range cl.Groups {
			if g != GroupOwners && g != GroupAdmins && !c.OpenGroups && !slices.ContainsFunc(c.Users, func(u User) bool { return slices.Contains(u.Groups, g) }) {
				return fieldError(fmt.Sprintf("%s.approvers[%d]", f, j), "no user is in group %q, so nobody could approve (a typo?)", g)
			}
		}
	}
	return nil
}

// Needed is the number of distinct approvals the rule's quorum takes.
func (r *Rule) Needed() int {
	n := 0
	for _, cl := range r.Approvers {
		n += cl.Count
	}
	return n
}

// RuleInput is what a rule is matched against.
type RuleInput struct {
	Requester  *User
	Database   *Database
	Access     string   // a level name, or AdHocAccess
	Operations []string // ad-hoc requests: every operation asked for
	Duration   time.Duration
}

// RuleMiss tells why one rule did not match, for `timebox policy explain`.
type RuleMiss struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// miss returns why r does not match in, or "" when it matches.
func (r *Rule) miss(in RuleInput) string {
	m := r.Match
	if why := r.missDatabase(in.Database); why != "" {
		return why
	}
	switch {
	case len(m.Access) > 0 && !slices.Contains(m.Access, in.Access):
		return fmt.Sprintf("access %s is not %s", in.Access, strings.Join(m.Access, " or "))
	case m.LongerThan > 0 && in.Duration <= time.Duration(m.LongerThan):
		return fmt.Sprintf("%s is not longer than %s", in.Duration, time.Duration(m.LongerThan))
	}
	if len(m.Operations) > 0 {
		if in.Access != AdHocAccess {
			return "operations match ad-hoc requests only"
		}
		for _, op := range in.Operations {
			if !slices.ContainsFunc(m.Operations, func(o string) bool { return strings.EqualFold(o, op) }) {
				return fmt.Sprintf("operation %s is not listed", op)
			}
		}
	}
	if len(m.RequesterGroups) > 0 && (in.Requester == nil || !in.Requester.InAny(m.RequesterGroups)) {
		return fmt.Sprintf("the requester is in none of %s", strings.Join(m.RequesterGroups, ", "))
	}
	return ""
}

// missDatabase returns why r cannot match requests on db (its environment, name or labels),
// or "" when it can.
func (r *Rule) missDatabase(db *Database) string {
	m := r.Match
	switch {
	case len(m.Environment) > 0 && !slices.Contains(m.Environment, db.Environment):
		return fmt.Sprintf("environment is %q, not %s", db.Environment, strings.Join(m.Environment, " or "))
	case len(m.Databases) > 0 && !slices.Contains(m.Databases, db.Name):
		return fmt.Sprintf("database %s is not listed", db.Name)
	}
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		if got, ok := db.Labels[k]; !ok || got != m.Labels[k] {
			return fmt.Sprintf("label %s is not %q", k, m.Labels[k])
		}
	}
	return ""
}

// Specificity orders matching rules: the one with the higher tuple wins, compared in order:
// names databases; number of labels; names environments; names access levels or operations
// (fewer operations is more specific); names requester groups; longer_than. Ties go to the
// rule written first.
func (r *Rule) specificity() []int {
	m := r.Match
	ops := 0
	if len(m.Operations) > 0 {
		ops = 10 - len(m.Operations)
	}
	return []int{b2i(len(m.Databases) > 0), len(m.Labels), b2i(len(m.Environment) > 0),
		b2i(len(m.Access) > 0 || len(m.Operations) > 0), ops, b2i(len(m.RequesterGroups) > 0), int(time.Duration(m.LongerThan) / time.Second)}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Rule returns the rule that decides a request: the most specific matching one, or
// DefaultRule when the catalog has none. When none matches it returns nil and why each
// rule did not (EINVALID with the reasons joined).
func (c *Catalog) Rule(in RuleInput) (*Rule, []RuleMiss, error) {
	if len(c.Rules) == 0 {
		d := DefaultRule
		return &d, nil, nil
	}
	var best *Rule
	var misses []RuleMiss
	for i := range c.Rules {
		r := &c.Rules[i]
		if why := r.miss(in); why != "" {
			misses = append(misses, RuleMiss{Rule: r.Name, Reason: why})
		} else if best == nil || slices.Compare(r.specificity(), best.specificity()) > 0 {
			best = r
		}
	}
	if best == nil {
		return nil, misses, Errorf(EINVALID, "no approval rule allows %s access to %s (%s) for %s; see `timebox policy explain`",
			in.Access, in.Database.Name, in.Database.Environment, in.Duration.Round(time.Second))
	}
	return best, misses, nil
}

// Check applies the rule's own limits to a request: refusal, maximum duration, ticket
// pattern. EINVALID names the rule and what failed.
func (r *Rule) Check(in RuleInput, ticket string) error {
	if err := r.checkLimits(in); err != nil {
		return err
	}
	switch {
	case r.ticket != nil && !r.ticket.MatchString(ticket):
		if ticket == "" {
			return Errorf(EINVALID, "rule %s requires a ticket matching %s", r.Name, r.Ticket)
		}
		return Errorf(EINVALID, "ticket %q does not match %s (rule %s)", Clip(ticket), r.Ticket, r.Name)
	}
	return nil
}

// checkLimits is Check without the ticket: refusal and maximum duration.
func (r *Rule) checkLimits(in RuleInput) error {
	switch {
	case r.Refuse != "":
		return Errorf(EINVALID, "rule %s refuses this request: %s", r.Name, r.Refuse)
	case r.MaxDuration > 0 && in.Duration > time.Duration(r.MaxDuration):
		return Errorf(EINVALID, "duration %s exceeds rule %s's maximum of %s", in.Duration.Round(time.Second), r.Name, time.Duration(r.MaxDuration))
	}
	return nil
}

// clauseGroups resolves a clause's pseudo-groups for database db.
func (c *Catalog) clauseGroups(cl ApproverClause, db *Database) []string {
	var out []string
	for _, g := range cl.Groups {
		switch g {
		case GroupOwners:
			out = append(out, db.Owners...)
		case GroupAdmins:
			out = append(out, c.AdminGroups...)
		default:
			out = append(out, g)
		}
	}
	return out
}

// ReviewsOn reports whether user may approve some request on db under a rule that can match
// it (by environment, database and labels), or closes break-glass follow-ups: such a user
// sees db's requests.
func (c *Catalog) ReviewsOn(user string, db *Database) bool {
	if bg := c.BreakGlass; bg != nil && c.inGroups(user, bg.Reviewers) {
		return true
	}
	for i := range c.Rules {
		if r := &c.Rules[i]; r.missDatabase(db) == "" && c.MayApprove(r, db, user) {
			return true
		}
	}
	return false
}

// MayApprove reports whether user belongs to one of the rule's approver clauses for db.
func (c *Catalog) MayApprove(r *Rule, db *Database, user string) bool {
	return slices.ContainsFunc(r.Approvers, func(cl ApproverClause) bool { return c.inGroups(user, c.clauseGroups(cl, db)) })
}

// Quorum tells whether the distinct people in approvers (the requester never counts) fill
// every place of r's clauses on db, one place per person: a person in two groups counts
// once, for whichever clause needs them. When they do not, missing says what is still
// needed, e.g. "1 more of security".
func (c *Catalog) Quorum(r *Rule, db *Database, requester string, approvers []string) (met bool, missing string) {
	var people []string
	for _, a := range approvers {
		if a != requester && !slices.Contains(people, a) {
			people = append(people, a)
		}
	}
	var slots []int // clause index of each place
	for i, cl := range r.Approvers {
		for range cl.Count {
			slots = append(slots, i)
		}
	}
	can := func(person string, slot int) bool {
		return c.inGroups(person, c.clauseGroups(r.Approvers[slots[slot]], db))
	}
	filled := matchPlaces(people, len(slots), can)
	short := map[int]int{}
	for s := range slots {
		if filled[s] < 0 {
			short[slots[s]]++
		}
	}
	if len(short) == 0 {
		return true, ""
	}
	var parts []string
	for _, i := range slices.Sorted(maps.Keys(short)) {
		parts = append(parts, fmt.Sprintf("%d more of %s", short[i], strings.Join(r.Approvers[i].Groups, " or ")))
	}
	return false, strings.Join(parts, " and ")
}

// matchPlaces assigns people to places (a maximum bipartite matching by augmenting paths;
// a few people and places, so the simple algorithm is plenty) and returns, per place, the
// index of its person or -1.
func matchPlaces(people []string, places int, can func(person string, place int) bool) []int {
	owner := make([]int, places)
	for i := range owner {
		owner[i] = -1
	}
	var try func(p int, seen []bool) bool
	try = func(p int, seen []bool) bool {
		for s := range places {
			if seen[s] || !can(people[p], s) {
				continue
			}
			seen[s] = true
			if owner[s] < 0 || try(owner[s], seen) {
				owner[s] = p
				return true
			}
		}
		return false
	}
	for p := range people {
		try(p, make([]bool, places))
	}
	return owner
}

// quorumText says what the rule's quorum takes before anyone approved, e.g. "1 of db-owners
// and 1 of security".
func (r *Rule) quorumText() string {
	var parts []string
	for _, cl := range r.Approvers {
		parts = append(parts, fmt.Sprintf("%d of %s", cl.Count, strings.Join(cl.Groups, " or ")))
	}
	return strings.Join(parts, " and ")
}

// Describe says in words what the rule takes to approve a request.
func (r *Rule) Describe() string {
	if r.Refuse != "" {
		return "refused: " + r.Refuse
	}
	s := r.quorumText() + " (distinct people; the requester never counts)"
	if r.AutoApprove != nil && r.AutoApprove.Always {
		s = "approved automatically"
	} else if r.AutoApprove != nil {
		s = fmt.Sprintf("approved automatically while the requester is on call in %s; otherwise %s", r.AutoApprove.OnCall, s)
	}
	if r.Denials > 1 {
		s += fmt.Sprintf("; %d denials end it", r.Denials)
	}
	return s
}
