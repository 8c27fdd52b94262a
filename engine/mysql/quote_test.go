package mysql

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/timebox-dev/timebox/internal/testdb"
)

// awkward are identifiers and literals that break naive quoting.
var awkward = []string{
	"`; DROP USER x; --", "a`b", "`", "``", `"`, "with space", "semi;colon", `back\slash`, `\`,
	`'single'`, `\'`, `'\`, `\\'\`, "-- comment", "/* c */", "Upper", "ünïcödé 名前", "tab\tand\nnewline",
	"%_wild", strings.Repeat("x", 64),
}

func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         "`plain`",
		"a`b":           "`a``b`",
		"`; DROP x; --": "```; DROP x; --`",
		`back\slash`:    "`back\\slash`",
		"nul\x00byte":   "`nulbyte`",
	} {
		if got := QuoteIdent(in); got != want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestQuoteString(t *testing.T) {
	for in, want := range map[string]string{
		"plain":      `'plain'`,
		"it's":       `'it''s'`,
		`back\slash`: `'back\\slash'`,
		`'\'`:        `'''\\'''`,
		"nul\x00":    `'nul\0'`,
		"":           `''`,
	} {
		if got := QuoteString(in); got != want {
			t.Errorf("QuoteString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestValidIdent(t *testing.T) {
	for _, bad := range []string{"", "a\x00b", strings.Repeat("x", 65), strings.Repeat("é", 33), "\xff", "trailing ", "emoji😀"} {
		if ValidIdent(bad) == nil {
			t.Errorf("ValidIdent(%q) accepted it", bad)
		}
	}
	for _, good := range []string{"a", strings.Repeat("x", 64), "`; DROP USER x; --", "ünïcödé", " leading"} {
		if err := ValidIdent(good); err != nil {
			t.Errorf("ValidIdent(%q): %v", good, err)
		}
	}
	if validUser(strings.Repeat("u", 33)) == nil || validUser(strings.Repeat("u", 32)) != nil {
		t.Error("validUser does not hold user names to 32 bytes")
	}
}

func TestDBPattern(t *testing.T) {
	for _, db := range awkward {
		if back := dbFromPattern(dbPattern(db)); back != db {
			t.Errorf("dbFromPattern(dbPattern(%q)) = %q", db, back)
		}
	}
	if got := dbPattern(`a_b%c\d`); got != `a\_b\%c\\d` {
		t.Errorf("dbPattern = %s", got)
	}
}

// serverConn is a root connection of the shared server, with NO_BACKSLASH_ESCAPES off and
// one with it on, for the quoting round trips.
var serverConn struct {
	once     sync.Once
	std, nbe *sql.Conn
	err      error
}

// roundTrip returns two root connections to the shared server: sql_mode without and with
// NO_BACKSLASH_ESCAPES.
func roundTrip(tb testing.TB) (std, nbe *sql.Conn) {
	tb.Helper()
	m := testdb.RequireMariaDB(tb)
	serverConn.once.Do(func() {
		ctx := context.Background()
		pool := root(tb, m)
		if serverConn.std, serverConn.err = pool.Conn(ctx); serverConn.err != nil {
			return
		}
		if serverConn.nbe, serverConn.err = pool.Conn(ctx); serverConn.err != nil {
			return
		}
		_, serverConn.err = serverConn.nbe.ExecContext(ctx, "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
	})
	if serverConn.err != nil {
		tb.Fatal(serverConn.err)
	}
	return serverConn.std, serverConn.nbe
}

// checkIdent creates a role called s through QuoteIdent, finds it by that exact name in the
// grant tables and drops it again. (A role rather than a database: database names also meet
// the file system's limits, which have nothing to do with quoting.) A name taken already, or
// one the server reserves (NONE, PUBLIC), is left alone.
func checkIdent(t *testing.T, conn *sql.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := conn.ExecContext(ctx, "CREATE ROLE "+QuoteIdent(s))
	if n := errNumber(err); n == erCannotUser || n == erInvalidRole {
		return
	} else if err != nil {
		t.Fatalf("CREATE ROLE %s: %v", QuoteIdent(s), err)
	}
	defer conn.ExecContext(ctx, "DROP ROLE "+QuoteIdent(s))
	var got []byte
	err = conn.QueryRowContext(ctx, "SELECT CAST(User AS BINARY) FROM mysql.global_priv WHERE User = ? AND Host = ''", s).Scan(&got)
	if err != nil || string(got) != s {
		t.Fatalf("CREATE ROLE %s made %q (%v), want %q", QuoteIdent(s), got, err, s)
	}
}

// checkString reads QuoteString(s) back through the server, as a binary string (so that any
// bytes, valid UTF-8 or not, come back as they are): exactly s with NO_BACKSLASH_ESCAPES off;
// with it on, one value that differs only where s has a backslash or NUL (never an injection).
func checkString(t *testing.T, std, nbe *sql.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := "SELECT _binary" + QuoteString(s) + ", 'end'"
	var got []byte
	var end string
	if err := std.QueryRowContext(ctx, q).Scan(&got, &end); err != nil || string(got) != s || end != "end" {
		t.Fatalf("%s = %q, %q, %v; want %q", q, got, end, err, s)
	}
	if err := nbe.QueryRowContext(ctx, q).Scan(&got, &end); err != nil || end != "end" {
		t.Fatalf("with NO_BACKSLASH_ESCAPES, %s = %q, %q, %v", q, got, end, err)
	}
	if !strings.ContainsAny(s, "\\\x00") && string(got) != s {
		t.Fatalf("with NO_BACKSLASH_ESCAPES, %s = %q, want %q", q, got, s)
	}
}

func FuzzQuoteIdent(f *testing.F) {
	for _, s := range awkward {
		f.Add(s)
	}
	f.Add("x\x00y")
	f.Fuzz(func(t *testing.T, s string) {
		q := QuoteIdent(s)
		if strings.IndexByte(q, 0) >= 0 {
			t.Fatalf("QuoteIdent(%q) = %q contains NUL", s, q)
		}
		if ValidIdent(s) != nil {
			return
		}
		if !utf8.ValidString(s) || len(s) > maxIdentLen {
			t.Fatalf("ValidIdent(%q) accepted it", s)
		}
		std, _ := roundTrip(t)
		checkIdent(t, std, s)
	})
}

func FuzzQuoteString(f *testing.F) {
	for _, s := range append(awkward, "", "it's", "x\x00y", "\xff\xfe", "\\0", "\\'; SELECT 1; -- ") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		std, nbe := roundTrip(t)
		checkString(t, std, nbe, s)
	})
}

// TestQuoteAccountRealServer creates an account and a role per awkward name and finds each
// by that exact name in the grant tables.
func TestQuoteAccountRealServer(t *testing.T) {
	t.Parallel()
	m := testdb.RequireMariaDB(t)
	for i, name := range awkward {
		name := strings.TrimRight(name, " ")
		if len(name) > 24 {
			name = name[:24]
		}
		if !utf8.ValidString(name) || name == "" {
			continue
		}
		name += string(rune('a'+i)) + suffix()
		mustExec(t, m, "CREATE USER "+account(name, "%"))
		mustExec(t, m, "CREATE ROLE "+QuoteString("r"+name))
		if !accountExists(t, m, name) || count(t, m, "SELECT COUNT(*) FROM mysql.global_priv WHERE User = ? AND Host = ''", "r"+name) != 1 {
			t.Errorf("CREATE USER %s did not create an account named %q", account(name, "%"), name)
		}
		mustExec(t, m, "DROP USER "+account(name, "%"))
		mustExec(t, m, "DROP ROLE "+QuoteString("r"+name))
	}
}
