package notify

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/timebox-dev/timebox"
)

// Adversarial tests of the Slack channel: what a requester can make it say, and who a click
// counts as.

// mrkdwnTexts returns every mrkdwn text object of blocks (decoded JSON), with its verbatim flag.
func mrkdwnTexts(v any, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if x["type"] == "mrkdwn" {
			s, _ := x["text"].(string)
			vb, _ := x["verbatim"].(bool)
			out[s] = vb
		}
		for _, c := range x {
			mrkdwnTexts(c, out)
		}
	case []any:
		for _, c := range x {
			mrkdwnTexts(c, out)
		}
	case []map[string]any:
		for _, c := range x {
			mrkdwnTexts(c, out)
		}
	}
}

// A requester's reason must not ping the channel (@here, @channel), link-ify a channel
// name or turn a bare URL into a link: Slack does all three in an mrkdwn text unless it is
// verbatim (docs.slack.dev, text object: "When set to false (as is default) URLs will be
// auto-converted into links, conversation names will be link-ified, and certain mentions
// will be automatically parsed").
func TestAttackSlackReasonCannotPingOrLink(t *testing.T) {
	e := newSlackEnv(t)
	r, err := e.svc.CreateRequest(e.ctx, "alice", timebox.RequestInput{Database: "stage", Access: "read-only",
		Duration: "1h", Reason: "@here @channel see #general and https://evil.example/login", Ticket: "@everyone"})
	if err != nil {
		t.Fatal(err)
	}
	e.send(e.message(KindNewRequest, r.ID))
	msgs := e.fake.messages("C0123")
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	texts := map[string]bool{}
	mrkdwnTexts(msgs[0].Blocks, texts)
	seen := false
	for s, verbatim := range texts {
		if strings.Contains(s, "@here") || strings.Contains(s, "@everyone") {
			seen = true
			if !verbatim {
				t.Errorf("mrkdwn text %q carries the requester's text without verbatim: true (Slack parses @here and links in it)", s)
			}
		}
	}
	if !seen {
		t.Fatalf("the reason is in no mrkdwn text: %v", texts)
	}
}

// A Slack Connect member of another organisation, clicking in a channel shared with it, must
// not count as the Timebox user with the same e-mail: the payload's team is where the click
// came from, not the app's workspace, so the check must be against the app's own
// workspace (auth.test).
func TestAttackSlackConnectUserOfAnotherOrgIsRefused(t *testing.T) {
	e := newSlackEnv(t)
	r := e.request("stage")
	// Their org confirmed this e-mail for them; nothing says they are a stranger: they share a channel.
	e.fake.addUser("UOUTSIDE", "dave@example.com", func(u *slack.User) { u.TeamID = "T2" })
	body := strings.Replace(e.payload("UOUTSIDE", actionApprove+r.ID), "%22id%22%3A%22"+testTeam+"%22", "%22id%22%3A%22T2%22", -1)
	w := e.serve(signed(slackTestSecret, time.Now(), body))
	said := e.fake.answered()
	if w.Code != http.StatusOK || len(said) != 1 {
		t.Fatalf("click: %d, answers %q", w.Code, said)
	}
	if !strings.Contains(said[0], "another workspace") {
		t.Errorf("the outsider was told %q, want a refusal", said[0])
	}
	if n := e.events(r.ID, "request.approved"); n != 0 {
		t.Errorf("an outsider's click approved the request as dave")
	}
}

// The e-mail of a Slack profile matches a Timebox user's e-mail case-insensitively in ASCII
// only: Unicode case folding maps the Kelvin sign (U+212A) to k and the long s (U+017F) to
// s, so "ſam@…" — another mailbox, perhaps on a look-alike domain — must not be sam.
func TestAttackSlackEmailUnicodeFoldIsNotTheSamePerson(t *testing.T) {
	e := newSlackEnv(t)
	e.svc.Catalog.Users = append(e.svc.Catalog.Users, timebox.User{Name: "sam", Email: "sam@example.com", Groups: []string{"shop-owners"}})
	r := e.request("stage")
	e.fake.addUser("USPOOF", "\u017fam@example.com")
	_, said := e.click("USPOOF", actionApprove+r.ID)
	if n := e.events(r.ID, "request.approved"); n != 0 {
		t.Errorf("a Slack profile with e-mail \u017fam@example.com approved as sam (told %q)", said)
	}
	// Plain ASCII case differences still match (Sam@Example.COM is sam).
	e.fake.addUser("USAM", "Sam@Example.COM")
	if _, said := e.click("USAM", actionApprove+r.ID); !strings.Contains(said, "You approved") {
		t.Errorf("sam, with his e-mail in other case: %q", said)
	}
}
