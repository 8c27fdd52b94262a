package timebox

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Console session lifetimes when the configuration sets none.
const (
	DefaultSessionIdle     = 30 * time.Minute
	DefaultSessionAbsolute = 12 * time.Hour
	// SessionTouchInterval is how stale a session's LastSeenAt may get (one store write a
	// minute at most for a busy session); the idle timeout is measured from it.
	SessionTouchInterval = time.Minute
)

// Ways a console session was signed in, as WebSession.Via records them.
const (
	ViaOIDC = "oidc"
	ViaDev  = "dev" // timebox dev's one-click sign-in; never in timebox server
)

// SessionPolicy bounds console sessions: Idle without use, Absolute from sign-in.
type SessionPolicy struct {
	Idle     time.Duration
	Absolute time.Duration
}

func (p SessionPolicy) idle() time.Duration {
	if p.Idle > 0 {
		return p.Idle
	}
	return DefaultSessionIdle
}

func (p SessionPolicy) absolute() time.Duration {
	if p.Absolute > 0 {
		return p.Absolute
	}
	return DefaultSessionAbsolute
}

// WebSession is a signed-in console session. The cookie carries its secret; the store keeps
// only the secret's hash, and a MAC over who it lets in until when.
type WebSession struct {
	ID         string    `json:"id"`
	Hash       string    `json:"-"`
	User       string    `json:"user"`
	Via        string    `json:"via"`
	Client     string    `json:"client,omitempty"` // the address it signed in from
	CSRF       string    `json:"-"`                // the token every state-changing form carries
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	MAC        string    `json:"-"`
}

func (ws *WebSession) macMessage() []byte {
	b, _ := json.Marshal([]string{"timebox web session v1", ws.ID, ws.User, ws.Hash, ws.CSRF, ws.Via,
		normText(ws.CreatedAt), normText(ws.ExpiresAt)})
	return b
}

func normText(v time.Time) string {
	if v.IsZero() {
		return ""
	}
	return v.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// identityMessage is what an identity's MAC authenticates: the name, whose it is, and the
// groups that decide what it may approve.
func identityMessage(id *Identity) []byte {
	groups := slices.Clone(id.Groups)
	slices.Sort(groups)
	b, _ := json.Marshal(struct {
		V, Name, Issuer, Subject string
		Groups                   []string
	}{"timebox identity v1", id.Name, id.Issuer, id.Subject, groups})
	return b
}

// SignIn records that the person id signed in (via ViaOIDC or ViaDev, from client) and
// starts a console session for them. It returns the session's secret, for the cookie, and
// the session. The identity's name is bound to its issuer and subject at the first sign-in:
// EFORBIDDEN when another identity holds the name, when the user is disabled, or when a
// configuration user of that name has an e-mail address the provider's does not match.
// For ViaDev, id needs only Name (a configuration user).
func (s *Service) SignIn(ctx context.Context, id *Identity, via, client string) (string, *WebSession, error) {
	now := s.now()
	secret := "tbs_" + RandomID(40)
	ws := &WebSession{ID: RandomID(12), Hash: TokenHash(secret), User: id.Name, Via: via, Client: Clip(client),
		CSRF: RandomID(32), CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.Sessions.absolute())}
	ws.MAC = s.Keys.MAC(PurposeToken, ws.macMessage())
	var stored *Identity
	err := s.Store.Update(ctx, func(tx Tx) error {
		details := map[string]any{"user": id.Name, "via": via, "session_id": ws.ID, "client": ws.Client}
		if via == ViaOIDC {
			var err error
			if stored, err = s.putIdentity(tx, id, now); err != nil {
				return err
			}
			details["groups"] = stored.Groups
			details["issuer"] = stored.Issuer
		} else if _, err := s.Catalog.User(id.Name); err != nil {
			return Errorf(EFORBIDDEN, "sign-in refused: %s", ErrorMessage(err))
		}
		enabled := s.checkEnabled
		if via == ViaOIDC {
			enabled = s.checkNotDisabled // at a first sign-in the directory does not know them yet
		}
		if err := enabled(tx, id.Name); err != nil {
			return Errorf(EFORBIDDEN, "sign-in refused: %s", ErrorMessage(err))
		}
		if err := tx.CreateWebSession(ws); err != nil {
			return err
		}
		return tx.AppendEvent(&Event{Time: now, Actor: id.Name, Action: "user.signed_in", Details: details})
	})
	if err != nil {
		return "", nil, fmt.Errorf("sign in: %w", err)
	}
	if stored != nil && s.Catalog.Directory != nil {
		s.Catalog.Directory.Put(stored)
	}
	return secret, ws, nil
}

// putIdentity binds id's name to its issuer and subject (first sign-in) or updates what the
// provider says of it now, checking the binding.
func (s *Service) putIdentity(tx Tx, id *Identity, now time.Time) (*Identity, error) {
	if _, err := NormalizeUserName(id.Name); err != nil {
		return nil, Errorf(EFORBIDDEN, "sign-in refused: %s", ErrorMessage(err))
	}
	if cu := s.configUser(id.Name); cu != nil && cu.Email != "" && !strings.EqualFold(cu.Email, id.Email) {
		return nil, Errorf(EFORBIDDEN, "sign-in refused: the configuration's user %q has the e-mail address %s, and the provider's identity has %q", id.Name, cu.Email, Clip(id.Email))
	}
	old, err := tx.FindIdentity(id.Name)
	switch {
	case ErrorCode(err) == ENOTFOUND:
		if other, err := tx.FindIdentityBySubject(id.Issuer, id.Subject); err == nil {
			return nil, Errorf(EFORBIDDEN, "sign-in refused: this provider account is already Timebox user %q; its username claim now says %q (an admin can rename it only by editing the store)", other.Name, id.Name)
		} else if ErrorCode(err) != ENOTFOUND {
			return nil, err
		}
		old = nil
	case err != nil:
		return nil, err
	case old.Issuer != id.Issuer || old.Subject != id.Subject:
		return nil, Errorf(EFORBIDDEN, "sign-in refused: the Timebox user name %q belongs to another provider account", id.Name)
	}
	n := *id
	n.Groups = slices.Clone(id.Groups)
	slices.Sort(n.Groups)
	n.Groups = slices.Compact(n.Groups)
	n.LastSignIn, n.FirstSeen = now, now
	if old != nil {
		n.FirstSeen = old.FirstSeen
	}
	if err := tx.PutIdentity(&n, s.Keys.MAC(PurposeToken, identityMessage(&n))); err != nil {
		return nil, err
	}
	return &n, nil
}

// checkNotDisabled is checkEnabled for a person the directory may not know yet: EFORBIDDEN
// when the configuration or the API disabled user.
func (s *Service) checkNotDisabled(tx Tx, user string) error {
	if cu := s.configUser(user); cu != nil && cu.Disabled {
		return Errorf(EFORBIDDEN, "user %q is disabled in the configuration", user)
	}
	return disabledThroughAPI(tx, user)
}

func (s *Service) configUser(name string) *User {
	for i := range s.Catalog.Users {
		if s.Catalog.Users[i].Name == name {
			return &s.Catalog.Users[i]
		}
	}
	return nil
}

// LoadDirectory reads the identities from the store into the catalog's directory (when it
// has one), skipping those whose MAC fails (edited in the store): it returns their names.
func (s *Service) LoadDirectory(ctx context.Context) (rejected []string, err error) {
	if s.Catalog.Directory == nil {
		return nil, nil
	}
	var ids []*Identity
	err = s.Store.View(ctx, func(tx Tx) error {
		all, macs, err := tx.FindIdentities()
		for i, id := range all {
			if s.Keys.VerifyMAC(PurposeToken, identityMessage(id), macs[i]) {
				ids = append(ids, id)
			} else {
				rejected = append(rejected, id.Name)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.Catalog.Directory.Replace(ids)
	return rejected, nil
}

// person returns the named user like Catalog.User, and when the directory does not know the
// name, looks for an identity in the store (one that signed in through another replica
// sharing the store) and adds it to the directory when its MAC holds.
func (s *Service) person(tx Tx, name string) (*User, error) {
	u, err := s.Catalog.User(name)
	if ErrorCode(err) != ENOTFOUND || s.Catalog.Directory == nil {
		return u, err
	}
	all, macs, ferr := tx.FindIdentities()
	if ferr != nil {
		return nil, ferr
	}
	for i, id := range all {
		if id.Name == name && s.Keys.VerifyMAC(PurposeToken, identityMessage(id), macs[i]) {
			s.Catalog.Directory.Put(id)
			return s.Catalog.User(name)
		}
	}
	return nil, err
}

// Identities returns everyone who signed in through the provider (admins and auditors only).
func (s *Service) Identities(ctx context.Context, actor string) ([]*Identity, error) {
	if !s.Catalog.IsAdmin(actor) && !s.Catalog.IsAuditor(actor) {
		return nil, Errorf(EFORBIDDEN, "only admins and auditors may list who signed in")
	}
	var out []*Identity
	err := s.Store.View(ctx, func(tx Tx) (err error) {
		out, _, err = tx.FindIdentities()
		return err
	})
	return out, err
}

// WebSession returns the live session whose cookie carries secret, with its user. It
// records use at most once per SessionTouchInterval. EUNAUTHORIZED, naming why, when the
// session is unknown, ended, idle too long, past its absolute expiry, fails its MAC, or its
// user is unknown or disabled.
func (s *Service) WebSession(ctx context.Context, secret string) (*WebSession, *User, error) {
	return s.webSession(ctx, secret, true)
}

// PeekWebSession is WebSession without recording use: for what a page does on its own (a
// live update, the event stream's checks), which must not keep an idle session alive.
func (s *Service) PeekWebSession(ctx context.Context, secret string) (*WebSession, *User, error) {
	return s.webSession(ctx, secret, false)
}

func (s *Service) webSession(ctx context.Context, secret string, touch bool) (*WebSession, *User, error) {
	now := s.now()
	var ws *WebSession
	var u *User
	err := s.Store.View(ctx, func(tx Tx) (err error) {
		ws, err = tx.FindWebSession(TokenHash(secret))
		if ErrorCode(err) == ENOTFOUND {
			return Errorf(EUNAUTHORIZED, "you are not signed in (the session is unknown)")
		} else if err != nil {
			return err
		}
		switch {
		case !ws.EndedAt.IsZero():
			return Errorf(EUNAUTHORIZED, "you signed out, or the session was ended, at %s", fmtTime(ws.EndedAt))
		case !s.Keys.VerifyMAC(PurposeToken, ws.macMessage(), ws.MAC):
			return Errorf(EUNAUTHORIZED, "the session fails its check with secret_key (made or edited outside Timebox)")
		case !now.Before(ws.ExpiresAt):
			return Errorf(EUNAUTHORIZED, "your session expired at %s (sessions last %s): sign in again", fmtTime(ws.ExpiresAt), durationText(s.Sessions.absolute()))
		case !now.Before(ws.LastSeenAt.Add(s.Sessions.idle())):
			return Errorf(EUNAUTHORIZED, "your session ended after %s without use: sign in again", durationText(s.Sessions.idle()))
		}
		if u, err = s.person(tx, ws.User); err != nil {
			return Errorf(EUNAUTHORIZED, "user %q is no longer known to Timebox", ws.User)
		} else if err := s.checkEnabled(tx, u.Name); ErrorCode(err) == EFORBIDDEN {
			return Errorf(EUNAUTHORIZED, "user %q is disabled", ws.User)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if before := now.Add(-SessionTouchInterval); touch && ws.LastSeenAt.Before(before) {
		if err := s.Store.Update(ctx, func(tx Tx) error { return tx.TouchWebSession(ws.ID, now) }); err != nil {
			return nil, nil, fmt.Errorf("session: %w", err)
		}
		ws.LastSeenAt = now
	}
	return ws, u, nil
}

// SignOut ends the session whose cookie carries secret (nothing when it is unknown or has
// ended already).
func (s *Service) SignOut(ctx context.Context, secret string) error {
	now := s.now()
	return s.Store.Update(ctx, func(tx Tx) error {
		ws, err := tx.FindWebSession(TokenHash(secret))
		if ErrorCode(err) == ENOTFOUND {
			return nil
		} else if err != nil {
			return err
		} else if !ws.EndedAt.IsZero() {
			return nil
		}
		if err := tx.EndWebSessions(ws.ID, "", now); err != nil {
			return err
		}
		return tx.AppendEvent(&Event{Time: now, Actor: ws.User, Action: "user.signed_out", Details: map[string]any{"session_id": ws.ID}})
	})
}

// SignInFailed records a refused sign-in (a bad state, a replayed code, a token that does
// not verify, a rate limit) in the audit log. who is the claimed user, if known.
func (s *Service) SignInFailed(ctx context.Context, who, reason, client string) error {
	now := s.now()
	actor := who
	if actor == "" {
		actor = "anonymous"
	}
	return s.Store.Update(ctx, func(tx Tx) error {
		return tx.AppendEvent(&Event{Time: now, Actor: Clip(actor), Action: "user.sign_in_failed",
			Details: map[string]any{"reason": clipReason(reason), "client": Clip(client)}})
	})
}

// clipReason bounds a refusal's reason for the audit log. Reasons are Timebox's own
// sentences (user-supplied values in them are clipped already), longer than Clip allows.
func clipReason(reason string) string {
	const max = 400
	if len(reason) <= max {
		return reason
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut] + "…"
}
