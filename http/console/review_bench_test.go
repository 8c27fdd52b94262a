package console_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// seedRequests stores n requests as a busy month leaves them: pending of them pending, live
// approved, the rest expired, spread over 30 days.
func seedRequests(tb testing.TB, e *env, n, pending, live int) {
	tb.Helper()
	now := time.Now().UTC()
	people := []string{"alice", "carol", "stan", "audrey"}
	err := e.DB.Update(context.Background(), func(tx timebox.Tx) error {
		for i := range n {
			created := now.Add(-time.Duration(n-i) * 30 * 24 * time.Hour / time.Duration(n))
			r := &timebox.Request{ID: fmt.Sprintf("seed%06d", i), Requester: people[i%len(people)], Database: []string{"prod", "staging"}[i%2],
				Access: "read-only", Start: created, End: created.Add(time.Hour), Reason: "seeded", State: timebox.StateExpired,
				Reviews: []timebox.Review{}, CreatedAt: created, UpdatedAt: created, Version: 1}
			switch {
			case i >= n-pending:
				r.State, r.Start, r.End, r.Rule, r.Awaiting = timebox.StatePending, now, now.Add(2*time.Hour), "default", "1 of owners or admins"
			case i >= n-pending-live:
				r.State, r.Start, r.End, r.Rule = timebox.StateApproved, now, now.Add(2*time.Hour), "default"
			}
			r.RequestedStart, r.RequestedEnd = r.Start, r.End
			if err := tx.CreateRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkInbox renders bob's inbox with 10,000 requests in the store, 300 of them pending
// and 100 live (go test -bench Inbox ./http/console/).
func BenchmarkInbox(b *testing.B) {
	e := newEnv(b, nil)
	seedRequests(b, e, 10000, 300, 100)
	br := e.signIn("bob")
	if p := br.get("/approvals"); p.Status != http.StatusOK {
		b.Fatalf("GET /approvals = %d", p.Status)
	}
	b.ResetTimer()
	for b.Loop() {
		br.get("/approvals")
	}
}

// BenchmarkRequestPage renders one request's page with 10,000 requests in the store.
func BenchmarkRequestPage(b *testing.B) {
	e := newEnv(b, nil)
	seedRequests(b, e, 10000, 300, 100)
	br := e.signIn("bob")
	for b.Loop() {
		br.get("/requests/seed009999")
	}
}
