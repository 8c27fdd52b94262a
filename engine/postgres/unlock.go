package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

// grantUnlock unlocks the existing login p.Principal for the window: LOGIN, p's password (as
// a SCRAM verifier) and VALID UNTIL the window's end. The login itself, its CONNECT and its
// privileges are the admin's to set up; Timebox only opens and closes it. EINVALID when the
// login does not exist or is one of Timebox's own ephemeral logins.
func (e *Engine) grantUnlock(ctx context.Context, p timebox.GrantPlan) error {
	v, err := newVerifier(p.Password)
	if err != nil {
		return timebox.WrapError(timebox.EINTERNAL, err, "server %s: compute password verifier", e.name)
	}
	secrets := v.secrets(p.Password)
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return err
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := e.existingLogin(ctx, tx, p, timebox.EINVALID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, unlockSQL(p, QuoteLiteral(v.String())))
		return err
	})
	return e.wrap(err, secrets)
}

// revokeUnlock locks the login again — NOLOGIN, password cleared, an expiry in the past —
// and ends its sessions. The login stays: it belongs to the admin.
func (e *Engine) revokeUnlock(ctx context.Context, p timebox.GrantPlan) (timebox.RevokeResult, error) {
	var res timebox.RevokeResult
	admin, err := e.pool(e.adminDB)
	if err != nil {
		return res, err
	}
	var wasOpen bool
	err = func() error {
		ctx, cancel := e.callContext(ctx)
		defer cancel()
		role, err := e.existingLogin(ctx, admin, p, timebox.EINVALID)
		if err != nil {
			return err
		}
		wasOpen = role.canLogin
		_, err = admin.Exec(ctx, lockSQL(p.Principal))
		return err
	}()
	if err != nil {
		return res, e.wrap(err, nil)
	}
	res.SessionsEnded, err = e.terminate(ctx, admin, p.Principal, 0)
	res.Detail = "locked again: NOLOGIN, password cleared"
	res.Absent = !wasOpen && res.SessionsEnded == 0 // it was locked already: nothing undone
	return res, e.wrap(err, nil)
}

// unlockSQL returns the statement that opens p's shared login for the window; password is the
// SQL literal after PASSWORD (the verifier, or a placeholder in PlanStatements).
func unlockSQL(p timebox.GrantPlan, password string) string {
	return "ALTER ROLE " + QuoteIdent(p.Principal) + " WITH LOGIN PASSWORD " + password + " VALID UNTIL " + validUntilLiteral(p.ValidUntil)
}

// lockSQL returns the statement that locks the shared login called name again.
func lockSQL(name string) string {
	return "ALTER ROLE " + QuoteIdent(name) + " WITH NOLOGIN PASSWORD NULL VALID UNTIL '-infinity'"
}
