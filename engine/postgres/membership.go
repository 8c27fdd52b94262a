package postgres

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

// grantMembership grants CONNECT on p's database and p's roles to the person's own login
// p.Principal, which must exist and must not be one of Timebox's ephemeral logins. The login
// keeps its own password; Timebox sets none.
func (e *Engine) grantMembership(ctx context.Context, p timebox.GrantPlan) error {
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return err
	}
	defer e.lockDatabase(p.Database)()
	stmts := membershipGrantSQL(p)
	err = retryConcurrent(ctx, func() error {
		ctx, cancel := e.callContext(ctx)
		defer cancel()
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := e.existingLogin(ctx, tx, p, timebox.EINVALID); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, strings.Join(stmts, ";\n"))
			return err
		})
	})
	return e.wrap(err, nil)
}

// revokeMembership revokes from the login the roles of p, and CONNECT on p's database, except
// those in p.Keep and p.KeepDatabases (still needed by the login's other live grants), then
// ends the login's sessions — one may hold a revoked role through SET ROLE. The login stays.
func (e *Engine) revokeMembership(ctx context.Context, p timebox.GrantPlan) (timebox.RevokeResult, error) {
	var res timebox.RevokeResult
	pool, err := e.pool(e.adminDB)
	if err != nil {
		return res, err
	}
	stmts, revoked := membershipRevokeSQL(p)
	if len(stmts) == 0 {
		res.Detail = "nothing revoked: other live grants of " + p.Principal + " still need every role"
		return res, nil
	}
	var missing bool
	err = func() error {
		defer e.lockDatabase(p.Database)()
		return retryConcurrent(ctx, func() error {
			ctx, cancel := e.callContext(ctx)
			defer cancel()
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if role, err := e.lookupRole(ctx, tx, p.Principal); err != nil || role == nil {
					missing = role == nil
					return err
				}
				_, err := tx.Exec(ctx, strings.Join(stmts, ";\n"))
				return err
			})
		})
	}()
	if err != nil || missing {
		res.Absent = missing
		return res, e.wrap(err, nil)
	}
	res.SessionsEnded, err = e.terminate(ctx, pool, p.Principal, 0)
	res.Detail = "revoked " + strings.Join(revoked, ", ")
	if len(revoked) < len(p.Roles)+1 {
		res.Detail += "; kept what other live grants of the login still need"
	}
	return res, e.wrap(err, nil)
}

// membershipGrantSQL returns the statements that grant CONNECT on p's database and p's roles
// to p's login.
func membershipGrantSQL(p timebox.GrantPlan) []string {
	who := QuoteIdent(p.Principal)
	stmts := []string{"GRANT CONNECT ON DATABASE " + QuoteIdent(p.Database) + " TO " + who}
	for _, r := range p.Roles {
		stmts = append(stmts, "GRANT "+QuoteIdent(r)+" TO "+who)
	}
	return stmts
}

// membershipRevokeSQL returns the statements that revoke p's roles and CONNECT on p's
// database from p's login, but those p.Keep and p.KeepDatabases hold, and what they revoke.
func membershipRevokeSQL(p timebox.GrantPlan) (stmts, revoked []string) {
	who := QuoteIdent(p.Principal)
	for _, r := range p.Roles {
		if !slices.Contains(p.Keep, r) {
			stmts, revoked = append(stmts, "REVOKE "+QuoteIdent(r)+" FROM "+who), append(revoked, r)
		}
	}
	if !slices.Contains(p.KeepDatabases, p.Database) {
		stmts, revoked = append(stmts, "REVOKE CONNECT ON DATABASE "+QuoteIdent(p.Database)+" FROM "+who), append(revoked, "CONNECT")
	}
	return stmts, revoked
}
