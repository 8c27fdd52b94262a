package mysql

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// maxIdentLen is the longest database, table, role or event name MySQL accepts (64
// characters; counted here in bytes, which is stricter).
const maxIdentLen = 64

// maxUserLen is the longest user name MySQL 8 accepts (32 characters; MariaDB allows 80 but
// Timebox keeps to what both take). Role names are held to it too: MySQL roles are accounts.
const maxUserLen = 32

// ValidIdent reports whether s can be used as a MySQL or MariaDB name (database, role, user,
// event) without being altered by the server: it refuses the empty string, NUL bytes, invalid
// UTF-8, characters outside the Basic Multilingual Plane (which MySQL identifiers and the
// utf8mb3 columns of the grant tables cannot hold), a trailing space (which the CHAR columns
// of the grant tables drop; MySQL refuses any trailing blank in database names) and names longer than
// 64 bytes. User and role names have a stricter limit, see validUser. Every name passed to
// QuoteIdent must be checked with ValidIdent first.
func ValidIdent(s string) error {
	switch {
	case s == "":
		return errors.New("empty name")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("name contains a NUL byte")
	case !utf8.ValidString(s):
		return errors.New("name is not valid UTF-8")
	case len(s) > maxIdentLen:
		return errors.New("name is longer than 64 bytes")
	case strings.TrimRight(s, " \t\n\v\f\r") != s:
		return errors.New("name ends with a space or another blank")
	}
	for _, r := range s {
		if r > 0xFFFF {
			return errors.New("name contains a character outside the Basic Multilingual Plane")
		}
	}
	return nil
}

// validUser is ValidIdent for user and role names, which MySQL 8 limits to 32 characters
// (MariaDB to 80 or 128): longer names are refused, here counted in bytes.
func validUser(s string) error {
	if err := ValidIdent(s); err != nil {
		return err
	}
	if len(s) > maxUserLen {
		return errors.New("user and role names are limited to 32 bytes (MySQL's limit)")
	}
	return nil
}

// QuoteIdent returns s as a quoted MySQL identifier: wrapped in backticks with every inner
// backtick doubled. Backtick-quoted identifiers know no backslash escapes, whatever the
// sql_mode. It is the only way this package puts a name into SQL, apart from account names
// ('user'@'host'), which are string literals (QuoteString). NUL bytes, which no identifier can
// hold, are removed: ValidIdent refuses them beforehand.
func QuoteIdent(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// QuoteString returns s as a single-quoted MySQL string literal, for the statements that take
// no bound parameter (CREATE USER, GRANT, CREATE EVENT…). Single quotes are doubled, and
// backslashes and NUL bytes escaped as \\ and \0. The literal stands for exactly s when
// NO_BACKSLASH_ESCAPES is off, which the engine makes sure of in its own sessions; with it on,
// the literal is still closed where it should be (no injection is possible), but a backslash
// or NUL in s would read back as two characters.
func QuoteString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// dbPattern returns database name db as written in a database-level GRANT or REVOKE, where
// MySQL reads _ and % as wildcards: each is escaped with a backslash (and a backslash itself
// doubled), so that a grant on shop_1 does not also open shopX1. Quote the result with
// QuoteIdent. The grant tables (mysql.db) store the pattern, not the name.
func dbPattern(db string) string { return patternEscaper.Replace(db) }

// patternEscaper escapes the wildcards of a database name, for dbPattern.
var patternEscaper = strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`)

// dbFromPattern reverses dbPattern: it removes the backslash escapes of a pattern read from
// the grant tables.
func dbFromPattern(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			i++
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// onDB returns "`pattern`.*", the database-level object of a GRANT or REVOKE on db.
func onDB(db string) string {
	return QuoteIdent(dbPattern(db)) + ".*"
}

// account returns the account name user@host as two quoted strings.
func account(user, host string) string {
	return QuoteString(user) + "@" + QuoteString(host)
}
