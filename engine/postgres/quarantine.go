package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/timebox-dev/timebox"
)

// largeObjectCreators are the functions with which any login may store data in a database
// as large objects, unless EXECUTE on them is revoked from PUBLIC (lo_import reads a file of
// the server; PostgreSQL grants it to superusers only, but an administrator may have opened
// it). Writing into an existing large object needs UPDATE on it, which no login has on
// objects it did not create.
var largeObjectCreators = []string{"lo_creat", "lo_create", "lo_from_bytea", "lo_import"}

// doctorHandover checks where removed logins' objects go and what they may leave: each owner
// role of a managed database and the quarantine role pass ownerProblem, and in each managed
// database, whether PUBLIC may create large objects and what waits in quarantine.
func (e *Engine) doctorHandover(ctx context.Context, q *pgx.Conn, admin string, databases []string, versionNum int, add addFinding) error {
	roles := []string{e.QuarantineRole}
	for _, db := range databases {
		if r := e.OwnerRoles[db]; r != "" && !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	for _, r := range roles {
		s, err := e.readOwner(ctx, q, r, 0)
		if err != nil {
			return err
		}
		e.doctorOwner(ctx, q, admin, r, s, versionNum, add)
	}
	for _, db := range databases {
		pool, err := e.pool(db)
		if err != nil {
			continue
		}
		e.doctorLargeObjects(ctx, pool, db, add)
		e.doctorQuarantined(ctx, pool, db, add)
	}
	return nil
}

// doctorOwner reports on the role r (state s) that receives removed logins' objects.
func (e *Engine) doctorOwner(ctx context.Context, q *pgx.Conn, admin, r string, s ownerState, versionNum int, add addFinding) {
	what := "owner role " + QuoteIdent(r)
	if r == e.QuarantineRole {
		if !s.exists {
			add(SeverityOK, "", "quarantine role %s does not exist yet: the first removal of a login that owns objects creates it", QuoteIdent(r))
			return
		}
		what = "quarantine role " + QuoteIdent(r)
	}
	if why := e.ownerProblem(r, s); why != "" {
		add(SeverityFail, e.ownerFix(r, s), "%s %s: removals of logins that own objects are refused until it is fixed", what, why)
		return
	}
	var adminOption bool
	if !s.adminHas {
		if err := q.QueryRow(ctx, "SELECT pg_has_role(current_user, $1::name, 'MEMBER WITH ADMIN OPTION')", r).Scan(&adminOption); err == nil && !adminOption {
			noAdminOption(add, admin, QuoteIdent(r), what, versionNum)
			return
		}
	}
	add(SeverityOK, "", "%s: NOLOGIN, no superuser, CREATEROLE or privileged membership", what)
}

// ownerFix returns the SQL that fixes the attributes and memberships of role r in state s.
func (e *Engine) ownerFix(r string, s ownerState) string {
	who := QuoteIdent(r)
	if !s.exists {
		return "CREATE ROLE " + who + " NOLOGIN;"
	}
	var fix []string
	for _, a := range []struct {
		bad  bool
		attr string
	}{{s.login, "NOLOGIN"}, {s.super, "NOSUPERUSER"}, {s.createRole, "NOCREATEROLE"}, {s.bypass, "NOREPLICATION NOBYPASSRLS"}} {
		if a.bad {
			fix = append(fix, "ALTER ROLE "+who+" "+a.attr+";")
		}
	}
	if r == e.QuarantineRole {
		for _, m := range s.member {
			fix = append(fix, "REVOKE "+QuoteIdent(m)+" FROM "+who+";")
		}
		if s.privileged {
			fix = append(fix, "-- and REVOKE every privilege granted to "+who+" (see pg_shdepend)")
		}
	} else if s.in {
		fix = append(fix, "-- and REVOKE its membership in superuser, CREATEROLE, pg_ or Timebox roles")
	}
	return strings.Join(fix, " ")
}

// doctorLargeObjects warns when PUBLIC may create large objects in database db: a
// "read-only" login can then store data there.
func (e *Engine) doctorLargeObjects(ctx context.Context, pool querier, db string, add addFinding) {
	var open []string
	err := pool.QueryRow(ctx, `SELECT coalesce(array_agg('pg_catalog.' || p.oid::regprocedure::text ORDER BY 1), '{}')
		FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY($1)
		AND has_function_privilege('public', p.oid, 'EXECUTE')`, largeObjectCreators).Scan(&open)
	switch {
	case err != nil:
	case len(open) > 0:
		add(SeverityWarn, "-- in database "+commentName(db)+":\nREVOKE EXECUTE ON FUNCTION "+strings.Join(open, ", ")+" FROM PUBLIC;",
			"database %q: every login may create large objects (PUBLIC may execute %s), so even a read-only login can store data there", db, strings.Join(open, ", "))
	default:
		add(SeverityOK, "", "database %q: PUBLIC may not create large objects", db)
	}
}

// doctorQuarantined lists what removed logins left in database db and waits in quarantine.
func (e *Engine) doctorQuarantined(ctx context.Context, pool *pgxpool.Pool, db string, add addFinding) {
	var oid uint32
	if err := pool.QueryRow(ctx, "SELECT oid FROM pg_roles WHERE rolname = $1", e.QuarantineRole).Scan(&oid); err != nil {
		return
	}
	e.doctorQuarantineRights(ctx, pool, oid, db, add)
	objs, _, _, err := ownedObjects(ctx, pool, oid, db)
	if err != nil || len(objs) == 0 {
		return
	}
	list := make([]string, 0, min(len(objs), 20))
	for _, o := range objs[:min(len(objs), 20)] {
		list = append(list, describeObject(o))
	}
	if len(objs) > 20 {
		list = append(list, fmt.Sprintf("and %d more", len(objs)-20))
	}
	add(SeverityWarn, "-- in database "+commentName(db)+": review each, then ALTER ... OWNER TO the role that should own it, or DROP it",
		"database %q: %d object(s) left by removed logins wait in quarantine (owned by %s): %s", db, len(objs), QuoteIdent(e.QuarantineRole), strings.Join(list, "; "))
}

// describeObject names o for a message: kind, qualified name and risk.
func describeObject(o timebox.OwnedObject) string {
	s := o.Kind + " " + o.Name
	if o.Schema != "" {
		s = o.Kind + " " + QuoteIdent(o.Schema) + "." + o.Name
	}
	if o.Risk != "" {
		s += " (" + o.Risk + ")"
	}
	return s
}

// quarantineRightsSQL lists the relations of the current database that the quarantine role
// (oid $1) owns and still holds privileges on (a NULL access list gives the owner all): left
// by a removal from before Timebox took them away (see defuseSQL), or granted back since.
// Tables a foreign key links are left out: they need them.
const quarantineRightsSQL = `SELECT coalesce(array_agg(c.oid::regclass::text ORDER BY 1), '{}') FROM pg_class c
	WHERE c.relowner = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
	AND (c.relacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = $1))
	AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_constraint k ON k.oid = d.objid
		WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid AND d.classid = 'pg_constraint'::regclass AND k.contype = 'f')`

// doctorQuarantineRights warns about quarantined relations of database db on which the
// quarantine role (oid) still holds privileges: a rule or other code that runs with the
// rights of another quarantined object's owner could read or write them.
func (e *Engine) doctorQuarantineRights(ctx context.Context, pool *pgxpool.Pool, oid uint32, db string, add addFinding) {
	var rels []string
	if err := pool.QueryRow(ctx, quarantineRightsSQL, oid).Scan(&rels); err != nil || len(rels) == 0 {
		return
	}
	add(SeverityWarn, "-- in database "+commentName(db)+":\nREVOKE ALL ON TABLE "+strings.Join(rels, ", ")+" FROM "+QuoteIdent(e.QuarantineRole)+";",
		"database %q: the quarantine role still holds privileges on %d relation(s) it owns (%s): code another removed login left there could read them with its rights",
		db, len(rels), strings.Join(rels[:min(len(rels), 20)], ", "))
}
