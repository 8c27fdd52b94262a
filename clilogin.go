package timebox

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// Kinds of one-time codes (OneTimeCode.Kind).
const (
	// CodeSignInState is the state of a sign-in through the provider, recorded when the
	// provider sends the person back, so that the same callback is refused a second time.
	CodeSignInState = "sign_in_state"
	// CodeCLILogin hands an API token to `timebox login --sso`.
	CodeCLILogin = "cli_login"
)

// CLICodeTTL is how long the one-time code of `timebox login --sso` may be exchanged.
const CLICodeTTL = 2 * time.Minute

// OneTimeCode is a single-use secret of the console's sign-in. The store keeps only the
// code's hash; a CLI code is bound to its user and to the PKCE challenge of the CLI that asked
// for it, and authenticated with secret_key.
type OneTimeCode struct {
	Hash       string
	Kind       string
	User       string
	Challenge  string // the PKCE S256 challenge (CLI codes)
	ClientName string // the host name the CLI gave (CLI codes)
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     time.Time
	MAC        string
}

func (c *OneTimeCode) macMessage() []byte {
	b, _ := json.Marshal([]string{"timebox one-time code v1", c.Hash, c.Kind, c.User, c.Challenge, c.ClientName,
		normText(c.CreatedAt), normText(c.ExpiresAt)})
	return b
}

// Lifetime is the lifetime of a token issued without one (tokens.default_ttl).
func (p TokenPolicy) Lifetime() time.Duration { return p.defaultTTL() }

// pkcePattern is what RFC 7636 allows in a code verifier (43 to 128 characters); an S256
// challenge is the 43-character base64url SHA-256 of the verifier.
var (
	pkcePattern      = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)
	challengePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	clientNameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// S256Challenge returns the PKCE S256 challenge of verifier.
func S256Challenge(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// CheckCLIRequest returns EINVALID, naming the parameter, when challenge is not a PKCE S256
// challenge or name is not a host name (letters, digits, '.', '_', '-'; at most 64).
func CheckCLIRequest(challenge, name string) error {
	switch {
	case !challengePattern.MatchString(challenge):
		return Errorf(EINVALID, "challenge: not a PKCE S256 code challenge (43 base64url characters)")
	case !clientNameRE.MatchString(name):
		return Errorf(EINVALID, "name: %q is not a host name (letters, digits, '.', '_' and '-', at most 64)", Clip(name))
	}
	return nil
}

// codeHash is the stored form of a one-time code of kind.
func codeHash(kind, code string) string { return TokenHash(kind + "\x00" + code) }

// UseSignInState records that the state of a sign-in through the provider was used; it is
// remembered until expires, when the sign-in would be refused anyway. ECONFLICT when the
// state was used already (a replayed callback), on this replica or another.
func (s *Service) UseSignInState(ctx context.Context, state string, expires time.Time) error {
	now := s.now()
	c := &OneTimeCode{Hash: codeHash(CodeSignInState, state), Kind: CodeSignInState, CreatedAt: now, ExpiresAt: expires, UsedAt: now}
	return s.Store.Update(ctx, func(tx Tx) error {
		if err := tx.DeleteOneTimeCodes(now); err != nil {
			return err
		}
		if err := tx.CreateOneTimeCode(c); ErrorCode(err) == ECONFLICT {
			return Errorf(ECONFLICT, "this sign-in was completed already (a replayed callback): start again")
		} else if err != nil {
			return err
		}
		return nil
	})
}

// CreateCLICode issues the one-time code that `timebox login --sso` on host name exchanges,
// with the verifier of challenge, for an API token of user (who is signed in to the console
// and allowed it). It lasts CLICodeTTL and works once. EINVALID for a bad challenge or name,
// EFORBIDDEN when user is unknown or disabled.
func (s *Service) CreateCLICode(ctx context.Context, user, challenge, name string) (string, time.Time, error) {
	if err := CheckCLIRequest(challenge, name); err != nil {
		return "", time.Time{}, err
	}
	if _, err := s.Catalog.User(user); err != nil {
		return "", time.Time{}, Errorf(EFORBIDDEN, "%s", ErrorMessage(err))
	}
	now := s.now()
	code := "tbc_" + RandomID(40)
	c := &OneTimeCode{Hash: codeHash(CodeCLILogin, code), Kind: CodeCLILogin, User: user, Challenge: challenge,
		ClientName: name, CreatedAt: now, ExpiresAt: now.Add(CLICodeTTL)}
	c.MAC = s.Keys.MAC(PurposeToken, c.macMessage())
	err := s.Store.Update(ctx, func(tx Tx) error {
		if err := s.checkEnabled(tx, user); err != nil {
			return err
		} else if err := tx.DeleteOneTimeCodes(now); err != nil {
			return err
		}
		return tx.CreateOneTimeCode(c)
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("cli sign-in code: %w", err)
	}
	return code, c.ExpiresAt, nil
}

// RedeemCLICode exchanges a one-time code of CreateCLICode and the PKCE verifier of its
// challenge for a new API token of the code's user (IssueToken, with the default lifetime).
// The code is spent by the first attempt, right or wrong. EUNAUTHORIZED, naming why, for an
// unknown, expired, used or tampered code or a verifier that does not match; each refusal is
// audited (user.sign_in_failed) with client.
func (s *Service) RedeemCLICode(ctx context.Context, code, verifier, client string) (string, *Token, error) {
	now := s.now()
	var c *OneTimeCode
	var refused error
	err := s.Store.Update(ctx, func(tx Tx) (err error) {
		c, err = tx.FindOneTimeCode(codeHash(CodeCLILogin, code))
		switch {
		case ErrorCode(err) == ENOTFOUND:
			c, refused = nil, Errorf(EUNAUTHORIZED, "the sign-in code is unknown (or expired long ago): run timebox login --sso again")
			return nil
		case err != nil:
			return err
		case c.Kind != CodeCLILogin || !s.Keys.VerifyMAC(PurposeToken, c.macMessage(), c.MAC):
			refused = Errorf(EUNAUTHORIZED, "the sign-in code fails its check with secret_key (made or edited outside Timebox)")
			return nil
		}
		if err := tx.UseOneTimeCode(c.Hash, now); ErrorCode(err) == ECONFLICT {
			refused = Errorf(EUNAUTHORIZED, "the sign-in code was used already: run timebox login --sso again")
			return nil
		} else if err != nil {
			return err
		}
		switch {
		case !now.Before(c.ExpiresAt):
			refused = Errorf(EUNAUTHORIZED, "the sign-in code expired at %s (it lasts %s): run timebox login --sso again", fmtTime(c.ExpiresAt), durationText(CLICodeTTL))
		case !pkcePattern.MatchString(verifier) ||
			subtle.ConstantTimeCompare([]byte(S256Challenge(verifier)), []byte(c.Challenge)) != 1:
			refused = Errorf(EUNAUTHORIZED, "the code verifier does not match the challenge the sign-in was started with (the code was sent by another program)")
		}
		return nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("cli sign-in: %w", err)
	}
	if refused != nil {
		who := ""
		if c != nil {
			who = c.User
		}
		if err := s.SignInFailed(ctx, who, "timebox login --sso: "+ErrorMessage(refused), client); err != nil {
			return "", nil, err
		}
		return "", nil, refused
	}
	return s.IssueToken(ctx, c.User, c.User, "timebox login --sso on "+c.ClientName, 0)
}
