package timebox_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// An approval from someone disabled before the window started no longer counts: the request
// goes back to pending with a request.reopened event saying why, whether the approver was
// disabled through the API or in the configuration. A request whose window started, an
// active grant and a request that still has its quorum are left alone; the voided approver
// may approve again once enabled.
func TestPolicyApproverDisabledBeforeWindow(t *testing.T) {
	e := policyEnv(t, "")
	later := e.now.Add(time.Hour)
	long := func(start *time.Time) *timebox.Request { // rule tier1-long: 2 of db-owners
		return e.create("alice", timebox.RequestInput{Database: "shop", Access: "read-only", Start: start, Duration: "4h", Reason: "r", Ticket: "T"})
	}
	r := long(&later)
	started := long(nil)
	active := long(nil)
	for _, id := range []string{r.ID, started.ID, active.ID} {
		if _, err := e.svc.Approve(e.ctx, "bob", id, timebox.ApproveInput{}); err != nil {
			t.Fatal(err)
		}
		if got := e.approve("bea", id, timebox.ApproveInput{}); got.State != timebox.StateApproved {
			t.Fatalf("%s: %s", id, got.State)
		}
	}
	e.activate(active.ID, "pw-123456789")
	other := e.create("alice", timebox.RequestInput{Database: "crm", Access: "read-only", Start: &later, Duration: "1h", Reason: "r", Ticket: "T"})
	e.approve("bea", other.ID, timebox.ApproveInput{}) // prod-default: bea alone; bob never approved it

	if _, err := e.svc.DisableUser(e.ctx, "root", "bob", "left"); err != nil {
		t.Fatal(err)
	}
	got := e.stored(r.ID)
	if got.State != timebox.StatePending || got.Awaiting != "1 more of db-owners" {
		t.Fatalf("after bob was disabled: %s awaiting %q", got.State, got.Awaiting)
	}
	last := got.Reviews[len(got.Reviews)-1]
	if last.Decision != timebox.ActionReopen || last.Reviewer != timebox.Actor || fmt.Sprint(last.Voids) != "[bob]" {
		t.Errorf("reopen review: %+v", last)
	}
	ev := reopened(t, e, r.ID, 1)
	note := fmt.Sprint(ev.Details["note"])
	if ev.Actor != timebox.Actor || ev.Details["cause"] != timebox.CauseApproverGone || !strings.Contains(note, "approval by bob no longer counts: user bob was disabled by root: left before the window started") {
		t.Errorf("reopened event: %s %v", ev.Actor, ev.Details)
	}
	for _, id := range []string{started.ID, other.ID} {
		if s := e.stored(id); s.State != timebox.StateApproved {
			t.Errorf("%s: %s after bob was disabled, want approved", id, s.State)
		}
	}
	if s := e.stored(active.ID); s.State != timebox.StateActive || s.Ending != timebox.EndingNone {
		t.Errorf("the active grant: %s ending %q", s.State, s.Ending)
	}

	// bob, enabled again, may approve anew: his voided approval does not count as given.
	if err := e.svc.EnableUser(e.ctx, "root", "bob"); err != nil {
		t.Fatal(err)
	}
	if got := e.approve("bob", r.ID, timebox.ApproveInput{}); got.State != timebox.StateApproved {
		t.Fatalf("bob again: %s", got.State)
	}

	// Disabled in the configuration, seen at the next start (Cascade): the same.
	e.svc.Catalog.Users[3].Disabled = true // bea
	if e.svc.Catalog.Users[3].Name != "bea" {
		t.Fatal("the catalog changed: update this test")
	}
	if _, err := e.svc.Cascade(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.stored(r.ID); got.State != timebox.StatePending || got.Awaiting != "1 more of db-owners" {
		t.Fatalf("after bea was disabled in the configuration: %s awaiting %q", got.State, got.Awaiting)
	}
	if ev := reopened(t, e, r.ID, 2); !strings.Contains(fmt.Sprint(ev.Details["note"]), "user bea is disabled in the configuration") {
		t.Errorf("second reopened event: %v", ev.Details)
	}
	if s := e.stored(other.ID); s.State != timebox.StatePending {
		t.Errorf("crm request approved by bea alone: %s, want pending", s.State)
	}
	// Running the cascade again changes nothing more.
	if _, err := e.svc.Cascade(e.ctx); err != nil {
		t.Fatal(err)
	}
	reopened(t, e, r.ID, 2)
}

// reopened checks that request id has n request.reopened events and returns the last.
func reopened(t *testing.T, e *svcEnv, id string, n int) *timebox.Event {
	t.Helper()
	var out []*timebox.Event
	for _, ev := range e.events() {
		if ev.RequestID == id && ev.Action == "request.reopened" {
			out = append(out, ev)
		}
	}
	if len(out) != n {
		t.Fatalf("%d request.reopened events for %s, want %d", len(out), id, n)
	}
	return out[n-1]
}
