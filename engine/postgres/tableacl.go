package postgres

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// heldTable is a table on which a login holds privileges.
type heldTable struct {
	oid           uint32
	schema, table string
	privs         []string // as wantedPrivileges makes them, "*" after a grantable privilege
	can           bool     // the admin may revoke: it uses the schema and holds a privilege on the table
}

// name returns the table's qualified, quoted name.
func (h *heldTable) name() string { return QuoteIdent(h.schema) + "." + QuoteIdent(h.table) }

// heldACL is what a login holds in one database, besides what PUBLIC and its roles hold.
type heldACL struct {
	tables  map[uint32]*heldTable
	schemas []string // schemas it was granted USAGE on, which the admin may revoke
}

// sortedTables returns the held tables by name, so that statements come in a stable order.
func (h heldACL) sortedTables() []*heldTable {
	out := make([]*heldTable, 0, len(h.tables))
	for _, t := range h.tables {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *heldTable) int { return strings.Compare(a.name(), b.name()) })
	return out
}

// aclDependencies selects the tables and schemas of the current database that the login $1
// has privileges on, from the indexed pg_shdepend: no scan of pg_class or of the
// information_schema views, whatever the number of tables.
const aclDependencies = `
	r AS (SELECT oid FROM pg_roles WHERE rolname = $1),
	dep AS (SELECT DISTINCT s.classid, s.objid FROM pg_shdepend s, r
		WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid AND s.deptype = 'a'
			AND s.classid IN ('pg_class'::regclass, 'pg_namespace'::regclass))`

// heldTablesSQL lists the login's privileges on tables, columns and schemas: one row each,
// with the object's oid (0 for a schema), names, privilege, grant option and whether the
// admin may revoke it.
const heldTablesSQL = `WITH ` + aclDependencies + `,
	rel AS (SELECT c.oid, c.relacl, n.nspname, c.relname,
			has_schema_privilege(n.oid, 'USAGE') AND (has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
				OR has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES')) AS can
		FROM dep JOIN pg_class c ON c.oid = dep.objid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE dep.classid = 'pg_class'::regclass)
SELECT rel.oid, rel.nspname, rel.relname, NULL::name, a.privilege_type, a.is_grantable, rel.can
	FROM rel, r, aclexplode(rel.relacl) a WHERE a.grantee = r.oid
UNION ALL
SELECT rel.oid, rel.nspname, rel.relname, att.attname, a.privilege_type, a.is_grantable, rel.can
	FROM rel JOIN pg_attribute att ON att.attrelid = rel.oid AND att.attnum > 0 AND NOT att.attisdropped AND att.attacl IS NOT NULL, r,
		aclexplode(att.attacl) a WHERE a.grantee = r.oid
UNION ALL
SELECT 0::oid, n.nspname, NULL, NULL, a.privilege_type, a.is_grantable, has_schema_privilege(n.oid, 'USAGE WITH GRANT OPTION')
	FROM dep JOIN pg_namespace n ON n.oid = dep.objid, r, aclexplode(n.nspacl) a
	WHERE dep.classid = 'pg_namespace'::regclass AND a.grantee = r.oid AND a.privilege_type = 'USAGE'`

// heldTables returns the privileges the login called name holds directly on the tables and
// schemas of q's database.
func heldTables(ctx context.Context, q pgx.Tx, name string) (heldACL, error) {
	h := heldACL{tables: map[uint32]*heldTable{}}
	rows, err := q.Query(ctx, heldTablesSQL, name)
	if err != nil {
		return h, err
	}
	var oid uint32
	var schema, priv string
	var table, column *string
	var grantable, can bool
	_, err = pgx.ForEachRow(rows, []any{&oid, &schema, &table, &column, &priv, &grantable, &can}, func() error {
		if oid == 0 {
			if can {
				h.schemas = append(h.schemas, schema)
			}
			return nil
		}
		t := h.tables[oid]
		if t == nil {
			t = &heldTable{oid: oid, schema: schema, table: *table, can: can}
			h.tables[oid] = t
		}
		if grantable {
			priv += "*"
		}
		if column != nil {
			priv += "\x00" + *column
		}
		t.privs = append(t.privs, priv)
		return nil
	})
	for _, t := range h.tables {
		slices.Sort(t.privs)
		t.privs = slices.Compact(t.privs) // the same privilege from several grantors
	}
	slices.Sort(h.schemas)
	h.schemas = slices.Compact(h.schemas)
	return h, err
}

// tableDatabases returns the databases, but the one called skip, where the role with oid
// holds privileges on tables or schemas (an indexed look at the shared pg_shdepend, from any
// database, whatever the size of the schemas).
func tableDatabases(ctx context.Context, q querier, oid uint32, skip string) ([]string, error) {
	var dbs []string
	err := q.QueryRow(ctx, `SELECT coalesce(array_agg(DISTINCT d.datname::text), '{}')
		FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
		WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1 AND s.deptype = 'a'
			AND s.classid IN ('pg_class'::regclass, 'pg_namespace'::regclass) AND d.datname <> $2`, oid, skip).Scan(&dbs)
	return dbs, err
}
