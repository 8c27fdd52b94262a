package mysql

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// erColumnAccessDenied is the refusal of a column the account holds no privilege on.
const erColumnAccessDenied = 1143

// Names with a backtick, a quote and a space.
const (
	oddTable  = "or`d 'x' s"
	oddColumn = "co`l 'a' b"
)

// tablesFixture adds to f the tables orders(id, total, secret, status) and oddTable(oddColumn,
// other), one row each.
func tablesFixture(t *testing.T, f *fixture) {
	db := QuoteIdent(f.db)
	for _, stmt := range []string{
		"CREATE TABLE " + db + ".orders (id int, total decimal(10,2), secret text, status text)",
		"INSERT INTO " + db + ".orders VALUES (1, 9.50, 's3cret', 'new')",
		"CREATE TABLE " + onTable(f.db, oddTable) + " (" + QuoteIdent(oddColumn) + " int, other int)",
		"INSERT INTO " + onTable(f.db, oddTable) + " VALUES (7, 8)",
	} {
		mustExec(t, f.m, stmt)
	}
}

// tablePrivRows counts the rows of the account user in mysql.tables_priv and mysql.columns_priv.
func tablePrivRows(t *testing.T, f *fixture, user string) (tables, columns int) {
	t.Helper()
	return count(t, f.m, "SELECT COUNT(*) FROM mysql.tables_priv WHERE User = ?", user),
		count(t, f.m, "SELECT COUNT(*) FROM mysql.columns_priv WHERE User = ?", user)
}

// want runs stmt on conn and checks that it works (no error numbers) or fails with one of
// the error numbers.
func want(t *testing.T, conn *sql.Conn, stmt string, numbers ...uint16) {
	t.Helper()
	_, err := conn.ExecContext(t.Context(), stmt)
	if len(numbers) == 0 {
		if err != nil {
			t.Errorf("%s: %v", stmt, err)
		}
		return
	}
	wantErrNumber(t, err, stmt, numbers...)
}

// TestTableGrants: an ad-hoc plan of column grants gives exactly those columns, with names
// that need quoting; a Grant run again with a narrower plan converges; Revoke leaves no table
// or column privilege behind.
func TestTableGrants(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), nasty, true)
	tablesFixture(t, f)
	ctx := t.Context()
	p := f.plan("tbx 't'`\\ ")
	p.Privileges, p.Roles = nil, nil
	p.Tables = []timebox.TableGrant{
		{Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"id", "total"}},
		{Table: "orders", Operations: []string{"update"}, Columns: []string{"status"}},
		{Schema: f.db, Table: oddTable, Operations: []string{"SELECT"}, Columns: []string{oddColumn}},
	}
	f.grant(t, p)
	conn := f.login(t, p.Principal, p.Password)
	var id int
	var total float64
	if err := conn.QueryRowContext(ctx, "SELECT id, total FROM orders").Scan(&id, &total); err != nil || id != 1 || total != 9.5 {
		t.Errorf("SELECT id, total: %d, %v, %v", id, total, err)
	}
	want(t, conn, "SELECT secret FROM orders", erColumnAccessDenied)
	want(t, conn, "SELECT * FROM orders", erColumnAccessDenied, erTableAccessDenied)
	want(t, conn, "INSERT INTO orders (id) VALUES (2)", erTableAccessDenied, erColumnAccessDenied)
	want(t, conn, "DELETE FROM orders", erTableAccessDenied)
	want(t, conn, "SELECT id FROM items", erTableAccessDenied)
	want(t, conn, "UPDATE orders SET status = 'paid'")
	want(t, conn, "UPDATE orders SET total = 1", erColumnAccessDenied)
	want(t, conn, "SELECT "+QuoteIdent(oddColumn)+" FROM "+QuoteIdent(oddTable))
	want(t, conn, "SELECT other FROM "+QuoteIdent(oddTable), erColumnAccessDenied)
	if tables, columns := tablePrivRows(t, f, p.Principal); tables != 2 || columns != 4 {
		t.Errorf("rows in tables_priv, columns_priv = %d, %d; want 2, 4", tables, columns)
	}

	// Narrower: SELECT (id) on orders only.
	p.Tables = []timebox.TableGrant{{Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"ID"}}}
	f.grant(t, p)
	conn = f.login(t, p.Principal, p.Password)
	want(t, conn, "SELECT id FROM orders")
	want(t, conn, "SELECT total FROM orders", erColumnAccessDenied)
	want(t, conn, "UPDATE orders SET status = 'x'", erColumnAccessDenied, erTableAccessDenied)
	want(t, conn, "SELECT "+QuoteIdent(oddColumn)+" FROM "+QuoteIdent(oddTable), erColumnAccessDenied, erTableAccessDenied)
	if tables, columns := tablePrivRows(t, f, p.Principal); tables != 1 || columns != 1 {
		t.Errorf("after narrowing, rows in tables_priv, columns_priv = %d, %d; want 1, 1", tables, columns)
	}

	// Whole table: column privileges go, DELETE and SELECT * work.
	p.Tables = []timebox.TableGrant{{Table: "orders", Operations: []string{"SELECT", "DELETE"}}}
	f.grant(t, p)
	conn = f.login(t, p.Principal, p.Password)
	want(t, conn, "SELECT * FROM orders")
	want(t, conn, "DELETE FROM orders WHERE id = 42")
	if tables, columns := tablePrivRows(t, f, p.Principal); tables != 1 || columns != 0 {
		t.Errorf("whole table: rows in tables_priv, columns_priv = %d, %d; want 1, 0", tables, columns)
	}

	res, err := f.eng.Revoke(ctx, p)
	if err != nil || !res.Dropped {
		t.Fatalf("revoke = %+v, %v", res, err)
	}
	if tables, columns := tablePrivRows(t, f, p.Principal); tables != 0 || columns != 0 {
		t.Errorf("after revoke, rows in tables_priv, columns_priv = %d, %d; want none", tables, columns)
	}
}

// TestTableGrantMissing: a missing table or column is EINVALID naming it, without a driver
// message; fixing the plan converges.
func TestTableGrantMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	tablesFixture(t, f)
	ctx := t.Context()
	p := f.plan("tbx_miss_")
	p.Tables = []timebox.TableGrant{
		{Table: "orders", Operations: []string{"SELECT"}},
		{Table: "no_such_table", Operations: []string{"SELECT"}},
	}
	wantCode(t, f.eng.CheckTables(ctx, p), timebox.EINVALID, "check of a missing table")
	err := f.eng.Grant(ctx, p)
	wantCode(t, err, timebox.EINVALID, "grant on a missing table")
	if err != nil && (!strings.Contains(err.Error(), "table `no_such_table` does not exist") || strings.Contains(err.Error(), "1146")) {
		t.Errorf("missing table: %v", err)
	}
	p.Tables = []timebox.TableGrant{{Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"id", "no_such_column"}}}
	err = f.eng.Grant(ctx, p)
	wantCode(t, err, timebox.EINVALID, "grant on a missing column")
	if err != nil && (!strings.Contains(err.Error(), "no column `no_such_column`") || strings.Contains(err.Error(), "Unknown column")) {
		t.Errorf("missing column: %v", err)
	}
	wantCode(t, f.eng.CheckTables(ctx, p), timebox.EINVALID, "check of a missing column")
	p.Tables = p.Tables[:1]
	p.Tables[0].Columns = []string{"id"}
	if err := f.eng.CheckTables(ctx, p); err != nil {
		t.Errorf("check of existing tables and columns: %v", err)
	}
	f.grant(t, p)
	conn := f.login(t, p.Principal, p.Password)
	want(t, conn, "SELECT id FROM orders")
	f.revoke(t, p)
}

func TestValidateTables(t *testing.T) {
	eng, err := New("my-test", "mysql://timebox@127.0.0.1:1/", "pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	good := timebox.GrantPlan{Principal: "tbx_a", Password: "pw", Database: "shop", ValidUntil: timeIn(1),
		Tables: []timebox.TableGrant{{Table: "orders", Operations: []string{"select", "UPDATE", "select"}, Columns: []string{"a", "A", "b"}}}}
	got, err := eng.validateTables(good)
	if err != nil || len(got) != 1 || strings.Join(got[0].Operations, ",") != "SELECT,UPDATE" || strings.Join(got[0].Columns, ",") != "a,b" {
		t.Errorf("validateTables = %+v, %v", got, err)
	}
	for name, mutate := range badTablePlans() {
		p := good
		p.Tables = []timebox.TableGrant{good.Tables[0]}
		mutate(&p)
		wantCode(t, eng.Grant(t.Context(), p), timebox.EINVALID, name)
	}
}

// badTablePlans are changes that make a plan with table grants invalid.
func badTablePlans() map[string]func(*timebox.GrantPlan) {
	return map[string]func(*timebox.GrantPlan){
		"DELETE limited to columns": func(p *timebox.GrantPlan) { p.Tables[0].Operations = []string{"DELETE"} },
		"unknown operation":         func(p *timebox.GrantPlan) { p.Tables[0].Operations = []string{"DROP"} },
		"no operation":              func(p *timebox.GrantPlan) { p.Tables[0].Operations = nil },
		"other schema":              func(p *timebox.GrantPlan) { p.Tables[0].Schema = "other" },
		"empty table":               func(p *timebox.GrantPlan) { p.Tables[0].Table = "" },
		"NUL in column":             func(p *timebox.GrantPlan) { p.Tables[0].Columns = []string{"a\x00"} },
		"operation twice": func(p *timebox.GrantPlan) {
			p.Tables = append(p.Tables, timebox.TableGrant{Table: "orders", Operations: []string{"SELECT"}})
		},
		"role_membership": func(p *timebox.GrantPlan) { p.Method = timebox.MethodRoleMembership },
		"unlock_login":    func(p *timebox.GrantPlan) { p.Method = timebox.MethodUnlockLogin },
	}
}

// TestTableGrantsUnreadable: with an admin that cannot read mysql.tables_priv and
// mysql.columns_priv (set up before table grants existed), doctor warns (ad-hoc grants are optional), a Grant run again
// with table grants fails with the fix, and one without table grants still works.
func TestTableGrantsUnreadable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testdb.RequireMariaDB(t), plain, true)
	tablesFixture(t, f)
	ctx := t.Context()
	a := account(f.admin, "%")
	mustExec(t, f.m, "REVOKE SELECT ON mysql.tables_priv FROM "+a)
	mustExec(t, f.m, "REVOKE SELECT ON mysql.columns_priv FROM "+a)
	_, findings, err := f.eng.Doctor(ctx, []string{f.db}, nil)
	if err != nil || !hasFinding(findings, SeverityWarn, "cannot read mysql.tables_priv") || !hasFinding(findings, SeverityWarn, "cannot read mysql.columns_priv") {
		t.Errorf("doctor = %+v, %v; want both tables flagged", findings, err)
	}
	p := f.plan("tbx_unr_")
	p.Tables = []timebox.TableGrant{{Table: "orders", Operations: []string{"SELECT"}}}
	f.grant(t, p)
	err = f.eng.Grant(ctx, p)
	wantCode(t, err, timebox.EINTERNAL, "grant again with table grants")
	if err != nil && !strings.Contains(err.Error(), "GRANT SELECT ON mysql.tables_priv") {
		t.Errorf("error without the fix: %v", err)
	}
	p.Tables = nil
	if err := f.eng.Grant(ctx, p); err != nil {
		t.Errorf("grant again without table grants: %v", err)
	}
	f.revoke(t, p)
	if tables, columns := tablePrivRows(t, f, p.Principal); tables != 0 || columns != 0 {
		t.Errorf("after revoke, rows in tables_priv, columns_priv = %d, %d; want none", tables, columns)
	}
}
