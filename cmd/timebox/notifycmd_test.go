package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// addDeliveries stores one delivery per status on channel about request id and returns them.
func (ct *cliTest) addDeliveries(channel, id string, statuses ...timebox.DeliveryStatus) []*timebox.Delivery {
	ct.t.Helper()
	var ds []*timebox.Delivery
	for i, st := range statuses {
		d := &timebox.Delivery{Key: fmt.Sprintf("%s/%s/%d", channel, id, i), Channel: channel, Kind: "request.created",
			EventSeq: int64(i + 1), RequestID: id, Status: st, CreatedAt: time.Now().Add(time.Duration(i-10) * time.Minute)}
		if st == timebox.DeliveryFailed {
			d.Attempts, d.LastError = 8, "slack: channel_not_found \x1b[31m(check slack.channel)"
		}
		ds = append(ds, d)
	}
	if err := ct.db.Update(context.Background(), func(tx timebox.Tx) error { return tx.AddDeliveries(ds) }); err != nil {
		ct.t.Fatal(err)
	}
	return ds
}

// TestNotifyCommands: auditors and admins read the dead-letter list and the outbox (table and
// JSON, terminal escapes shown escaped), admins retry a failed delivery, which then shows as
// pending; everything else is one clear error with the right exit code.
func TestNotifyCommands(t *testing.T) {
	ct := newCLITest(t)
	ct.fails(4, "only admins and auditors may list notifications", "notify", "failed")
	ct.as("audrey")
	if out := ct.ok("notify", "failed"); out != "no failed notifications\n" {
		t.Errorf("an empty dead-letter list prints %q", out)
	}
	slack := ct.addDeliveries("slack", "R1", timebox.DeliveryFailed, timebox.DeliverySent)
	hook := ct.addDeliveries("siem", "", timebox.DeliveryFailed, timebox.DeliveryPending)
	out := ct.ok("notify", "failed")
	for _, want := range []string{"ID", "CHANNEL", "KIND", "REQUEST", "ATTEMPTS", "LAST ERROR", "CREATED",
		strconv.FormatInt(slack[0].ID, 10), "R1", "siem", "slack: channel_not_found \\x1b[31m"} {
		if !strings.Contains(out, want) {
			t.Errorf("notify failed does not show %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") || strings.Count(out, "\n") != 3 {
		t.Errorf("notify failed:\n%s", out)
	}
	var ds []timebox.Delivery
	if err := json.Unmarshal([]byte(ct.ok("notify", "failed", "--channel", "slack", "-o", "json")), &ds); err != nil ||
		len(ds) != 1 || ds[0].ID != slack[0].ID || ds[0].LastError != slack[0].LastError {
		t.Fatalf("notify failed --channel slack -o json = %+v, %v", ds, err)
	}
	_, errOut, code := ct.run("notify", "failed", "--limit", "1")
	if code != 0 || !strings.Contains(errOut, "the newest 1; --limit 0 shows all") {
		t.Errorf("notify failed --limit 1: exit %d, stderr %q", code, errOut)
	}
	ct.fails(4, "only admins may retry", "notify", "retry", strconv.FormatInt(slack[0].ID, 10))

	ct.as("admin")
	out = ct.ok("notify", "retry", strconv.FormatInt(slack[0].ID, 10))
	if want := fmt.Sprintf("notification %d (request.created on slack about request R1) is queued again", slack[0].ID); !strings.Contains(out, want) ||
		!strings.Contains(out, "its last error was: slack: channel_not_found \\x1b[31m") {
		t.Errorf("notify retry prints:\n%s", out)
	}
	ct.fails(6, "is pending, not failed", "notify", "retry", strconv.FormatInt(slack[0].ID, 10))
	ct.fails(5, "no notification 999", "notify", "retry", "999")
	ct.fails(2, "not a positive integer", "notify", "retry", "abc")
	ct.fails(2, "expected one argument", "notify", "retry")
	out = ct.ok("notify", "list", "--request", "R1", "--status", "pending")
	if !strings.Contains(out, "STATUS") || !strings.Contains(out, strconv.FormatInt(slack[0].ID, 10)+"   pending") || strings.Count(out, "\n") != 2 {
		t.Errorf("notify list --request R1 --status pending:\n%s", out)
	}
	if err := json.Unmarshal([]byte(ct.ok("notify", "list", "-o", "json")), &ds); err != nil || len(ds) != 4 || ds[0].ID != hook[1].ID {
		t.Errorf("notify list -o json = %+v, %v", ds, err)
	}
	if out := ct.ok("notify", "failed"); strings.Contains(out, "R1") || !strings.Contains(out, "siem") {
		t.Errorf("after the retry the dead-letter list is:\n%s", out)
	}
	if out := ct.ok("notify", "list", "--channel", "teams"); out != "no notifications\n" {
		t.Errorf("an empty list prints %q", out)
	}
	ct.fails(2, `--status: unknown notification status "lost"`, "notify", "list", "--status", "lost")
	ct.fails(2, "--limit must not be negative", "notify", "failed", "--limit", "-1")
	ct.fails(2, "name a subcommand", "notify")
}
