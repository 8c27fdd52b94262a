package scheduler

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

var principalPattern = regexp.MustCompile(`^tbx_[a-z0-9_]*_[a-z0-9]+$`)

func TestPrincipalName(t *testing.T) {
	id := timebox.RandomID(10)
	for _, tc := range []struct{ user, want string }{
		{"alice", "tbx_alice_" + id},
		{"Alice.Smith", "tbx_alice_smith_" + id},
		{"o'brien \"x\"; DROP ROLE", "tbx_o_brien__x___drop_role_" + id},
		{"zoë", "tbx_zo__" + id}, // one underscore per character, whatever its UTF-8 length
		{"日本", "tbx____" + id},
		{"a-b@c", "tbx_a_b_c_" + id},
	} {
		if got := PrincipalName(tc.user, id); got != tc.want {
			t.Errorf("PrincipalName(%q) = %q, want %q", tc.user, got, tc.want)
		}
	}
	for _, user := range []string{
		"alice",
		strings.Repeat("a", 64),
		strings.Repeat("Z", 64),
		strings.Repeat("é", 32), // 64 bytes, 32 runes
		strings.Repeat("日", 21), // 63 bytes
		strings.Repeat("x", 48) + strings.Repeat("y", 16),
		`"; DROP ROLE postgres; --`,
		"",
	} {
		got := PrincipalName(user, id)
		if len(got) > 63 {
			t.Errorf("PrincipalName(%d-byte user) = %q is %d bytes, over 63", len(user), got, len(got))
		}
		if !principalPattern.MatchString(got) {
			t.Errorf("PrincipalName(%q) = %q has characters outside [a-z0-9_] or the wrong shape", user, got)
		}
		if !strings.HasPrefix(got, "tbx_") || !strings.HasSuffix(got, "_"+id) {
			t.Errorf("PrincipalName(%q) = %q does not start with tbx_ and end with _%s", user, got, id)
		}
	}
	// The suffix keeps names unique even when users collapse to the same prefix.
	long := strings.Repeat("a", 64)
	a, b := PrincipalName(long, "aaaaaaaaaa"), PrincipalName(long+"b", "bbbbbbbbbb")
	if a == b {
		t.Errorf("two requests share principal %q", a)
	}
	if PrincipalName("Alice", id) != PrincipalName("alice", id) {
		t.Error("case changes the principal")
	}
	if got := PrincipalName(long, id); got != "tbx_"+strings.Repeat("a", 48)+"_"+id || len(got) != 63 {
		t.Errorf("a 64-byte name is cut to %q (%d bytes), want 48 bytes of the user", got, len(got))
	}
}

func TestDueAt(t *testing.T) {
	start := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	end := start.Add(2 * time.Hour)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	epoch := time.Unix(0, 0).UTC() // due at once, whatever the time
	grant := func(next time.Time) *timebox.Grant { return &timebox.Grant{NextAttemptAt: next} }
	revoking := func(next time.Time) *timebox.Grant {
		return &timebox.Grant{Status: timebox.GrantRevoking, NextAttemptAt: next}
	}
	for _, tc := range []struct {
		name string
		r    timebox.Request
		want time.Time
	}{
		{"pending", timebox.Request{State: timebox.StatePending, Start: start, End: end}, end},
		{"approved", timebox.Request{State: timebox.StateApproved, Start: start, End: end}, start},
		{"approved, grant without retry", timebox.Request{State: timebox.StateApproved, Start: start, End: end, Grant: grant(time.Time{})}, start},
		{"approved, retrying", timebox.Request{State: timebox.StateApproved, Start: start, End: end, Grant: grant(at(10 * time.Minute))}, at(10 * time.Minute)},
		{"approved, retry before start", timebox.Request{State: timebox.StateApproved, Start: start, End: end, Grant: grant(at(-time.Minute))}, start},
		{"approved, retry after end", timebox.Request{State: timebox.StateApproved, Start: start, End: end, Grant: grant(at(3 * time.Hour))}, end},
		{"approved, start after end", timebox.Request{State: timebox.StateApproved, Start: at(3 * time.Hour), End: end}, end},
		{"active", timebox.Request{State: timebox.StateActive, Start: start, End: end, Grant: grant(time.Time{})}, end},
		{"active, old retry time", timebox.Request{State: timebox.StateActive, Start: start, End: end, Grant: grant(at(time.Minute))}, end},
		{"ending, retrying", timebox.Request{State: timebox.StateActive, Ending: timebox.EndingRevoke, Start: start, End: end, Grant: revoking(at(5 * time.Minute))}, at(5 * time.Minute)},
		{"ending, activation was retrying", timebox.Request{State: timebox.StateApproved, Ending: timebox.EndingRevoke, Start: start, End: end, Grant: grant(at(5 * time.Minute))}, epoch},
		{"ending, retry after end", timebox.Request{State: timebox.StateActive, Ending: timebox.EndingExpire, Start: start, End: end, Grant: revoking(at(3 * time.Hour))}, at(3 * time.Hour)},
		{"ending, no retry", timebox.Request{State: timebox.StateActive, Ending: timebox.EndingRevoke, Start: start, End: end, Grant: grant(time.Time{})}, epoch},
		{"ending since", timebox.Request{State: timebox.StateActive, Ending: timebox.EndingRevoke, EndingSince: at(time.Minute), Start: start, End: end, Grant: grant(at(time.Hour))}, at(time.Minute)},
		{"ending, no grant", timebox.Request{State: timebox.StateApproved, Ending: timebox.EndingCancel, Start: start, End: end}, epoch},
		{"expired", timebox.Request{State: timebox.StateExpired, Start: start, End: end}, time.Time{}},
		{"denied", timebox.Request{State: timebox.StateDenied, Start: start, End: end}, time.Time{}},
		{"revoked", timebox.Request{State: timebox.StateRevoked, Start: start, End: end, Grant: grant(at(time.Hour))}, time.Time{}},
		{"cancelled", timebox.Request{State: timebox.StateCancelled, Start: start, End: end}, time.Time{}},
	} {
		got, ok := tc.r.DueAt()
		if ok != !tc.want.IsZero() || (ok && !got.Equal(tc.want)) {
			t.Errorf("%s: DueAt = %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	s := New(nil, nil, nil, nil)
	if s.MinBackoff != time.Second || s.MaxBackoff != 30*time.Second {
		t.Fatalf("defaults %v/%v, want 1s/30s", s.MinBackoff, s.MaxBackoff)
	}
	for attempts, base := range map[int]time.Duration{
		0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second,
		5: 16 * time.Second, 6: 30 * time.Second, 7: 30 * time.Second, 100: 30 * time.Second, 1 << 30: 30 * time.Second,
	} {
		// Jitter is ±20%, but a delay never exceeds MaxBackoff.
		lo, hi := time.Duration(float64(base)*0.8), min(time.Duration(float64(base)*1.2), s.MaxBackoff)
		minSeen, maxSeen := time.Duration(1<<62), time.Duration(0)
		for range 2000 {
			d := s.backoff(attempts)
			if d < lo || d > hi {
				t.Fatalf("backoff(%d) = %v, outside [%v, %v]", attempts, d, lo, hi)
			}
			minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
		}
		// The jitter really spreads the retries over the ±20% band.
		if minSeen > time.Duration(float64(base)*0.85) || maxSeen < min(time.Duration(float64(base)*1.15), s.MaxBackoff) {
			t.Errorf("backoff(%d) stays within [%v, %v]: jitter too narrow for base %v", attempts, minSeen, maxSeen, base)
		}
	}

	// Other bounds: a cap that is not a power-of-two multiple of the minimum.
	s.MinBackoff, s.MaxBackoff = 100*time.Millisecond, 700*time.Millisecond
	for attempts, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 700 * time.Millisecond, 9: 700 * time.Millisecond} {
		for range 500 {
			if d := s.backoff(attempts); d < time.Duration(float64(base)*0.8) || d > min(time.Duration(float64(base)*1.2), s.MaxBackoff) {
				t.Fatalf("backoff(%d) = %v with bounds 100ms..700ms, want %v ±20%%", attempts, d, base)
			}
		}
	}
}
