package http_test

import (
	"context"
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
