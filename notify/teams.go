package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// TeamsConfig is a Microsoft Teams channel's configuration: a Teams Workflows flow started
// by an HTTP request ("Send webhook alerts to a channel"), the successor of incoming
// webhooks. The flow posts each Adaptive Card it receives to its channel.
type TeamsConfig struct {
	// URL is a secret reference (env:NAME or file:PATH) to the flow's HTTP trigger URL. The
	// URL embeds the trigger's signature (sig=…): whoever has it can post to the channel.
	URL string `yaml:"url"`
}

// Teams sends Adaptive Cards to a Teams Workflows webhook. A workflow can neither update a
// card it posted nor deduplicate: every delivery is a new card, and a delivery retried
// after the server stopped mid-send may be posted twice.
type Teams struct {
	consoleURL string
	hook       *hookPoster
}

var _ Sender = (*Teams)(nil)

// teamsWhat names a Teams channel's receiver in errors.
const teamsWhat = "teams workflow"

// openTeams resolves and checks the workflow URL of channel name.
func openTeams(name string, c *TeamsConfig, env Env) (Sender, error) {
	hook, err := openHookURL(teamsWhat, "teams.url", c.URL, env.Client)
	if err != nil {
		return nil, err
	}
	return &Teams{consoleURL: env.ConsoleURL, hook: hook}, nil
}

// Send posts m's summary as an Adaptive Card. The workflow answers 202 Accepted when its
// run started (200 from some flows): the card is posted by the run, after the answer, so a
// card the flow fails to post shows only in the flow's run history.
func (t *Teams) Send(ctx context.Context, m *Message) (Result, error) {
	if m.Summary == nil {
		return Result{}, Permanent(fmt.Errorf("%s: the message has no summary", teamsWhat))
	}
	body, err := json.Marshal(teamsMessage{
		Type: "message",
		Attachments: []teamsAttachment{{
			ContentType: "application/vnd.microsoft.card.adaptive",
			Content:     t.card(m),
		}},
	})
	if err != nil {
		return Result{}, Permanent(fmt.Errorf("%s: cannot encode the card", teamsWhat))
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Timebox-Notify")
	if _, err := t.hook.post(ctx, h, body); err != nil {
		return Result{}, err
	}
	return Result{}, nil
}

// teamsMessage is what a Workflows trigger of the "Send webhook alerts to a channel" kind
// expects: a message activity whose attachments are Adaptive Cards.
type teamsMessage struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string `json:"contentType"`
	// ContentURL is always null: the card is inline.
	ContentURL *string      `json:"contentUrl"`
	Content    adaptiveCard `json:"content"`
}

// adaptiveCard is an Adaptive Card (schema version 1.4, the newest Teams renders everywhere).
type adaptiveCard struct {
	Schema  string        `json:"$schema"`
	Type    string        `json:"type"`
	Version string        `json:"version"`
	Body    []cardElement `json:"body"`
	Actions []cardAction  `json:"actions,omitempty"`
	// MSTeams widens the card to the channel's width.
	MSTeams map[string]string `json:"msteams,omitempty"`
}

// cardElement is a TextBlock or a FactSet.
type cardElement struct {
	Type     string     `json:"type"`
	Text     string     `json:"text,omitempty"`
	Weight   string     `json:"weight,omitempty"`
	Size     string     `json:"size,omitempty"`
	IsSubtle bool       `json:"isSubtle,omitempty"`
	Spacing  string     `json:"spacing,omitempty"`
	Wrap     bool       `json:"wrap,omitempty"`
	Facts    []cardFact `json:"facts,omitempty"`
}

type cardAction struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

type cardFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// maxCardText bounds each text of a card: a Teams message holds about 28 KB.
const maxCardText = 1000

// card lays out m's summary: the title, the status, the facts, and one Action.OpenUrl per
// link (plus "Review", to the request's decision form, while it waits for a decision).
// Every text is escaped: a request's reason cannot add links or formatting to the card.
func (t *Teams) card(m *Message) adaptiveCard {
	s := m.Summary
	c := adaptiveCard{
		Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
		Type:    "AdaptiveCard",
		Version: "1.4",
		MSTeams: map[string]string{"width": "Full"},
	}
	c.Body = append(c.Body, cardElement{Type: "TextBlock", Text: cardText(s.Title), Weight: "Bolder", Size: "Medium", Wrap: true})
	if s.Status != "" {
		c.Body = append(c.Body, cardElement{Type: "TextBlock", Text: cardText(s.Status), IsSubtle: true, Spacing: "None", Wrap: true})
	}
	if len(s.Facts) > 0 {
		facts := make([]cardFact, 0, len(s.Facts))
		for _, f := range s.Facts {
			facts = append(facts, cardFact{Title: cardText(f.Name), Value: cardText(f.Value)})
		}
		c.Body = append(c.Body, cardElement{Type: "FactSet", Facts: facts})
	}
	for _, l := range s.Links {
		c.Actions = append(c.Actions, cardAction{Type: "Action.OpenUrl", Title: l.Text, URL: l.URL})
	}
	if s.Decidable && m.Request != nil && t.consoleURL != "" {
		c.Actions = append(c.Actions, cardAction{Type: "Action.OpenUrl", Title: "Review",
			URL: RequestURL(t.consoleURL, m.Request.ID) + "#decide"})
	}
	return c
}

// cardText makes s safe for an Adaptive Card's Markdown: one line, at most maxCardText
// bytes, and the characters that Markdown reads as a link, emphasis or code escaped (and,
// at the start, a heading, list or quote).
func cardText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxCardText {
		cut := maxCardText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	var b strings.Builder
	for i, r := range s {
		if strings.ContainsRune("\\`*_[]~", r) || i == 0 && strings.ContainsRune("#+->", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
