package timebox_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testdb.CloseShared()
	os.Exit(code)
}

// policyEnv is a service on the policy catalog of rule_test.go, with break-glass for the
// oncall group.
func policyEnv(t *testing.T, dsn string) *svcEnv {
	c := policyCatalog(t)
	c.BreakGlass = &timebox.BreakGlass{Groups: timebox.StringList{"oncall"}, MaxDuration: timebox.Duration(time.Hour), Reviewers: timebox.StringList{"security"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return newSvcEnvWith(t, c, dsn)
}

func ddlInput() timebox.RequestInput {
	return timebox.RequestInput{Database: "shop", Access: "ddl", Duration: "1h", Reason: "add index", Ticket: "CHG-42"}
}

// lastEvent returns the last audit event.
func (e *svcEnv) lastEvent() *timebox.Event {
	es := e.events()
	return es[len(es)-1]
}

func TestPolicyQuorum(t *testing.T) {
	e := policyEnv(t, "")
	r := e.create("alice", ddlInput())
	if r.State != timebox.StatePending || r.Rule != "prod-ddl" || r.Awaiting != "1 of db-owners and 1 of security" {
		t.Fatalf("created: %s rule %s awaiting %q", r.State, r.Rule, r.Awaiting)
	}
	e.refused(r.ID, timebox.EFORBIDDEN, []string{"own request"}, func() error {
		_, err := e.svc.Approve(e.ctx, "alice", r.ID, timebox.ApproveInput{})
		return err
	})
	e.refused(r.ID, timebox.ENOTFOUND, []string{r.ID}, func() error { // not hers to see
		_, err := e.svc.Approve(e.ctx, "olga", r.ID, timebox.ApproveInput{})
		return err
	})
	// dual is in both groups: one approval, one place.
	e.changed(r.ID, "request.approval_added", true, func() error {
		r2, err := e.svc.Approve(e.ctx, "dual", r.ID, timebox.ApproveInput{Note: "ok"})
		if err == nil && (r2.State != timebox.StatePending || r2.Awaiting != "1 more of security") {
			t.Errorf("after dual: %s awaiting %q", r2.State, r2.Awaiting)
		}
		return err
	})
	e.refused(r.ID, timebox.ECONFLICT, []string{"dual already approved", "1 more of security"}, func() error {
		_, err := e.svc.Approve(e.ctx, "dual", r.ID, timebox.ApproveInput{})
		return err
	})
	// root is an admin but not an approver under prod-ddl.
	e.refused(r.ID, timebox.EFORBIDDEN, []string{"root is not an approver under rule prod-ddl"}, func() error {
		_, err := e.svc.Approve(e.ctx, "root", r.ID, timebox.ApproveInput{})
		return err
	})
	// bob (db-owners) completes it: dual moves to the security place.
	got := e.approve("bob", r.ID, timebox.ApproveInput{})
	if got.State != timebox.StateApproved || got.Awaiting != "" || len(got.Reviews) != 2 {
		t.Fatalf("after bob: %+v", got)
	}
	if ev := e.lastEvent(); fmt.Sprint(ev.Details["approvers"]) != "[dual bob]" || ev.Details["rule"] != "prod-ddl" {
		t.Errorf("approved event details %v", ev.Details)
	}
}

func TestPolicyDenyAfterOneApprove(t *testing.T) {
	e := policyEnv(t, "")
	in := timebox.RequestInput{Database: "shop", Access: "read-only", Duration: "4h", Reason: "long report", Ticket: "T-1"}
	r := e.create("alice", in)
	if r.Rule != "tier1-long" {
		t.Fatalf("rule %s", r.Rule)
	}
	e.changed(r.ID, "request.approval_added", true, func() error {
		_, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{})
		return err
	})
	e.changed(r.ID, "request.denied", true, func() error {
		_, err := e.svc.Deny(e.ctx, "bea", r.ID, "too long; split it")
		return err
	})
	s := e.stored(r.ID)
	if s.State != timebox.StateDenied || len(s.Reviews) != 2 || s.Reviews[1].Decision != timebox.ActionDeny {
		t.Fatalf("stored %+v", s)
	}
	e.refused(r.ID, timebox.ECONFLICT, []string{"cannot approve a request that is denied"}, func() error {
		_, err := e.svc.Approve(e.ctx, "dual", r.ID, timebox.ApproveInput{})
		return err
	})
}

// TestPolicyConcurrentApprovals races two approvers, each through its own Service on its
// own connection pool to one PostgreSQL store (two server processes): both approvals are
// recorded, the request is approved once, no review is lost.
func TestPolicyConcurrentApprovals(t *testing.T) {
	dsn := policyStoreDSN(t)
	a, b := policyEnv(t, dsn), policyEnv(t, dsn)
	in := timebox.RequestInput{Database: "shop", Access: "read-only", Duration: "4h", Reason: "race", Ticket: "T-1"}
	for range 5 {
		r := a.create("alice", in)
		before := len(a.events())
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 2)
		for i, p := range []struct {
			env   *svcEnv
			actor string
		}{{a, "bob"}, {b, "bea"}} {
			wg.Go(func() {
				<-start
				_, errs[i] = p.env.svc.Approve(p.env.ctx, p.actor, r.ID, timebox.ApproveInput{Note: p.actor})
			})
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("approvals: %v", errs)
		}
		s := a.stored(r.ID)
		if s.State != timebox.StateApproved || len(s.Reviews) != 2 || s.Version != 3 {
			t.Fatalf("after the race: %s, %d reviews, version %d", s.State, len(s.Reviews), s.Version)
		}
		es := a.events()[before:]
		if len(es) != 2 || es[0].Action != "request.approval_added" || es[1].Action != "request.approved" {
			t.Fatalf("events after the race: %d", len(es))
		}
	}
}

var policyDatabases atomic.Int64

// policyStoreDSN creates a database for a PostgreSQL store on the shared throwaway cluster.
func policyStoreDSN(t *testing.T) string {
	pg := testdb.RequirePostgres(t)
	name := fmt.Sprintf("policy_test_%d", policyDatabases.Add(1))
	if err := pg.CreateDatabase(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return pg.SuperURL(name)
}

// fakeOnCall is an on-call resolver that says who is on call until when.
type fakeOnCall struct {
	who   string
	until time.Time
	err   error
}

func (f *fakeOnCall) OnCall(_ context.Context, schedule string, u *timebox.User, at time.Time) (time.Time, bool, error) {
	if f.err != nil {
		return time.Time{}, false, f.err
	}
	return f.until, u.Name == f.who && at.Before(f.until), nil
}

func TestPolicyAutoApproval(t *testing.T) {
	e := policyEnv(t, "")
	in := timebox.RequestInput{Database: "shop", Access: "read-only", Duration: "2h", Reason: "INC-9", Ticket: "INC-9"}

	// No resolver: a person decides.
	if r := e.create("olga", in); r.State != timebox.StatePending || r.Rule != "prod-read-oncall" {
		t.Fatalf("without on-call: %s %s", r.State, r.Rule)
	}
	// On call for 30 more minutes: approved, the window cut at the shift's end.
	e.svc.OnCall = &fakeOnCall{who: "olga", until: e.now.Add(30 * time.Minute)}
	r, err := e.svc.CreateRequest(e.ctx, "olga", in)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != timebox.StateApproved || !r.End.Equal(e.now.Add(30*time.Minute)) || r.Reviews[0].Reviewer != "timebox" ||
		!strings.Contains(r.Reviews[0].Note, "olga is on call in primary") {
		t.Fatalf("auto-approved: %s end %s reviews %+v", r.State, r.End, r.Reviews)
	}
	if ev := e.lastEvent(); ev.Action != "request.auto_approved" || ev.Details["rule"] != "prod-read-oncall" ||
		!strings.Contains(fmt.Sprint(ev.Details["changes"]), "end of the on-call shift") {
		t.Errorf("event %s %v", ev.Action, ev.Details)
	}
	// Not on call, or the calendar unreadable: a person decides, and the request says why.
	e.svc.OnCall = &fakeOnCall{err: timebox.Errorf(timebox.EUNAVAILABLE, "calendar down")}
	if r := e.create("olga", in); r.State != timebox.StatePending || !strings.Contains(r.Awaiting, "calendar down") {
		t.Errorf("calendar down: %s %q", r.State, r.Awaiting)
	}
	// Dev: always.
	if r, err := e.svc.CreateRequest(e.ctx, "alice", timebox.RequestInput{Database: "sandbox", Access: "ddl", Duration: "1h", Reason: "x"}); err != nil || r.State != timebox.StateApproved {
		t.Errorf("dev: %v %v", r, err)
	}
	if ev := e.lastEvent(); ev.Action != "request.auto_approved" || ev.Details["rule"] != "dev" {
		t.Errorf("dev: %s %v", ev.Action, ev.Details)
	}
}

func TestPolicyBreakGlass(t *testing.T) {
	e := policyEnv(t, "")
	in := timebox.RequestInput{Database: "shop", Access: "read-write", Duration: "30m", Reason: "prod down", BreakGlass: true}
	e.refused("", timebox.EFORBIDDEN, []string{"alice is not in a break-glass group"}, func() error {
		_, err := e.svc.CreateRequest(e.ctx, "alice", in)
		return err
	})
	long := in
	long.Duration = "2h"
	e.refused("", timebox.EINVALID, []string{"exceeds the break-glass maximum of 1h0m0s"}, func() error {
		_, err := e.svc.CreateRequest(e.ctx, "olga", long)
		return err
	})
	r, err := e.svc.CreateRequest(e.ctx, "olga", in) // no ticket needed in an emergency
	if err != nil {
		t.Fatal(err)
	}
	if r.State != timebox.StateApproved || !r.BreakGlass || r.FollowUp == nil || !r.FollowUp.Open || r.Rule != timebox.BreakGlassRule {
		t.Fatalf("break-glass: %+v", r)
	}
	if ev := e.lastEvent(); ev.Action != "request.break_glass" || ev.Details["follow_up"] != "open" {
		t.Errorf("event %s %v", ev.Action, ev.Details)
	}
	open, err := e.svc.FindRequests(e.ctx, "bob", timebox.RequestFilter{FollowUpOpen: true})
	if err != nil || len(open) != 1 || open[0].ID != r.ID {
		t.Fatalf("open follow-ups: %v %v", open, err)
	}
	e.refused(r.ID, timebox.EFORBIDDEN, []string{"their own break-glass request"}, func() error {
		_, err := e.svc.CloseFollowUp(e.ctx, "olga", r.ID, "fine")
		return err
	})
	e.refused(r.ID, timebox.EINVALID, []string{"note is required"}, func() error {
		_, err := e.svc.CloseFollowUp(e.ctx, "bob", r.ID, " ")
		return err
	})
	e.changed(r.ID, "request.follow_up_closed", true, func() error {
		_, err := e.svc.CloseFollowUp(e.ctx, "sam", r.ID, "checked the queries: ok") // a break-glass reviewer
		return err
	})
	e.refused(r.ID, timebox.ECONFLICT, []string{"no open follow-up"}, func() error {
		_, err := e.svc.CloseFollowUp(e.ctx, "bob", r.ID, "again")
		return err
	})
	if open, _ := e.svc.FindRequests(e.ctx, "bob", timebox.RequestFilter{FollowUpOpen: true}); len(open) != 0 {
		t.Errorf("still open: %d", len(open))
	}
	e.refused(r.ID, timebox.ECONFLICT, []string{"break-glass request cannot be extended"}, func() error {
		_, err := e.svc.Extend(e.ctx, "olga", r.ID, timebox.ExtendInput{Duration: "10m", Reason: "more"})
		return err
	})
}

func TestPolicyExtension(t *testing.T) {
	e := policyEnv(t, "")
	in := timebox.RequestInput{Database: "crm", Access: "read-only", Duration: "1h", Reason: "report", Ticket: "T-1"}
	r := e.create("alice", in)
	e.approve("bob", r.ID, timebox.ApproveInput{})
	e.activate(r.ID, "pw-123456789")
	oldEnd := e.stored(r.ID).End

	e.refused(r.ID, timebox.EFORBIDDEN, []string{"only the requester may extend"}, func() error {
		_, err := e.svc.Extend(e.ctx, "bob", r.ID, timebox.ExtendInput{Duration: "1h", Reason: "x"})
		return err
	})
	e.refused(r.ID, timebox.EINVALID, []string{"exceeds rule prod-default's maximum of 4h0m0s"}, func() error {
		_, err := e.svc.Extend(e.ctx, "alice", r.ID, timebox.ExtendInput{Duration: "4h", Reason: "x"})
		return err
	})
	e.changed(r.ID, "extension.requested", true, func() error {
		_, err := e.svc.Extend(e.ctx, "alice", r.ID, timebox.ExtendInput{Duration: "1h", Reason: "not done yet"})
		return err
	})
	e.refused(r.ID, timebox.ECONFLICT, []string{"already has an extension"}, func() error {
		_, err := e.svc.Extend(e.ctx, "alice", r.ID, timebox.ExtendInput{Duration: "1h", Reason: "x"})
		return err
	})
	// Denied: nothing changes but the pending extension is gone.
	e.changed(r.ID, "extension.denied", true, func() error {
		_, err := e.svc.Deny(e.ctx, "bob", r.ID, "finish tomorrow")
		return err
	})
	s := e.stored(r.ID)
	if s.State != timebox.StateActive || !s.End.Equal(oldEnd) || s.Extension != nil || s.ExtensionUnsynced() {
		t.Fatalf("after a denied extension: %s end %s ext %v", s.State, s.End, s.Extension)
	}
	// Asked again and approved (narrowed to 30 minutes): the end moves, the database follows.
	if _, err := e.svc.Extend(e.ctx, "alice", r.ID, timebox.ExtendInput{Duration: "1h", Reason: "not done yet"}); err != nil {
		t.Fatal(err)
	}
	e.changed(r.ID, "request.extended", true, func() error {
		_, err := e.svc.Approve(e.ctx, "bea", r.ID, timebox.ApproveInput{End: tp(oldEnd.Add(30 * time.Minute))})
		return err
	})
	s = e.stored(r.ID)
	if s.State != timebox.StateActive || !s.End.Equal(oldEnd.Add(30*time.Minute)) || !s.ExtensionUnsynced() {
		t.Fatalf("after the extension: %s end %s unsynced %v", s.State, s.End, s.ExtensionUnsynced())
	}
	if due, _ := s.DueAt(); due.After(e.now) {
		t.Errorf("an unsynced extension is due at once, not %s", due)
	}
	if last := s.Reviews[len(s.Reviews)-1]; last.Decision != timebox.ActionExtend || !strings.Contains(last.Changes, "end ") {
		t.Errorf("last review %+v", last)
	}
}

func TestPolicyCascades(t *testing.T) {
	e := policyEnv(t, "")
	in := timebox.RequestInput{Database: "crm", Access: "read-only", Duration: "1h", Reason: "r", Ticket: "T-1"}
	pending := e.create("alice", in)
	active := e.create("alice", in)
	e.approve("bob", active.ID, timebox.ApproveInput{})
	e.activate(active.ID, "pw-123456789")
	other := e.create("olga", in)

	// alice disabled through the API: pending cancelled, active revoked (the scheduler
	// completes it), each with an event naming the cause; olga untouched.
	n, err := e.svc.DisableUser(e.ctx, "root", "alice", "left the company")
	if err != nil || n != 2 {
		t.Fatalf("disable: %d %v", n, err)
	}
	if s := e.stored(pending.ID); s.State != timebox.StateCancelled {
		t.Errorf("pending: %s", s.State)
	}
	if s := e.stored(active.ID); s.State != timebox.StateActive || s.Ending != timebox.EndingRevoke {
		t.Errorf("active: %s %s", s.State, s.Ending)
	}
	var causes int
	for _, ev := range e.events() {
		if ev.Action == "request.cascade" && ev.Details["cause"] == timebox.CauseUserDisabled && strings.Contains(fmt.Sprint(ev.Details["note"]), "left the company") {
			causes++
		}
	}
	if causes != 2 {
		t.Errorf("%d cascade events", causes)
	}
	if s := e.stored(other.ID); s.State != timebox.StatePending {
		t.Errorf("olga's: %s", s.State)
	}
	e.refused("", timebox.EFORBIDDEN, []string{`user "alice" was disabled by root`}, func() error {
		_, err := e.svc.CreateRequest(e.ctx, "alice", in)
		return err
	})
	// Her API token stops working (the API authenticates every call through the service).
	if err := e.db.Update(e.ctx, func(tx timebox.Tx) error {
		return tx.CreateToken(&timebox.Token{ID: "tok-alice", User: "alice", Hash: timebox.TokenHash("alice-secret")})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(e.ctx, "alice-secret"); timebox.ErrorCode(err) != timebox.EUNAUTHORIZED || !strings.Contains(err.Error(), "is disabled") {
		t.Errorf("Authenticate as a disabled user: %v", err)
	}
	if _, err := e.svc.DisableUser(e.ctx, "bob", "olga", "x"); timebox.ErrorCode(err) != timebox.EFORBIDDEN {
		t.Errorf("non-admin disable: %v", err)
	}

	// crm removed from the configuration: olga's pending request is denied.
	c := e.svc.Catalog
	for i, d := range c.Databases {
		if d.Name == "crm" {
			c.Databases = append(c.Databases[:i:i], c.Databases[i+1:]...)
			break
		}
	}
	if n, err := e.svc.Cascade(e.ctx); err != nil || n != 1 {
		t.Fatalf("cascade: %d %v", n, err)
	}
	if s := e.stored(other.ID); s.State != timebox.StateDenied || !strings.Contains(s.Reviews[len(s.Reviews)-1].Note, "database crm was removed") {
		t.Errorf("olga's after crm removed: %s %+v", s.State, s.Reviews)
	}
	if n, _ := e.svc.Cascade(e.ctx); n != 0 {
		t.Errorf("a second cascade ended %d more", n)
	}
}

func TestPolicyUnusedApproval(t *testing.T) {
	e := policyEnv(t, "")
	e.svc.Catalog.Rules[0].UnusedAfter = timebox.Duration(20 * time.Minute) // prod-default
	r := e.create("alice", timebox.RequestInput{Database: "crm", Access: "read-only", Duration: "2h", Reason: "r", Ticket: "T"})
	e.approve("bob", r.ID, timebox.ApproveInput{})
	if s := e.stored(r.ID); s.UnusedAfter != timebox.Duration(20*time.Minute) || !s.UnusedBy.IsZero() {
		t.Fatalf("approved: unused after %v, by %s (it counts from the activation)", s.UnusedAfter, s.UnusedBy)
	}
	e.activate(r.ID, "pw-123456789")
	// What the scheduler does at activation: the deadline counts from now.
	if err := e.db.Update(e.ctx, func(tx timebox.Tx) error {
		s, err := tx.FindRequest(r.ID)
		if err != nil {
			return err
		}
		s.UnusedBy = s.ActivatedAt.Add(time.Duration(s.UnusedAfter))
		return tx.UpdateRequest(s)
	}); err != nil {
		t.Fatal(err)
	}
	s := e.stored(r.ID)
	if due, _ := s.DueAt(); !due.Equal(s.UnusedBy) || !s.Unused(s.UnusedBy) || s.Unused(s.UnusedBy.Add(-time.Second)) {
		t.Fatalf("active: due %s, unused by %s", due, s.UnusedBy)
	}
	if _, err := e.svc.Credentials(e.ctx, "alice", r.ID); err != nil {
		t.Fatal(err)
	}
	s = e.stored(r.ID)
	if due, _ := s.DueAt(); s.UsedAt.IsZero() || !due.Equal(s.End) || s.Unused(s.Start.Add(time.Hour)) {
		t.Errorf("after use: used %s due %s", s.UsedAt, due)
	}
}

func TestPolicyExplain(t *testing.T) {
	e := policyEnv(t, "")
	x, err := e.svc.Explain(e.ctx, "alice", timebox.ExplainInput{Database: "shop", Access: "ddl", Duration: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if x.Rule == nil || x.Rule.Name != "prod-ddl" || !x.Allowed || fmt.Sprint(x.Approvers) != "[bob bea sam dual]" ||
		x.Takes != "1 of db-owners and 1 of security (distinct people; the requester never counts)" || x.Ticket != "^CHG-[0-9]+$" {
		t.Errorf("explain: %+v", x)
	}
	if got := strings.Join(x.Limits, "\n"); got != strings.Join([]string{
		"prod databases: a window of at most 8h0m0s", "prod databases: a window of at least 1m0s",
		"prod databases: starting at most 168h0m0s ahead", "prod databases: a ticket is optional",
		"rule prod-ddl: a window of at most 2h0m0s", "rule prod-ddl: a ticket matching ^CHG-[0-9]+$ is required",
	}, "\n") || x.TicketRequired {
		t.Errorf("limits:\n%s", got)
	}
	why := map[string]string{}
	for _, m := range x.Why {
		why[m.Rule] = m.Reason
	}
	if why["prod-default"] != "matches, but prod-ddl is more specific (or written first)" || why["dev"] != `environment is "prod", not dev` {
		t.Errorf("why: %v", why)
	}
	for _, tc := range []struct {
		in      timebox.ExplainInput
		refusal string
	}{
		{timebox.ExplainInput{Database: "crm", Access: "ddl", Duration: "1h"}, "rule no-crm-ddl refuses this request: crm schema changes go through migrations"},
		{timebox.ExplainInput{Database: "shop", Access: "ddl", Duration: "3h"}, "duration 3h0m0s exceeds rule prod-ddl's maximum of 2h0m0s"},
	} {
		x, err := e.svc.Explain(e.ctx, "alice", tc.in)
		if err != nil || x.Allowed || x.Refusal != tc.refusal {
			t.Errorf("%+v: %+v %v", tc.in, x, err)
		}
	}
	if _, err := e.svc.Explain(e.ctx, "alice", timebox.ExplainInput{Database: "shop", Access: "ddl", Duration: "1h", As: "olga"}); timebox.ErrorCode(err) != timebox.EFORBIDDEN {
		t.Errorf("explain as someone else: %v", err)
	}
	// The environment's ticket requirement is stated even where the rule has no pattern.
	e.svc.Catalog.Limits = map[string]timebox.Limits{"prod": {MaxDuration: timebox.Duration(6 * time.Hour), RequireTicket: true}}
	if x, err := e.svc.Explain(e.ctx, "alice", timebox.ExplainInput{Database: "crm", Access: "read-only", Duration: "1h"}); err != nil || !x.TicketRequired ||
		!slices.Contains(x.Limits, "prod databases: a ticket is required (--ticket), except for break-glass") ||
		!slices.Contains(x.Limits, "prod databases: a window of at most 6h0m0s") || !slices.Contains(x.Limits, "rule prod-default: a window of at most 4h0m0s") {
		t.Errorf("explain with a required ticket: %+v %v", x, err)
	}
	e.svc.OnCall = &fakeOnCall{who: "olga", until: e.now.Add(time.Hour)}
	if x, err := e.svc.Explain(e.ctx, "root", timebox.ExplainInput{Database: "shop", Access: "read-only", Duration: "1h", As: "olga"}); err != nil ||
		!strings.HasPrefix(x.AutoApproval, "yes: olga is on call in primary until") || !strings.HasPrefix(x.BreakGlass, "yes") {
		t.Errorf("explain for olga: %+v %v", x, err)
	}
}

// The policy as it is at the approval holds: a maximum lowered since the request was filed
// refuses the approval, and nothing changes.
func TestPolicyApprovalAppliesTheCurrentRule(t *testing.T) {
	e := policyEnv(t, "")
	r := e.create("alice", timebox.RequestInput{Database: "crm", Access: "read-only", Duration: "3h", Reason: "r", Ticket: "T"})
	e.svc.Catalog.Rules[0].MaxDuration = timebox.Duration(2 * time.Hour) // prod-default
	e.refused(r.ID, timebox.EINVALID, []string{"exceeds rule prod-default's maximum of 2h0m0s"}, func() error {
		_, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{})
		return err
	})
	e.approve("bob", r.ID, timebox.ApproveInput{End: tp(r.Start.Add(2 * time.Hour))}) // narrowed to fit: fine
}

// An approval by someone disabled since no longer counts towards the quorum.
func TestPolicyDisabledApproverDoesNotCount(t *testing.T) {
	e := policyEnv(t, "")
	r := e.create("alice", timebox.RequestInput{Database: "shop", Access: "read-only", Duration: "4h", Reason: "r", Ticket: "T"})
	if _, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.DisableUser(e.ctx, "root", "bob", "laptop stolen"); err != nil {
		t.Fatal(err)
	}
	e.changed(r.ID, "request.approval_added", true, func() error {
		got, err := e.svc.Approve(e.ctx, "bea", r.ID, timebox.ApproveInput{})
		if err == nil && (got.State != timebox.StatePending || got.Awaiting != "1 more of db-owners") {
			t.Errorf("after bea: %s awaiting %q", got.State, got.Awaiting)
		}
		return err
	})
	e.approve("dual", r.ID, timebox.ApproveInput{})
}

// An extension whose window falls under another rule is approved by that rule's approvers.
func TestPolicyExtensionUnderAnotherRule(t *testing.T) {
	e := policyEnv(t, "")
	c := e.svc.Catalog
	c.Rules = append(c.Rules, timebox.Rule{Name: "crm-long", Match: timebox.RuleMatch{Databases: timebox.StringList{"crm"}, LongerThan: timebox.Duration(3 * time.Hour)},
		Approvers: timebox.Approvers{{Groups: timebox.StringList{"security"}}}})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := e.create("alice", timebox.RequestInput{Database: "crm", Access: "read-only", Duration: "2h", Reason: "r", Ticket: "T"})
	e.approve("bob", r.ID, timebox.ApproveInput{})
	e.activate(r.ID, "pw-123456789")
	x, err := e.svc.Extend(e.ctx, "alice", r.ID, timebox.ExtendInput{Duration: "2h", Reason: "more"})
	if err != nil || x.Extension.Rule != "crm-long" || x.Rule != "prod-default" || x.Awaiting != "1 of security" {
		t.Fatalf("extension: %+v %v", x, err)
	}
	e.refused(r.ID, timebox.EFORBIDDEN, []string{"bob is not an approver under rule crm-long"}, func() error {
		_, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{})
		return err
	})
	e.changed(r.ID, "request.extended", true, func() error {
		_, err := e.svc.Approve(e.ctx, "sam", r.ID, timebox.ApproveInput{})
		return err
	})
	if s := e.stored(r.ID); s.Rule != "crm-long" || !s.End.Equal(s.Start.Add(4*time.Hour)) {
		t.Errorf("after the extension: rule %s, end %s", s.Rule, s.End)
	}
}

// A shared login (unlock_login) is not extended into the next holder's window.
func TestPolicyExtensionKeepsSharedLoginExclusive(t *testing.T) {
	e := policyEnv(t, "")
	first, err := e.svc.CreateRequest(e.ctx, "alice", timebox.RequestInput{Database: "maint", Access: "read-only", Duration: "1h", Reason: "r"})
	if err != nil || first.State != timebox.StateApproved {
		t.Fatalf("first: %v %v", first, err)
	}
	second, err := e.svc.CreateRequest(e.ctx, "olga", timebox.RequestInput{Database: "maint", Access: "read-only", Start: tp(first.End), Duration: "1h", Reason: "r"})
	if err != nil || second.State != timebox.StateApproved {
		t.Fatalf("second: %v %v", second, err)
	}
	e.refused(first.ID, timebox.ECONFLICT, []string{"is held by request " + second.ID}, func() error {
		_, err := e.svc.Extend(e.ctx, "alice", first.ID, timebox.ExtendInput{Duration: "30m", Reason: "more"})
		return err
	})
}

// An approval written into the store without the key — made up, or copied from another
// request — never counts towards a quorum, and is dropped at the next real approval.
func TestPolicyForgedApprovalDoesNotCount(t *testing.T) {
	e := policyEnv(t, "")
	in := timebox.RequestInput{Database: "shop", Access: "read-only", Duration: "4h", Reason: "r", Ticket: "T"}
	other := e.create("alice", in)
	if _, err := e.svc.Approve(e.ctx, "bea", other.ID, timebox.ApproveInput{}); err != nil { // genuine, of another request
		t.Fatal(err)
	}
	r := e.create("alice", in)
	copied := e.stored(other.ID).Reviews[0]
	err := e.svc.Store.Update(e.ctx, func(tx timebox.Tx) error {
		s, err := tx.FindRequest(r.ID)
		if err != nil {
			return err
		}
		s.Reviews = append(s.Reviews, copied, timebox.Review{Reviewer: "dual", Decision: timebox.ActionApprove, At: s.CreatedAt})
		return tx.UpdateRequest(s)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.changed(r.ID, "request.approval_added", true, func() error {
		got, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{})
		if err == nil && (got.State != timebox.StatePending || got.Awaiting != "1 more of db-owners") {
			t.Errorf("after bob and two forged approvals: %s awaiting %q", got.State, got.Awaiting)
		}
		return err
	})
	if ev := e.lastEvent(); fmt.Sprint(ev.Details["forged_approvals_ignored"]) != "[bea dual]" {
		t.Errorf("approval event details %v", ev.Details)
	}
	if s := e.stored(r.ID); len(s.Reviews) != 1 || s.Reviews[0].Reviewer != "bob" {
		t.Errorf("stored reviews after the approval: %+v", s.Reviews)
	}
	if got := e.approve("bea", r.ID, timebox.ApproveInput{}); got.State != timebox.StateApproved {
		t.Errorf("after bea's own approval: %s", got.State)
	}
}
