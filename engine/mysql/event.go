package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// The backstop of an access is a one-shot event in EventSchema, scheduled at the window's
// end, that locks the account, kills its sessions and, for an ephemeral login, drops it. It
// holds when Timebox is down, but only where the event scheduler runs (event_scheduler=ON,
// off by default) and the admin holds EVENT on EventSchema; Grant goes on without it
// otherwise, and Doctor says why.

// eventLayout formats the time of a backstop event; the engine's sessions run in UTC.
const eventLayout = "2006-01-02 15:04:05"

// backstopTime returns the time of the backstop event for a window ending at t: t rounded up
// to the second, the scheduler's precision. The backstop is for when Timebox is down (Timebox
// itself removes the access at the end exactly); rounding down would make it cut every window
// short by up to a second, ahead of Timebox, as the first benchmark showed (sessions killed
// 0.4 s before their end at the median).
func backstopTime(t time.Time) time.Time {
	u := t.UTC()
	if r := u.Truncate(time.Second); !r.Equal(u) {
		return r.Add(time.Second)
	}
	return u
}

// eventName returns the name of the backstop event of the account called user: "tbx_end_"
// and the name itself when it is made of lower-case ASCII letters, digits and underscores only
// (event names are case-insensitive, user names are not), and otherwise "tbx_endh_" and a hash
// of the name. Either way it fits in 64 characters.
func eventName(user string) string {
	plain := len(user) <= 32
	for i := 0; i < len(user) && plain; i++ {
		c := user[i]
		plain = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
	}
	if plain && user != "" {
		return "tbx_end_" + user
	}
	sum := sha256.Sum256([]byte(user))
	return "tbx_endh_" + hex.EncodeToString(sum[:16])
}

// backstopState tells whether the engine can place backstop events: the event scheduler is
// ON, EventSchema exists and the admin holds EVENT on it (or globally). When it cannot, why
// says so in words.
type backstopState struct {
	ok        bool
	scheduler string // @@GLOBAL.event_scheduler: ON, OFF or DISABLED
	why       string
}

// backstop reads the backstop state, in one statement prepared once per engine: Grant and
// Extend read it each time, since the event scheduler can be switched at any moment.
func (e *Engine) backstop(ctx context.Context, db *sql.DB, f *flavor) (backstopState, error) {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	st, err := e.prepared(ctx, db, `SELECT @@GLOBAL.event_scheduler,
		(SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?),
		(SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ? AND TABLE_SCHEMA = ? AND PRIVILEGE_TYPE = 'EVENT') +
		(SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ? AND PRIVILEGE_TYPE = 'EVENT')`)
	var s backstopState
	if err != nil {
		return s, err
	}
	var schemas, privileged int
	g := f.grantee()
	if err := st.QueryRowContext(ctx, e.EventSchema, g, dbPattern(e.EventSchema), g).Scan(&s.scheduler, &schemas, &privileged); err != nil {
		return s, err
	}
	switch {
	case !strings.EqualFold(s.scheduler, "ON"):
		s.why = fmt.Sprintf("the event scheduler is %s", s.scheduler)
	case privileged == 0:
		s.why = fmt.Sprintf("the admin lacks the EVENT privilege on schema %s", QuoteIdent(e.EventSchema))
	case schemas == 0:
		s.why = fmt.Sprintf("schema %s does not exist", QuoteIdent(e.EventSchema))
	default:
		s.ok = true
	}
	return s, nil
}

// placeBackstop schedules the backstop event of account user at the end of its window,
// replacing any earlier one; drop says whether the event drops the account (ephemeral login)
// or only locks it (shared login). Where backstops are unavailable it removes a stale event
// (one that a scheduler switched on later would run at the wrong time) and returns nil.
func (e *Engine) placeBackstop(ctx context.Context, db *sql.DB, f *flavor, user string, until time.Time, drop bool) error {
	s, err := e.backstop(ctx, db, f)
	if err != nil {
		return err
	}
	if !s.ok {
		return e.dropBackstop(ctx, db, user)
	}
	return e.run(ctx, db, e.placeSQL(f, user, until, drop))
}

// placeSQL returns the statements that (re)place the backstop event of account user at
// until: CREATE OR REPLACE EVENT on MariaDB; on MySQL, which lacks it, CREATE EVENT IF NOT
// EXISTS then ALTER EVENT to the new time and body — never a DROP followed by a CREATE that
// could fail and leave the login without a backstop. Both are idempotent.
func (e *Engine) placeSQL(f *flavor, user string, until time.Time, drop bool) []string {
	stmt := backstopSQL(e.EventSchema, user, e.AccountHost, until, drop)
	if f.mariadb {
		return []string{"CREATE OR REPLACE " + stmt}
	}
	return []string{"CREATE " + strings.Replace(stmt, "EVENT ", "EVENT IF NOT EXISTS ", 1), "ALTER " + stmt}
}

// dropEventSQL returns the statement that drops the backstop event of account user, if any.
func (e *Engine) dropEventSQL(user string) string {
	return "DROP EVENT IF EXISTS " + QuoteIdent(e.EventSchema) + "." + QuoteIdent(eventName(user))
}

// dropBackstop drops the backstop event of account user, if any. Where the admin may not
// manage events there cannot be one: that is not an error.
func (e *Engine) dropBackstop(ctx context.Context, db *sql.DB, user string) error {
	err := e.exec(ctx, db, e.dropEventSQL(user))
	switch errNumber(err) {
	case erDBAccessDenied, erBadDB, erTableAccessDenied, erSpecificAccess:
		return nil
	}
	return err
}

// backstopPassed reports whether the backstop of a window ending at until would run now
// or in the past: the window is over, and no event can be scheduled for it.
func backstopPassed(until time.Time) bool {
	return !backstopTime(until).After(time.Now())
}

// commentPrefix starts the comment of a backstop event, followed by the window's exact end
// (the event itself runs at whole seconds), so that Managed can give back the planned end.
const commentPrefix = "timebox backstop until "

// backstopSQL returns the event definition, to follow CREATE or CREATE OR REPLACE, for a
// window ending at until. The body runs as the admin (the event's definer); it locks the
// account first, kills every session of the user name (information_schema.PROCESSLIST shows
// no account host), and drops the account when drop is set. A failing step does not stop the
// next one.
func backstopSQL(schema, user, host string, until time.Time, drop bool) string {
	who := account(user, host)
	at := backstopTime(until)
	var end string
	if drop {
		end = "\n  DROP USER IF EXISTS " + who + ";"
	}
	return "EVENT " + QuoteIdent(schema) + "." + QuoteIdent(eventName(user)) +
		"\nON SCHEDULE AT " + QuoteString(at.UTC().Format(eventLayout)) +
		"\nON COMPLETION NOT PRESERVE ENABLE COMMENT " + QuoteString(commentPrefix+until.UTC().Format(time.RFC3339Nano)) + " DO BEGIN" +
		"\n  DECLARE done INT DEFAULT 0;" +
		"\n  DECLARE tid BIGINT UNSIGNED;" +
		"\n  DECLARE c CURSOR FOR SELECT ID FROM information_schema.PROCESSLIST WHERE USER = " + QuoteString(user) + ";" +
		"\n  DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;" +
		"\n  DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END;" +
		"\n  ALTER USER " + who + " ACCOUNT LOCK;" +
		"\n  OPEN c;" +
		"\n  sessions: LOOP" +
		"\n    FETCH c INTO tid;" +
		"\n    IF done THEN LEAVE sessions; END IF;" +
		"\n    KILL CONNECTION tid;" +
		"\n  END LOOP;" +
		"\n  CLOSE c;" + end +
		"\nEND"
}

// Backstop returns why the access p grants has no backstop event, or "" when Grant placed
// one: the event scheduler is off, the event schema is missing, or the admin lacks EVENT on
// it; method role_membership never places one (see timebox.BackstopReporter). EUNAVAILABLE
// when the server cannot be reached.
func (e *Engine) Backstop(ctx context.Context, p timebox.GrantPlan) (string, error) {
	if p.Method == timebox.MethodRoleMembership {
		return "role_membership places no backstop event: the roles stay granted until Timebox revokes them", nil
	}
	db, f, err := e.admin(ctx)
	if err != nil {
		return "", err
	}
	s, err := e.backstop(ctx, db, f)
	if err != nil {
		return "", e.wrap(err, nil)
	}
	if s.ok {
		return "", nil
	}
	return s.why + ": the access ends only when Timebox removes it (see timebox doctor)", nil
}
