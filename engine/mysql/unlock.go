package mysql

import (
	"context"
	"database/sql"

	"github.com/timebox-dev/timebox"
)

// grantUnlock unlocks the existing shared account p.Principal@AccountHost for the window: p's
// password (as a hash) and ACCOUNT UNLOCK, with a backstop event that locks it again at the
// end. The account, its privileges and roles are the admin's to set up; Timebox only opens and
// closes it. EINVALID when the account does not exist or is one of Timebox's ephemeral logins.
func (e *Engine) grantUnlock(ctx context.Context, p timebox.GrantPlan) error {
	secrets := secretsOf(p.Password)
	db, f, err := e.admin(ctx)
	if err != nil {
		return err
	}
	if _, err := e.checkOwnAccount(ctx, db, f, p.Principal, "unlock_login needs an existing login"); err != nil {
		return e.wrap(err, secrets)
	}
	_, err = e.open(ctx, db, f, p, false)
	return e.wrap(err, secrets)
}

// revokeUnlock locks the shared account again — ACCOUNT LOCK and a random password nobody
// knows — kills its sessions and drops the backstop event. The account stays: it belongs to
// the admin. Absent is set when it was locked already, or does not exist, and had no session.
func (e *Engine) revokeUnlock(ctx context.Context, p timebox.GrantPlan) (timebox.RevokeResult, error) {
	var res timebox.RevokeResult
	db, f, err := e.admin(ctx)
	if err != nil {
		return res, err
	}
	a, err := e.lookupAccount(ctx, db, f, p.Principal)
	switch {
	case err != nil:
		return res, e.wrap(err, nil)
	case a == nil:
		res, err = e.revokeAbsent(ctx, db, p.Principal)
		if err == nil {
			err = e.dropBackstop(ctx, db, p.Principal)
		}
		return res, e.wrap(err, nil)
	case a.ours:
		return res, e.ephemeralError(p.Principal)
	}
	pw := randomPassword()
	who := account(p.Principal, e.AccountHost)
	if err := e.exec(ctx, db, passwordLockSQL(who, f.identified(pw), true)); err != nil {
		return res, e.wrap(err, secretsOf(pw))
	}
	if res.SessionsEnded, err = e.killSessions(ctx, db, p.Principal); err != nil {
		return res, e.wrap(err, nil)
	}
	if err := e.dropBackstop(ctx, db, p.Principal); err != nil {
		return res, e.wrap(err, nil)
	}
	res.Detail = "locked again: ACCOUNT LOCK, password replaced by a random one"
	res.Absent = a.locked && res.SessionsEnded == 0
	return res, nil
}

// checkOwnAccount returns the account name@AccountHost, refusing one that does not exist or
// that Timebox created itself; need says what the method needs, for the error.
func (e *Engine) checkOwnAccount(ctx context.Context, db *sql.DB, f *flavor, name, need string) (*accountInfo, error) {
	a, err := e.lookupAccount(ctx, db, f, name)
	switch {
	case err != nil:
		return nil, err
	case a == nil:
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: account %s does not exist (%s)", e.name, account(name, e.AccountHost), need)
	case a.ours:
		return nil, e.ephemeralError(name)
	}
	return a, nil
}

// ephemeralError is the EINVALID error of a shared or person's login that is one of
// Timebox's ephemeral logins.
func (e *Engine) ephemeralError(name string) error {
	return timebox.Errorf(timebox.EINVALID, "server %s: account %s is an ephemeral Timebox login, not a person's or shared one",
		e.name, account(name, e.AccountHost))
}

// revokeAbsent ends the sessions of a shared or person's login that no longer exists (dropped
// by hand): DROP USER leaves them running. Absent is set when there were none.
func (e *Engine) revokeAbsent(ctx context.Context, db *sql.DB, name string) (timebox.RevokeResult, error) {
	n, err := e.killSessions(ctx, db, name)
	return timebox.RevokeResult{SessionsEnded: n, Absent: n == 0, Detail: "the login does not exist"}, err
}
