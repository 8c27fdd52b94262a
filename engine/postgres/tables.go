package postgres

import (
	"slices"
	"strings"

	"github.com/timebox-dev/timebox"
)

// tableOperations are the operations an ad-hoc request may grant on a table; those that
// can be limited to columns are marked true.
var tableOperations = map[string]bool{"SELECT": true, "INSERT": true, "UPDATE": true, "DELETE": false}

// defaultSchema is the schema of a table given without one.
const defaultSchema = "public"

// planTables checks the ad-hoc tables of p and returns them in canonical form: schema set
// (default public), operations upper case, sorted and once each, columns once each. Tables are
// only for ephemeral logins. EINVALID names the first problem.
func (e *Engine) planTables(p timebox.GrantPlan) ([]timebox.TableGrant, error) {
	if len(p.Tables) == 0 {
		return nil, nil
	}
	if p.Method == timebox.MethodUnlockLogin || p.Method == timebox.MethodRoleMembership {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: ad-hoc table grants need method %s, not %s",
			e.name, timebox.MethodEphemeralLogin, p.Method)
	}
	out := make([]timebox.TableGrant, 0, len(p.Tables))
	seen := map[[2]string]bool{}
	for _, t := range p.Tables {
		t, err := e.normalizeTable(t)
		if err != nil {
			return nil, err
		}
		if key := [2]string{t.Schema, t.Table}; seen[key] {
			return nil, timebox.Errorf(timebox.EINVALID, "server %s: table %s is listed twice", e.name, tableName(t))
		} else {
			seen[key] = true
		}
		out = append(out, t)
	}
	return out, nil
}

// normalizeTable checks one table of an ad-hoc request and returns it in canonical form.
func (e *Engine) normalizeTable(t timebox.TableGrant) (timebox.TableGrant, error) {
	bad := func(what, s string, err error) error {
		return timebox.Errorf(timebox.EINVALID, "server %s: %s %q: %v", e.name, what, s, err)
	}
	if t.Schema == "" {
		t.Schema = defaultSchema
	}
	if err := ValidIdent(t.Schema); err != nil {
		return t, bad("schema", t.Schema, err)
	}
	if err := ValidIdent(t.Table); err != nil {
		return t, bad("table", t.Table, err)
	}
	var cols []string
	for _, c := range t.Columns {
		if err := ValidIdent(c); err != nil {
			return t, bad("column", c, err)
		}
		if !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	var ops []string
	for _, op := range t.Operations {
		op = strings.ToUpper(strings.TrimSpace(op))
		if _, ok := tableOperations[op]; !ok {
			return t, timebox.Errorf(timebox.EINVALID, "server %s: table %s: unknown operation %q (use SELECT, INSERT, UPDATE or DELETE)",
				e.name, tableName(t), timebox.Clip(op))
		}
		if len(cols) > 0 && !tableOperations[op] {
			return t, timebox.Errorf(timebox.EINVALID, "server %s: table %s: DELETE cannot be limited to columns", e.name, tableName(t))
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return t, timebox.Errorf(timebox.EINVALID, "server %s: table %s: no operation", e.name, tableName(t))
	}
	slices.Sort(ops)
	t.Operations, t.Columns = slices.Compact(ops), cols
	return t, nil
}

// tableName returns t's qualified, quoted name: "schema"."table".
func tableName(t timebox.TableGrant) string {
	return QuoteIdent(t.Schema) + "." + QuoteIdent(t.Table)
}

// tableGrantSQL returns the GRANT of t's operations to the login who (quoted), limited to
// t's columns when it has some: GRANT SELECT ("a", "b"), UPDATE ("a", "b") ON "s"."t" TO who.
// Grant runs exactly this string and PlanStatements shows it.
func tableGrantSQL(who string, t timebox.TableGrant) string {
	cols := ""
	if len(t.Columns) > 0 {
		quoted := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			quoted[i] = QuoteIdent(c)
		}
		cols = " (" + strings.Join(quoted, ", ") + ")"
	}
	privs := make([]string, len(t.Operations))
	for i, op := range t.Operations {
		privs[i] = op + cols
	}
	return "GRANT " + strings.Join(privs, ", ") + " ON " + tableName(t) + " TO " + who
}

// usageSQL returns the GRANT of USAGE on schema to the login who (quoted).
func usageSQL(who, schema string) string {
	return "GRANT USAGE ON SCHEMA " + QuoteIdent(schema) + " TO " + who
}

// wantedPrivileges returns the privileges t gives, in the form heldTables reads them back:
// "SELECT" for a table privilege, "SELECT\x00col" for a column privilege, sorted.
func wantedPrivileges(t timebox.TableGrant) []string {
	var out []string
	for _, op := range t.Operations {
		if len(t.Columns) == 0 {
			out = append(out, op)
		}
		for _, c := range t.Columns {
			out = append(out, op+"\x00"+c)
		}
	}
	slices.Sort(out)
	return out
}
