package mysql

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// maxKillRounds bounds the loop that ends an account's sessions.
const maxKillRounds = 10

// killWait is how long to wait for killed sessions to go before killing again.
const killWait = 5 * time.Second

// erDefinerReferenced is MySQL 8's refusal to drop an account that is the definer of stored
// objects (views, routines, events, triggers).
const erDefinerReferenced = 4006

// Revoke removes p's principal in an order that leaves no access behind at any step: ACCOUNT
// LOCK first (no new login), then KILL for every session of the user until none is left
// (DROP USER alone leaves them running), DROP USER, the backstop event dropped, and a last
// sweep for sessions. The routines, views, triggers and events the account is the DEFINER
// of are listed in the result (Handed) before the drop; they stay, as do the tables it
// made, and can no longer run with anybody's privileges (see definerObjects). Revoking an
// account that does not exist kills any session under its name and reports it dropped (and
// Absent when there was nothing at all). Method
// unlock_login locks the shared account again; role_membership revokes what p granted. It
// returns EINVALID for a bad plan or an account Timebox did not create, EUNAVAILABLE when the
// server cannot be reached, and EINTERNAL for an SQL error.
func (e *Engine) Revoke(ctx context.Context, p timebox.GrantPlan) (timebox.RevokeResult, error) {
	var res timebox.RevokeResult
	privs, err := e.validatePlan(p, false, false)
	if err != nil {
		return res, err
	}
	switch p.Method {
	case timebox.MethodUnlockLogin:
		return e.revokeUnlock(ctx, p)
	case timebox.MethodRoleMembership:
		return e.revokeMembership(ctx, p, privs)
	}
	secrets := secretsOf(p.Password)
	db, f, err := e.admin(ctx)
	if err != nil {
		return res, err
	}
	// The common case in one prepared query: the account exists and holds the bookkeeping
	// role. Otherwise (absent, or made by an interrupted Grant, or not ours) read it whole.
	var a *accountInfo
	exists, ours, err := e.existsOurs(ctx, db, f, p.Principal)
	switch {
	case err != nil:
		return res, e.wrap(err, secrets)
	case exists && ours:
		a = &accountInfo{ours: true}
	case exists:
		if a, err = e.lookupAccount(ctx, db, f, p.Principal); err != nil {
			return res, e.wrap(err, secrets)
		}
	}
	if a != nil && !a.madeBy(p.Password) {
		return res, timebox.Errorf(timebox.EINVALID, "server %s: account %s was not created by timebox; not revoking it",
			e.name, account(p.Principal, e.AccountHost))
	}
	who := account(p.Principal, e.AccountHost)
	if a != nil {
		if err := e.exec(ctx, db, lockSQL(who)); err != nil && errNumber(err) != erCannotUser {
			return res, e.wrap(err, secrets)
		}
	}
	n, err := e.killSessions(ctx, db, p.Principal)
	res.SessionsEnded += n
	if err != nil {
		return res, e.wrap(err, secrets)
	}
	if a != nil {
		// What the account defined, listed while it still exists (its sessions are gone: it
		// can create nothing more).
		if res.Handed, err = e.definerObjects(ctx, db, f, p.Principal); err != nil {
			return res, e.wrap(err, secrets)
		}
	}
	err = e.exec(ctx, db, dropUserSQL(who))
	if errNumber(err) == erDefinerReferenced {
		if full, lerr := e.lookupAccount(ctx, db, f, p.Principal); lerr == nil && full != nil {
			a = full // its roles, to revoke them
		}
		res.Detail, err = e.keepDisabled(ctx, db, f, who, a, err)
	}
	if err != nil {
		return res, e.wrap(err, secrets)
	}
	if err := e.dropBackstop(ctx, db, p.Principal); err != nil {
		return res, e.wrap(err, secrets)
	}
	// A login that passed authentication just before ACCOUNT LOCK may show in the process
	// list only now.
	n, err = e.killSessions(ctx, db, p.Principal)
	res.SessionsEnded += n
	if err != nil {
		return res, e.wrap(err, secrets)
	}
	res.Dropped = res.Detail == ""
	res.Absent = a == nil && res.SessionsEnded == 0
	switch {
	case len(res.Handed) == 0:
	case res.Dropped:
		res.HandedTo = "nobody: their definer " + who + " was dropped (they fail at run time)"
	default:
		res.HandedTo = who + ", locked, without privileges or roles"
	}
	return res, nil
}

// keepDisabled handles a DROP USER that MySQL refused because the account defines stored
// objects: the account stays locked, with a random password and without privileges or roles
// (the bookkeeping role excepted, so that the reconciler still finds it), and the returned
// detail says why.
func (e *Engine) keepDisabled(ctx context.Context, db *sql.DB, f *flavor, who string, a *accountInfo, dropErr error) (string, error) {
	pw := randomPassword()
	stmts := []string{
		passwordLockSQL(who, f.identified(pw), true),
		"REVOKE ALL PRIVILEGES, GRANT OPTION FROM " + who,
	}
	if a != nil {
		for _, r := range a.roles {
			stmts = append(stmts, revokeRoleSQL(r, who))
		}
	}
	if err := e.run(ctx, db, stmts); err != nil {
		return "", e.wrap(err, secretsOf(pw))
	}
	return "kept locked, without password, privileges or roles: " + timebox.ErrorMessage(e.wrap(dropErr, nil)), nil
}

// killSessions kills every session of the user name and waits until each is gone, repeating
// until none is left. It returns how many sessions it ended. Sessions are found by user name:
// the process list does not tell which host pattern an account matched.
func (e *Engine) killSessions(ctx context.Context, db *sql.DB, user string) (int, error) {
	ended := map[int64]bool{}
	for range maxKillRounds {
		ids, err := e.kill(ctx, db, user)
		if err != nil || len(ids) == 0 {
			return len(ended), err
		}
		for _, id := range ids {
			ended[id] = true
		}
		if err := e.waitGone(ctx, db, ids); err != nil {
			return len(ended), err
		}
	}
	return len(ended), timebox.Errorf(timebox.EINTERNAL, "server %s: sessions of %q still running after %d attempts to end them",
		e.name, user, maxKillRounds)
}

// kill sends KILL CONNECTION to every session of user and returns their ids.
func (e *Engine) kill(ctx context.Context, db *sql.DB, user string) ([]int64, error) {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	var ids []int64
	rows, err := e.queryPrepared(ctx, db, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()", user)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var id int64
		err := scan(&id)
		ids = append(ids, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		_, err := db.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10))
		if err != nil && errNumber(err) != erNoSuchThread { // gone meanwhile
			return ids, err
		}
	}
	return ids, nil
}

// waitGone polls until none of ids is in the process list, for at most killWait. It returns
// nil also when some are still there: the caller kills them again.
func (e *Engine) waitGone(ctx context.Context, db *sql.DB, ids []int64) error {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	q := "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN (?" + strings.Repeat(", ?", len(ids)-1) + ")"
	deadline := time.Now().Add(killWait)
	for delay := time.Millisecond; ; delay = min(2*delay, 16*time.Millisecond) {
		var left int
		err := func() error {
			ctx, cancel := e.callContext(ctx)
			defer cancel()
			return db.QueryRowContext(ctx, q, args...).Scan(&left)
		}()
		if err != nil || left == 0 || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// existsOurs reports whether the account user@AccountHost exists, and whether it holds the
// bookkeeping role (without ADMIN OPTION), in one prepared query.
func (e *Engine) existsOurs(ctx context.Context, db *sql.DB, f *flavor, user string) (exists, ours bool, err error) {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	s := f.schema()
	st, err := e.prepared(ctx, db, `SELECT EXISTS (SELECT 1 FROM `+s.users+` u WHERE u.User = ? AND u.Host = ?),
		EXISTS (SELECT 1 FROM `+s.roles+` m WHERE m.`+s.member+` = ? AND m.`+s.host+` = ? AND m.`+s.role+` = ? AND m.`+s.adminOption+` <> 'Y')`)
	if err != nil {
		return false, false, err
	}
	err = st.QueryRowContext(ctx, user, e.AccountHost, user, e.AccountHost, e.ManagedRole).Scan(&exists, &ours)
	return exists, ours, err
}
