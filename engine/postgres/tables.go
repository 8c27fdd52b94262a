package postgres

import (
	"slices"
	"strings"

	"github.com/timebox-dev/timebox"
)

// defaultSchema is the schema of a table given without one.
const defaultSchema = "public"

// planTables checks the ad-hoc tables of p with timebox.NormalizeTables and returns them in
// its canonical form: schema set (default public), operations upper case, sorted and once
// each, columns once each, tables sorted. Tables are only for ephemeral logins. EINVALID
// names the first problem.
func (e *Engine) planTables(p timebox.GrantPlan) ([]timebox.TableGrant, error) {
	if len(p.Tables) == 0 {
		return nil, nil
	}
	if p.Method == timebox.MethodUnlockLogin || p.Method == timebox.MethodRoleMembership {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: ad-hoc table grants need method %s, not %s",
			e.name, timebox.MethodEphemeralLogin, p.Method)
	}
	tables, err := timebox.NormalizeTables(p.Tables, timebox.EnginePostgres)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: %v", e.name, err)
	}
	return tables, nil
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
