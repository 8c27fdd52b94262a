package postgres

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The engine's SQL, as the hostile-requester suite reads it from the package's own source:
// every string literal of the non-test files that looks like SQL, with its quoted strings,
// quoted identifiers and comments removed.
var (
	sqlLiteral  = regexp.MustCompile(`\b(SELECT|GRANT|REVOKE|ALTER|CREATE|DROP|REASSIGN|COMMENT|FROM|WHERE)\b`)
	sqlQuoted   = regexp.MustCompile(`'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*`)
	sqlCall     = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\(`)
	sqlOperator = regexp.MustCompile(`[+\-*/<>=~!@#%^&|?]+`)
	sqlRelation = regexp.MustCompile(`\bpg_[a-z_]+\b`)
	// Operators written as keywords, and the operators PostgreSQL resolves for them.
	sqlKeywordOps = map[*regexp.Regexp][]string{
		regexp.MustCompile(`\bI?LIKE\b`):                 {"~~", "~~*"},
		regexp.MustCompile(`\bNOT\s+I?LIKE\b`):           {"!~~", "!~~*"},
		regexp.MustCompile(`\b(IN\s*\(|ANY\()`):          {"="},
		regexp.MustCompile(`\bNOT\s+IN\b`):               {"<>"},
		regexp.MustCompile(`\bIS\s+(NOT\s+)?DISTINCT\b`): {"="},
	}
)

// sqlSyntax are the words followed by "(" in the engine's SQL that are syntax, not functions:
// they cannot be overloaded. A new word here needs a reason.
var sqlSyntax = []string{"any", "array", "coalesce", "exists", "in", "values", "filter", "nullif", "greatest", "least", "row",
	"x"} // x: the alias of jsonb_to_recordset(...) AS x(i int, ...) in resolveTableSQL

// engineSQL is what enumerateSQL found.
type engineSQL struct {
	functions, operators, relations []string
}

// enumerateSQL reads the package's non-test Go files and returns the names of the functions
// called, the operators used and the pg_ relations read by its SQL.
func enumerateSQL(t *testing.T) engineSQL {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	fns, ops, rels := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			ast.Inspect(f, func(n ast.Node) bool {
				l, ok := n.(*ast.BasicLit)
				if !ok || l.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(l.Value)
				if err != nil || !sqlLiteral.MatchString(s) {
					return true
				}
				s = sqlQuoted.ReplaceAllString(s, " ")
				for _, m := range sqlCall.FindAllStringSubmatch(s, -1) {
					fns[strings.ToLower(m[1])] = true
				}
				for _, m := range sqlOperator.FindAllString(s, -1) {
					ops[m] = true
				}
				for re, names := range sqlKeywordOps {
					if re.MatchString(s) {
						for _, o := range names {
							ops[o] = true
						}
					}
				}
				for _, m := range sqlRelation.FindAllString(s, -1) {
					rels[m] = true
				}
				return true
			})
		}
	}
	return engineSQL{sortedKeys(fns), sortedKeys(ops), sortedKeys(rels)}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// overloadTypes are the concrete types a planted overload puts in place of a built-in's
// argument types, one position at a time; operatorTypes are those of planted operators, for
// every pair.
var (
	overloadTypes = []string{"text", "name", "oid", "integer", "bigint", "boolean", `"char"`, "text[]", "name[]", "oid[]",
		"integer[]", "jsonb", "regclass", "regrole", "timestamp with time zone"}
	operatorTypes = []string{"text", "name", "oid", "integer", "bigint", "boolean", `"char"`, "text[]", "name[]", "oid[]",
		"jsonb", "timestamp with time zone", "aclitem"}
)

// builtin is one overload of a pg_catalog function.
type builtin struct {
	ret      string // its result type, or text when polymorphic
	set      bool
	args     []string
	pseudo   []bool // args[i] is a pseudo-type (anyelement, "any", …)
	defaults int
}

// builtins returns the pg_catalog overloads of each function name, as seen by q.
func builtins(ctx context.Context, q *pgx.Conn, names []string) (map[string][]builtin, error) {
	rows, err := q.Query(ctx, `SELECT p.proname::text, p.proretset, CASE WHEN rt.typtype = 'p' THEN 'text' ELSE format_type(p.prorettype, NULL) END,
			array(SELECT format_type(a, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(a, i) ORDER BY i),
			array(SELECT t.typtype = 'p' FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(a, i) JOIN pg_catalog.pg_type t ON t.oid = u.a ORDER BY i),
			p.pronargdefaults
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_type rt ON rt.oid = p.prorettype
		WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY($1)`, names)
	if err != nil {
		return nil, err
	}
	out := map[string][]builtin{}
	for rows.Next() {
		var name string
		var b builtin
		if err := rows.Scan(&name, &b.set, &b.ret, &b.args, &b.pseudo, &b.defaults); err != nil {
			return nil, err
		}
		out[name] = append(out[name], b)
	}
	return out, rows.Err()
}

// overloadSignatures returns the argument lists to plant for the overloads bs of one name:
// each built-in's own (when it has no pseudo-type), each with one argument replaced by each
// overloadType, all text, and the shorter forms that defaults allow.
func overloadSignatures(bs []builtin) map[string]builtin {
	out := map[string]builtin{}
	add := func(b builtin, args []string) {
		c := b
		c.args = args
		out[strings.Join(args, ", ")] = c
	}
	for _, b := range bs {
		for k := 0; k <= b.defaults; k++ {
			args, pseudo := b.args[:len(b.args)-k], b.pseudo[:len(b.args)-k]
			if !slices.Contains(pseudo, true) {
				add(b, args)
			}
			allText := make([]string, len(args))
			for i := range args {
				allText[i] = "text"
				for _, ty := range overloadTypes {
					v := slices.Clone(args)
					v[i] = ty
					for j := range v {
						if j != i && pseudo[j] {
							v[j] = "text"
						}
					}
					add(b, v)
				}
			}
			add(b, allText)
		}
	}
	return out
}

// plantStatements returns the statements that plant, in schema (quoted), a same-name overload
// of every function in fns (with their built-in overloads bs), every operator in ops, and a
// view of the same name over every relation in rels (name → columns), each calling
// record(what) first. It
// returns how many it planted of each function and operator.
func plantStatements(schema, record string, fns map[string][]builtin, ops []string, rels map[string]string) (stmts []string, planted map[string]int) {
	planted = map[string]int{}
	for _, name := range slices.Sorted(maps.Keys(fns)) {
		sigs := overloadSignatures(fns[name])
		for _, key := range slices.Sorted(maps.Keys(sigs)) {
			b := sigs[key]
			body, ret := "RETURN NULL;", b.ret
			if b.set {
				body, ret = "RETURN;", "SETOF "+b.ret
			}
			stmts = append(stmts, fmt.Sprintf("CREATE FUNCTION %s.%s(%s) RETURNS %s LANGUAGE plpgsql AS $f$BEGIN PERFORM %s(%s); %s END$f$",
				schema, QuoteIdent(name), key, ret, record, QuoteLiteral("function "+name), body))
			planted[name]++
		}
	}
	for _, l := range operatorTypes {
		for _, r := range operatorTypes {
			stmts = append(stmts, fmt.Sprintf("CREATE FUNCTION %s.tbx_op(%s, %s) RETURNS boolean LANGUAGE plpgsql AS $f$BEGIN PERFORM %s('operator'); RETURN NULL; END$f$",
				schema, l, r, record))
		}
	}
	for _, op := range ops {
		for _, l := range operatorTypes {
			for _, r := range operatorTypes {
				stmts = append(stmts, fmt.Sprintf("CREATE OPERATOR %s.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %s.tbx_op)", schema, op, l, r, schema))
				planted[op]++
			}
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(rels)) {
		stmts = append(stmts, fmt.Sprintf("CREATE VIEW %s.%s AS SELECT %s FROM pg_catalog.%s WHERE %s(%s) IS NULL",
			schema, rel, rels[rel], rel, record, QuoteLiteral("view "+rel)))
		planted[rel]++
	}
	return stmts, planted
}
