package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/timebox-dev/timebox"
)

// SlackConfig is a Slack channel's configuration: a Slack app's bot token and signing secret,
// the shared channel its messages go to, and how Slack accounts map to Timebox users.
type SlackConfig struct {
	// Token is the app's bot token (xoxb-…), as env:NAME or file:PATH.
	Token string `yaml:"token"`
	// SigningSecret is the app's signing secret (Basic Information → App Credentials), as
	// env:NAME or file:PATH. Without it the messages have no Approve / Deny buttons.
	SigningSecret string `yaml:"signing_secret"`
	// Channel is the id of the shared channel (C0123ABC; a name is refused: chat.update and
	// conversations.history need the id). Without it the channel sends direct messages only.
	Channel string `yaml:"channel"`
	// Users maps Slack user ids (U0123ABC) to Timebox user names; a person not listed is
	// found by the e-mail of their Slack profile.
	Users map[string]string `yaml:"users"`
	// APIURL is the Web API's base URL (default https://slack.com/api/; GovSlack:
	// https://slack-gov.com/api/).
	APIURL string `yaml:"api_url"`
}

// Slack sends a channel's messages to Slack and decides the clicks on its buttons.
type Slack struct {
	name          string
	api           *slack.Client
	apiURL        *url.URL
	token         string
	signingSecret string
	channel       string
	users         map[string]string // Slack id → Timebox name
	byName        map[string]string // Timebox name → Slack id
	env           Env
	log           *slog.Logger
	now           func() time.Time

	mu         sync.Mutex
	byEmail    map[string]cachedID // e-mail → Slack id, for direct messages
	authed     bool                // auth.test answered
	botUser    string              // the bot's own user id (auth.test)
	team       string              // the app's workspace (auth.test)
	enterprise string              // the app's organisation on Enterprise Grid (auth.test)
	replies    sync.WaitGroup      // ephemeral answers on their way (tests wait for them)
}

type cachedID struct {
	id string
	at time.Time
}

var _ Sender = (*Slack)(nil)
var _ Directs = (*Slack)(nil)

var (
	slackChannelID = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)
	slackUserID    = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
)

// metadataType is the event_type of the metadata on every message Timebox posts.
const metadataType = "timebox_notification"

// openSlack checks c, resolves its secrets and makes the Web API client.
func openSlack(name string, c *SlackConfig, env Env) (*Slack, error) {
	if env.Client == nil {
		env.Client = &http.Client{Timeout: 15 * time.Second}
	}
	s := &Slack{name: name, env: env, log: env.Logger, now: time.Now, channel: c.Channel,
		users: map[string]string{}, byName: map[string]string{}, byEmail: map[string]cachedID{}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.log = s.log.With("channel", name)
	if c.Token == "" {
		return nil, timebox.Errorf(timebox.EINVALID, "slack.token: give the app's bot token as env:NAME or file:PATH")
	}
	var err error
	if s.token, err = timebox.ResolveSecret(c.Token); err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "slack.token: %s", timebox.ErrorMessage(err))
	}
	if !strings.HasPrefix(s.token, "xoxb-") {
		return nil, timebox.Errorf(timebox.EINVALID, "slack.token: %s is not a bot token (xoxb-…: OAuth & Permissions → Bot User OAuth Token)", c.Token)
	}
	if c.SigningSecret != "" {
		if s.signingSecret, err = timebox.ResolveSecret(c.SigningSecret); err != nil {
			return nil, timebox.Errorf(timebox.EINVALID, "slack.signing_secret: %s", timebox.ErrorMessage(err))
		}
	}
	if c.Channel != "" && !slackChannelID.MatchString(c.Channel) {
		return nil, timebox.Errorf(timebox.EINVALID, "slack.channel: %q is not a channel id (like C0123ABC: the channel's details → About, at the bottom)", timebox.Clip(c.Channel))
	}
	ids := make([]string, 0, len(c.Users))
	for id := range c.Users {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a person with two Slack accounts gets direct messages on the first
	for _, id := range ids {
		user := c.Users[id]
		if !slackUserID.MatchString(id) {
			return nil, timebox.Errorf(timebox.EINVALID, "slack.users: %q is not a Slack user id (like U0123ABC: the person's profile → ⋮ → Copy member ID)", timebox.Clip(id))
		} else if user == "" {
			return nil, timebox.Errorf(timebox.EINVALID, "slack.users: %s maps to no Timebox user", id)
		}
		s.users[id] = user
		if s.byName[user] == "" {
			s.byName[user] = id
		}
	}
	if s.apiURL, err = checkAPIURL(c.APIURL); err != nil {
		return nil, err
	}
	s.api = slack.New(s.token, slack.OptionAPIURL(s.apiURL.String()), slack.OptionHTTPClient(env.Client))
	return s, nil
}

// checkAPIURL returns the Web API's base URL: https, or http on loopback (tests), ending in /.
func checkAPIURL(raw string) (*url.URL, error) {
	if raw == "" {
		raw = slack.APIURL
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, timebox.Errorf(timebox.EINVALID, "slack.api_url: %q is not a URL like https://slack.com/api/", timebox.Clip(raw))
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, timebox.Errorf(timebox.EINVALID, "slack.api_url: %q must be https (the bot token goes there)", timebox.Clip(raw))
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// interactive reports whether messages carry Approve / Deny buttons: there is a signing
// secret to check the clicks with and a service to decide them.
func (s *Slack) interactive() bool { return s.signingSecret != "" && s.env.Service != nil }

// Reaches reports whether u can get a direct message: a Slack id in slack.users, or an
// e-mail to look the Slack account up by.
func (s *Slack) Reaches(u *timebox.User) bool {
	return u != nil && (s.byName[u.Name] != "" || u.Email != "")
}

// Send posts m to the shared channel (updating the request's message in place when m.Thread
// is set, with a reply in its thread for the history) or, when m.Recipient is set, to that
// person directly. The Result's Thread is "CHANNEL:TS" of the shared message.
func (s *Slack) Send(ctx context.Context, m *Message) (Result, error) {
	if m.Delivery == nil {
		m.Delivery = &timebox.Delivery{}
	}
	if m.Summary == nil {
		m.Summary = summarize(m, s.env.ConsoleURL)
	}
	if m.Recipient != nil {
		return s.sendDirect(ctx, m)
	}
	if s.channel == "" {
		return Result{}, Permanent(errors.New("slack: slack.channel is not set, so this channel sends direct messages only: give the shared channel's id or route it with shared: false"))
	}
	if m.Thread != "" {
		ch, ts := s.splitThread(m.Thread)
		res, err := s.update(ctx, m, ch, ts)
		if slackErrorIs(err, "message_not_found") {
			s.log.Warn("slack: the request's message is gone; posting a new one", "request", m.Delivery.RequestID, "ts", ts)
		} else {
			return res, err
		}
	}
	ts, err := s.post(ctx, m, s.channel, "", s.blocks(m, s.interactive()))
	if err != nil {
		return Result{}, err
	}
	res := Result{ExternalID: ts}
	if m.Request != nil || m.Delivery.RequestID != "" {
		res.Thread = s.channel + ":" + ts
	}
	return res, nil
}

// update rewrites the request's message ch/ts with its current state, then replies in its
// thread with what happened.
func (s *Slack) update(ctx context.Context, m *Message, ch, ts string) (Result, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(slackEscape(m.Summary.Title), false),
		slack.MsgOptionBlocks(s.blocks(m, s.interactive())...)}
	if _, _, _, err := s.api.UpdateMessageContext(ctx, ch, ts, opts...); err != nil {
		return Result{}, s.apiError("chat.update", err)
	}
	reply, err := s.post(ctx, m, ch, ts, nil)
	if err != nil {
		return Result{}, err
	}
	return Result{ExternalID: reply, Thread: ch + ":" + ts}, nil
}

// sendDirect writes m to its recipient: the Slack account in slack.users, or the one with
// the recipient's e-mail. Approvers get the buttons; the requester does not.
func (s *Slack) sendDirect(ctx context.Context, m *Message) (Result, error) {
	uid, err := s.slackUser(ctx, m.Recipient)
	if err != nil {
		return Result{}, err
	}
	im, _, _, err := s.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{uid}, ReturnIM: true})
	if err != nil {
		return Result{}, s.apiError("conversations.open", err)
	}
	buttons := s.interactive() && m.Request != nil && m.Recipient.Name != m.Request.Requester
	ts, err := s.post(ctx, m, im.ID, "", s.blocks(m, buttons))
	return Result{ExternalID: ts}, err
}

// post posts m to ch (in thread ts when set: a short reply) with the delivery's key in its
// metadata. When an earlier attempt may have reached Slack, it first looks for a message
// with that key and adopts it instead.
func (s *Slack) post(ctx context.Context, m *Message, ch, thread string, blocks []slack.Block) (string, error) {
	d := m.Delivery
	if uncertain(d) {
		if ts, err := s.find(ctx, ch, thread, d); err != nil || ts != "" {
			if ts != "" && thread == "" {
				// It was posted with the state of then: show the state of now.
				if _, _, _, err := s.api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText(slackEscape(m.Summary.Title), false),
					slack.MsgOptionBlocks(blocks...)); err != nil {
					return "", s.apiError("chat.update", err)
				}
			}
			return ts, err
		}
	}
	opts := []slack.MsgOption{slack.MsgOptionDisableLinkUnfurl(), slack.MsgOptionDisableMediaUnfurl(),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: metadataType, EventPayload: map[string]any{
			"key": d.Key, "kind": string(m.Kind), "request": d.RequestID}})}
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread), slack.MsgOptionText(replyText(m.Summary), false))
	} else {
		opts = append(opts, slack.MsgOptionText(slackEscape(m.Summary.Title), false), slack.MsgOptionBlocks(blocks...))
	}
	_, ts, err := s.api.PostMessageContext(ctx, ch, opts...)
	if err != nil {
		return "", s.apiError("chat.postMessage", err)
	}
	return ts, nil
}

// uncertain reports whether an earlier attempt of d may have reached Slack: the server
// stopped while sending it, or an attempt failed (perhaps after Slack took the message).
func uncertain(d *timebox.Delivery) bool {
	return d.Status == timebox.DeliverySending || d.Attempts > 1 || d.LastError != ""
}

// splitThread returns the channel and ts of a Thread ("CHANNEL:TS", or a bare ts of the
// configured channel).
func (s *Slack) splitThread(thread string) (ch, ts string) {
	if ch, ts, ok := strings.Cut(thread, ":"); ok {
		return ch, ts
	}
	return s.channel, thread
}

// retryableSlackErrors are the Web API's errors that a later attempt may not get; every
// other ok:false answer (channel_not_found, not_in_channel, invalid_auth, missing_scope,
// invalid_blocks…) needs a person to fix something.
var retryableSlackErrors = map[string]bool{"ratelimited": true, "internal_error": true, "fatal_error": true,
	"service_unavailable": true, "request_timeout": true, "timeout": true}

var slackHints = map[string]string{
	"channel_not_found": "the bot cannot see slack.channel: check the id, and invite the app to a private channel",
	"not_in_channel":    "invite the app to the channel (/invite @app)",
	"invalid_auth":      "slack.token is not valid for this workspace",
	"not_authed":        "slack.token is not valid for this workspace",
	"token_revoked":     "slack.token was revoked: reinstall the app and update the secret",
	"account_inactive":  "slack.token belongs to a deactivated app or user",
	"is_archived":       "the channel is archived",
	"users_not_found":   "no Slack account has this person's e-mail",
}

// apiError turns a slack-go error into one for the outbox: Permanent for answers a retry
// cannot change, RetryAfter for a 429, retryable otherwise. It never holds the token.
func (s *Slack) apiError(method string, err error) error {
	var rate *slack.RateLimitedError
	var api slack.SlackErrorResponse
	var status slack.StatusCodeError
	switch {
	case errors.As(err, &rate):
		return RetryAfter(rate.RetryAfter, fmt.Errorf("slack %s: rate limited (HTTP 429), retry after %s", method, rate.RetryAfter))
	case errors.As(err, &api):
		msg := "slack " + method + ": " + timebox.Clip(api.Err)
		if hint := slackHints[api.Err]; hint != "" {
			msg += " (" + hint + ")"
		} else if api.Err == "missing_scope" && api.Needed != "" {
			msg += " (add the scope " + timebox.Clip(api.Needed) + " to the app and reinstall it)"
		}
		if retryableSlackErrors[api.Err] {
			return &slackCallError{api.Err, msg}
		}
		return Permanent(&slackCallError{api.Err, msg})
	case errors.As(err, &status):
		return HTTPError("slack "+method, status.Code, "", "")
	}
	return fmt.Errorf("slack %s: %s", method, timebox.Scrub(err.Error(), []string{s.token, s.signingSecret}))
}

// slackCallError is an ok:false answer of the Web API: its error code and the message for
// admins.
type slackCallError struct{ code, msg string }

func (e *slackCallError) Error() string { return e.msg }

// slackErrorIs reports whether err (from slack-go, or from apiError) is the Web API's error code.
func slackErrorIs(err error, code string) bool {
	var api slack.SlackErrorResponse
	var call *slackCallError
	return errors.As(err, &api) && api.Err == code || errors.As(err, &call) && call.code == code
}
