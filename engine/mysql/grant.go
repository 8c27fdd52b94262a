package mysql

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/timebox-dev/timebox"
)

// validatePlan checks the names of p (its database may be empty unless needDB), its
// privileges and, when withSecret, its password and end. It returns the normalised privileges.
func (e *Engine) validatePlan(p timebox.GrantPlan, needDB, withSecret bool) ([]string, error) {
	check := func(what, s string, valid func(string) error) error {
		if err := valid(s); err != nil {
			return timebox.Errorf(timebox.EINVALID, "server %s: %s %q: %v", e.name, what, timebox.Clip(s), err)
		}
		return nil
	}
	if err := check("principal", p.Principal, validUser); err != nil {
		return nil, err
	}
	if err := check("account host", e.AccountHost, validHost); err != nil {
		return nil, err
	}
	if err := check("bookkeeping role", e.ManagedRole, validUser); err != nil {
		return nil, err
	}
	if err := check("database", p.Database, ValidIdent); err != nil && (needDB || p.Database != "") {
		return nil, err
	}
	for _, r := range p.Roles {
		if err := check("role", r, validUser); err != nil {
			return nil, err
		}
		if r == p.Principal || r == e.ManagedRole {
			return nil, timebox.Errorf(timebox.EINVALID, "server %s: principal %q cannot be granted role %q", e.name, p.Principal, r)
		}
	}
	privs, err := normalizePrivileges(p.Privileges)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: principal %q: %v", e.name, p.Principal, err)
	}
	if p.Principal == e.ManagedRole || p.Principal == e.config.User {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: principal %q is the admin or its bookkeeping role", e.name, p.Principal)
	}
	if !withSecret {
		return privs, nil
	}
	if err := validPassword(p.Password); err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: principal %q: %v", e.name, p.Principal, err)
	}
	if y := p.ValidUntil.UTC().Year(); p.ValidUntil.IsZero() || y < 1970 || y > 2037 {
		// 2037: MySQL's TIMESTAMP, which events are scheduled in, ends in January 2038.
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: principal %q: missing or out-of-range valid-until time", e.name, p.Principal)
	}
	return privs, nil
}

// validHost checks the host part of an account name: not empty, at most 255 bytes, no NUL,
// valid UTF-8.
func validHost(s string) error {
	if s == "" || len(s) > 255 || strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		return errors.New("not a valid host name or pattern")
	}
	return nil
}

// admin returns the admin pool and the server's flavor.
func (e *Engine) admin(ctx context.Context) (*sql.DB, *flavor, error) {
	db, err := e.db()
	if err != nil {
		return nil, nil, err
	}
	f, err := e.flavorOf(ctx, db)
	if err != nil {
		return nil, nil, e.wrap(err, nil)
	}
	return db, f, nil
}

// Grant makes p's principal exist with exactly p's password, database privileges and roles,
// and a backstop event at p.ValidUntil when the server can run one. Method unlock_login
// unlocks an existing shared account instead, and role_membership grants roles and privileges
// to a person's own account. The password travels as a mysql_native_password hash, never in
// clear (except on MySQL 8.4+, see flavor.identified). Grant converges: run again on an
// account it made, it changes the password, drops roles and privileges the plan no longer has
// and moves the backstop. An account whose end has passed is left locked. It returns EINVALID
// for a bad plan or a principal name taken by an account Timebox did not create, EUNAVAILABLE
// when the server cannot be reached, and EINTERNAL for an SQL error.
func (e *Engine) Grant(ctx context.Context, p timebox.GrantPlan) error {
	privs, err := e.validatePlan(p, true, p.Method != timebox.MethodRoleMembership)
	if err != nil {
		return err
	}
	switch p.Method {
	case "", timebox.MethodEphemeralLogin:
		return e.grantEphemeral(ctx, p, privs)
	case timebox.MethodUnlockLogin:
		return e.grantUnlock(ctx, p)
	case timebox.MethodRoleMembership:
		return e.grantMembership(ctx, p, privs)
	}
	return timebox.Errorf(timebox.EINVALID, "server %s: unknown method %q", e.name, timebox.Clip(p.Method))
}

// grantEphemeral creates or converges an ephemeral login. A new account is created locked,
// marked, given its privileges, roles and backstop, and unlocked last, so that nobody can log
// in to a half-made account; an interrupted Grant is recognised by its password hash.
func (e *Engine) grantEphemeral(ctx context.Context, p timebox.GrantPlan, privs []string) error {
	secrets := secretsOf(p.Password)
	db, f, err := e.admin(ctx)
	if err != nil {
		return err
	}
	if err := e.ensureManagedRole(ctx, db); err != nil {
		return e.wrap(err, secrets)
	}
	a, err := e.lookupAccount(ctx, db, f, p.Principal, e.AccountHost)
	if err != nil {
		return e.wrap(err, secrets)
	}
	if a != nil && !a.madeBy(p.Password) {
		return timebox.Errorf(timebox.EINVALID, "server %s: account %s exists and was not created by timebox", e.name, account(p.Principal, e.AccountHost))
	}
	who := account(p.Principal, e.AccountHost)
	var stmts []string
	if a == nil {
		stmts = append(stmts, "CREATE USER "+who+" "+f.identified(p.Password)+" ACCOUNT LOCK")
	}
	stmts = append(stmts, "GRANT "+QuoteString(e.ManagedRole)+" TO "+who)
	stmts = append(stmts, convergeSQL(who, p, privs, a)...)
	if err := e.run(ctx, db, stmts); err != nil {
		return e.wrap(err, secrets)
	}
	open, err := e.open(ctx, db, f, p, true)
	if err != nil || !open {
		return e.wrap(err, secrets)
	}
	var current []string
	if a != nil {
		current = a.defaults
	}
	if want, change := defaultRoles(f, p.Roles, current); change {
		return e.wrap(e.setDefaultRoles(ctx, db, f, p, want), secrets)
	}
	return nil
}

// open sets the account's password and places the backstop, then unlocks the account — or,
// when the window is over already, locks it (open is then false).
func (e *Engine) open(ctx context.Context, db *sql.DB, f *flavor, p timebox.GrantPlan, drop bool) (open bool, err error) {
	who := account(p.Principal, e.AccountHost)
	if !backstopTime(p.ValidUntil).After(time.Now()) {
		if err := e.dropBackstop(ctx, db, p.Principal); err != nil {
			return false, err
		}
		return false, e.exec(ctx, db, "ALTER USER "+who+" "+f.identified(p.Password)+" ACCOUNT LOCK")
	}
	if err := e.placeBackstop(ctx, db, f, p.Principal, p.ValidUntil, drop); err != nil {
		return false, err
	}
	return true, e.exec(ctx, db, "ALTER USER "+who+" "+f.identified(p.Password)+" ACCOUNT UNLOCK")
}

// run executes stmts one after the other (MySQL runs account statements outside of
// transactions, each committing on its own).
func (e *Engine) run(ctx context.Context, db *sql.DB, stmts []string) error {
	for _, s := range stmts {
		if err := e.exec(ctx, db, s); err != nil {
			return err
		}
	}
	return nil
}

// convergeSQL returns the statements that give account who exactly privs on p's database and
// p's roles, revoking what a, the account as it is (nil when new), holds beyond that. Default
// roles are set apart (setDefaultRoles).
func convergeSQL(who string, p timebox.GrantPlan, privs []string, a *accountInfo) []string {
	var stmts []string
	target := dbPattern(p.Database)
	if a != nil {
		for _, pattern := range slices.Sorted(maps.Keys(a.dbs)) {
			held := a.dbs[pattern]
			if len(held) == 0 {
				continue
			}
			if pattern != target {
				stmts = append(stmts, "REVOKE "+strings.Join(held, ", ")+" ON "+QuoteIdent(pattern)+".* FROM "+who)
				continue
			}
			var extra []string
			for _, h := range held {
				if !slices.Contains(privs, h) && (h == "GRANT OPTION" || !slices.Contains(privs, allPrivileges)) {
					extra = append(extra, h)
				}
			}
			if len(extra) > 0 {
				stmts = append(stmts, "REVOKE "+strings.Join(extra, ", ")+" ON "+QuoteIdent(pattern)+".* FROM "+who)
			}
		}
		for _, r := range a.roles {
			if !slices.Contains(p.Roles, r) {
				stmts = append(stmts, "REVOKE "+QuoteString(r)+" FROM "+who)
			}
		}
	}
	if len(privs) > 0 {
		stmts = append(stmts, "GRANT "+strings.Join(privs, ", ")+" ON "+onDB(p.Database)+" TO "+who)
	}
	for _, r := range p.Roles {
		stmts = append(stmts, "GRANT "+QuoteString(r)+" TO "+who)
	}
	return stmts
}

// defaultRoles returns the default roles an account granted roles should have — MariaDB knows
// one default role per account: the first of roles (the user can SET ROLE to the others) —
// and whether they differ from current, its default roles now.
func defaultRoles(f *flavor, roles, current []string) (want []string, change bool) {
	want = slices.Clone(roles)
	if f.mariadb && len(want) > 1 {
		want = want[:1]
	}
	return want, !slices.Equal(slices.Sorted(slices.Values(want)), slices.Sorted(slices.Values(current)))
}

// setDefaultRoles makes roles the default roles of p's principal. MySQL lets the admin do it
// with ALTER USER … DEFAULT ROLE (CREATE USER suffices). MariaDB's SET DEFAULT ROLE … FOR
// another account needs UPDATE on the whole mysql schema — which would let the admin rewrite
// its own privileges — so where the admin lacks it the account sets its own default role:
// the engine logs in as p's principal with p's password (an ephemeral login; the account must
// then match the engine's host). Without a password (a person's own login) the default role is
// left to the person (SET DEFAULT ROLE, or SET ROLE in each session).
func (e *Engine) setDefaultRoles(ctx context.Context, db *sql.DB, f *flavor, p timebox.GrantPlan, roles []string) error {
	list := "NONE"
	if len(roles) > 0 {
		quoted := make([]string, len(roles))
		for i, r := range roles {
			quoted[i] = QuoteString(r)
		}
		list = strings.Join(quoted, ", ")
	}
	who := account(p.Principal, e.AccountHost)
	if !f.mariadb {
		return e.exec(ctx, db, "ALTER USER "+who+" DEFAULT ROLE "+list)
	}
	e.mu.Lock()
	self := e.selfDefaultRole
	e.mu.Unlock()
	if !self {
		err := e.exec(ctx, db, "SET DEFAULT ROLE "+list+" FOR "+who)
		if errNumber(err) != erDBAccessDenied {
			return err
		}
		e.mu.Lock()
		e.selfDefaultRole = true
		e.mu.Unlock()
	}
	if p.Password == "" {
		return nil
	}
	return e.asAccount(ctx, p, "SET DEFAULT ROLE "+list)
}

// asAccount runs stmt in a session of p's principal, logged in with p's password.
func (e *Engine) asAccount(ctx context.Context, p timebox.GrantPlan, stmt string) error {
	cfg := e.connConfig()
	cfg.User, cfg.Passwd, cfg.DBName, cfg.Params = p.Principal, p.Password, "", nil
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxOpenConns(1)
	err = e.exec(ctx, db, stmt)
	if n := errNumber(err); n == erAccessDenied || n == erDBAccessDenied {
		return timebox.Errorf(timebox.EINTERNAL, "server %s: cannot set the default role of %s: the engine could not log in as it "+
			"(does its host match %s?), and the admin lacks UPDATE on the mysql schema", e.name, account(p.Principal, e.AccountHost), QuoteString(e.AccountHost))
	}
	return err
}
