package timebox_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/timebox-dev/timebox"
)

func TestParseTableSpec(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want timebox.TableGrant
		err  string
	}{
		{"orders", timebox.TableGrant{Table: "orders", Operations: []string{"SELECT"}}, ""},
		{"public.orders:select,update", timebox.TableGrant{Schema: "public", Table: "orders", Operations: []string{"select", "update"}}, ""},
		{"orders:select:id,total", timebox.TableGrant{Table: "orders", Operations: []string{"select"}, Columns: []string{"id", "total"}}, ""},
		{"a:b:c:d", timebox.TableGrant{}, "use [SCHEMA.]TABLE[:OPERATIONS[:COLUMNS]]"},
	} {
		got, err := timebox.ParseTableSpec(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || timebox.DescribeTables([]timebox.TableGrant{got}) != timebox.DescribeTables([]timebox.TableGrant{tc.want}) {
			t.Errorf("%q: %+v %v, want %+v", tc.spec, got, err, tc.want)
		}
	}
}

func TestNormalizeTables(t *testing.T) {
	tg := func(schema, table string, ops []string, cols ...string) timebox.TableGrant {
		return timebox.TableGrant{Schema: schema, Table: table, Operations: ops, Columns: cols}
	}
	for _, tc := range []struct {
		name   string
		in     []timebox.TableGrant
		engine string
		want   string // DescribeTables of the result, or the error
	}{
		{"canonical", []timebox.TableGrant{tg("", "t", []string{"update", "SELECT", "select"}, "b", "a", "b")}, timebox.EnginePostgres, "public.t: SELECT, UPDATE (b, a)"},
		{"sorted", []timebox.TableGrant{tg("s", "z", []string{"SELECT"}), tg("s", "a", []string{"DELETE"})}, timebox.EnginePostgres, "s.a: DELETE; s.z: SELECT"},
		{"quotes are names", []timebox.TableGrant{tg("", `o"r'd; DROP`, []string{"SELECT"}, `c"ol`)}, timebox.EnginePostgres, `public.o"r'd; DROP: SELECT (c"ol)`},
		{"empty", nil, timebox.EnginePostgres, "at least one table"},
		{"twice", []timebox.TableGrant{tg("", "t", []string{"SELECT"}), tg("public", "t", []string{"UPDATE"})}, timebox.EnginePostgres, "table public.t is listed twice"},
		{"unknown op", []timebox.TableGrant{tg("", "t", []string{"TRUNCATE"})}, timebox.EnginePostgres, `unknown operation "TRUNCATE"`},
		{"no op", []timebox.TableGrant{tg("", "t", nil)}, timebox.EnginePostgres, "name at least one operation"},
		{"delete columns", []timebox.TableGrant{tg("", "t", []string{"DELETE"}, "a")}, timebox.EnginePostgres, "DELETE cannot be limited to columns"},
		{"control", []timebox.TableGrant{tg("", "t\x00x", []string{"SELECT"})}, timebox.EnginePostgres, "contains an invalid or control character"},
		{"long", []timebox.TableGrant{tg("", strings.Repeat("x", 64), []string{"SELECT"})}, timebox.EnginePostgres, "must be 1 to 63 bytes long"},
		{"empty column", []timebox.TableGrant{tg("", "t", []string{"SELECT"}, "")}, timebox.EnginePostgres, "column name"},
		{"mysql schema", []timebox.TableGrant{tg("other", "t", []string{"SELECT"})}, timebox.EngineMySQL, "give no schema"},
		{"mysql", []timebox.TableGrant{tg("", "t", []string{"SELECT"})}, timebox.EngineMySQL, "t: SELECT"},
	} {
		got, err := timebox.NormalizeTables(tc.in, tc.engine)
		s := timebox.DescribeTables(got)
		if err != nil {
			s = err.Error()
		}
		if !strings.Contains(s, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, s, tc.want)
		}
	}
}

func TestNarrowTables(t *testing.T) {
	asked, _ := timebox.NormalizeTables([]timebox.TableGrant{
		{Table: "orders", Operations: []string{"SELECT", "UPDATE"}, Columns: []string{"id", "status"}},
		{Table: "refunds", Operations: []string{"SELECT"}},
	}, timebox.EnginePostgres)
	for _, tc := range []struct {
		name string
		keep []timebox.TableGrant
		want string
	}{
		{"drop op and column", []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"id"}},
			{Schema: "public", Table: "refunds", Operations: []string{"SELECT"}}}, "public.orders: removed UPDATE, removed columns status"},
		{"drop table", []timebox.TableGrant{{Schema: "public", Table: "refunds", Operations: []string{"SELECT"}}}, "removed table public.orders"},
		{"limit to columns", []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"SELECT", "UPDATE"}, Columns: []string{"id", "status"}},
			{Schema: "public", Table: "refunds", Operations: []string{"SELECT"}, Columns: []string{"id"}}}, "public.refunds: limited to columns id"},
		{"widen op", []timebox.TableGrant{{Schema: "public", Table: "refunds", Operations: []string{"DELETE"}}}, "DELETE on refunds was not requested"},
		{"widen column", []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"SELECT"}, Columns: []string{"secret"}}}, "column secret of orders was not requested"},
		{"widen to table", []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"SELECT"}}}, "was requested on columns id, status only"},
		{"other table", []timebox.TableGrant{{Schema: "public", Table: "users", Operations: []string{"SELECT"}}}, "table public.users was not requested"},
	} {
		_, diff, err := timebox.NarrowTables(asked, tc.keep)
		if err != nil {
			diff = err.Error()
		}
		if !strings.Contains(diff, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, diff, tc.want)
		}
	}
}

// FuzzNormalizeTables: whatever the command line gives, parsing and checking never panic,
// and what passes is valid UTF-8 without control characters.
func FuzzNormalizeTables(f *testing.F) {
	for _, s := range []string{"orders", "public.orders:select,update:id,total", "a:b:c:d", "x.y:delete", "\"; DROP TABLE x; --:select"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		tg, err := timebox.ParseTableSpec(spec)
		if err != nil {
			return
		}
		for _, engine := range []string{timebox.EnginePostgres, timebox.EngineMySQL} {
			out, err := timebox.NormalizeTables([]timebox.TableGrant{tg}, engine)
			if err != nil {
				continue
			}
			for _, t2 := range out {
				for _, s := range append([]string{t2.Schema, t2.Table}, t2.Columns...) {
					if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\n\r") {
						t.Fatalf("accepted %q", s)
					}
				}
			}
		}
	})
}
