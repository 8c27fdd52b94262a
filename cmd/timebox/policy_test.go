package main

import "testing"

// TestStatementLine: `show --plan` ends each statement before its comment, keeps a
// multi-line statement readable, and escapes control characters.
func TestStatementLine(t *testing.T) {
	for in, want := range map[string]string{
		`DROP ROLE "x"`: `DROP ROLE "x";`,
		`GRANT USAGE ON SCHEMA "s" TO "x" -- only if …`: `GRANT USAGE ON SCHEMA "s" TO "x"; -- only if …`,
		"-- KILL CONNECTION <id> for each session":      "-- KILL CONNECTION <id> for each session",
		"CREATE EVENT e\nDO BEGIN\n  KILL 1;\nEND":      "CREATE EVENT e\n    DO BEGIN\n      KILL 1;\n    END;",
		"DROP ROLE \"a\x1b[2Jb\"":                       `DROP ROLE "a\x1b[2Jb";`,
	} {
		if got := statementLine(in); got != want {
			t.Errorf("statementLine(%q) = %q, want %q", in, got, want)
		}
	}
}
