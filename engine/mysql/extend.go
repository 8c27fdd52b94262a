package mysql

import (
	"context"
	"database/sql"

	"github.com/timebox-dev/timebox"
)

// Extend moves the database-side end of p's existing principal to p.ValidUntil and changes
// nothing else: no new password, no grant, no session ended. MySQL has no VALID UNTIL, so the
// end is the backstop event, replaced by one at the new end (rounded up to the second, as
// Grant places it); where backstops are unavailable (event scheduler off) there is nothing to
// move and Extend succeeds, Timebox removing the access itself. A new end that has passed
// already locks the account, as the backstop would have, and drops the event. Method
// role_membership places no backstop: Extend only checks the person's account. Extend is
// idempotent. It returns ENOTFOUND when the account does not exist, EINVALID for a bad plan,
// an ephemeral_login account that Timebox did not create, or an unlock_login or
// role_membership account that is one of Timebox's ephemeral logins, ECONFLICT for a locked
// account (unless the new end has passed too), EUNAVAILABLE when the server cannot be
// reached, and EINTERNAL for an SQL error.
func (e *Engine) Extend(ctx context.Context, p timebox.GrantPlan) error {
	if _, err := e.validatePlan(p, false, false); err != nil {
		return err
	}
	if err := e.validEnd(p); err != nil {
		return err
	}
	db, f, err := e.admin(ctx)
	if err != nil {
		return err
	}
	// Extend sends no password: no error of it can hold one.
	a, err := e.lookupAccount(ctx, db, f, p.Principal)
	who := account(p.Principal, e.AccountHost)
	ephemeral := p.Method == "" || p.Method == timebox.MethodEphemeralLogin
	switch {
	case err != nil:
		return e.wrap(err, nil)
	case a == nil:
		return timebox.Errorf(timebox.ENOTFOUND, "server %s: account %s does not exist", e.name, who)
	case ephemeral && !a.madeBy(p.Password):
		return timebox.Errorf(timebox.EINVALID, "server %s: account %s was not created by timebox; not extending it", e.name, who)
	case !ephemeral && a.ours:
		return timebox.Errorf(timebox.EINVALID, "server %s: account %s is an ephemeral Timebox login, not a person's or shared one", e.name, who)
	case p.Method == timebox.MethodRoleMembership:
		return nil
	case a.locked && backstopPassed(p.ValidUntil):
		return nil // locked already, as a past end asks: a repeated Extend to it
	case a.locked:
		// A shared login between grants, or one being removed: a late Extend must not place
		// a backstop on it (it would lock the next holder's window).
		return timebox.Errorf(timebox.ECONFLICT, "server %s: account %s is locked; not extending it", e.name, who)
	}
	return e.wrap(e.moveBackstop(ctx, db, f, p, ephemeral), nil)
}

// moveBackstop replaces the backstop event of p's principal by one at p.ValidUntil that
// drops the account (drop) or only locks it; or, when that end has passed, drops the event
// and locks the account.
func (e *Engine) moveBackstop(ctx context.Context, db *sql.DB, f *flavor, p timebox.GrantPlan, drop bool) error {
	if backstopPassed(p.ValidUntil) {
		if err := e.dropBackstop(ctx, db, p.Principal); err != nil {
			return err
		}
		return e.exec(ctx, db, lockSQL(account(p.Principal, e.AccountHost)))
	}
	return e.placeBackstop(ctx, db, f, p.Principal, p.ValidUntil, drop)
}
