package timebox_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

func integrityFixture() (*timebox.Request, *timebox.Grant) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	r := &timebox.Request{
		ID: "r1", Requester: "alice", Database: "shop", Access: "read-only", Start: now, End: now.Add(time.Hour),
		State: timebox.StateActive, Reviews: []timebox.Review{{Reviewer: "bob", Decision: timebox.ActionApprove, At: now}},
	}
	r.Rule, r.UnusedAfter = "owners", timebox.Duration(10*time.Minute)
	r.Tables = []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"SELECT"}}}
	g := &timebox.Grant{
		RequestID: "r1", Server: "pg", Principal: "tbx_alice_r1", TargetDatabase: "shop", Method: timebox.MethodEphemeralLogin,
		Roles: []string{"reader"}, Privileges: []string{"SELECT"}, Tables: r.Tables, ValidUntil: r.End, SealedPassword: []byte("sealed"),
	}
	return r, g
}

// Every authenticated field of a decision changes its canonical encoding and is named by
// CheckDecision when edited after the decision was sealed; so is a missing or forged proof.
func TestDecisionEveryFieldVerified(t *testing.T) {
	keys, _ := timebox.NewKeyring("integrity-test-secret-key")
	edits := map[string]func(r *timebox.Request){
		"requester": func(r *timebox.Request) { r.Requester = "mallory" },
		"database":  func(r *timebox.Request) { r.Database = "billing" },
		"access":    func(r *timebox.Request) { r.Access = "ddl" },
		"tables": func(r *timebox.Request) {
			r.Tables = []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"DELETE", "SELECT"}}}
		},
		"start":     func(r *timebox.Request) { r.Start = r.Start.Add(-time.Hour) },
		"end":       func(r *timebox.Request) { r.End = r.End.Add(time.Hour) },
		"rule":      func(r *timebox.Request) { r.Rule = "auto" },
		"approvers": func(r *timebox.Request) { r.Reviews[0].Reviewer = "carol" },
		"extended_by": func(r *timebox.Request) {
			r.Reviews = append(r.Reviews, timebox.Review{Reviewer: "bob", Decision: timebox.ActionExtend})
		},
		"break_glass":  func(r *timebox.Request) { r.BreakGlass = true },
		"unused_after": func(r *timebox.Request) { r.UnusedAfter = 0 },
	}
	base, _ := integrityFixture()
	baseBody := timebox.DecisionOf(base).Canonical()
	for field, edit := range edits {
		r, _ := integrityFixture()
		keys.SealDecision(r)
		if _, bad := keys.CheckDecision(r); len(bad) != 0 {
			t.Fatalf("a fresh decision does not verify: %v", bad)
		}
		edit(r)
		if body := timebox.DecisionOf(r).Canonical(); string(body) == string(baseBody) {
			t.Errorf("%s: the canonical encoding does not change", field)
		} else if keys.MAC(timebox.PurposeGrant, body) == keys.MAC(timebox.PurposeGrant, baseBody) {
			t.Errorf("%s: the tag does not change", field)
		}
		if d, bad := keys.CheckDecision(r); d == nil || !slices.Equal(bad, []string{field}) {
			t.Errorf("%s edited: CheckDecision names %v, want [%s]", field, bad, field)
		}
	}
	// A pending request edited to approved has no decision at all.
	r, _ := integrityFixture()
	r.State = timebox.StateApproved
	if d, bad := keys.CheckDecision(r); d != nil || !slices.Equal(bad, []string{"decision"}) {
		t.Errorf("approved without a decision: %v", bad)
	}
	// A proof of another request, or a forged tag, does not verify.
	other, _ := integrityFixture()
	other.ID = "r2"
	keys.SealDecision(other)
	r.Decided = other.Decided
	if _, bad := keys.CheckDecision(r); !slices.Equal(bad, []string{"decision"}) {
		t.Errorf("another request's proof: %v", bad)
	}
	keys.SealDecision(r)
	r.Decided.Body = strings.Replace(r.Decided.Body, `"read-only"`, `"ddl"`, 1)
	r.Access = "ddl"
	if _, bad := keys.CheckDecision(r); !slices.Equal(bad, []string{"decision"}) {
		t.Errorf("an edited proof body: %v", bad)
	}
	// Requests that give nothing are not checked.
	r.State = timebox.StatePending
	if _, bad := keys.CheckDecision(r); bad != nil {
		t.Errorf("a pending request is checked: %v", bad)
	}
}

// Every authenticated field of a grant's intent is named by CheckIntent when edited.
func TestIntentEveryFieldVerified(t *testing.T) {
	keys, _ := timebox.NewKeyring("integrity-test-secret-key")
	edits := map[string]func(g *timebox.Grant){
		"server":          func(g *timebox.Grant) { g.Server = "other" },
		"principal":       func(g *timebox.Grant) { g.Principal = "postgres" },
		"target_database": func(g *timebox.Grant) { g.TargetDatabase = "billing" },
		"method":          func(g *timebox.Grant) { g.Method = timebox.MethodUnlockLogin },
		"roles":           func(g *timebox.Grant) { g.Roles = append(g.Roles, "admin") },
		"privileges":      func(g *timebox.Grant) { g.Privileges = []string{"ALL PRIVILEGES"} },
		"grant_tables":    func(g *timebox.Grant) { g.Tables = nil },
		"valid_until":     func(g *timebox.Grant) { g.ValidUntil = time.Time{} },
	}
	for field, edit := range edits {
		_, g := integrityFixture()
		keys.SealIntent(g)
		before := timebox.IntentOf(g).Canonical()
		edit(g)
		if string(timebox.IntentOf(g).Canonical()) == string(before) {
			t.Errorf("%s: the canonical encoding does not change", field)
		}
		in, bad := keys.CheckIntent(g)
		if in == nil || !slices.Equal(bad, []string{field}) {
			t.Errorf("%s edited: CheckIntent names %v, want [%s]", field, bad, field)
			continue
		}
		if a := in.Apply(g); a.Principal != "tbx_alice_r1" || a.Server != "pg" || !slices.Equal(a.Roles, []string{"reader"}) {
			t.Errorf("%s edited: the authenticated copy gives %s on %s with %v", field, a.Principal, a.Server, a.Roles)
		}
	}
	_, g := integrityFixture()
	if in, bad := keys.CheckIntent(g); in != nil || !slices.Equal(bad, []string{"intent"}) {
		t.Errorf("a grant without intent: %v", bad)
	}
}

// Proofs made with a previous key still verify, and Retag makes them again with the current
// key without ever re-tagging one that does not verify.
func TestIntegrityKeyRotation(t *testing.T) {
	old, _ := timebox.NewKeyring("integrity-old-secret-key")
	r, g := integrityFixture()
	old.SealDecision(r)
	old.SealIntent(g)
	r.Grant = g
	keys, _ := timebox.NewKeyring("integrity-new-secret-key", "integrity-old-secret-key")
	if _, bad := keys.CheckDecision(r); bad != nil {
		t.Fatalf("an old key's decision after the rotation: %v", bad)
	} else if _, bad := keys.CheckIntent(g); bad != nil {
		t.Fatalf("an old key's intent after the rotation: %v", bad)
	}
	keys.Retag(r)
	if !keys.Current(r.Decided.Tag) || !keys.Current(g.Intended.Tag) {
		t.Fatal("Retag left a previous key's tag")
	}
	if _, bad := keys.CheckDecision(r); bad != nil {
		t.Fatalf("after Retag: %v", bad)
	}
	forged := timebox.Proof{Body: r.Decided.Body, Tag: "00000000:00"}
	r.Decided = forged
	keys.Retag(r)
	if r.Decided != forged {
		t.Fatal("Retag re-tagged a proof that does not verify")
	}
	if fresh, _ := timebox.NewKeyring("integrity-new-secret-key"); fresh != nil {
		old.SealDecision(r)
		if _, bad := fresh.CheckDecision(r); !slices.Equal(bad, []string{"decision"}) {
			t.Fatalf("a retired key's proof verifies: %v", bad)
		}
	}
}

// BenchmarkCheckRequest is the cost of the check before each activation, extension and
// repair, and of each live grant in a reconciler pass.
func BenchmarkCheckRequest(b *testing.B) {
	keys, _ := timebox.NewKeyring("integrity-test-secret-key")
	r, g := integrityFixture()
	keys.SealDecision(r)
	keys.SealIntent(g)
	r.Grant = g
	for b.Loop() {
		if bad := keys.CheckRequest(r); bad != nil {
			b.Fatal(bad)
		}
	}
}
