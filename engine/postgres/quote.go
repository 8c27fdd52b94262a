package postgres

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// maxIdentLen is PostgreSQL's NAMEDATALEN-1: longer identifiers are silently truncated by the
// server, which could make two different names designate the same role.
const maxIdentLen = 63

// ValidIdent reports whether s can be used as a PostgreSQL identifier without being altered by
// the server: it refuses the empty string, NUL bytes, invalid UTF-8 and names longer than 63
// bytes. Every name passed to QuoteIdent must be checked with ValidIdent first.
func ValidIdent(s string) error {
	switch {
	case s == "":
		return errors.New("empty name")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("name contains a NUL byte")
	case !utf8.ValidString(s):
		return errors.New("name is not valid UTF-8")
	case len(s) > maxIdentLen:
		return errors.New("name is longer than 63 bytes")
	}
	return nil
}

// QuoteIdent returns s as a quoted PostgreSQL identifier: wrapped in double quotes with every
// inner double quote doubled. It is the only way this package puts a name into SQL. It never
// produces a NUL byte (NULs are removed; ValidIdent refuses them beforehand).
func QuoteIdent(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// QuoteLiteral returns s as a PostgreSQL string literal, for the few places where PostgreSQL
// takes no bound parameter (utility statements such as PASSWORD and VALID UNTIL). Single quotes
// are doubled; when s contains a backslash the literal uses the E'...' form with backslashes
// doubled, so that it means the same whatever standard_conforming_strings is. NUL bytes, which
// no PostgreSQL string can hold, are removed: validate values that may contain them first.
func QuoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	s = strings.ReplaceAll(s, `'`, `''`)
	if strings.Contains(s, `\`) {
		return ` E'` + strings.ReplaceAll(s, `\`, `\\`) + `'`
	}
	return `'` + s + `'`
}
