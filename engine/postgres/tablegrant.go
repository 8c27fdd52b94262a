package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

// tableStmt is one statement of an ad-hoc grant, with the object it is about (for errors).
type tableStmt struct {
	sql string
	on  string // e.g. `table "public"."orders"`
}

// foundTable is what resolveTables learnt about one table of a plan.
type foundTable struct {
	oid        uint32 // 0 when the table does not exist
	loginUsage bool   // the login may use the table's schema (PUBLIC usually may use public)
	adminUsage bool   // the admin may use the schema and hand USAGE out when needed
	missing    []string
	noGrant    []string // operations the admin holds without GRANT OPTION
}

// convergeTables makes the login of p hold exactly the table privileges of tables in the
// current database of tx: USAGE on their schemas when it lacks it, the planned privileges,
// and nothing else that the admin can revoke (privileges on other tables, USAGE granted on
// schemas no longer planned). fresh tells that the login was created in tx, so holds nothing.
// It returns EINVALID naming the table when a table or column is missing or the admin cannot
// hand a privilege out.
func (e *Engine) convergeTables(ctx context.Context, tx pgx.Tx, p timebox.GrantPlan, tables []timebox.TableGrant, fresh bool) error {
	found, err := e.resolveTables(ctx, tx, p.Principal, p.Database, tables)
	if err != nil {
		return err
	}
	var held heldACL
	if !fresh {
		if held, err = heldTables(ctx, tx, p.Principal); err != nil {
			return err
		}
	}
	return e.runTableStatements(ctx, tx, p, convergeSQL(QuoteIdent(p.Principal), tables, found, held))
}

// clearTables revokes, in p's database, the table privileges p's login holds from an
// earlier plan with tables, now that p has none.
func (e *Engine) clearTables(ctx context.Context, p timebox.GrantPlan) error {
	pool, err := e.pool(p.Database)
	if err != nil {
		return err
	}
	defer e.lockDatabase(p.Database)()
	return retryConcurrent(ctx, func() error {
		ctx, cancel := e.callContext(ctx)
		defer cancel()
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return e.convergeTables(ctx, tx, p, nil, false)
		})
	})
}

// convergeSQL returns the statements that take the login who (quoted) from held to the
// plan: revocations first, then USAGE on the schemas it lacks, then each table whose
// privileges differ from the plan (REVOKE ALL first when it holds some already).
func convergeSQL(who string, tables []timebox.TableGrant, found []foundTable, held heldACL) []tableStmt {
	var stmts []tableStmt
	planned := map[uint32]bool{}
	schemas := map[string]bool{}
	for i, t := range tables {
		planned[found[i].oid], schemas[t.Schema] = true, true
	}
	for _, h := range held.sortedTables() {
		if !planned[h.oid] && h.can {
			stmts = append(stmts, tableStmt{"REVOKE ALL ON " + h.name() + " FROM " + who, "table " + h.name()})
		}
	}
	for _, s := range held.schemas {
		if !schemas[s] {
			stmts = append(stmts, tableStmt{"REVOKE USAGE ON SCHEMA " + QuoteIdent(s) + " FROM " + who, "schema " + QuoteIdent(s)})
		}
	}
	usage := map[string]bool{}
	for i, t := range tables {
		if !found[i].loginUsage && !usage[t.Schema] {
			usage[t.Schema] = true
			stmts = append(stmts, tableStmt{usageSQL(who, t.Schema), "schema " + QuoteIdent(t.Schema)})
		}
	}
	for i, t := range tables {
		// A privilege another role granted the login by hand (which the admin cannot revoke)
		// makes the table differ each time: it is then granted again, harmlessly.
		h := held.tables[found[i].oid]
		if h != nil && slices.Equal(h.privs, wantedPrivileges(t)) {
			continue
		}
		if h != nil {
			stmts = append(stmts, tableStmt{"REVOKE ALL ON " + tableName(t) + " FROM " + who, "table " + tableName(t)})
		}
		stmts = append(stmts, tableStmt{tableGrantSQL(who, t), "table " + tableName(t)})
	}
	return stmts
}

// runTableStatements runs stmts in tx in one round trip. A refused statement becomes an
// EINVALID error that names its table or schema instead of the driver's message.
func (e *Engine) runTableStatements(ctx context.Context, tx pgx.Tx, p timebox.GrantPlan, stmts []tableStmt) error {
	if len(stmts) == 0 {
		return nil
	}
	sqls := make([]string, len(stmts))
	for i, s := range stmts {
		sqls[i] = s.sql
		if e.tableHook != nil {
			e.tableHook(s.sql)
		}
	}
	// One simple query: the server stops at the first error, so the number of results read
	// tells which statement failed.
	results, err := tx.Conn().PgConn().Exec(ctx, strings.Join(sqls, ";\n")).ReadAll()
	if err == nil {
		return nil
	}
	s := stmts[min(len(results), len(stmts)-1)]
	switch sqlState(err) {
	case "42501": // insufficient_privilege
		return timebox.Errorf(timebox.EINVALID, "server %s: the admin lacks GRANT OPTION on %s in database %q: run TableSetupStatements there (see docs/postgres.md)",
			e.name, s.on, p.Database)
	case "42P01", "42703", "3F000": // undefined table, column, schema: dropped meanwhile
		return timebox.Errorf(timebox.EINVALID, "server %s: %s or one of its columns does not exist in database %q", e.name, s.on, p.Database)
	}
	return err
}

// resolveTableSQL finds, for each planned table (a JSON array of {i, s, t, ops, cols}), the
// table's oid, whether the login ($2, a role name or "public") and the admin may use its
// schema, its missing columns and the operations the admin cannot hand out. Catalog lookups
// by name, bound values only: no quoting, no privilege needed to look, cost independent of
// the size of the schemas.
const resolveTableSQL = `
WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(i int, s text, t text, ops text[], cols text[]))
SELECT x.i, coalesce(c.oid, 0),
	coalesce(has_schema_privilege($2::name, n.oid, 'USAGE'), false),
	coalesce(has_schema_privilege(n.oid, 'USAGE') AND (has_schema_privilege($2::name, n.oid, 'USAGE')
		OR has_schema_privilege(n.oid, 'USAGE WITH GRANT OPTION')), false),
	array(SELECT col FROM unnest(x.cols) col WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped)),
	array(SELECT op FROM unnest(x.ops) op WHERE c.oid IS NOT NULL
		AND NOT has_table_privilege(c.oid, op || ' WITH GRANT OPTION')
		AND (cardinality(x.cols) = 0 OR EXISTS (SELECT 1 FROM unnest(x.cols) col
			LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped
			WHERE a.attnum IS NULL OR NOT has_column_privilege(c.oid, a.attnum, op || ' WITH GRANT OPTION'))))
FROM x
LEFT JOIN pg_namespace n ON n.nspname = x.s
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = x.t AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY x.i`

// resolveTables looks the planned tables up in tx's database for the login called login
// ("public" for a login that does not exist yet, which may use a schema only when PUBLIC may)
// and returns what it found, in the order of tables, or an EINVALID error for the first table
// that cannot be granted.
func (e *Engine) resolveTables(ctx context.Context, tx pgx.Tx, login, db string, tables []timebox.TableGrant) ([]foundTable, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	type item struct {
		I    int      `json:"i"`
		S    string   `json:"s"`
		T    string   `json:"t"`
		Ops  []string `json:"ops"`
		Cols []string `json:"cols"`
	}
	items := make([]item, len(tables))
	for i, t := range tables {
		items[i] = item{i, t.Schema, t.Table, t.Operations, append([]string{}, t.Columns...)}
	}
	arg, err := json.Marshal(items)
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, resolveTableSQL, string(arg), login)
	if err != nil {
		return nil, err
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (foundTable, error) {
		var f foundTable
		var i int
		err := row.Scan(&i, &f.oid, &f.loginUsage, &f.adminUsage, &f.missing, &f.noGrant)
		return f, err
	})
	if err != nil {
		return nil, err
	}
	for i, f := range found {
		if err := e.checkFound(tables[i], f, db); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// checkFound returns the EINVALID error that says why table t, as found in database db,
// cannot be granted, or nil.
func (e *Engine) checkFound(t timebox.TableGrant, f foundTable, db string) error {
	switch {
	case f.oid == 0:
		return timebox.Errorf(timebox.EINVALID, "server %s: table %s does not exist in database %q", e.name, tableName(t), db)
	case len(f.missing) > 0:
		return timebox.Errorf(timebox.EINVALID, "server %s: column %s of table %s does not exist in database %q",
			e.name, QuoteIdent(f.missing[0]), tableName(t), db)
	case !f.adminUsage:
		return timebox.Errorf(timebox.EINVALID, "server %s: the admin lacks USAGE WITH GRANT OPTION on schema %s in database %q: run TableSetupStatements there (see docs/postgres.md)",
			e.name, QuoteIdent(t.Schema), db)
	case len(f.noGrant) > 0:
		return timebox.Errorf(timebox.EINVALID, "server %s: the admin lacks %s WITH GRANT OPTION on table %s in database %q: run TableSetupStatements there (see docs/postgres.md)",
			e.name, strings.Join(f.noGrant, ", "), tableName(t), db)
	}
	return nil
}

// CheckTables returns EINVALID naming the first table or column of p.Tables missing from
// p.Database, an operation the admin holds without GRANT OPTION, or a schema the new login
// could not use and the admin cannot grant USAGE on; EUNAVAILABLE when the server cannot be
// reached (see timebox.TableChecker). It only reads, in a read-only transaction.
func (e *Engine) CheckTables(ctx context.Context, p timebox.GrantPlan) error {
	tables, err := e.planTables(p)
	if err != nil || len(tables) == 0 {
		return err
	} else if err := ValidIdent(p.Database); err != nil {
		return timebox.Errorf(timebox.EINVALID, "server %s: database %q: %v", e.name, p.Database, err)
	}
	pool, err := e.pool(p.Database)
	if err != nil {
		return err
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		_, err := e.resolveTables(ctx, tx, "public", p.Database, tables)
		return err
	})
	return e.wrap(err, nil)
}
