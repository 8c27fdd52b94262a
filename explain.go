package timebox

import (
	"context"
	"fmt"
	"time"
)

// ExplainInput is a hypothetical request: `timebox policy explain`.
type ExplainInput struct {
	Database string       `json:"database"`
	Access   string       `json:"access,omitempty"`
	Tables   []TableGrant `json:"tables,omitempty"`
	Duration string       `json:"duration"`
	// As is the requester (default: the caller; only admins may explain for someone else).
	As string `json:"as,omitempty"`
}

// Explanation says which rule would decide a request and why, and what it takes.
type Explanation struct {
	Requester string `json:"requester"`
	Database  string `json:"database"`
	Access    string `json:"access"`
	Duration  string `json:"duration"`
	// Rule is the deciding rule (nil when none matches); Why lists why each other rule
	// did not match, or lost to a more specific one.
	Rule *Rule      `json:"rule,omitempty"`
	Why  []RuleMiss `json:"why"`
	// Allowed is false when the request would be refused; Refusal says why.
	Allowed bool   `json:"allowed"`
	Refusal string `json:"refusal,omitempty"`
	// Takes says what approval takes; Approvers are the people who could give it.
	Takes     string   `json:"takes,omitempty"`
	Approvers []string `json:"approvers,omitempty"`
	// AutoApproval says whether it would be approved automatically right now, and why.
	AutoApproval string `json:"auto_approval,omitempty"`
	// Ticket is the pattern a ticket must match, when the rule has one; TicketRequired says
	// whether the environment requires a ticket at all.
	Ticket         string `json:"ticket,omitempty"`
	TicketRequired bool   `json:"ticket_required"`
	// Limits states every limit that applies, one sentence each: the environment's (longest
	// and shortest window, how far ahead it may start, whether a ticket is required) and the
	// deciding rule's (its maximum duration, ticket pattern, unused_after).
	Limits []string `json:"limits"`
	// BreakGlass says whether the requester could use break-glass instead.
	BreakGlass string `json:"break_glass,omitempty"`
}

// Explain applies the policy to a hypothetical request without storing anything.
func (s *Service) Explain(ctx context.Context, actor string, in ExplainInput) (*Explanation, error) {
	as := in.As
	if as == "" {
		as = actor
	} else if as != actor && !s.Catalog.IsAdmin(actor) && !s.Catalog.IsAuditor(actor) {
		return nil, Errorf(EFORBIDDEN, "only admins and auditors may explain the policy for someone else")
	}
	user, err := s.Catalog.User(as)
	if err != nil {
		return nil, err
	}
	db, err := s.Catalog.Database(in.Database)
	if err != nil {
		return nil, err
	}
	d, err := ParseDuration(in.Duration)
	if err != nil {
		return nil, err
	}
	access, tables, err := s.access(db, RequestInput{Access: in.Access, Tables: in.Tables})
	if err != nil {
		return nil, err
	}
	x := &Explanation{Requester: as, Database: db.Name, Access: access, Duration: d.String(), Why: []RuleMiss{}}
	now := s.now()
	limits := s.Catalog.LimitsFor(db.Environment)
	x.TicketRequired, x.Limits = limits.RequireTicket, environmentLimits(limits, db.Environment)
	rin := RuleInput{Requester: user, Database: db, Access: access, Operations: TableOperations(tables), Duration: d}
	x.BreakGlass = s.explainBreakGlass(user, db, d)
	rule, misses, err := s.Catalog.Rule(rin)
	x.Why = append(x.Why, misses...)
	if err != nil {
		x.Refusal = ErrorMessage(err)
		return x, nil
	}
	x.Rule = rule
	x.Limits = append(x.Limits, ruleLimits(rule, db)...)
	for i := range s.Catalog.Rules {
		other := &s.Catalog.Rules[i]
		if other.Name != rule.Name && other.miss(rin) == "" {
			x.Why = append(x.Why, RuleMiss{Rule: other.Name, Reason: "matches, but " + rule.Name + " is more specific (or written first)"})
		}
	}
	x.Ticket = rule.Ticket
	if err := checkWindow(now, now.Add(d), now, limits, db.Environment); err != nil {
		x.Refusal = ErrorMessage(err)
	} else if err := rule.checkLimits(rin); err != nil {
		x.Refusal = ErrorMessage(err)
	}
	x.Allowed = x.Refusal == ""
	if !x.Allowed {
		return x, nil
	}
	x.Takes = rule.Describe()
	var candidates []string
	for _, u := range s.Catalog.People() {
		if u.Name != as && s.Catalog.MayApprove(rule, db, u.Name) {
			candidates = append(candidates, u.Name)
		}
	}
	if err := s.Store.View(ctx, func(tx Tx) (err error) {
		x.Approvers, err = s.enabled(tx, candidates)
		return err
	}); err != nil {
		return nil, err
	}
	x.AutoApproval = s.explainAuto(ctx, rule, user, now)
	return x, nil
}

// environmentLimits states the limits of environment env, l.
func environmentLimits(l Limits, env string) []string {
	out := []string{fmt.Sprintf("%s databases: a window of at most %s", env, time.Duration(l.MaxDuration))}
	if l.MinDuration > 0 {
		out = append(out, fmt.Sprintf("%s databases: a window of at least %s", env, time.Duration(l.MinDuration)))
	}
	if l.MaxLeadTime > 0 {
		out = append(out, fmt.Sprintf("%s databases: starting at most %s ahead", env, time.Duration(l.MaxLeadTime)))
	}
	if l.RequireTicket {
		out = append(out, fmt.Sprintf("%s databases: a ticket is required (--ticket), except for break-glass", env))
	} else {
		out = append(out, fmt.Sprintf("%s databases: a ticket is optional", env))
	}
	return out
}

// ruleLimits states the limits that rule adds for a request on db.
func ruleLimits(rule *Rule, db *Database) []string {
	var out []string
	if rule.MaxDuration > 0 {
		out = append(out, fmt.Sprintf("rule %s: a window of at most %s", rule.Name, time.Duration(rule.MaxDuration)))
	}
	if rule.Ticket != "" {
		out = append(out, fmt.Sprintf("rule %s: a ticket matching %s is required", rule.Name, rule.Ticket))
	}
	if u := unusedAfter(rule, db); u > 0 {
		out = append(out, fmt.Sprintf("rule %s: ends early if nobody fetches the credentials within %s of the activation", rule.Name, time.Duration(u)))
	}
	return out
}

// explainAuto says whether rule would approve user's request by itself right now.
func (s *Service) explainAuto(ctx context.Context, rule *Rule, user *User, now time.Time) string {
	a := rule.AutoApprove
	switch {
	case a == nil:
		return "no: rule " + rule.Name + " does not auto-approve"
	case a.Always:
		return "yes: rule " + rule.Name + " approves automatically"
	case s.OnCall == nil:
		return "no: this server has no on-call schedules"
	}
	until, ok, err := s.OnCall.OnCall(ctx, a.OnCall, user, now)
	switch {
	case err != nil:
		return fmt.Sprintf("no: on-call schedule %s cannot be read: %s", a.OnCall, ErrorMessage(err))
	case !ok:
		return fmt.Sprintf("no: %s is not on call in %s now", user.Name, a.OnCall)
	}
	return fmt.Sprintf("yes: %s is on call in %s until %s (the window is cut there)", user.Name, a.OnCall, fmtTime(until))
}

// explainBreakGlass says whether user could use break-glass on db for d.
func (s *Service) explainBreakGlass(user *User, db *Database, d time.Duration) string {
	bg := s.Catalog.BreakGlass
	if code, why := bg.refusal(user, db, 0); code != "" {
		return "no: " + why
	} else if d > time.Duration(bg.MaxDuration) {
		return fmt.Sprintf("yes, for at most %s", time.Duration(bg.MaxDuration))
	}
	return "yes (activates at once, audited, follow-up review by the owners)"
}
