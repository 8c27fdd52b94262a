package postgres

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

// quarantineComment marks the quarantine role.
const quarantineComment = "timebox: owns what removed logins left behind; holds no privilege"

// QuarantineRoleName returns the default quarantine role of the installation whose admin role
// is admin: admin + "_quarantine", the admin part cut to fit PostgreSQL's 63-byte names.
func QuarantineRoleName(admin string) string {
	const suffix = "_quarantine"
	if len(admin) > 63-len(suffix) {
		admin = strings.ToValidUTF8(admin[:63-len(suffix)], "")
	}
	return admin + suffix
}

// ownerOf returns the role that receives what a removed login owns in database db: the
// database's configured owner role, or the quarantine role.
func (e *Engine) ownerOf(db string) string {
	if r := e.OwnerRoles[db]; r != "" {
		return r
	}
	return e.QuarantineRole
}

// CheckOwnerRoleName refuses, without connecting, an owner role that is one of Timebox's own
// roles (the admin, bookkeeping, connect or quarantine role) or a predefined pg_ role. It
// returns EINVALID naming the problem.
func (e *Engine) CheckOwnerRoleName(role string) error {
	if err := ValidIdent(role); err != nil {
		return timebox.Errorf(timebox.EINVALID, "server %s: owner role %q: %v", e.name, role, err)
	}
	switch {
	case role == e.config.ConnConfig.User || role == e.ManagedRole || role == e.QuarantineRole || strings.HasPrefix(role, e.connectPrefix()):
		return timebox.Errorf(timebox.EINVALID, "server %s: owner role %q is Timebox's own (admin, bookkeeping, connect or quarantine role); leave owner_role empty to use the quarantine role", e.name, role)
	case strings.HasPrefix(role, "pg_"):
		return timebox.Errorf(timebox.EINVALID, "server %s: owner role %q is a predefined PostgreSQL role", e.name, role)
	}
	return nil
}

// ownerCheckSQL reads what decides whether role $1 may receive a removed login's objects:
// its attributes, whether it belongs to a privileged role ($2: the bookkeeping role), the
// roles it is a direct member of, whether it holds privileges on anything but what the login
// being removed ($3, its oid, 0 for none) or another of Timebox's logins (members of $2) owns:
// a login may grant privileges on its own objects to anyone, PUBLIC included, and those it
// granted to the quarantine role become the quarantine's as their owner at its removal; left
// in, they would let one requester block every removal. Last, whether the admin has its
// privileges already. No row when it does not exist.
const ownerCheckSQL = `
SELECT r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolreplication OR r.rolbypassrls,
	EXISTS (SELECT 1 FROM pg_roles g WHERE g.oid <> r.oid
		AND (g.rolsuper OR g.rolcreaterole OR g.rolbypassrls OR g.rolname LIKE 'pg\_%' OR g.rolname = current_user OR g.rolname = $2)
		AND pg_has_role(r.oid, g.oid, 'MEMBER')),
	array(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1),
	EXISTS (SELECT 1 FROM pg_shdepend s WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid AND s.deptype = 'a'
		AND NOT EXISTS (SELECT 1 FROM pg_shdepend o WHERE o.dbid = s.dbid AND o.classid = s.classid AND o.objid = s.objid
			AND o.deptype = 'o' AND o.refclassid = 'pg_authid'::regclass
			AND (o.refobjid = $3 OR o.refobjid IN (SELECT m.member FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE b.rolname = $2)))),
	pg_has_role(current_user, r.oid, 'USAGE')
FROM pg_roles r WHERE r.rolname = $1`

// ownerState is what ownerCheckSQL found.
type ownerState struct {
	exists                               bool
	login, super, createRole, bypass, in bool
	member                               []string
	privileged                           bool // holds privileges on some object
	adminHas                             bool
}

// readOwner reads role's state with q, leaving out the privileges on what the login with oid
// login (0: none) or another of Timebox's logins owns.
func (e *Engine) readOwner(ctx context.Context, q querier, role string, login uint32) (ownerState, error) {
	var s ownerState
	err := q.QueryRow(ctx, ownerCheckSQL, role, e.ManagedRole, login).Scan(&s.login, &s.super, &s.createRole, &s.bypass, &s.in,
		&s.member, &s.privileged, &s.adminHas)
	if err == pgx.ErrNoRows {
		return s, nil
	}
	s.exists = err == nil
	return s, err
}

// ownerProblem returns why role, in state s, may not receive a removed login's objects, or "".
// The quarantine role must also be a member of nothing and hold no privilege.
func (e *Engine) ownerProblem(role string, s ownerState) string {
	if err := e.CheckOwnerRoleName(role); err != nil && role != e.QuarantineRole {
		return timebox.ErrorMessage(err)
	}
	var why []string
	for _, c := range []struct {
		bad  bool
		what string
	}{
		{!s.exists, "does not exist"}, {s.login, "can log in"}, {s.super, "is a superuser"},
		{s.createRole, "has CREATEROLE"}, {s.bypass, "has REPLICATION or BYPASSRLS"},
		{s.in, "is a member of a privileged or Timebox role"},
		{role == e.QuarantineRole && len(s.member) > 0, "is a member of " + strings.Join(s.member, ", ")},
		{role == e.QuarantineRole && s.privileged, "holds privileges"},
	} {
		if c.bad {
			why = append(why, c.what)
		}
	}
	return strings.Join(why, ", ")
}

// handover gives what the login (oid, name) owns in tx's database to the database's owner
// role, or the quarantine role (created when missing), and revokes the login's privileges
// there. It returns the objects handed over, listed from pg_shdepend (indexed by role: the
// cost follows what the login owns, not the size of the catalog). memberOf are the login's
// roles: the new owner holds them for the length of the transaction only, as PostgreSQL
// requires the new owner of a function, operator or similar to have CREATE on its schema,
// which the login had through them. lock is called before the owner role is touched. EINVALID
// when the owner role fails the checks.
func (e *Engine) handover(ctx context.Context, tx pgx.Tx, db, name string, oid uint32, memberOf []string, lock func()) (string, []timebox.OwnedObject, error) {
	objs, ids, linked, err := ownedObjects(ctx, tx, oid, db)
	if err != nil || len(objs) == 0 {
		if err == nil {
			_, err = tx.Exec(ctx, "DROP OWNED BY "+QuoteIdent(name))
		}
		return "", nil, err
	}
	lock()
	owner := e.ownerOf(db)
	s, err := e.readOwner(ctx, tx, owner, oid)
	if err != nil {
		return "", nil, err
	}
	if !s.exists && owner == e.QuarantineRole {
		q := QuoteIdent(owner)
		if _, err := tx.Exec(ctx, "CREATE ROLE "+q+" NOLOGIN;\nCOMMENT ON ROLE "+q+" IS "+QuoteLiteral(quarantineComment)); err != nil {
			return "", nil, err
		}
		if s, err = e.readOwner(ctx, tx, owner, oid); err != nil {
			return "", nil, err
		}
	}
	if why := e.ownerProblem(owner, s); why != "" {
		return "", nil, timebox.Errorf(timebox.EINVALID, "server %s: database %q: refusing to hand what login %q left to role %q: it %s (see docs/postgres.md, \"Quarantine and owner_role\")",
			e.name, db, name, owner, why)
	}
	defuse, err := defuseSQL(ctx, tx, owner, owner == e.QuarantineRole, objs, ids, linked)
	if err != nil {
		return "", nil, err
	}
	if _, err := tx.Exec(ctx, strings.Join(handoverSQL(name, owner, s, memberOf, defuse), ";\n")); err != nil {
		return "", nil, err
	}
	return owner, objs, nil
}

// defuseSQL returns the statements that make handed-over code run, and views read, with the
// rights of whoever calls or reads them instead of their new owner's: a SECURITY DEFINER
// routine becomes SECURITY INVOKER and a view security_invoker (PostgreSQL 15 and later). A
// configured owner role (owner) gets the same: it usually owns the application's tables, so a
// requester's SECURITY DEFINER function or view would otherwise read all of them, for anyone,
// for good. The quarantine role (quarantined) also gives up its owner's privileges on the
// relations and large objects it receives: it owns what every removed login left in the
// database, and a rule, an expression index or anything else PostgreSQL runs with an owner's
// rights that one login made would otherwise read what another one left there. Ownership
// keeps the right to grant them back; what the login granted to others stays. Tables a
// foreign key links (linked) keep them: PostgreSQL checks and cascades foreign keys with the
// owner's rights, so without them a DELETE on the referenced table fails for everyone. ids
// are the objects' identities; a materialized view is read as stored and refreshed only by
// its owner.
func defuseSQL(ctx context.Context, tx pgx.Tx, owner string, quarantined bool, objs []timebox.OwnedObject, ids []string, linked []bool) ([]string, error) {
	var version int
	var stmts []string
	from := " FROM " + QuoteIdent(owner)
	for i, o := range objs {
		switch kind := o.Kind; {
		case !quarantined || linked[i]:
		case kind == "table" || kind == "view" || kind == "materialized view" || kind == "foreign table":
			stmts = append(stmts, "REVOKE ALL ON TABLE "+ids[i]+from)
		case kind == "sequence":
			stmts = append(stmts, "REVOKE ALL ON SEQUENCE "+ids[i]+from)
		case kind == "large object":
			stmts = append(stmts, "REVOKE ALL ON LARGE OBJECT "+ids[i]+from)
		}
		switch {
		case o.Risk == "security definer":
			stmts = append(stmts, "ALTER ROUTINE "+ids[i]+" SECURITY INVOKER")
		case o.Kind == "view":
			if version == 0 {
				if err := tx.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
					return nil, err
				}
			}
			if version >= 150000 {
				stmts = append(stmts, "ALTER VIEW "+ids[i]+" SET (security_invoker = true)")
			}
		}
	}
	return stmts, nil
}

// handoverSQL returns the statements that give what login owns to owner (state s), run the
// defuse statements and revoke the login's privileges. The admin joins owner, and owner the
// login's roles, only inside the transaction.
func handoverSQL(login, owner string, s ownerState, memberOf, defuse []string) []string {
	who, to := QuoteIdent(login), QuoteIdent(owner)
	var pre, post []string
	if !s.adminHas {
		pre = append(pre, "GRANT "+to+" TO CURRENT_USER")
		post = append(post, "REVOKE "+to+" FROM CURRENT_USER")
	}
	for _, r := range memberOf {
		if r != owner && !slices.Contains(s.member, r) {
			pre = append(pre, "GRANT "+QuoteIdent(r)+" TO "+to)
			post = append(post, "REVOKE "+QuoteIdent(r)+" FROM "+to)
		}
	}
	stmts := append(append(pre, "REASSIGN OWNED BY "+who+" TO "+to), defuse...)
	return append(append(stmts, post...), "DROP OWNED BY "+who)
}

// ownedObjectsSQL lists what role $1 owns in the current database ($2 its name), from the
// indexed pg_shdepend (default privileges left out: DROP OWNED removes them): kind, schema, name (its identity when the name alone is ambiguous, a
// large object's oid), the schema quoted as in the identity, the identity, the risk, and
// whether it is a table with a foreign key to or from it (through the indexed pg_depend).
const ownedObjectsSQL = `
SELECT o.type, coalesce(o.schema, ''), coalesce(o.name, o.identity), coalesce(quote_ident(o.schema), ''), o.identity,
	CASE WHEN s.classid = 'pg_proc'::regclass AND (SELECT p.prosecdef FROM pg_proc p WHERE p.oid = s.objid) THEN 'security definer'
		WHEN s.classid = 'pg_class'::regclass AND (SELECT c.relkind FROM pg_class c WHERE c.oid = s.objid) IN ('v', 'm') THEN 'view'
		ELSE '' END,
	s.classid = 'pg_class'::regclass AND EXISTS (SELECT 1 FROM pg_depend d JOIN pg_constraint k ON k.oid = d.objid
		WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = s.objid AND d.classid = 'pg_constraint'::regclass AND k.contype = 'f')
FROM pg_shdepend s, pg_identify_object(s.classid, s.objid, s.objsubid) o
WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1 AND s.deptype = 'o'
	AND s.classid <> 'pg_default_acl'::regclass AND s.dbid = (SELECT d.oid FROM pg_database d WHERE d.datname = $2)
ORDER BY 1, 2, 3`

// rowsQuerier is a pool, a connection or a transaction.
type rowsQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ownedObjects lists what the role with oid owns in database db (q's database), the
// identity of each (its qualified name as SQL takes it, a function's with argument types),
// and whether each is a table a foreign key links (see defuseSQL).
func ownedObjects(ctx context.Context, q rowsQuerier, oid uint32, db string) (objs []timebox.OwnedObject, ids []string, linked []bool, err error) {
	rows, err := q.Query(ctx, ownedObjectsSQL, oid, db)
	if err != nil {
		return nil, nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var o timebox.OwnedObject
		var quoted, id string
		var fk bool
		if err := rows.Scan(&o.Kind, &o.Schema, &o.Name, &quoted, &id, &o.Risk, &fk); err != nil {
			return nil, nil, nil, err
		}
		if quoted != "" {
			o.Name = strings.TrimPrefix(o.Name, quoted+".")
		}
		o.Database = db
		objs, ids, linked = append(objs, o), append(ids, id), append(linked, fk)
	}
	return objs, ids, linked, rows.Err()
}
