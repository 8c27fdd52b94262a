package timebox

import (
	"context"
	"strings"
	"time"
)

// GrantStatus is where a grant's materialisation on the database stands.
type GrantStatus string

// Grant statuses. Creating and revoking are intents recorded before the database is touched.
const (
	GrantCreating GrantStatus = "creating" // intent stored; the principal may or may not exist yet
	GrantActive   GrantStatus = "active"   // the database confirmed the access exists
	GrantRevoking GrantStatus = "revoking" // intent stored; removal under way or retrying
	GrantRevoked  GrantStatus = "revoked"  // the database confirmed the removal
)

// Grant is the materialisation of a request on its database.
type Grant struct {
	RequestID string `json:"-"`
	Server    string `json:"server"`
	Principal string `json:"principal"`
	// TargetDatabase is the database's name on the server, kept so that the access can be
	// removed even after the database left the configuration.
	TargetDatabase string      `json:"target_database"`
	Method         string      `json:"method"`
	Status         GrantStatus `json:"status"`
	// Roles are the database roles granted to the principal.
	Roles []string `json:"roles"`
	// Privileges are granted on TargetDatabase (engine mysql).
	Privileges []string `json:"privileges,omitempty"`
	// Tables are the ad-hoc table grants of the principal (ephemeral logins only).
	Tables []TableGrant `json:"tables,omitempty"`
	// ValidUntil is the database-side expiry of the principal's password.
	ValidUntil time.Time `json:"valid_until"`
	// SealedPassword is the principal's password, encrypted with the server's secret key.
	SealedPassword []byte    `json:"-"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"last_error,omitempty"`
	LastAttemptAt  time.Time `json:"last_attempt_at,omitzero"`
	NextAttemptAt  time.Time `json:"next_attempt_at,omitzero"`
	// Outcome records how the removal ended, e.g. "dropped" or why the role was kept NOLOGIN;
	// while the grant is live, NoBackstopPrefix and why its access has no database-side end
	// (see NoBackstop), when the engine said so at activation.
	Outcome string `json:"outcome,omitempty"`
	// Intended authenticates what the scheduler planned for the grant (see Intent).
	Intended  Proof     `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NoBackstopPrefix starts the Outcome of a live grant whose access has no database-side end
// (BackstopReporter): nothing on the database ends it while Timebox is down.
const NoBackstopPrefix = "no backstop: "

// NoBackstop returns why g's access has no database-side end, as the engine reported it at
// activation, or "" when it has one (or g is nil or removed).
func (g *Grant) NoBackstop() string {
	if g == nil || g.Status == GrantRevoked || !strings.HasPrefix(g.Outcome, NoBackstopPrefix) {
		return ""
	}
	return strings.TrimPrefix(g.Outcome, NoBackstopPrefix)
}

// GrantPlan is exactly what an engine must make exist, or remove, on one server.
type GrantPlan struct {
	Method    string
	Principal string // the role or user name to create
	Password  string // plaintext; never logged, never in an error
	Database  string // the database's name on the server
	Roles     []string
	// Privileges are granted on Database only (engine mysql: e.g. SELECT, INSERT), besides
	// the roles.
	Privileges []string
	// ValidUntil is the end of the window: the database refuses the login after it.
	ValidUntil time.Time
	// Keep lists, for a removal by method role_membership, the roles and databases that
	// other live grants of the same login still need: they are not revoked.
	Keep, KeepDatabases []string
	// KeepPrivileges lists, for such a removal, the privileges on Database that other live
	// grants of the login still need (engine mysql).
	KeepPrivileges []string
	// Tables are ad-hoc grants on single tables of Database, besides (usually instead of)
	// roles: exactly these operations, on these columns when Columns is set. Only with
	// MethodEphemeralLogin.
	Tables []TableGrant
}

// TableGrant is one table of an ad-hoc request: the operations allowed on it and, when
// Columns is set, the columns they are limited to (GRANT SELECT (a, b) ON t).
type TableGrant struct {
	// Schema is the table's schema (PostgreSQL; default "public"); empty on MySQL, where the
	// table is in the request's database.
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table"`
	// Operations are among SELECT, INSERT, UPDATE, DELETE, upper case, sorted.
	Operations []string `json:"operations"`
	// Columns, when set, limit SELECT, INSERT and UPDATE to these columns (never DELETE,
	// which is a whole-row operation).
	Columns []string `json:"columns,omitempty"`
}

// RevokeResult tells how a removal ended on the database.
type RevokeResult struct {
	// Dropped is true when the principal no longer exists; false when it was kept without
	// login and memberships because something still blocks the drop (see Detail).
	Dropped       bool
	Detail        string
	SessionsEnded int
	// Absent is true when there was nothing to remove: the principal did not exist (or, for
	// a shared login, was locked already and had no session).
	Absent bool
	// HandedTo is the role that now owns what the principal left behind (a per-database owner
	// role or the quarantine role, never Timebox's admin), and Handed lists those objects.
	HandedTo string
	Handed   []OwnedObject
}

// OwnedObject is one object a login created and left behind, handed over at its removal.
type OwnedObject struct {
	// Kind is what the object is: table, view, materialized view, sequence, function,
	// procedure, aggregate, type, schema, large object, event trigger…
	Kind   string `json:"kind"`
	Schema string `json:"schema,omitempty"`
	Name   string `json:"name"`
	// Database is the database it lives in.
	Database string `json:"database,omitempty"`
	// Risk flags what would run or read with its owner's rights: "security definer" for such
	// functions, "view" for views (they read with their owner's privileges).
	Risk string `json:"risk,omitempty"`
}

// Engine creates and removes access on one database server. Every method is idempotent, so
// re-running it after a crash finishes the job. Errors are *Error with EUNAVAILABLE when the
// server cannot be reached (the caller retries) and EINTERNAL or EINVALID otherwise; their
// messages never contain the password.
type Engine interface {
	// Grant makes the principal of p exist with exactly p's password, expiry, database
	// access and roles.
	Grant(ctx context.Context, p GrantPlan) error
	// Revoke disables p's principal, ends its sessions, drops what it owns and drops it.
	Revoke(ctx context.Context, p GrantPlan) (RevokeResult, error)
	// Extend moves the database-side expiry of p's existing principal to p.ValidUntil (the
	// PostgreSQL VALID UNTIL, the MySQL backstop event) and changes nothing else: no new
	// password, no grant, no session ended. ENOTFOUND when the principal does not exist.
	Extend(ctx context.Context, p GrantPlan) error
	// Ping checks that the server is reachable with the admin credentials.
	Ping(ctx context.Context) error
	// Close releases the engine's connections.
	Close() error
}

// Planner is implemented by engines that can show, before anything runs, the statements
// their Grant and Revoke would issue for a plan: what approvers read before they decide.
type Planner interface {
	// PlanStatements returns the statements Grant runs to create p's principal when it does
	// not exist yet, and those Revoke runs to remove it when it holds no session and owns
	// nothing, in order, with every secret replaced by '<password>'. EINVALID for a plan that
	// Grant would refuse.
	PlanStatements(p GrantPlan) (grant, revoke []string, err error)
}

// TableChecker is implemented by engines that can check an ad-hoc plan before anything is
// granted: the requester hears of a missing table when asking, not at the start of the window.
type TableChecker interface {
	// CheckTables returns EINVALID naming the first table or column of p.Tables that does
	// not exist in p.Database, or that the admin may not grant; EUNAVAILABLE when the server
	// cannot be reached.
	CheckTables(ctx context.Context, p GrantPlan) error
}

// BackstopReporter is implemented by engines whose database-side end of an access (what
// ends it while Timebox is down, such as PostgreSQL's VALID UNTIL) may be missing on a server:
// MySQL and MariaDB, where it is an event that runs only when the event scheduler is on. The
// scheduler asks it at each activation and shows the answer on the grant (NoBackstop).
type BackstopReporter interface {
	// Backstop returns, in a few words, why the access p grants has no database-side end
	// (e.g. "the event scheduler is OFF"), or "" when it has one. EUNAVAILABLE when the
	// server cannot be reached.
	Backstop(ctx context.Context, p GrantPlan) (string, error)
}

// Credentials are what a requester uses to connect while a request is active.
type Credentials struct {
	User      string    `json:"user"`
	Password  string    `json:"password"`
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	Database  string    `json:"database"`
	URI       string    `json:"uri"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ManagedPrincipal is a login that Timebox created, as found on the database itself.
type ManagedPrincipal struct {
	Name       string
	CanLogin   bool
	ValidUntil time.Time // zero when none (no expiry: "infinity" or unset)
	Roles      []string  // roles granted to it
	// Database is where to run its removal: a database it holds CONNECT on, or the admin's.
	Database string
	// Shared is true for an existing login named in the configuration (method unlock_login),
	// false for a login Timebox created.
	Shared bool
	// NoExpiry is true when the server keeps no database-side expiry that could be compared
	// with the plan (MySQL without a backstop event): ValidUntil then means nothing.
	NoExpiry bool
	// Privileges are the privileges it holds by database (engine mysql; nil when the engine
	// grants none directly), upper-case and sorted.
	Privileges map[string][]string
}

// Inventory is implemented by engines that can list the principals Timebox created on their
// server, recognised on the database itself (not by name alone). The reconciler uses it.
type Inventory interface {
	// Managed lists every principal Timebox created that still exists, and the shared logins
	// named in shared (those that exist). EUNAVAILABLE when the server cannot be reached.
	Managed(ctx context.Context, shared []string) ([]ManagedPrincipal, error)
	// PasswordWorks reports whether p's principal can log in to p.Database with p.Password;
	// false when the server refuses that password. The reconciler uses it to find a password
	// changed by hand, which the admin cannot read without being a superuser.
	PasswordWorks(ctx context.Context, p GrantPlan) (bool, error)
}

// ServerStatus is what one process knows of a database server's health and pending work.
type ServerStatus struct {
	Name   string `json:"name"`
	Engine string `json:"engine"`
	// Reachable is unknown (nil) until this process talked to the server.
	Reachable   *bool     `json:"reachable"`
	LastOKAt    time.Time `json:"last_ok_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Activating and Removing count the grants whose activation or removal is under way
	// (retrying ones included); Retrying counts those waiting after a failed attempt.
	Activating int `json:"activating"`
	Removing   int `json:"removing"`
	Retrying   int `json:"retrying"`
	Active     int `json:"active"`
	// NoBackstop counts the live grants whose access has no database-side end (see
	// Grant.NoBackstop): they outlive a Timebox outage.
	NoBackstop int `json:"no_backstop"`
	// Failing counts the active grants whose last step failed: a plan that cannot be
	// applied (its sealed password cannot be opened, say) or an expiry not yet moved to an
	// extended end. Problems has one line for each failing and each retrying grant (request
	// id, principal, last error), so that what the server's log says is here too.
	Failing  int      `json:"failing"`
	Problems []string `json:"problems,omitempty"`
}

// Status is the state of the servers as seen by one Timebox process.
type Status struct {
	// Leader is true when this process does the database work for the store; the health of
	// the servers is known only there.
	Leader  bool           `json:"leader"`
	Servers []ServerStatus `json:"servers"`
	// Tampered lists the requests found edited in the store without the key, newest first
	// (at most 100): their access was removed and nothing of the edit applied.
	Tampered []TamperedRequest `json:"tampered"`
}

// TamperedRequest is a request found edited in the store without the key.
type TamperedRequest struct {
	ID        string `json:"id"`
	Requester string `json:"requester"`
	Database  string `json:"database"`
	State     State  `json:"state"`
	// Fields names what did not verify ("decision" or "intent": no valid proof at all).
	Fields string `json:"fields"`
}

// Severities of a Finding.
const (
	SeverityOK   = "ok"
	SeverityWarn = "warn"
	SeverityFail = "FAIL"
)

// Finding is one result of an engine's Doctor: what was checked, what is wrong, and the SQL
// an administrator of the database server runs to fix it.
type Finding struct {
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

// Problems counts the findings that are failures.
func Problems(findings []Finding) int {
	n := 0
	for _, f := range findings {
		if f.Severity == SeverityFail {
			n++
		}
	}
	return n
}
