package timebox

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tableOperations are the operations an ad-hoc request may ask for on a table.
var tableOperations = map[string]bool{"SELECT": true, "INSERT": true, "UPDATE": true, "DELETE": true}

// Bounds of an ad-hoc request, so that one request cannot make an engine run thousands of
// statements.
const (
	maxAdHocTables  = 50
	maxAdHocColumns = 100
)

// ParseTableSpec parses the command line's form of a table grant:
// [SCHEMA.]TABLE[:OPERATIONS[:COLUMNS]], operations and columns separated by commas, e.g.
// public.orders:select,update:id,status. Operations default to SELECT. Names that contain
// '.', ':' or ',' can only be given through the API's JSON.
func ParseTableSpec(s string) (TableGrant, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return TableGrant{}, Errorf(EINVALID, "table %q: use [SCHEMA.]TABLE[:OPERATIONS[:COLUMNS]]", Clip(s))
	}
	var t TableGrant
	if schema, table, ok := strings.Cut(parts[0], "."); ok {
		t.Schema, t.Table = schema, table
	} else {
		t.Table = parts[0]
	}
	t.Operations = []string{"SELECT"}
	if len(parts) > 1 {
		t.Operations = strings.Split(parts[1], ",")
	}
	if len(parts) > 2 {
		t.Columns = strings.Split(parts[2], ",")
	}
	return t, nil
}

// checkIdent validates a table, schema or column name of an ad-hoc request: 1 to 63 bytes
// of printable UTF-8. Anything else is the engine's job: it quotes every name.
func checkIdent(what, s string) error {
	switch {
	case s == "" || len(s) > 63:
		return Errorf(EINVALID, "%s name %q must be 1 to 63 bytes long", what, Clip(s))
	case !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || isBidiControl(r) }) >= 0:
		return Errorf(EINVALID, "%s name %q contains an invalid or control character", what, Clip(s))
	}
	return nil
}

// NormalizeTables checks an ad-hoc request's tables for engine and returns them in a
// canonical form: operations upper case, sorted and once each; columns once each; tables
// sorted, each once. EINVALID names the first problem.
func NormalizeTables(tables []TableGrant, engine string) ([]TableGrant, error) {
	if len(tables) == 0 {
		return nil, Errorf(EINVALID, "an ad-hoc request lists at least one table")
	} else if len(tables) > maxAdHocTables {
		return nil, Errorf(EINVALID, "an ad-hoc request lists at most %d tables", maxAdHocTables)
	}
	out := make([]TableGrant, 0, len(tables))
	seen := map[string]bool{}
	for _, t := range tables {
		if engine == EngineMySQL && t.Schema != "" {
			return nil, Errorf(EINVALID, "table %q: MySQL tables are in the requested database; give no schema", Clip(t.Schema+"."+t.Table))
		} else if engine == EnginePostgres && t.Schema == "" {
			t.Schema = "public"
		}
		name := t.Table
		if t.Schema != "" {
			name = t.Schema + "." + t.Table
			if err := checkIdent("schema", t.Schema); err != nil {
				return nil, err
			}
		}
		if err := checkIdent("table", t.Table); err != nil {
			return nil, err
		} else if seen[name] {
			return nil, Errorf(EINVALID, "table %s is listed twice", Clip(name))
		}
		seen[name] = true
		norm, err := normalizeTable(t, name)
		if err != nil {
			return nil, err
		}
		out = append(out, norm)
	}
	slices.SortFunc(out, func(a, b TableGrant) int { return strings.Compare(a.Schema+"."+a.Table, b.Schema+"."+b.Table) })
	return out, nil
}

// normalizeTable canonicalises one table's operations and columns.
func normalizeTable(t TableGrant, name string) (TableGrant, error) {
	var ops []string
	for _, op := range t.Operations {
		op = strings.ToUpper(strings.TrimSpace(op))
		if !tableOperations[op] {
			return t, Errorf(EINVALID, "table %s: unknown operation %q (supported: SELECT, INSERT, UPDATE, DELETE)", Clip(name), Clip(op))
		}
		if !slices.Contains(ops, op) {
			ops = append(ops, op)
		}
	}
	if len(ops) == 0 {
		return t, Errorf(EINVALID, "table %s: name at least one operation", Clip(name))
	}
	slices.Sort(ops)
	var cols []string
	for _, c := range t.Columns {
		if err := checkIdent("column", c); err != nil {
			return t, fmt.Errorf("table %s: %w", Clip(name), err)
		}
		if !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	switch {
	case len(cols) > maxAdHocColumns:
		return t, Errorf(EINVALID, "table %s: at most %d columns", Clip(name), maxAdHocColumns)
	case len(cols) > 0 && slices.Contains(ops, "DELETE"):
		return t, Errorf(EINVALID, "table %s: DELETE cannot be limited to columns; ask for it on a table of its own or without columns", Clip(name))
	}
	return TableGrant{Schema: t.Schema, Table: t.Table, Operations: ops, Columns: cols}, nil
}

// TableOperations returns every operation the tables ask for, sorted, once each.
func TableOperations(tables []TableGrant) []string {
	var ops []string
	for _, t := range tables {
		for _, op := range t.Operations {
			if !slices.Contains(ops, op) {
				ops = append(ops, op)
			}
		}
	}
	slices.Sort(ops)
	return ops
}

// NarrowTables applies an approver's narrowing: keep must be a subset of asked (tables,
// operations and columns may only be removed; removing every column of a column-limited
// table is not a widening to the whole table). It returns the narrowed tables and the
// difference in words, "" when nothing changed.
func NarrowTables(asked, keep []TableGrant) ([]TableGrant, string, error) {
	byName := map[string]TableGrant{}
	for _, t := range asked {
		byName[t.Schema+"."+t.Table] = t
	}
	var diff []string
	kept := map[string]bool{}
	for _, k := range keep {
		key := k.Schema + "." + k.Table
		a, ok := byName[key]
		if !ok {
			return nil, "", Errorf(EINVALID, "an approval may only narrow: table %s was not requested", Clip(strings.TrimPrefix(key, ".")))
		}
		kept[key] = true
		for _, op := range k.Operations {
			if !slices.Contains(a.Operations, op) {
				return nil, "", Errorf(EINVALID, "an approval may only narrow: %s on %s was not requested", op, Clip(a.Table))
			}
		}
		if len(a.Columns) > 0 && len(k.Columns) == 0 {
			return nil, "", Errorf(EINVALID, "an approval may only narrow: %s was requested on columns %s only", Clip(a.Table), strings.Join(a.Columns, ", "))
		}
		for _, c := range k.Columns {
			if len(a.Columns) > 0 && !slices.Contains(a.Columns, c) {
				return nil, "", Errorf(EINVALID, "an approval may only narrow: column %s of %s was not requested", Clip(c), Clip(a.Table))
			}
		}
		if d := tableDiff(a, k); d != "" {
			diff = append(diff, d)
		}
	}
	for _, a := range asked {
		if !kept[a.Schema+"."+a.Table] {
			diff = append(diff, "removed table "+tableName(a))
		}
	}
	return keep, strings.Join(diff, "; "), nil
}

// tableDiff describes what narrowing a to k removed.
func tableDiff(a, k TableGrant) string {
	var parts []string
	for _, op := range a.Operations {
		if !slices.Contains(k.Operations, op) {
			parts = append(parts, "removed "+op)
		}
	}
	if len(k.Columns) > 0 {
		var gone []string
		for _, c := range a.Columns {
			if !slices.Contains(k.Columns, c) {
				gone = append(gone, c)
			}
		}
		if len(a.Columns) == 0 {
			parts = append(parts, "limited to columns "+strings.Join(k.Columns, ", "))
		} else if len(gone) > 0 {
			parts = append(parts, "removed columns "+strings.Join(gone, ", "))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return tableName(a) + ": " + strings.Join(parts, ", ")
}

// tableName is a table's name as people read it.
func tableName(t TableGrant) string {
	if t.Schema == "" {
		return t.Table
	}
	return t.Schema + "." + t.Table
}

// DescribeTables says in one line what tables grant, e.g. "public.orders: SELECT (id, total)".
func DescribeTables(tables []TableGrant) string {
	var parts []string
	for _, t := range tables {
		s := tableName(t) + ": " + strings.Join(t.Operations, ", ")
		if len(t.Columns) > 0 {
			s += " (" + strings.Join(t.Columns, ", ") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
