package console_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

func TestInboxShowsWhatWaitsForMe(t *testing.T) {
	e := newEnv(t, nil)
	theirs := e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-only", Reason: "look at orders", Ticket: "INC-42"})
	mine := e.ask("bob", timebox.RequestInput{Database: "staging", Access: "read-write", Reason: "bob's own"})
	b := e.signIn("bob")
	p := b.get("/approvals")
	if p.Status != http.StatusOK {
		t.Fatalf("GET /approvals = %d %s", p.Status, p.Body)
	}
	for _, want := range []string{theirs.ID, "look at orders", "INC-42", "awaiting 1 of owners or admins",
		"Requests waiting for your approval (1)", "default: 1 of owners or admins", "<title>Approvals (1)"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("bob's inbox lacks %q", want)
		}
	}
	if strings.Contains(p.Body, mine.ID) || strings.Contains(p.Body, "bob&#39;s own") {
		t.Errorf("bob's inbox lists his own request %s", mine.ID)
	}
	// carol (another owner) sees both; alice and stan see nothing to approve.
	if p := e.signIn("carol").get("/approvals"); !strings.Contains(p.Body, theirs.ID) || !strings.Contains(p.Body, mine.ID) {
		t.Errorf("carol's inbox lacks %s or %s", theirs.ID, mine.ID)
	}
	for _, who := range []string{"alice", "stan"} {
		if p := e.signIn(who).get("/approvals"); p.Status != http.StatusOK || strings.Contains(p.Body, theirs.ID) || !strings.Contains(p.Body, "No request waits for your approval") {
			t.Errorf("%s's inbox = %d, lists %s or lacks the empty line", who, p.Status, theirs.ID)
		}
	}
	// Once decided, it leaves the inbox.
	e.approve("carol", theirs.ID)
	if p := b.get("/approvals"); strings.Contains(p.Body, theirs.ID) {
		t.Errorf("bob's inbox still lists %s after carol approved it", theirs.ID)
	}
}

func TestApproveFromRequestPage(t *testing.T) {
	run := &runner{}
	e := newEnv(t, func(s *consoleServer) { s.Runner = run })
	r := e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-only"})
	b := e.signIn("bob")
	p := b.get("/requests/" + r.ID)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `action="/requests/`+r.ID+`/approve"`) || !strings.Contains(p.Body, "request.created") {
		t.Fatalf("bob's page of %s = %d, without the approve form or the history:\n%s", r.ID, p.Status, p.Body)
	}
	p = b.post("/requests/"+r.ID+"/approve", url.Values{"note": {"ok for the incident"}})
	if p.Status != http.StatusSeeOther || p.Location != "/requests/"+r.ID {
		t.Fatalf("approve = %d %q: %s", p.Status, p.Location, p.Body)
	}
	got := e.stored(r.ID)
	if got.State != timebox.StateApproved || got.Reviews[len(got.Reviews)-1].Reviewer != "bob" || got.Reviews[len(got.Reviews)-1].Note != "ok for the incident" {
		t.Fatalf("after bob's approval: %s, reviews %+v", got.State, got.Reviews)
	}
	if !slices.Contains(run.ran(), r.ID) {
		t.Errorf("the approval of a request that starts now did not ask the runner to activate it (ran %v)", run.ran())
	}
	p = b.get("/requests/" + r.ID)
	if !strings.Contains(p.Body, "request.approved") || !strings.Contains(p.Body, "ok for the incident") || strings.Contains(p.Body, `/approve"`) {
		t.Errorf("the page after the approval lacks the event or the note, or still offers to approve:\n%s", p.Body)
	}
	// From the inbox, the answer goes back to the inbox.
	r2 := e.ask("alice", timebox.RequestInput{Database: "staging", Access: "read-only"})
	b.get("/approvals")
	if p := b.post("/requests/"+r2.ID+"/approve", url.Values{"next": {"/approvals"}}); p.Status != http.StatusSeeOther || p.Location != "/approvals" {
		t.Fatalf("approve from the inbox = %d %q", p.Status, p.Location)
	}
	// A next that leaves the console is ignored.
	r3 := e.ask("alice", timebox.RequestInput{Database: "staging", Access: "read-write"})
	if p := b.post("/requests/"+r3.ID+"/approve", url.Values{"next": {"//evil.example/x"}}); p.Status != http.StatusSeeOther || p.Location != "/" {
		t.Fatalf("approve with next=//evil.example = %d %q, want a redirect to /", p.Status, p.Location)
	}
}

func TestNarrowAndApprove(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn("bob")
	b.reviewZone("Europe/Paris")
	paris, _ := time.LoadLocation("Europe/Paris")

	// A shorter duration.
	r := e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "4h"})
	b.get("/requests/" + r.ID)
	if p := b.post("/requests/"+r.ID+"/approve", url.Values{"duration": {"30m"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("approve for 30m = %d: %s", p.Status, p.Body)
	}
	got := e.stored(r.ID)
	if !got.End.Equal(got.Start.Add(30*time.Minute)) || !got.RequestedEnd.Equal(r.End) || got.State != timebox.StateApproved {
		t.Fatalf("narrowed to 30m: %s start %s end %s (requested %s)", got.State, got.Start, got.End, got.RequestedEnd)
	}
	if p := b.get("/requests/" + r.ID); !strings.Contains(p.Body, "Window as requested") || !strings.Contains(p.Body, "CET") {
		t.Errorf("the page of a narrowed request does not show the requested window in the viewer's zone")
	}

	// An earlier end, typed in the viewer's zone.
	r = e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-write", Duration: "4h"})
	end := r.Start.Add(time.Hour).In(paris).Truncate(time.Minute)
	b.get("/requests/" + r.ID)
	if p := b.post("/requests/"+r.ID+"/approve", url.Values{"end": {end.Format("2006-01-02T15:04")}}); p.Status != http.StatusSeeOther {
		t.Fatalf("approve until %s = %d: %s", end, p.Status, p.Body)
	}
	if got := e.stored(r.ID); !got.End.Equal(end) {
		t.Fatalf("narrowed to end %s (Paris), stored %s", end, got.End)
	}

	// A wider window is refused by the Service, shown next to the form, nothing changed.
	r = e.ask("alice", timebox.RequestInput{Database: "staging", Access: "read-only", Duration: "1h"})
	later := r.End.Add(time.Hour).In(paris).Format("2006-01-02T15:04")
	p := b.post("/requests/"+r.ID+"/approve", url.Values{"end": {later}, "note": {"keep me"}})
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "may only narrow the window") || !strings.Contains(p.Body, "keep me") {
		t.Fatalf("approve with a later end = %d, want 400 with the error and the note kept:\n%s", p.Status, p.Body)
	}
	if got := e.stored(r.ID); got.State != timebox.StatePending {
		t.Fatalf("a refused approval changed the request: %s", got.State)
	}
	if p := b.post("/requests/"+r.ID+"/approve", url.Values{"end": {later}, "duration": {"1h"}}); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "not both") {
		t.Fatalf("approve with an end and a duration = %d", p.Status)
	}

	// Tables, operations and columns of an ad-hoc request.
	r = e.ask("alice", timebox.RequestInput{Database: "prod", Tables: []timebox.TableGrant{
		{Table: "orders", Operations: []string{"SELECT", "UPDATE"}, Columns: []string{"id", "status"}},
		{Table: "customers", Operations: []string{"SELECT"}},
	}})
	p = b.get("/requests/" + r.ID)
	m := regexpFind(t, p.Body, `name="tables" value="([^"]*)"`)
	// The request's tables are sorted: customers is 0, orders is 1.
	form := url.Values{"tables": {htmlUnescape(m)}, "keep.1": {"on"}, "op.1": {"SELECT"}, "col.1": {"id"}}
	if p := b.post("/requests/"+r.ID+"/approve", form); p.Status != http.StatusSeeOther {
		t.Fatalf("narrow the tables = %d: %s", p.Status, p.Body)
	}
	got = e.stored(r.ID)
	if d := timebox.DescribeTables(got.Tables); d != "public.orders: SELECT (id)" || len(got.RequestedTables) != 2 {
		t.Fatalf("narrowed tables = %q (requested %v)", d, got.RequestedTables)
	}
	if last := got.Reviews[len(got.Reviews)-1]; !strings.Contains(last.Changes, "removed table public.customers") || !strings.Contains(last.Changes, "removed UPDATE") {
		t.Errorf("the review does not say what was removed: %q", last.Changes)
	}
}

func TestDenyAndRevoke(t *testing.T) {
	run := &runner{}
	e := newEnv(t, func(s *consoleServer) { s.Runner = run })
	r := e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-only"})
	b := e.signIn("bob")
	b.get("/requests/" + r.ID)
	// A denial needs a note: refused next to the form, nothing changed.
	p := b.post("/requests/"+r.ID+"/deny", url.Values{"note": {"  "}})
	if p.Status != http.StatusBadRequest || !strings.Contains(p.Body, `id="deny-error"`) || !strings.Contains(p.Body, "a denial needs a note") {
		t.Fatalf("deny without a note = %d:\n%s", p.Status, p.Body)
	}
	if got := e.stored(r.ID); got.State != timebox.StatePending {
		t.Fatalf("a refused denial changed the request: %s", got.State)
	}
	if p := b.post("/requests/"+r.ID+"/deny", url.Values{"note": {"use the replica"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("deny = %d: %s", p.Status, p.Body)
	}
	got := e.stored(r.ID)
	if got.State != timebox.StateDenied || got.Reviews[len(got.Reviews)-1].Note != "use the replica" {
		t.Fatalf("after the denial: %s %+v", got.State, got.Reviews)
	}
	if p := b.get("/requests/" + r.ID); !strings.Contains(p.Body, "use the replica") || !strings.Contains(p.Body, "request.denied") {
		t.Errorf("the denied request's page lacks the note or the event")
	}

	// Revoke an approved request, with a note.
	r = e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-only"})
	e.approve("carol", r.ID)
	p = b.get("/requests/" + r.ID)
	if !strings.Contains(p.Body, `action="/requests/`+r.ID+`/revoke"`) {
		t.Fatalf("bob's page of an approved request offers no revoke:\n%s", p.Body)
	}
	if p := b.post("/requests/"+r.ID+"/revoke", url.Values{"note": {"incident over"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("revoke = %d: %s", p.Status, p.Body)
	}
	if got := e.stored(r.ID); got.State != timebox.StateRevoked || got.Reviews[len(got.Reviews)-1].Note != "incident over" {
		t.Fatalf("after the revocation: %s %+v", got.State, got.Reviews)
	}
	// Revoking it again is a conflict, shown on the page.
	if p := b.post("/requests/"+r.ID+"/revoke", url.Values{"note": {"again"}}); p.Status != http.StatusConflict || !strings.Contains(p.Body, "cannot revoke a request that is revoked") {
		t.Fatalf("revoke twice = %d:\n%s", p.Status, p.Body)
	}

	// A request with a login on the database: the revocation waits for the database, and the
	// page asks the runner to remove it before answering.
	r = e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-write"})
	e.approve("carol", r.ID)
	err := e.DB.Update(context.Background(), func(tx timebox.Tx) error {
		return tx.PutGrant(&timebox.Grant{RequestID: r.ID, Server: "pg1", Principal: "tbx_" + r.ID, TargetDatabase: "shop",
			Method: timebox.MethodEphemeralLogin, Status: timebox.GrantCreating, LastError: "connection refused"})
	})
	if err != nil {
		t.Fatal(err)
	}
	b.get("/requests/" + r.ID)
	if p := b.post("/requests/"+r.ID+"/revoke", url.Values{"note": {"stop"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("revoke with a grant = %d: %s", p.Status, p.Body)
	}
	if got := e.stored(r.ID); got.Ending != timebox.EndingRevoke || !slices.Contains(run.ran(), r.ID) {
		t.Fatalf("revoke with a grant: ending %q, runner asked for %v", got.Ending, run.ran())
	}
	if p := b.get("/requests/" + r.ID); !strings.Contains(p.Body, "revoke pending since") || !strings.Contains(p.Body, "tbx_"+r.ID) {
		t.Errorf("the page of a revocation under way does not say so:\n%s", p.Body)
	}
}

func TestDecisionsRefusedToTheWrongPeople(t *testing.T) {
	e := newEnv(t, nil)
	r := e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-only"})
	actions := map[string]url.Values{
		"approve": {}, "deny": {"note": {"no"}}, "revoke": {"note": {"no"}}, "follow-up": {"note": {"no"}},
	}
	unchanged := func(who string) {
		t.Helper()
		if got := e.stored(r.ID); got.State != timebox.StatePending || len(got.Reviews) != 0 {
			t.Fatalf("after %s's attempts the request is %s with reviews %+v", who, got.State, got.Reviews)
		}
	}

	// alice crafts an approval of her own request: the Service refuses it.
	alice := e.signIn("alice")
	if p := alice.get("/requests/" + r.ID); p.Status != http.StatusOK || strings.Contains(p.Body, "/approve\"") || !strings.Contains(p.Body, `href="/#req-`+r.ID+`-h"`) {
		t.Fatalf("alice's page of her request = %d, or offers her to approve it", p.Status)
	}
	p := alice.post("/requests/"+r.ID+"/approve", nil)
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "nobody may approve their own request") {
		t.Fatalf("alice approving her own request = %d:\n%s", p.Status, p.Body)
	}
	if p := alice.post("/requests/"+r.ID+"/deny", url.Values{"note": {"x"}}); p.Status != http.StatusForbidden {
		t.Fatalf("alice denying her own request = %d", p.Status)
	}
	unchanged("alice")

	// stan may not even see it: 404 for the page and every decision.
	stan := e.signIn("stan")
	if p := stan.get("/requests/" + r.ID); p.Status != http.StatusNotFound {
		t.Fatalf("stan's GET of alice's request = %d, want 404", p.Status)
	}
	for a, form := range actions {
		if p := stan.post("/requests/"+r.ID+"/"+a, form); p.Status != http.StatusNotFound || strings.Contains(p.Body, "alice") {
			t.Errorf("stan's %s = %d (want 404, naming nobody)", a, p.Status)
		}
	}
	unchanged("stan")

	// bob may approve, but not without the CSRF token or from another site.
	bob := e.signIn("bob")
	bob.get("/requests/" + r.ID)
	if p := bob.post("/requests/"+r.ID+"/approve", url.Values{"csrf": {""}}); p.Status != http.StatusForbidden {
		t.Fatalf("approve without CSRF = %d, want 403", p.Status)
	}
	if p := bob.post("/requests/"+r.ID+"/approve", url.Values{"csrf": {"not-the-token"}}); p.Status != http.StatusForbidden {
		t.Fatalf("approve with a wrong CSRF token = %d, want 403", p.Status)
	}
	req, _ := http.NewRequest("POST", e.URL+"/requests/"+r.ID+"/approve", strings.NewReader(url.Values{"csrf": {bob.csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if p := bob.do(req); p.Status != http.StatusForbidden {
		t.Fatalf("approve from another origin = %d, want 403", p.Status)
	}
	unchanged("bob without CSRF")

	// A signed-out session: the page sends to sign-in, a decision is refused.
	cookies := bob.c.Jar.Cookies(mustURL(t, e.URL))
	csrf := bob.csrf
	if p := bob.post("/sign-out", nil); p.Status != http.StatusSeeOther {
		t.Fatalf("sign-out = %d", p.Status)
	}
	stale := e.browser()
	stale.c.Jar.SetCookies(mustURL(t, e.URL), cookies)
	if p := stale.get("/requests/" + r.ID); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/sign-in") {
		t.Fatalf("GET with a signed-out session = %d %q", p.Status, p.Location)
	}
	if p := stale.get("/approvals"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/sign-in") {
		t.Fatalf("GET /approvals with a signed-out session = %d %q", p.Status, p.Location)
	}
	if p := stale.post("/requests/"+r.ID+"/approve", url.Values{"csrf": {csrf}}); p.Status != http.StatusUnauthorized {
		t.Fatalf("approve with a signed-out session = %d, want 401", p.Status)
	}
	if p := e.browser().post("/requests/"+r.ID+"/approve", nil); p.Status != http.StatusUnauthorized {
		t.Fatalf("approve with no session = %d, want 401", p.Status)
	}
	unchanged("a stale session")
}

func TestQuorumAndExtensionInInbox(t *testing.T) {
	e := newEnv(t, nil)
	cat := e.Svc.Catalog
	cat.Rules = []timebox.Rule{{Name: "two-owners", Match: timebox.RuleMatch{Environment: timebox.StringList{"prod"}},
		Approvers: timebox.Approvers{{Groups: timebox.StringList{"prod-owners"}, Count: 2}}, Denials: 1},
		{Name: "staging", Match: timebox.RuleMatch{Environment: timebox.StringList{"staging"}},
			Approvers: timebox.Approvers{{Groups: timebox.StringList{"prod-owners"}, Count: 1}}, Denials: 1}}
	r := e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-only"})
	e.approve("bob", r.ID)
	carol := e.signIn("carol")
	p := carol.get("/approvals")
	if !strings.Contains(p.Body, r.ID) || !strings.Contains(p.Body, "awaiting 1 more of prod-owners; approved so far by bob") ||
		!strings.Contains(p.Body, "two-owners: 2 of prod-owners") {
		t.Fatalf("carol's inbox does not show the quorum so far:\n%s", p.Body)
	}
	bob := e.signIn("bob")
	if p := bob.get("/approvals"); strings.Contains(p.Body, r.ID) {
		t.Errorf("bob's inbox lists %s, which he approved already", r.ID)
	}
	if p := bob.get("/requests/" + r.ID); !strings.Contains(p.Body, "You approved this already") || strings.Contains(p.Body, "/approve\"") {
		t.Errorf("bob's page of the request he approved offers to approve again")
	}

	// An extension of an approved request waits in the extensions section.
	x := e.ask("alice", timebox.RequestInput{Database: "staging", Access: "read-only", Duration: "1h"})
	e.approve("carol", x.ID)
	if _, err := e.Svc.Extend(context.Background(), "alice", x.ID, timebox.ExtendInput{Duration: "2h", Reason: "migration still running"}); err != nil {
		t.Fatal(err)
	}
	p = bob.get("/approvals")
	if !strings.Contains(p.Body, "Extensions waiting for your approval (1)") || !strings.Contains(p.Body, "migration still running") {
		t.Fatalf("bob's inbox lacks the extension:\n%s", p.Body)
	}
	// Narrowed on approval to one more hour instead of two.
	newEnd := x.End.Add(time.Hour).Truncate(time.Minute)
	bob.get("/requests/" + x.ID)
	if p := bob.post("/requests/"+x.ID+"/approve", url.Values{"end": {newEnd.UTC().Format("2006-01-02T15:04")}}); p.Status != http.StatusSeeOther {
		t.Fatalf("approve the extension = %d:\n%s", p.Status, p.Body)
	}
	if got := e.stored(x.ID); !got.End.Equal(newEnd) || got.Extension != nil {
		t.Fatalf("after the extension's approval: end %s (want %s), extension %+v", got.End, newEnd, got.Extension)
	}
}

func TestFollowUpFromInbox(t *testing.T) {
	e := newEnv(t, nil)
	e.Svc.Catalog.BreakGlass = &timebox.BreakGlass{Groups: timebox.StringList{"developers"}, MaxDuration: timebox.Duration(time.Hour)}
	r := e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "30m", BreakGlass: true})
	bob := e.signIn("bob")
	p := bob.get("/approvals")
	if !strings.Contains(p.Body, "Break-glass follow-ups to close (1)") || !strings.Contains(p.Body, `/requests/`+r.ID+`/follow-up`) {
		t.Fatalf("bob's inbox lacks the follow-up:\n%s", p.Body)
	}
	if p := e.signIn("alice").post("/requests/"+r.ID+"/follow-up", url.Values{"note": {"fine"}}); p.Status != http.StatusForbidden {
		t.Fatalf("alice closing her own follow-up = %d, want 403", p.Status)
	}
	if p := bob.post("/requests/"+r.ID+"/follow-up", url.Values{"note": {"checked the queries"}, "next": {"/approvals"}}); p.Status != http.StatusSeeOther || p.Location != "/approvals" {
		t.Fatalf("close the follow-up = %d %q:\n%s", p.Status, p.Location, p.Body)
	}
	if got := e.stored(r.ID); got.FollowUp.Open || got.FollowUp.ClosedBy != "bob" || got.FollowUp.Note != "checked the queries" {
		t.Fatalf("follow-up after closing: %+v", got.FollowUp)
	}
}

func TestPlanShownToReviewers(t *testing.T) {
	e := newEnv(t, nil)
	e.Svc.Plan = func(r *timebox.Request) ([]string, []string, error) {
		return []string{"CREATE ROLE tbx_" + r.ID + " LOGIN -- valid until the end"}, []string{"DROP ROLE tbx_" + r.ID}, nil
	}
	r := e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-only"})
	for _, path := range []string{"/requests/" + r.ID, "/approvals"} {
		if p := e.signIn("bob").get(path); !strings.Contains(p.Body, "CREATE ROLE tbx_"+r.ID+" LOGIN; -- valid until the end") {
			t.Errorf("bob's %s lacks the statements:\n%s", path, p.Body)
		}
	}
	if p := e.signIn("bob").get("/requests/" + r.ID); !strings.Contains(p.Body, "DROP ROLE tbx_"+r.ID+";") {
		t.Errorf("bob's page lacks the removal statements")
	}
	if p := e.signIn("alice").get("/requests/" + r.ID); strings.Contains(p.Body, "CREATE ROLE") || p.Status != http.StatusOK {
		t.Errorf("the requester's page shows the statements (%d)", p.Status)
	}
}
