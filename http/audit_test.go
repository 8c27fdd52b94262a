package http_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

func TestAudit(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	r := e.create("alice")
	if _, err := e.client("bob").Approve(ctx, r.ID, timebox.ApproveInput{}); err != nil {
		t.Fatal(err)
	}
	e.create("admin")

	events, err := e.client("alice").Events(ctx, tbhttp.EventQuery{RequestID: r.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Action != "request.created" || events[1].Action != "request.approved" || events[1].Actor != "bob" {
		t.Fatalf("events = %+v", events)
	}
	all, err := e.client("audrey").Events(ctx, tbhttp.EventQuery{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)})
	if err != nil || len(all) != 3 {
		t.Fatalf("auditor sees %d events, %v; want 3", len(all), err)
	}
	limited, err := e.client("audrey").Events(ctx, tbhttp.EventQuery{Actor: "admin", Limit: 1})
	if err != nil || len(limited) != 1 || limited[0].Actor != "admin" {
		t.Fatalf("actor filter = %+v, %v", limited, err)
	}
	none, err := e.client("stan").Events(ctx, tbhttp.EventQuery{})
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("stan sees %v, %v; want an empty list", none, err)
	}

	_, err = e.client("alice").VerifyAudit(ctx)
	wantCode(t, err, timebox.EFORBIDDEN)
	v, err := e.client("audrey").VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Events != 3 || v.HeadSeq != 3 || len(v.Problems) != 0 {
		t.Fatalf("verification = %+v", v)
	}
}

func TestAccessReport(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	e.create("alice")
	records, err := e.client("audrey").AccessReport(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if records == nil || len(records) != 0 {
		t.Fatalf("records = %v, want an empty list (nothing was ever active)", records)
	}
	if r := e.raw("GET", "/api/v1/reports/access", "audrey", ""); string(r.body) != "{\"records\":[]}\n" {
		t.Errorf("body = %s", r.body)
	}
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	if _, err := e.client("audrey").AccessReport(ctx, since, since.Add(24*time.Hour)); err != nil {
		t.Fatalf("a report with zoned times: %v", err)
	}
}

// GET /api/v1/audit/verify compares the keyed chain with the checkpoint: it reports the
// checkpoint it read, a store ahead of it as a note (no false alarm), and a truncated tail
// with the head moved back as a problem.
func TestAuditVerifyCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timebox.db")
	e := newEnvOn(t, nil, "sqlite:///"+path)
	cp, err := timebox.OpenCheckpointFile(filepath.Join(t.TempDir(), "audit-checkpoint.log"), e.svc.Keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	e.db.Keys, e.db.Checkpoint, e.svc.Checkpoint = e.svc.Keys, cp, cp
	ctx := context.Background()
	e.create("alice")
	e.create("alice")
	cp.Flush()
	e.db.Checkpoint = nil // the third event is not checkpointed: the checkpoint is behind
	e.create("alice")
	v, err := e.client("audrey").VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.KeyedFrom != 1 || v.Checkpoint == nil || v.Checkpoint.Seq != 2 || len(v.Notes) != 1 || !strings.Contains(v.Notes[0], "events 3 to 3 are newer than the checkpoint") {
		t.Fatalf("verification = %+v", v)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{`DELETE FROM events WHERE seq >= 2`, `UPDATE audit_head SET seq = 1, hash = (SELECT hash FROM events WHERE seq = 1)`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	v, err = e.client("audrey").VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || len(v.Problems) != 1 || v.Problems[0].Seq != 2 || !strings.Contains(v.Problems[0].Problem, "events 2..2 recorded in the checkpoint are missing") {
		t.Fatalf("after truncation: %+v", v)
	}
}
