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
// role_membership account that is one of Timebox's ephemeral logins, EUNAVAILABLE when the
// server cannot be reached, and EINTERNAL for an SQL error.
func (e *Engine) Extend(ctx context.Context, p timebox.GrantPlan) error {
	if err := e.validateExtend(p); err != nil {
		return err
	}
	secrets := secretsOf(p.Password)
	db, f, err := e.admin(ctx)
	if err != nil {
		return err
	}
	exists, ours, err := e.existsOurs(ctx, db, f, p.Principal)
	switch {
	case err != nil:
		return e.wrap(err, secrets)
	case !exists:
		return timebox.Errorf(timebox.ENOTFOUND, "server %s: account %s does not exist", e.name, account(p.Principal, e.AccountHost))
	}
	ephemeral := p.Method == "" || p.Method == timebox.MethodEphemeralLogin
	if err := e.checkExtendable(ctx, db, f, p, ephemeral, ours); err != nil {
		return e.wrap(err, secrets)
	}
	if p.Method == timebox.MethodRoleMembership {
		return nil
	}
	// A locked account is a shared login between grants, or one being removed: a late
	// Extend must not place a backstop on it (it would lock the next holder's window).
	if a, err := e.lookupAccount(ctx, db, f, p.Principal, e.AccountHost); err != nil {
		return e.wrap(err, secrets)
	} else if a == nil {
		return timebox.Errorf(timebox.ENOTFOUND, "server %s: account %s does not exist", e.name, account(p.Principal, e.AccountHost))
	} else if a.locked {
		return timebox.Errorf(timebox.ECONFLICT, "server %s: account %s is locked; not extending it", e.name, account(p.Principal, e.AccountHost))
	}
	return e.wrap(e.moveBackstop(ctx, db, f, p, ephemeral), secrets)
}

// validateExtend checks the method, names and end of p; Extend needs no password.
func (e *Engine) validateExtend(p timebox.GrantPlan) error {
	switch p.Method {
	case "", timebox.MethodEphemeralLogin, timebox.MethodUnlockLogin, timebox.MethodRoleMembership:
	default:
		return timebox.Errorf(timebox.EINVALID, "server %s: unknown method %q", e.name, timebox.Clip(p.Method))
	}
	if _, err := e.validatePlan(p, false, false); err != nil {
		return err
	}
	return e.validEnd(p)
}

// checkExtendable refuses, with EINVALID, to extend an ephemeral login that does not carry
// Timebox's mark (the bookkeeping role, or the state an interrupted Grant of p leaves), and
// a shared or person's account that is one of Timebox's ephemeral logins.
func (e *Engine) checkExtendable(ctx context.Context, db *sql.DB, f *flavor, p timebox.GrantPlan, ephemeral, ours bool) error {
	who := account(p.Principal, e.AccountHost)
	switch {
	case ephemeral && !ours:
		a, err := e.lookupAccount(ctx, db, f, p.Principal, e.AccountHost)
		switch {
		case err != nil:
			return err
		case a == nil: // dropped meanwhile
			return timebox.Errorf(timebox.ENOTFOUND, "server %s: account %s does not exist", e.name, who)
		case a.madeBy(p.Password):
			return nil
		}
		return timebox.Errorf(timebox.EINVALID, "server %s: account %s was not created by timebox; not extending it", e.name, who)
	case !ephemeral && ours:
		return timebox.Errorf(timebox.EINVALID, "server %s: account %s is an ephemeral Timebox login, not a person's or shared one", e.name, who)
	}
	return nil
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
