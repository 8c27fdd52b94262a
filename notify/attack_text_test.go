package notify

import (
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
)

// A requester writes the reason and the ticket; in the plain-text part of an e-mail a
// line break in them must not start a line of Timebox's own — a status, a fact, or the
// "Open in Timebox: <url>" link an approver clicks (phishing) — or the signature. Every
// line a requester's text adds stays indented under its fact.
func TestAttackReasonCannotForgeLinesOfThePlainText(t *testing.T) {
	forged := "debug INC-1\nStatus: Approved by security (no action needed)\n\nOpen in Timebox: https://timebox.example.com.evil.example/requests/x\n-- \nSent by Timebox"
	m := &Message{Kind: KindNewRequest, Request: &timebox.Request{ID: "r1", Requester: "alice", Database: "prod",
		Access: "read-only", State: timebox.StatePending, Reason: forged, Ticket: "T-1\nApproved: yes"}}
	text := summarize(m, "https://timebox.example.com").Text()
	own := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line != "" && line[0] != ' ' {
			own[line] = true
		}
	}
	for _, bad := range []string{"Status: Approved by security (no action needed)",
		"Open in Timebox: https://timebox.example.com.evil.example/requests/x", "-- ", "Sent by Timebox", "Approved: yes"} {
		if own[bad] {
			t.Errorf("the requester's text made a line of its own: %q\n%s", bad, text)
		}
	}
	if !strings.Contains(text, "Reason: debug INC-1\n") || !own["Open in Timebox: https://timebox.example.com/requests/r1"] {
		t.Errorf("the real lines are missing:\n%s", text)
	}
}
