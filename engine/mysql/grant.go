package mysql

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/timebox-dev/timebox"
)

// validatePlan checks the method of p, the names of p (its database may be empty unless
// needDB) and of the engine, p's privileges and, when withSecret, its password and end. It
// returns the normalised privileges.
func (e *Engine) validatePlan(p timebox.GrantPlan, needDB, withSecret bool) ([]string, error) {
	switch p.Method {
	case "", timebox.MethodEphemeralLogin, timebox.MethodUnlockLogin, timebox.MethodRoleMembership:
	default:
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: unknown method %q", e.name, timebox.Clip(p.Method))
	}
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
	if err := check("event schema", e.EventSchema, ValidIdent); err != nil {
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
	if err := timebox.CheckPassword(p.Password); err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: principal %q: %v", e.name, p.Principal, err)
	}
	return privs, e.validEnd(p)
}

// validEnd checks p.ValidUntil: set, and within what MySQL can schedule an event at.
func (e *Engine) validEnd(p timebox.GrantPlan) error {
	if y := p.ValidUntil.UTC().Year(); p.ValidUntil.IsZero() || y < 1970 || y > 2037 {
		// 2037: MySQL's TIMESTAMP, which events are scheduled in, ends in January 2038.
		return timebox.Errorf(timebox.EINVALID, "server %s: principal %q: missing or out-of-range valid-until time", e.name, p.Principal)
	}
	return nil
}

// validateGrant checks p as Grant takes it (PlanStatements too): its method, names,
// privileges, password (but for role_membership), end and table grants. It returns the
// normalised privileges and table grants.
func (e *Engine) validateGrant(p timebox.GrantPlan) ([]string, []timebox.TableGrant, error) {
	privs, err := e.validatePlan(p, true, p.Method != timebox.MethodRoleMembership)
	if err != nil {
		return nil, nil, err
	}
	if err := e.checkProtected(p); err != nil {
		return nil, nil, err
	}
	tables, err := e.validateTables(p)
	return privs, tables, err
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
// and moves the backstop. An account whose end has passed is left locked. An ephemeral login
// also gets p's ad-hoc table grants (p.Tables), and loses the table and column privileges it
// holds beyond them. It returns EINVALID for a bad plan, a missing table or column, a
// principal name taken by an account Timebox did not create, or a plan that would hand out
// privileges on the event schema or the mysql schema, or roles that hold privileges on the
// event schema or a hazard globally (see roleHazard), EUNAVAILABLE when the server
// cannot be reached, and EINTERNAL for an SQL error.
func (e *Engine) Grant(ctx context.Context, p timebox.GrantPlan) error {
	privs, tables, err := e.validateGrant(p)
	if err != nil {
		return err
	}
	if p.Method == timebox.MethodUnlockLogin {
		return e.grantUnlock(ctx, p)
	}
	if err := e.checkRoles(ctx, p); err != nil {
		return err
	}
	if p.Method == timebox.MethodRoleMembership {
		return e.grantMembership(ctx, p, privs)
	}
	return e.grantEphemeral(ctx, p, privs, tables)
}

// checkRoles refuses, with EINVALID, p's roles when one of them (or a role it holds) could
// reach the backstop events or act as the admin (roleHazard).
func (e *Engine) checkRoles(ctx context.Context, p timebox.GrantPlan) error {
	if len(p.Roles) == 0 {
		return nil
	}
	db, f, err := e.admin(ctx)
	if err != nil {
		return err
	}
	why, err := e.roleHazard(ctx, db, f, p.Roles)
	if err != nil {
		return e.wrap(err, nil)
	}
	if why != "" {
		return timebox.Errorf(timebox.EINVALID, "server %s: refusing to grant %s: %s; it could change or drop the backstop events, "+
			"which run as Timebox's admin", e.name, account(p.Principal, e.AccountHost), why)
	}
	return nil
}

// grantEphemeral creates or converges an ephemeral login. A new account is created locked,
// marked, given its privileges, roles and backstop, and unlocked last, so that nobody can log
// in to a half-made account; an interrupted Grant is recognised by its password hash.
func (e *Engine) grantEphemeral(ctx context.Context, p timebox.GrantPlan, privs []string, tables []timebox.TableGrant) error {
	secrets := secretsOf(p.Password)
	db, f, err := e.admin(ctx)
	if err != nil {
		return err
	}
	if err := e.ensureManagedRole(ctx, db); err != nil {
		return e.wrap(err, secrets)
	}
	a, err := e.lookupAccount(ctx, db, f, p.Principal)
	if err != nil {
		return e.wrap(err, secrets)
	}
	if a != nil && !a.madeBy(p.Password) {
		return timebox.Errorf(timebox.EINVALID, "server %s: account %s exists and was not created by timebox", e.name, account(p.Principal, e.AccountHost))
	}
	if err := e.converge(ctx, db, f, p, privs, tables, a); err != nil {
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

// converge runs ephemeralSQL for p on a, the account as it is (nil when new), after reading
// its table privileges. A grant on a missing table or column is an EINVALID error naming it.
func (e *Engine) converge(ctx context.Context, db *sql.DB, f *flavor, p timebox.GrantPlan, privs []string,
	tables []timebox.TableGrant, a *accountInfo) error {
	var held []tablePriv
	if a != nil {
		var err error
		if held, err = e.accountTables(ctx, db, p.Principal, len(tables) > 0); err != nil {
			return err
		}
	}
	err := e.run(ctx, db, e.ephemeralSQL(f.identified(p.Password), p, privs, tables, a, held))
	if n := errNumber(err); n == erNoSuchTable || n == erBadField {
		return e.tableProblem(ctx, db, p.Database, tables)
	}
	return err
}

// ephemeralSQL returns the statements that make an ephemeral login what p plans, up to its
// backstop and unlock (open): CREATE USER … ACCOUNT LOCK when a, the account as it is, is nil
// (new), the bookkeeping role, the database privileges and roles (convergeSQL), and the
// table grants, revoking those of held beyond them (tablesSQL). identified sets the password
// (flavor.identified, or flavor.identifiedWith for PlanStatements).
func (e *Engine) ephemeralSQL(identified string, p timebox.GrantPlan, privs []string, tables []timebox.TableGrant,
	a *accountInfo, held []tablePriv) []string {
	who := account(p.Principal, e.AccountHost)
	var stmts []string
	if a == nil {
		stmts = append(stmts, createSQL(who, identified))
	}
	stmts = append(stmts, grantRoleSQL(e.ManagedRole, who))
	stmts = append(stmts, convergeSQL(who, p, privs, a)...)
	return append(stmts, tablesSQL(who, p.Database, tables, held)...)
}

// open sets the account's password and places the backstop, then unlocks the account — or,
// when the window is over already, locks it (open is then false). openSQL lists the same
// statements.
func (e *Engine) open(ctx context.Context, db *sql.DB, f *flavor, p timebox.GrantPlan, drop bool) (open bool, err error) {
	who, identified := account(p.Principal, e.AccountHost), f.identified(p.Password)
	if backstopPassed(p.ValidUntil) {
		if err := e.dropBackstop(ctx, db, p.Principal); err != nil {
			return false, err
		}
		return false, e.exec(ctx, db, passwordLockSQL(who, identified, true))
	}
	if err := e.placeBackstop(ctx, db, f, p.Principal, p.ValidUntil, drop); err != nil {
		return false, err
	}
	return true, e.exec(ctx, db, passwordLockSQL(who, identified, false))
}

// openSQL returns the statements open runs where backstops are available, identified setting
// the password as in ephemeralSQL.
func (e *Engine) openSQL(f *flavor, p timebox.GrantPlan, identified string, drop bool) []string {
	who := account(p.Principal, e.AccountHost)
	if backstopPassed(p.ValidUntil) {
		return []string{e.dropEventSQL(p.Principal), passwordLockSQL(who, identified, true)}
	}
	return append(e.placeSQL(f, p.Principal, p.ValidUntil, drop), passwordLockSQL(who, identified, false))
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
				stmts = append(stmts, revokeDBSQL(held, pattern, who))
				continue
			}
			extra := slices.DeleteFunc(slices.Clone(held), func(h string) bool { return covers(privs, h) })
			if len(extra) > 0 {
				stmts = append(stmts, revokeDBSQL(extra, pattern, who))
			}
		}
		for _, r := range a.roles {
			if !slices.Contains(p.Roles, r) {
				stmts = append(stmts, revokeRoleSQL(r, who))
			}
		}
	}
	return append(stmts, grantSQL(who, p, privs)...)
}

// grantSQL returns the GRANTs of privs on p's database and of p's roles to account who.
func grantSQL(who string, p timebox.GrantPlan, privs []string) []string {
	var stmts []string
	if len(privs) > 0 {
		stmts = append(stmts, grantDBSQL(privs, p.Database, who))
	}
	for _, r := range p.Roles {
		stmts = append(stmts, grantRoleSQL(r, who))
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
	who := account(p.Principal, e.AccountHost)
	if !f.mariadb {
		return e.exec(ctx, db, defaultRoleSQL(f, who, roles))
	}
	e.mu.Lock()
	self := e.selfDefaultRole
	e.mu.Unlock()
	if !self {
		err := e.exec(ctx, db, defaultRoleSQL(f, who, roles))
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
	return e.asAccount(ctx, p, "SET DEFAULT ROLE "+roleList(roles))
}

// asAccount runs stmt in a session of p's principal, logged in with p's password. The session
// has the engine's parameters (sessionParams), so that QuoteString's literals in stmt mean
// what they say even where the server's sql_mode holds NO_BACKSLASH_ESCAPES.
func (e *Engine) asAccount(ctx context.Context, p timebox.GrantPlan, stmt string) error {
	cfg := e.connConfig()
	cfg.User, cfg.Passwd, cfg.DBName = p.Principal, p.Password, ""
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
