package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

// Extend moves the VALID UNTIL of p's existing login to p.ValidUntil and changes nothing
// else: no new password, no grant, no session ended, so the login works on without a gap.
// For method ephemeral_login the role must carry Timebox's mark; for unlock_login it must be
// a shared login, not one of Timebox's. For role_membership (the person's own login, on which
// Timebox sets no expiry) there is nothing to do. It returns ENOTFOUND when the login does not
// exist, EINVALID for a bad plan or a role of the wrong kind, ECONFLICT when the login is
// locked (NOLOGIN) or past its VALID UNTIL, EUNAVAILABLE when the server cannot be reached,
// and EINTERNAL for an SQL error. Running it again changes nothing.
func (e *Engine) Extend(ctx context.Context, p timebox.GrantPlan) error {
	if err := e.validatePlan(p, false); err != nil {
		return err
	}
	if p.Method == timebox.MethodRoleMembership {
		return nil
	}
	if err := e.validEnd(p); err != nil {
		return err
	}
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return err
	}
	err = retryConcurrent(ctx, func() error {
		ctx, cancel := e.callContext(ctx)
		defer cancel()
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			role, err := e.existingLogin(ctx, tx, p, timebox.ENOTFOUND)
			if err != nil {
				return err
			}
			// A login that cannot log in is locked (a shared login between grants) or being
			// removed: a late Extend must not give it a future expiry.
			if !role.canLogin || role.expired {
				return timebox.Errorf(timebox.ECONFLICT, "server %s: login %q is locked or expired; not extending it", e.name, p.Principal)
			}
			_, err = tx.Exec(ctx, extendSQL(p))
			return err
		})
	})
	return e.wrap(err, nil)
}

// extendSQL returns the statement that moves p's login's expiry to p.ValidUntil.
func extendSQL(p timebox.GrantPlan) string {
	return "ALTER ROLE " + QuoteIdent(p.Principal) + " VALID UNTIL " + validUntilLiteral(p.ValidUntil)
}
