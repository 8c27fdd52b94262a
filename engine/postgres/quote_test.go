package postgres

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// unquoteIdent parses a double-quoted identifier back, refusing any unescaped inner quote.
func unquoteIdent(q string) (string, error) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", errors.New("not wrapped in double quotes")
	}
	inner := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		if inner[i] == '"' {
			if i+1 >= len(inner) || inner[i+1] != '"' {
				return "", errors.New("unescaped double quote")
			}
			i++
		}
		b.WriteByte(inner[i])
	}
	return b.String(), nil
}

// unquoteLiteral parses a string literal as PostgreSQL does with standard_conforming_strings
// on: '...' with doubled quotes, or E'...' with doubled quotes and backslash escapes (only \\
// is expected from QuoteLiteral, anything else is refused).
func unquoteLiteral(q string) (string, error) {
	escape := false
	if rest, ok := strings.CutPrefix(q, " E"); ok {
		q, escape = rest, true
	}
	if len(q) < 2 || q[0] != '\'' || q[len(q)-1] != '\'' {
		return "", errors.New("not wrapped in single quotes")
	}
	inner := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		switch c := inner[i]; {
		case c == '\'':
			if i+1 >= len(inner) || inner[i+1] != '\'' {
				return "", errors.New("unescaped single quote")
			}
			i++
		case c == '\\' && escape:
			if i+1 >= len(inner) || inner[i+1] != '\\' {
				return "", errors.New("lone backslash in E'' literal")
			}
			i++
		case c == '\\':
			return "", errors.New("backslash outside an E'' literal")
		}
		b.WriteByte(inner[i])
	}
	return b.String(), nil
}

func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{
		"plain":              `"plain"`,
		`a"b`:                `"a""b"`,
		`"; DROP ROLE x; --`: `"""; DROP ROLE x; --"`,
		"ü ß":                `"ü ß"`,
		`back\slash`:         `"back\slash"`,
		"nul\x00byte":        `"nulbyte"`,
	} {
		if got := QuoteIdent(in); got != want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestQuoteLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"plain":      `'plain'`,
		"it's":       `'it''s'`,
		`back\slash`: ` E'back\\slash'`,
		`'\'`:        ` E'''\\'''`,
		"nul\x00":    `'nul'`,
		"":           `''`,
	} {
		if got := QuoteLiteral(in); got != want {
			t.Errorf("QuoteLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestValidIdent(t *testing.T) {
	for _, bad := range []string{"", "a\x00b", strings.Repeat("x", 64), strings.Repeat("é", 32), "\xff"} {
		if ValidIdent(bad) == nil {
			t.Errorf("ValidIdent(%q) accepted it", bad)
		}
	}
	for _, good := range []string{"a", strings.Repeat("x", 63), `"; DROP ROLE x; --`, "ünïcödé"} {
		if err := ValidIdent(good); err != nil {
			t.Errorf("ValidIdent(%q): %v", good, err)
		}
	}
}

func FuzzQuoteIdent(f *testing.F) {
	for _, s := range []string{"a", `"`, `""`, `a"b"c`, `"; DROP ROLE x; --`, "ü", `\`, "x\x00y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := QuoteIdent(s)
		if strings.IndexByte(q, 0) >= 0 {
			t.Fatalf("QuoteIdent(%q) = %q contains NUL", s, q)
		}
		back, err := unquoteIdent(q)
		if err != nil {
			t.Fatalf("QuoteIdent(%q) = %q: %v", s, q, err)
		}
		if want := strings.ReplaceAll(s, "\x00", ""); back != want {
			t.Fatalf("QuoteIdent(%q) = %q reads back as %q", s, q, back)
		}
		if ValidIdent(s) == nil && (strings.IndexByte(s, 0) >= 0 || len(s) > 63 || s == "" || !utf8.ValidString(s)) {
			t.Fatalf("ValidIdent(%q) accepted it", s)
		}
	})
}

func FuzzQuoteLiteral(f *testing.F) {
	for _, s := range []string{"", "a", "'", `\`, `\'`, `'; DROP ROLE x; --`, "ü", "x\x00y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := QuoteLiteral(s)
		if strings.IndexByte(q, 0) >= 0 {
			t.Fatalf("QuoteLiteral(%q) = %q contains NUL", s, q)
		}
		back, err := unquoteLiteral(q)
		if err != nil {
			t.Fatalf("QuoteLiteral(%q) = %q: %v", s, q, err)
		}
		if want := strings.ReplaceAll(s, "\x00", ""); back != want {
			t.Fatalf("QuoteLiteral(%q) = %q reads back as %q", s, q, back)
		}
	})
}
