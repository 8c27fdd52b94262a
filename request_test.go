package timebox_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// wantErr fails the test unless err carries code and its user-facing message contains every
// part.
func wantErr(t *testing.T, err error, code string, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s error containing %q", code, parts)
	}
	if got := timebox.ErrorCode(err); got != code {
		t.Fatalf("error code = %q, want %q (error: %v)", got, code, err)
	}
	msg := timebox.ErrorMessage(err)
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Fatalf("error message %q does not contain %q", msg, p)
		}
	}
}

var allActions = []timebox.Action{
	timebox.ActionApprove, timebox.ActionDeny, timebox.ActionCancel,
	timebox.ActionActivate, timebox.ActionExpire, timebox.ActionRevoke, timebox.ActionRelease, timebox.ActionReopen,
}

func TestTransitionTable(t *testing.T) {
	// The whole allowed table, written out independently of the code under test.
	allowed := map[timebox.State]map[timebox.Action]timebox.State{
		timebox.StatePending: {
			timebox.ActionApprove: timebox.StateApproved,
			timebox.ActionDeny:    timebox.StateDenied,
			timebox.ActionCancel:  timebox.StateCancelled,
			timebox.ActionExpire:  timebox.StateExpired,
		},
		timebox.StateApproved: {
			timebox.ActionActivate: timebox.StateActive,
			timebox.ActionRevoke:   timebox.StateRevoked,
			timebox.ActionCancel:   timebox.StateCancelled,
			timebox.ActionExpire:   timebox.StateExpired,
			timebox.ActionReopen:   timebox.StatePending,
		},
		timebox.StateActive: {
			timebox.ActionExpire:  timebox.StateExpired,
			timebox.ActionRevoke:  timebox.StateRevoked,
			timebox.ActionRelease: timebox.StateReleased,
		},
	}
	if len(timebox.States) != 8 {
		t.Fatalf("States has %d entries, want 8: update this test", len(timebox.States))
	}
	n := 0
	for _, from := range timebox.States {
		for _, a := range allActions {
			t.Run(string(from)+"/"+string(a), func(t *testing.T) {
				to, err := timebox.Transition(from, a)
				want, ok := allowed[from][a]
				if ok {
					n++
					if err != nil || to != want {
						t.Fatalf("Transition(%s, %s) = %q, %v; want %q", from, a, to, err, want)
					}
					return
				}
				if to != "" {
					t.Errorf("refused Transition(%s, %s) returned state %q", from, a, to)
				}
				wantErr(t, err, timebox.ECONFLICT, string(a), string(from))
				if want := "cannot " + string(a) + " a request that is " + string(from); timebox.ErrorMessage(err) != want {
					t.Errorf("message = %q, want %q", timebox.ErrorMessage(err), want)
				}
			})
		}
	}
	if n != 12 {
		t.Errorf("%d allowed transitions, want 12", n)
	}
	// Unknown states and actions are refused too.
	_, err := timebox.Transition("bogus", timebox.ActionApprove)
	wantErr(t, err, timebox.ECONFLICT, "approve", "bogus")
	_, err = timebox.Transition(timebox.StatePending, "launch")
	wantErr(t, err, timebox.ECONFLICT, "launch", "pending")
}

func TestStateLive(t *testing.T) {
	live := map[timebox.State]bool{timebox.StatePending: true, timebox.StateApproved: true, timebox.StateActive: true}
	for _, s := range timebox.States {
		if s.Live() != live[s] {
			t.Errorf("%s.Live() = %v, want %v", s, s.Live(), live[s])
		}
		// A live state has a way out; a final state has none.
		var exits int
		for _, a := range allActions {
			if _, err := timebox.Transition(s, a); err == nil {
				exits++
			}
		}
		if live[s] != (exits > 0) {
			t.Errorf("%s: live=%v but %d transitions out", s, live[s], exits)
		}
	}
}

func TestEndingAction(t *testing.T) {
	for e, want := range map[timebox.Ending]timebox.Action{
		timebox.EndingExpire:  timebox.ActionExpire,
		timebox.EndingRevoke:  timebox.ActionRevoke,
		timebox.EndingCancel:  timebox.ActionCancel,
		timebox.EndingRelease: timebox.ActionRelease,
		timebox.EndingNone:    timebox.ActionExpire,
	} {
		if got := e.Action(); got != want {
			t.Errorf("Ending(%q).Action() = %q, want %q", e, got, want)
		}
	}
}

func TestRequestStatus(t *testing.T) {
	since := time.Date(2026, 1, 2, 15, 4, 5, 0, time.FixedZone("CET", 3600))
	sinceUTC := "2026-01-02T14:04:05Z"
	failing := &timebox.Grant{LastError: "server unreachable"}
	clean := &timebox.Grant{}
	for _, tc := range []struct {
		name string
		r    timebox.Request
		want string
	}{
		{"pending", timebox.Request{State: timebox.StatePending}, "pending"},
		{"active", timebox.Request{State: timebox.StateActive, Grant: clean}, "active"},
		{"expired", timebox.Request{State: timebox.StateExpired}, "expired"},
		{"expiry", timebox.Request{State: timebox.StateActive, Ending: timebox.EndingExpire, EndingSince: since, Grant: clean},
			"active, expiry pending since " + sinceUTC},
		{"revoke", timebox.Request{State: timebox.StateActive, Ending: timebox.EndingRevoke, EndingSince: since},
			"active, revoke pending since " + sinceUTC},
		{"cancel", timebox.Request{State: timebox.StateApproved, Ending: timebox.EndingCancel, EndingSince: since, Grant: clean},
			"approved, cancel pending since " + sinceUTC},
		{"revoke with error", timebox.Request{State: timebox.StateActive, Ending: timebox.EndingRevoke, EndingSince: since, Grant: failing},
			"active, revoke pending since " + sinceUTC + ", last error: server unreachable"},
		{"expiry with error", timebox.Request{State: timebox.StateActive, Ending: timebox.EndingExpire, EndingSince: since, Grant: failing},
			"active, expiry pending since " + sinceUTC + ", last error: server unreachable"},
		{"activation retrying", timebox.Request{State: timebox.StateApproved, Grant: failing},
			"approved, activation retrying, last error: server unreachable"},
		{"approved", timebox.Request{State: timebox.StateApproved, Grant: clean}, "approved"},
		{"approved without grant", timebox.Request{State: timebox.StateApproved}, "approved"},
		// An old error on an active grant is not news.
		{"active with old error", timebox.Request{State: timebox.StateActive, Grant: failing}, "active"},
		{"plan cannot be applied", timebox.Request{State: timebox.StateActive, Grant: &timebox.Grant{Status: timebox.GrantActive, LastError: timebox.PlanFailure + ": stored secret cannot be decrypted"}},
			"active, last error: its plan cannot be applied: stored secret cannot be decrypted"},
		{"release", timebox.Request{State: timebox.StateActive, Ending: timebox.EndingRelease, EndingSince: since, Grant: clean},
			"active, release pending since " + sinceUTC},
	} {
		if got := tc.r.Status(); got != tc.want {
			t.Errorf("%s: Status() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestErrorHelpers(t *testing.T) {
	cause := errors.New("pq: password authentication failed for user x")
	e := timebox.WrapError(timebox.EUNAVAILABLE, cause, "server %s unreachable", "pg1")
	wrapped := errors.Join(errors.New("context"), e)
	if timebox.ErrorCode(wrapped) != timebox.EUNAVAILABLE || timebox.ErrorMessage(wrapped) != "server pg1 unreachable" {
		t.Errorf("ErrorCode/Message = %q/%q", timebox.ErrorCode(wrapped), timebox.ErrorMessage(wrapped))
	}
	if !errors.Is(e, cause) {
		t.Error("WrapError does not unwrap to its cause")
	}
	if e.Error() != "server pg1 unreachable: "+cause.Error() {
		t.Errorf("Error() = %q", e.Error())
	}
	// A foreign error never reaches users with its driver text.
	if timebox.ErrorCode(cause) != timebox.EINTERNAL || timebox.ErrorMessage(cause) != "internal error" {
		t.Errorf("foreign error: %q/%q", timebox.ErrorCode(cause), timebox.ErrorMessage(cause))
	}
	if timebox.ErrorCode(nil) != "" || timebox.ErrorMessage(nil) != "" {
		t.Error("nil error has a code or message")
	}
}
