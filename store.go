package timebox

import (
	"context"
	"time"
)

// Store keeps all of Timebox's state. It is the only state: the scheduler rebuilds its timers
// from it after a restart.
type Store interface {
	// Update runs fn in one read-write transaction, committed when fn returns nil. Writers
	// are serialised, so the audit chain has one head.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in one read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Close closes the store.
	Close() error
}

// Tx is a transaction on the store. Methods return *Error: ENOTFOUND for a missing row,
// ECONFLICT for a duplicate or a stale version, EINTERNAL otherwise.
type Tx interface {
	Outbox
	// CreateRequest inserts a new request (Version must be 1).
	CreateRequest(r *Request) error
	// UpdateRequest stores r if the stored version is still r.Version, then increments
	// r.Version; ECONFLICT when someone else changed it first.
	UpdateRequest(r *Request) error
	// FindRequest returns one request with its grant, or ENOTFOUND.
	FindRequest(id string) (*Request, error)
	// FindRequests returns matching requests with their grants (their proofs without bodies:
	// see Proof), newest first; in due order (due_at, id) when f.DueBy is set. Writing one
	// back keeps the stored bodies.
	FindRequests(f RequestFilter) ([]*Request, error)
	// FindAccess returns the confirmed access that overlapped [f.From, f.To), most recently
	// activated first (see AccessFilter); EINVALID without a range.
	FindAccess(f AccessFilter) ([]AccessPeriod, error)
	// NextDue returns the earliest time after after at which a request is due (see
	// Request.DueAt), or zero when none is.
	NextDue(after time.Time) (time.Time, error)
	// CountRequests returns the number of requests in each state.
	CountRequests() (map[State]int, error)
	// PutGrant inserts or replaces the grant of g.RequestID.
	PutGrant(g *Grant) error
	// AppendEvent chains e to the last event (setting Seq, PrevHash, Hash) and stores it.
	AppendEvent(e *Event) error
	// FindEvents returns matching events in Seq order.
	FindEvents(f EventFilter) ([]*Event, error)
	// AuditHead returns the Seq and Hash of the last event the store recorded (0, "" when none).
	AuditHead() (int64, string, error)
	// CreateToken stores a new API token (only its hash, and its MAC).
	CreateToken(t *Token) error
	// FindToken returns the token with the given hash, or ENOTFOUND.
	FindToken(hash string) (*Token, error)
	// FindTokenByID returns the token with the given ID, or ENOTFOUND.
	FindTokenByID(id string) (*Token, error)
	// FindTokens returns the tokens of user (of everyone when user is ""), oldest first.
	FindTokens(user string) ([]*Token, error)
	// RevokeToken records that a live token was revoked by by at at, and clears its MAC;
	// ENOTFOUND when there is no such token, ECONFLICT when it was already revoked.
	RevokeToken(id, by string, at time.Time) error
	// RevokeUserTokens revokes every token of user not yet revoked and returns their IDs.
	RevokeUserTokens(user, by string, at time.Time) ([]string, error)
	// TouchToken sets a token's LastUsedAt to at when it is older than before (or unset).
	TouchToken(id string, at, before time.Time) error
	// SetTokenMAC sets the MAC of a live token that has none (the trust-on-first-use upgrade).
	SetTokenMAC(id, mac string) error
	// PendingUpgrade reports whether the one-time upgrade name (left by a migration:
	// "integrity", "tokens") is still to be done.
	PendingUpgrade(name string) (bool, error)
	// FinishUpgrade records that the upgrade name is done.
	FinishUpgrade(name string) error
	// DisableUser records that a user is disabled (replacing an earlier record).
	DisableUser(u *DisabledUser) error
	// EnableUser removes that record; ENOTFOUND when the user is not disabled.
	EnableUser(name string) error
	// DisabledUsers returns the users disabled through the API, by name.
	DisabledUsers() (map[string]*DisabledUser, error)
	// PutIdentity inserts or replaces the identity id.Name with its MAC.
	PutIdentity(id *Identity, mac string) error
	// FindIdentity returns the named identity, or ENOTFOUND.
	FindIdentity(name string) (*Identity, error)
	// FindIdentityBySubject returns the identity of issuer and subject, or ENOTFOUND.
	FindIdentityBySubject(issuer, subject string) (*Identity, error)
	// FindIdentities returns every identity by name, with their MACs (same order).
	FindIdentities() ([]*Identity, []string, error)
	// CreateWebSession stores a new console session (only its secret's hash).
	CreateWebSession(ws *WebSession) error
	// FindWebSession returns the session with the given hash, or ENOTFOUND.
	FindWebSession(hash string) (*WebSession, error)
	// TouchWebSession sets a session's LastSeenAt.
	TouchWebSession(id string, at time.Time) error
	// EndWebSessions ends the live session id, or (id "") every live session of user.
	EndWebSessions(id, user string, at time.Time) error
	// CreateOneTimeCode stores a new one-time code (only its hash); ECONFLICT when its hash
	// exists (a sign-in state already used).
	CreateOneTimeCode(c *OneTimeCode) error
	// FindOneTimeCode returns the one-time code with the given hash, or ENOTFOUND.
	FindOneTimeCode(hash string) (*OneTimeCode, error)
	// UseOneTimeCode records that the unused code hash was used at at; ENOTFOUND when there
	// is no such code, ECONFLICT when it was used already.
	UseOneTimeCode(hash string, at time.Time) error
	// DeleteOneTimeCodes removes the codes that expired before before.
	DeleteOneTimeCodes(before time.Time) error
}

// DisabledUser records who disabled a user through the API, when and why.
type DisabledUser struct {
	Name string    `json:"name"`
	By   string    `json:"by"`
	Note string    `json:"note,omitempty"`
	At   time.Time `json:"at"`
}

// Token is a user's API bearer token. Only the SHA-256 hash of the secret is stored; the
// secret itself is shown once, when the token is made, and never again.
type Token struct {
	ID   string `json:"id"`
	User string `json:"user"`
	// Name is an optional label saying what the token is for ("laptop", "ci").
	Name      string    `json:"name,omitempty"`
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the token stops working; zero for tokens made before expiries
	// existed, which expire TokenPolicy.MaxTTL after CreatedAt.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// LastUsedAt is when the token last authenticated a request, to the minute (zero: never).
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// RevokedAt and RevokedBy say when and by whom the token was revoked (zero: it was not).
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	RevokedBy string    `json:"revoked_by,omitempty"`
	// MAC authenticates ID, User, Hash, CreatedAt and ExpiresAt with a key derived from
	// secret_key (Sign); "" for a revoked token and one made before tokens were authenticated.
	MAC string `json:"-"`
}
