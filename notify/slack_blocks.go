package notify

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// The action ids of the buttons: a prefix and the request's id.
const (
	actionApprove = "timebox_approve:"
	actionDeny    = "timebox_deny:"
	actionLink    = "timebox_link:"
)

// Block Kit's limits (https://docs.slack.dev/reference/block-kit/blocks).
const (
	maxHeader      = 150
	maxSectionText = 3000
	maxField       = 2000
	maxFields      = 10
	maxButtonText  = 75
)

// blocks lays out m's summary: the title as a header, the status, the facts as fields, the
// time, and the buttons: the console's links and, when buttons is set and the request waits
// for a decision, Approve (with a confirmation) and Deny (which asks for a reason).
func (s *Slack) blocks(m *Message, buttons bool) []slack.Block {
	sum := m.Summary
	out := []slack.Block{slack.NewHeaderBlock(plain(clipRunes(sum.Title, maxHeader)))}
	if sum.Status != "" {
		out = append(out, slack.NewSectionBlock(mrkdwn(clipRunes("*Status:* "+slackEscape(sum.Status), maxSectionText)), nil, nil))
	}
	var fields []*slack.TextBlockObject
	for _, f := range sum.Facts {
		if f.Value == "" {
			continue
		}
		fields = append(fields, mrkdwn(clipRunes("*"+slackEscape(f.Name)+"*\n"+slackEscape(f.Value), maxField)))
		if len(fields) == maxFields {
			out = append(out, slack.NewSectionBlock(nil, fields, nil))
			fields = nil
		}
	}
	if len(fields) > 0 {
		out = append(out, slack.NewSectionBlock(nil, fields, nil))
	}
	if !sum.Time.IsZero() {
		out = append(out, slack.NewContextBlock("", mrkdwn(slackDate(sum.Time))))
	}
	var elems []slack.BlockElement
	id := m.Delivery.RequestID
	if id == "" && m.Request != nil {
		id = m.Request.ID
	}
	if buttons && sum.Decidable && id != "" {
		confirm := slack.NewConfirmationBlockObject(plain("Approve this request?"),
			plain(clipRunes(sum.Title+"\n\nIt is approved as asked; to narrow the window or the tables, open it in Timebox.", 300)),
			plain("Approve"), plain("Cancel"))
		elems = append(elems,
			slack.NewButtonBlockElement(actionApprove+id, id, plain("Approve")).WithStyle(slack.StylePrimary).WithConfirm(confirm),
			slack.NewButtonBlockElement(actionDeny+id, id, plain("Deny…")).WithStyle(slack.StyleDanger))
	}
	for i, l := range sum.Links {
		elems = append(elems, slack.NewButtonBlockElement(actionLink+strconv.Itoa(i), "", plain(clipRunes(l.Text, maxButtonText))).WithURL(l.URL))
	}
	if len(elems) > 0 {
		out = append(out, slack.NewActionBlock("timebox_actions", elems...))
	}
	return out
}

// replyText is the short reply in the request's thread: what happened, and the status.
func replyText(sum *Summary) string {
	t := slackEscape(sum.Title)
	if sum.Status != "" {
		t += "\n_" + slackEscape(sum.Status) + "_"
	}
	for _, f := range sum.Facts {
		if f.Name == "Note" || f.Name == "Changed by the approver" {
			t += "\n>" + slackEscape(f.Name) + ": " + slackEscape(f.Value)
		}
	}
	return clipRunes(t, maxSectionText)
}

// slackDate is a Slack date token that each reader sees in their own time zone, with the
// UTC time as its fallback.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 MST"))
}

func plain(text string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, text, false, false)
}

// mrkdwn is a verbatim mrkdwn text: Slack does not turn its bare URLs into links, its
// channel names into channel links or "@here" into a mention (the text of a request is
// attacker-controlled); what we write as <…> ourselves (dates) still works.
func mrkdwn(text string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, text, false, true)
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to, so that text
// from a request (a reason "<!channel>") is shown, never read as a mention or a link.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// clipRunes cuts s to at most n characters, ending it with … when it was cut.
func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	cut := string(r[:n-1])
	// Do not leave half an escape (&amp;) at the end.
	if i := strings.LastIndexByte(cut, '&'); i >= 0 && !strings.Contains(cut[i:], ";") {
		cut = cut[:i]
	}
	return cut + "…"
}
