package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/timebox-dev/timebox"
)

// Ad-hoc table grants (GrantPlan.Tables) give an ephemeral login exactly some operations on
// single tables of the plan's database, limited to some columns when the plan says so:
// GRANT SELECT (`a`, `b`), UPDATE (`a`, `b`) ON `db`.`t`. A Grant run again revokes the table
// and column privileges the account holds beyond its plan, read from mysql.tables_priv and
// mysql.columns_priv. DROP USER removes them with the account.

// MySQL and MariaDB errors of a table grant on a missing table or column.
const (
	erNoSuchTable = 1146 // table 'db.t' doesn't exist
	erBadField    = 1054 // unknown column 'c' in 't'
)

// tableOps are the operations an ad-hoc table grant may hold.
var tableOps = []string{"DELETE", "INSERT", "SELECT", "UPDATE"}

// validateTables checks p.Tables and returns them normalised: operations upper-case, sorted
// and without duplicates, columns without duplicates (column names are case-insensitive),
// Schema cleared. Tables are refused, with EINVALID, for a method other than
// ephemeral_login, in a schema other than p.Database, with an unknown operation, with DELETE
// limited to columns, or with an operation listed twice for one table (two entries of one
// table may limit different operations to different columns).
func (e *Engine) validateTables(p timebox.GrantPlan) ([]timebox.TableGrant, error) {
	if len(p.Tables) == 0 {
		return nil, nil
	}
	if p.Method != "" && p.Method != timebox.MethodEphemeralLogin {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: ad-hoc table grants need method %s, not %s",
			e.name, timebox.MethodEphemeralLogin, timebox.Clip(p.Method))
	}
	out := make([]timebox.TableGrant, 0, len(p.Tables))
	seen := map[string]bool{} // table + "\x00" + operation
	for _, t := range p.Tables {
		n, err := normalizeTable(p.Database, t)
		if err != nil {
			return nil, timebox.Errorf(timebox.EINVALID, "server %s: table %q: %v", e.name, timebox.Clip(t.Table), err)
		}
		for _, op := range n.Operations {
			if seen[n.Table+"\x00"+op] {
				return nil, timebox.Errorf(timebox.EINVALID, "server %s: table %q: %s listed twice", e.name, timebox.Clip(t.Table), op)
			}
			seen[n.Table+"\x00"+op] = true
		}
		out = append(out, n)
	}
	return out, nil
}

// normalizeTable checks one table grant of a plan on database and returns it normalised.
func normalizeTable(database string, t timebox.TableGrant) (timebox.TableGrant, error) {
	n := timebox.TableGrant{Table: t.Table}
	if t.Schema != "" && t.Schema != database {
		return n, fmt.Errorf("schema %q is not the request's database %q (MySQL tables are named in the database)", timebox.Clip(t.Schema), database)
	}
	if err := ValidIdent(t.Table); err != nil {
		return n, err
	}
	for _, op := range t.Operations {
		op = strings.ToUpper(strings.TrimSpace(op))
		if !slices.Contains(tableOps, op) {
			return n, fmt.Errorf("unknown operation %q (SELECT, INSERT, UPDATE or DELETE)", timebox.Clip(op))
		}
		if !slices.Contains(n.Operations, op) {
			n.Operations = append(n.Operations, op)
		}
	}
	if len(n.Operations) == 0 {
		return n, errors.New("no operation")
	}
	slices.Sort(n.Operations)
	for _, c := range t.Columns {
		if err := ValidIdent(c); err != nil {
			return n, fmt.Errorf("column %q: %v", timebox.Clip(c), err)
		}
		if !slices.ContainsFunc(n.Columns, func(h string) bool { return strings.EqualFold(h, c) }) {
			n.Columns = append(n.Columns, c)
		}
	}
	if len(n.Columns) > 0 && slices.Contains(n.Operations, "DELETE") {
		return n, errors.New("DELETE cannot be limited to columns")
	}
	return n, nil
}

// onTable returns "`db`.`table`", the table-level object of a GRANT or REVOKE. Unlike at
// the database level (onDB), _ and % are no wildcards here: the name is not escaped.
func onTable(db, table string) string {
	return QuoteIdent(db) + "." + QuoteIdent(table)
}

// tableGrantSQL returns the GRANT of table grant t, normalised, on database db to account
// who: GRANT SELECT, UPDATE ON `db`.`t` TO who, or with t.Columns GRANT SELECT (`a`, `b`),
// UPDATE (`a`, `b`) ON `db`.`t` TO who.
func tableGrantSQL(t timebox.TableGrant, db, who string) string {
	ops := slices.Clone(t.Operations)
	if len(t.Columns) > 0 {
		cols := quoteColumns(t.Columns)
		for i := range ops {
			ops[i] += " (" + cols + ")"
		}
	}
	return "GRANT " + strings.Join(ops, ", ") + " ON " + onTable(db, t.Table) + " TO " + who
}

// quoteColumns returns columns quoted and separated by commas.
func quoteColumns(columns []string) string {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = QuoteIdent(c)
	}
	return strings.Join(quoted, ", ")
}

// tablePriv is one table privilege of an account: op on a whole table (column "") or on one
// column of it. Two are the same privilege when they are equal (==): column names are compared
// exactly, since the server, case-insensitive about columns, keeps a column privilege granted
// as "ID" apart from one granted as "id" in mysql.columns_priv.
type tablePriv struct{ db, table, op, column string }

// wantedTablePrivs lists the table privileges that tables, normalised, give on database db.
func wantedTablePrivs(db string, tables []timebox.TableGrant) []tablePriv {
	var out []tablePriv
	for _, t := range tables {
		for _, op := range t.Operations {
			if len(t.Columns) == 0 {
				out = append(out, tablePriv{db, t.Table, op, ""})
			}
			for _, c := range t.Columns {
				out = append(out, tablePriv{db, t.Table, op, c})
			}
		}
	}
	return out
}

// tablesSQL returns the statements that give account who exactly tables on database db: a
// REVOKE, per table, of what held (the account's table privileges now) has beyond them, then
// one GRANT per table grant.
func tablesSQL(who, db string, tables []timebox.TableGrant, held []tablePriv) []string {
	want := wantedTablePrivs(db, tables)
	extra := slices.DeleteFunc(slices.Clone(held), func(h tablePriv) bool { return slices.Contains(want, h) })
	stmts := revokeTablesSQL(who, extra)
	for _, t := range tables {
		stmts = append(stmts, tableGrantSQL(t, db, who))
	}
	return stmts
}

// revokeTablesSQL returns one REVOKE per table of privs: REVOKE INSERT, SELECT (`c`) ON
// `db`.`t` FROM who.
func revokeTablesSQL(who string, privs []tablePriv) []string {
	slices.SortFunc(privs, func(a, b tablePriv) int {
		return cmp.Or(cmp.Compare(a.db, b.db), cmp.Compare(a.table, b.table),
			cmp.Compare(min(len(a.column), 1), min(len(b.column), 1)), // whole table first
			cmp.Compare(a.op, b.op), cmp.Compare(a.column, b.column))
	})
	var stmts []string
	for len(privs) > 0 {
		n := 1
		for n < len(privs) && privs[n].db == privs[0].db && privs[n].table == privs[0].table {
			n++
		}
		var parts []string
		for i := 0; i < n; {
			j := i + 1
			var cols []string
			if privs[i].column != "" {
				cols = append(cols, privs[i].column)
				for j < n && privs[j].op == privs[i].op && privs[j].column != "" {
					cols, j = append(cols, privs[j].column), j+1
				}
			}
			part := privs[i].op
			if len(cols) > 0 {
				part += " (" + quoteColumns(cols) + ")"
			}
			parts, i = append(parts, part), j
		}
		stmts = append(stmts, "REVOKE "+strings.Join(parts, ", ")+" ON "+onTable(privs[0].db, privs[0].table)+" FROM "+who)
		privs = privs[n:]
	}
	return stmts
}

// accountTables returns the table privileges of account user@AccountHost, from
// mysql.tables_priv and mysql.columns_priv. Where the admin may not read them (set up before
// ad-hoc table grants existed), it returns none, unless need: then an error that says which
// privilege the admin lacks.
func (e *Engine) accountTables(ctx context.Context, db *sql.DB, user string, need bool) ([]tablePriv, error) {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	var held []tablePriv
	err := e.tablePrivs(ctx, db, "SELECT Db, Table_name, '', Table_priv FROM mysql.tables_priv WHERE User = ? AND Host = ?", user, &held)
	if err == nil {
		err = e.tablePrivs(ctx, db, "SELECT Db, Table_name, Column_name, Column_priv FROM mysql.columns_priv WHERE User = ? AND Host = ?", user, &held)
	}
	switch n := errNumber(err); {
	case n != erTableAccessDenied && n != erDBAccessDenied:
		return held, err
	case need:
		return nil, timebox.Errorf(timebox.EINTERNAL, "server %s: the admin cannot read mysql.tables_priv and mysql.columns_priv, which ad-hoc "+
			"table grants need (GRANT SELECT ON mysql.tables_priv …, see SetupStatements and timebox doctor)", e.name)
	}
	return nil, nil
}

// tablePrivs appends to held one tablePriv per privilege of each row of query (database,
// table, column, privileges as a SET such as "Select,Insert") for account user@AccountHost.
func (e *Engine) tablePrivs(ctx context.Context, db *sql.DB, query, user string, held *[]tablePriv) error {
	rows, err := e.queryPrepared(ctx, db, query, user, e.AccountHost)
	return scanRows(rows, err, func(scan func(...any) error) error {
		var p tablePriv
		var set string
		if err := scan(&p.db, &p.table, &p.column, &set); err != nil {
			return err
		}
		for _, v := range strings.Split(set, ",") {
			if v != "" {
				p.op = tablePrivName(v)
				*held = append(*held, p)
			}
		}
		return nil
	})
}

// tablePrivName returns the GRANT name of a privilege as the SETs of mysql.tables_priv and
// mysql.columns_priv write it, e.g. "Show view" → SHOW VIEW.
func tablePrivName(v string) string {
	switch n := strings.ToUpper(v); n {
	case "GRANT":
		return "GRANT OPTION"
	case "DELETE VERSIONING ROWS":
		return "DELETE HISTORY"
	default:
		return n
	}
}

// CheckTables returns EINVALID naming the first table or column of p.Tables missing from
// p.Database, EUNAVAILABLE when the server cannot be reached (see timebox.TableChecker).
func (e *Engine) CheckTables(ctx context.Context, p timebox.GrantPlan) error {
	tables, err := e.validateTables(p)
	if err != nil || len(tables) == 0 {
		return err
	}
	db, err := e.db()
	if err != nil {
		return err
	}
	return e.missingTable(ctx, db, p.Database, tables)
}

// tableProblem explains a table grant refused for a missing table or column (errors 1146 and
// 1054): an EINVALID error naming the first table of tables missing from database db, or
// the first missing column.
func (e *Engine) tableProblem(ctx context.Context, db *sql.DB, database string, tables []timebox.TableGrant) error {
	if err := e.missingTable(ctx, db, database, tables); err != nil {
		return err
	}
	return timebox.Errorf(timebox.EINVALID, "server %s: a table or column of the request does not exist in database %s", e.name, QuoteIdent(database))
}

// missingTable returns an EINVALID error naming the first table of tables missing from
// database db, or the first missing column; nil when they all exist.
func (e *Engine) missingTable(ctx context.Context, db *sql.DB, database string, tables []timebox.TableGrant) error {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	q := "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?" +
		strings.Repeat(", ?", len(tables)-1) + ")"
	args := []any{database}
	for _, t := range tables {
		args = append(args, t.Table)
	}
	columns := map[string][]string{} // exact table name → its columns
	rows, err := db.QueryContext(ctx, q, args...)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var t, c string
		err := scan(&t, &c)
		columns[t] = append(columns[t], c)
		return err
	})
	if err != nil {
		return e.wrap(err, nil)
	}
	for _, t := range tables {
		have, ok := columns[t.Table]
		if !ok {
			return timebox.Errorf(timebox.EINVALID, "server %s: table %s does not exist in database %s", e.name, QuoteIdent(t.Table), QuoteIdent(database))
		}
		for _, c := range t.Columns {
			if !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(h, c) }) {
				return timebox.Errorf(timebox.EINVALID, "server %s: table %s of database %s has no column %s",
					e.name, QuoteIdent(t.Table), QuoteIdent(database), QuoteIdent(c))
			}
		}
	}
	return nil
}
