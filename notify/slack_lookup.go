package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/timebox-dev/timebox"
)

// How far find looks for a message an earlier attempt may have posted.
const (
	findPages    = 5
	findPageSize = 200
	// emailCacheFor is how long a Slack id found by e-mail is used before it is looked up again.
	emailCacheFor = time.Hour
)

// find looks in ch (in the replies of thread, when set) for a message of this app whose
// metadata carries d's key, posted since d was made, and returns its ts ("" when there is
// none). When Slack refuses to show the history (a scope is missing), it logs that and
// returns "": a message may then be posted twice, never lost.
func (s *Slack) find(ctx context.Context, ch, thread string, d *timebox.Delivery) (string, error) {
	bot, err := s.botUserID(ctx)
	if err != nil {
		return "", err
	}
	oldest := ""
	if !d.CreatedAt.IsZero() {
		oldest = slackTS(d.CreatedAt.Add(-time.Minute))
	}
	cursor := ""
	for page := 0; page < findPages; page++ {
		var msgs []slack.Message
		var more bool
		method := "conversations.history"
		if thread != "" {
			method = "conversations.replies"
			msgs, more, cursor, err = s.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
				ChannelID: ch, Timestamp: thread, Cursor: cursor, Oldest: oldest, Limit: findPageSize, IncludeAllMetadata: true})
		} else {
			var h *slack.GetConversationHistoryResponse
			h, err = s.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
				ChannelID: ch, Cursor: cursor, Oldest: oldest, Limit: findPageSize, IncludeAllMetadata: true})
			if h != nil {
				msgs, more, cursor = h.Messages, h.HasMore, h.ResponseMetaData.NextCursor
			}
		}
		var api slack.SlackErrorResponse
		if errors.As(err, &api) {
			s.log.Warn("slack: cannot look for a message an earlier attempt may have posted; posting (perhaps again)",
				"method", method, "error", api.Err, "delivery", d.ID)
			return "", nil
		} else if err != nil {
			return "", s.apiError(method, err)
		}
		for _, msg := range msgs {
			key, _ := msg.Metadata.EventPayload["key"].(string)
			if msg.Metadata.EventType == metadataType && key == d.Key && (bot == "" || msg.User == bot) &&
				(thread == "" || msg.Timestamp != thread) {
				return msg.Timestamp, nil
			}
		}
		if !more || cursor == "" {
			break
		}
	}
	return "", nil
}

// botUserID returns the bot's own user id (auth.test, once), so that find only adopts
// messages the bot posted; "" when Slack did not say.
func (s *Slack) botUserID(ctx context.Context) (string, error) {
	if err := s.authTest(ctx); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.botUser, nil
}

// appTeam returns the workspace (and organisation, on Enterprise Grid) the app is
// installed in (auth.test, once): a clicking Slack user must belong to it.
func (s *Slack) appTeam(ctx context.Context) (team, enterprise string, err error) {
	if err := s.authTest(ctx); err != nil {
		return "", "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.team, s.enterprise, nil
}

// authTest calls auth.test the first time it is needed.
func (s *Slack) authTest(ctx context.Context) error {
	s.mu.Lock()
	done := s.authed
	s.mu.Unlock()
	if done {
		return nil
	}
	r, err := s.api.AuthTestContext(ctx)
	if err != nil {
		return s.apiError("auth.test", err)
	}
	s.mu.Lock()
	s.botUser, s.team, s.enterprise, s.authed = r.UserID, r.TeamID, r.EnterpriseID, true
	s.mu.Unlock()
	return nil
}

// slackUser returns the Slack id of u: slack.users, else the account with u's e-mail.
func (s *Slack) slackUser(ctx context.Context, u *timebox.User) (string, error) {
	if id := s.byName[u.Name]; id != "" {
		return id, nil
	} else if u.Email == "" {
		return "", Permanent(fmt.Errorf("slack: %s has no e-mail and no Slack id in slack.users", u.Name))
	}
	email := strings.ToLower(u.Email)
	s.mu.Lock()
	c, ok := s.byEmail[email]
	s.mu.Unlock()
	if ok && s.now().Sub(c.at) < emailCacheFor {
		return c.id, nil
	}
	su, err := s.api.GetUserByEmailContext(ctx, u.Email)
	if slackErrorIs(err, "users_not_found") {
		return "", Permanent(fmt.Errorf("slack users.lookupByEmail: no Slack account has the e-mail of %s: add their Slack id to slack.users", u.Name))
	} else if err != nil {
		return "", s.apiError("users.lookupByEmail", err)
	} else if su.Deleted || su.IsBot {
		return "", Permanent(fmt.Errorf("slack users.lookupByEmail: the Slack account with the e-mail of %s is deactivated or a bot", u.Name))
	}
	s.mu.Lock()
	s.byEmail[email] = cachedID{su.ID, s.now()}
	s.mu.Unlock()
	return su.ID, nil
}

// slackTS is t as a Slack timestamp (seconds.microseconds).
func slackTS(t time.Time) string {
	return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
}

// timeboxUser returns the Timebox user who clicked: the one slack.users names for the Slack
// id, else the one person whose e-mail is the confirmed e-mail of the Slack profile (a
// member of this workspace or its organisation, not a bot, not deactivated, not a Slack
// Connect guest of another organisation). When there is none it returns why, for the person.
func (s *Slack) timeboxUser(ctx context.Context, cb *slack.InteractionCallback) (user, refusal string) {
	id := cb.User.ID
	if name := s.users[id]; name != "" {
		return name, ""
	}
	const unknown = "Timebox does not know your Slack account (%s): %s. Ask an admin to add your Slack id to slack.users, or decide in the Timebox console."
	su, err := s.api.GetUserInfoContext(ctx, id)
	if err != nil {
		s.log.Warn("slack: cannot look up the clicking user", "slack_user", id, "error", s.apiError("users.info", err))
		return "", fmt.Sprintf("Timebox could not look up your Slack account (%s): try again, or decide in the Timebox console.", id)
	}
	// The payload's team is where the click came from (in a Slack Connect channel, another
	// organisation): the clicking user must belong to the app's own workspace or organisation.
	team, enterprise, err := s.appTeam(ctx)
	if err != nil {
		s.log.Warn("slack: cannot look up the app's workspace", "error", err)
		return "", fmt.Sprintf("Timebox could not look up your Slack account (%s): try again, or decide in the Timebox console.", id)
	}
	sameOrg := team != "" && su.TeamID == team ||
		enterprise != "" && (su.Enterprise.EnterpriseID == enterprise || su.TeamID == enterprise)
	email := strings.TrimSpace(su.Profile.Email)
	switch {
	case su.Deleted || su.IsBot:
		return "", fmt.Sprintf(unknown, id, "it is deactivated or a bot")
	case su.IsStranger || !sameOrg:
		return "", fmt.Sprintf(unknown, id, "it belongs to another workspace")
	case email == "":
		return "", fmt.Sprintf(unknown, id, "your profile shows no e-mail (the app needs the users:read.email scope)")
	case !su.IsEmailConfirmed:
		return "", fmt.Sprintf(unknown, id, "the e-mail of your profile is not confirmed")
	}
	var found []string
	for _, p := range s.env.Service.Catalog.People() {
		if p.Email != "" && asciiLower(strings.TrimSpace(p.Email)) == asciiLower(email) {
			found = append(found, p.Name)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Sprintf(unknown, id, "no Timebox user has the e-mail "+email)
	case 1:
		return found[0], ""
	}
	return "", fmt.Sprintf(unknown, id, "several Timebox users have the e-mail "+email)
}

// asciiLower lower-cases the ASCII letters of s only: e-mail addresses are compared without
// Unicode case folding, which would make "\u017fam@" (long s) the same as "sam@".
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
