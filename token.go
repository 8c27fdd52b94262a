package timebox

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Token lifetimes when the configuration sets none.
const (
	DefaultTokenTTL = 30 * 24 * time.Hour
	MaxTokenTTL     = 90 * 24 * time.Hour
)

// TokenUseInterval is how stale a token's LastUsedAt may get: a request updates it only when
// it is older than this, so a busy token costs one store write a minute, not one a request.
const TokenUseInterval = time.Minute

// Token states, as listings show them.
const (
	TokenActive  = "active"
	TokenExpired = "expired"
	TokenRevoked = "revoked"
)

// TokenPolicy bounds how long API tokens live. Zero fields mean DefaultTokenTTL and
// MaxTokenTTL.
type TokenPolicy struct {
	// DefaultTTL is the lifetime of a token made without one.
	DefaultTTL time.Duration
	// MaxTTL is the longest lifetime a token may be given. Tokens stored without an expiry
	// (made before tokens expired) expire MaxTTL after they were made.
	MaxTTL time.Duration
}

func (p TokenPolicy) defaultTTL() time.Duration {
	if p.DefaultTTL > 0 {
		return p.DefaultTTL
	}
	return min(DefaultTokenTTL, p.maxTTL())
}

func (p TokenPolicy) maxTTL() time.Duration {
	if p.MaxTTL > 0 {
		return p.MaxTTL
	}
	return MaxTokenTTL
}

// Validate returns EINVALID when a lifetime is negative or the default exceeds the maximum.
func (p TokenPolicy) Validate() error {
	switch {
	case p.DefaultTTL < 0 || p.MaxTTL < 0:
		return Errorf(EINVALID, "tokens: default_ttl and max_ttl must be positive")
	case p.defaultTTL() > p.maxTTL():
		return Errorf(EINVALID, "tokens: default_ttl %s is longer than max_ttl %s", durationText(p.defaultTTL()), durationText(p.maxTTL()))
	}
	return nil
}

// State returns whether t is active, expired or revoked at now.
func (t *Token) State(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return TokenRevoked
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return TokenExpired
	}
	return TokenActive
}

// expiry fills in the expiry of a token stored without one.
func (p TokenPolicy) expiry(t *Token) *Token {
	if t.ExpiresAt.IsZero() {
		t.ExpiresAt = t.CreatedAt.Add(p.maxTTL())
	}
	return t
}

// newTokenHint is what every refused token's error ends with: who issues tokens, and how.
func newTokenHint(user string) string {
	if user == "" {
		user = "NAME"
	}
	return "ask an admin for a new one (timebox admin token create --user " + user + ")"
}

// UpgradeTokens is the one-time upgrade (left by a migration) that authenticates the tokens
// a store held before tokens were authenticated (AdoptTokens).
const UpgradeTokens = "tokens"

// macMessage returns what a token's MAC authenticates: who it lets in, as which stored
// secret, from when until when. Times are as the store keeps them (UTC, microseconds).
func (t *Token) macMessage() []byte {
	norm := func(v time.Time) string {
		if v.IsZero() {
			return ""
		}
		return v.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal([]string{"timebox token v1", t.ID, t.User, t.Hash, norm(t.CreatedAt), norm(t.ExpiresAt)})
	return b
}

// Sign sets t.MAC, so that a store writer without secret_key can neither make a token nor
// change its user, secret hash, creation or expiry.
func (t *Token) Sign(keys *Keyring) { t.MAC = keys.MAC(PurposeToken, t.macMessage()) }

// Verify reports whether t.MAC authenticates t with a key of keys.
func (t *Token) Verify(keys *Keyring) bool {
	return t.MAC != "" && keys.VerifyMAC(PurposeToken, t.macMessage(), t.MAC)
}

// checkToken returns EUNAUTHORIZED when t is revoked, fails its MAC with keys or is expired
// at now under p, naming when and how to get a new one.
func checkToken(t *Token, keys *Keyring, p TokenPolicy, now time.Time) error {
	switch {
	case !t.RevokedAt.IsZero():
		return Errorf(EUNAUTHORIZED, "the API token %s was revoked by %s at %s: %s", t.ID, t.RevokedBy, fmtTime(t.RevokedAt), newTokenHint(t.User))
	case t.MAC != "" && !knownKey(keys, t.MAC):
		return Errorf(EUNAUTHORIZED, "the API token %s was issued under a secret_key this server does not have (after changing secret_key, keep the old one in previous_secret_keys): %s", t.ID, newTokenHint(t.User))
	case !t.Verify(keys):
		return Errorf(EUNAUTHORIZED, "the API token %s fails its check with secret_key (its record in the store was made or edited outside Timebox): %s", t.ID, newTokenHint(t.User))
	}
	if p.expiry(t).State(now) == TokenExpired {
		return Errorf(EUNAUTHORIZED, "the API token %s expired at %s: %s", t.ID, fmtTime(t.ExpiresAt), newTokenHint(t.User))
	}
	return nil
}

// IssueToken makes a token for user, named name, that lives ttl (0: the default; EINVALID
// beyond the maximum). It returns the secret, shown once, and the stored token; actor is
// recorded in the audit event. EFORBIDDEN for an unknown or disabled user.
func (s *Service) IssueToken(ctx context.Context, actor, user, name string, ttl time.Duration) (string, *Token, error) {
	switch {
	case ttl < 0:
		return "", nil, Errorf(EINVALID, "ttl: must be positive")
	case ttl == 0:
		ttl = s.Tokens.defaultTTL()
	case ttl > s.Tokens.maxTTL():
		return "", nil, Errorf(EINVALID, "ttl: %s is longer than the maximum token lifetime, tokens.max_ttl (%s)", durationText(ttl), durationText(s.Tokens.maxTTL()))
	}
	if err := checkText("name", name, false); err != nil {
		return "", nil, err
	}
	secret, t := NewToken(user, s.now())
	t.Name, t.ExpiresAt = strings.TrimSpace(name), t.CreatedAt.Add(ttl)
	t.Sign(s.Keys)
	err := s.Store.Update(ctx, func(tx Tx) error {
		if err := s.checkEnabled(tx, user); err != nil {
			return err
		} else if err := tx.CreateToken(t); err != nil {
			return err
		}
		return tx.AppendEvent(&Event{Time: t.CreatedAt, Actor: actor, Action: "token.created", Details: map[string]any{
			"user": user, "token_id": t.ID, "name": t.Name, "expires_at": t.ExpiresAt}})
	})
	if err != nil {
		return "", nil, fmt.Errorf("create token: %w", err)
	}
	return secret, t, nil
}

// ListTokens returns the tokens of user ("" for everyone), oldest first, without secrets.
// Everyone may list their own; admins and auditors anyone's (EFORBIDDEN otherwise).
func (s *Service) ListTokens(ctx context.Context, actor, user string) ([]*Token, error) {
	if user != actor && !s.Catalog.IsAdmin(actor) && !s.Catalog.IsAuditor(actor) {
		return nil, Errorf(EFORBIDDEN, "only admins and auditors may list the tokens of other users")
	}
	var toks []*Token
	err := s.Store.View(ctx, func(tx Tx) (err error) {
		toks, err = tx.FindTokens(user)
		return err
	})
	for _, t := range toks {
		s.Tokens.expiry(t)
	}
	return toks, err
}

// RevokeToken revokes token id now: its owner or an admin may. ENOTFOUND for a token that
// does not exist or that actor may not revoke (so that others' token IDs are not revealed),
// ECONFLICT when it is revoked already.
func (s *Service) RevokeToken(ctx context.Context, actor, id string) (*Token, error) {
	var t *Token
	err := s.Store.Update(ctx, func(tx Tx) (err error) {
		now := s.now()
		if t, err = tx.FindTokenByID(id); err != nil {
			return err
		} else if t.User != actor && !s.Catalog.IsAdmin(actor) {
			return Errorf(ENOTFOUND, "no token %s", Clip(id))
		} else if err := tx.RevokeToken(id, actor, now); err != nil {
			return err
		}
		t.RevokedAt, t.RevokedBy = now, actor
		return tx.AppendEvent(&Event{Time: now, Actor: actor, Action: "token.revoked", Details: map[string]any{"user": t.User, "token_id": t.ID}})
	})
	if err != nil {
		return nil, fmt.Errorf("revoke token: %w", err)
	}
	return s.Tokens.expiry(t), nil
}

// revokeUserTokens revokes every live token and ends every console session of user, by
// actor, with one audit event naming the cause (when there were tokens).
func revokeUserTokens(tx Tx, user, actor, cause string, now time.Time) error {
	if err := tx.EndWebSessions("", user, now); err != nil {
		return err
	}
	ids, err := tx.RevokeUserTokens(user, actor, now)
	if err != nil || len(ids) == 0 {
		return err
	}
	return tx.AppendEvent(&Event{Time: now, Actor: actor, Action: "token.revoked", Details: map[string]any{
		"user": user, "token_ids": ids, "cause": cause}})
}

// revokeUnusableTokens revokes the tokens of users that the configuration removed or
// disables, so that enabling them again does not bring their tokens back.
func (s *Service) revokeUnusableTokens(tx Tx) error {
	toks, err := tx.FindTokens("")
	if err != nil {
		return err
	}
	now, done := s.now(), map[string]bool{}
	for _, t := range toks {
		if done[t.User] || !t.RevokedAt.IsZero() {
			continue
		}
		done[t.User] = true
		if u, err := s.Catalog.User(t.User); err != nil {
			err = revokeUserTokens(tx, t.User, Actor, CauseUserRemoved, now)
			if err != nil {
				return err
			}
		} else if u.Disabled {
			if err := revokeUserTokens(tx, t.User, Actor, CauseUserDisabled, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// authenticate checks the token with secret in tx and returns it with its user.
func (s *Service) authenticate(tx Tx, secret string, now time.Time) (*Token, *User, error) {
	tok, err := tx.FindToken(TokenHash(secret))
	if ErrorCode(err) == ENOTFOUND {
		return nil, nil, Errorf(EUNAUTHORIZED, "the API token is not valid (unknown, expired or revoked): %s", newTokenHint(""))
	} else if err != nil {
		return nil, nil, err
	}
	u, err := s.person(tx, tok.User)
	if err != nil {
		return nil, nil, Errorf(EUNAUTHORIZED, "user %q is no longer known to Timebox, so its tokens no longer work: ask an admin to add it to the configuration", tok.User)
	} else if err := s.checkEnabled(tx, u.Name); ErrorCode(err) == EFORBIDDEN {
		return nil, nil, Errorf(EUNAUTHORIZED, "user %q is disabled, so its tokens no longer work: ask an admin (timebox users enable %s, then timebox admin token create --user %s)", tok.User, tok.User, tok.User)
	} else if err != nil {
		return nil, nil, err
	} else if err := checkToken(tok, s.Keys, s.Tokens, now); err != nil {
		return nil, nil, err
	}
	return tok, u, nil
}

// Authenticate returns the user whose API token has the given secret: EUNAUTHORIZED when the
// token is unknown, expired or revoked, or its user is no longer in the catalog or is
// disabled (in the configuration or through the API). It records when the token was used,
// with at most one store write per TokenUseInterval. The secret is never in an error.
func (s *Service) Authenticate(ctx context.Context, secret string) (*User, error) {
	var tok *Token
	var u *User
	now := s.now()
	err := s.Store.View(ctx, func(tx Tx) (err error) {
		tok, u, err = s.authenticate(tx, secret, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	if before := now.Add(-TokenUseInterval); tok.LastUsedAt.Before(before) {
		err := s.Store.Update(ctx, func(tx Tx) error { return tx.TouchToken(tok.ID, now, before) })
		if err != nil {
			return nil, fmt.Errorf("authenticate: %w", err)
		}
	}
	return u, nil
}

// AdoptTokens authenticates, once, the live tokens of a store made before tokens were
// authenticated (trust on first use: the one-time upgrade UpgradeTokens that the migration
// left); one token.adopted event lists them. Later calls, and tokens written into the store
// afterwards without a MAC, adopt nothing: those are refused. The server runs it at start,
// before it serves. It returns how many tokens it adopted.
func (s *Service) AdoptTokens(ctx context.Context) (int, error) {
	var ids []string
	err := s.Store.Update(ctx, func(tx Tx) error {
		ids = nil
		if pending, err := tx.PendingUpgrade(UpgradeTokens); err != nil || !pending {
			return err
		}
		toks, err := tx.FindTokens("")
		if err != nil {
			return err
		}
		for _, t := range toks {
			if t.MAC != "" || !t.RevokedAt.IsZero() {
				continue
			}
			t.Sign(s.Keys)
			if err := tx.SetTokenMAC(t.ID, t.MAC); err != nil {
				return err
			}
			ids = append(ids, t.ID)
		}
		if err := tx.FinishUpgrade(UpgradeTokens); err != nil || len(ids) == 0 {
			return err
		}
		return tx.AppendEvent(&Event{Time: s.now(), Actor: Actor, Action: "token.adopted", Details: map[string]any{"token_ids": ids,
			"note": "tokens of a store made before tokens were authenticated, trusted as they were at this first start (trust on first use)"}})
	})
	if err != nil {
		return 0, fmt.Errorf("authenticate the existing tokens: %w", err)
	}
	return len(ids), nil
}

// durationText writes d in whole days when it is some (30d), in Go syntax otherwise.
func durationText(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
