package postgres

import "slices"

// SetupStatements returns the one-time hardening a superuser runs on a server before Timebox
// manages it (see DESIGN.md, "Enforcement on the target database"):
//
//   - the admin role, LOGIN CREATEROLE with adminPassword (sent as a SCRAM-SHA-256 verifier
//     when the password is printable ASCII, so the plaintext stays out of the server's logs);
//   - membership in pg_signal_backend, to end the sessions of revoked roles;
//   - CONNECT revoked from PUBLIC on postgres, template1 and every managed database, so that a
//     login for one database opens no other; CONNECT on postgres for the admin itself, and on
//     each managed database WITH GRANT OPTION, to hand it out;
//   - each role an access level hands out, granted to the admin WITH ADMIN OPTION.
//
// It only builds the statements (every name quoted by QuoteIdent, the password by
// QuoteLiteral); running them is the caller's job. The CREATE ROLE fails if the admin exists.
func SetupStatements(admin, adminPassword string, databases []string, roles []string) []string {
	a := QuoteIdent(admin)
	create := "CREATE ROLE " + a + " WITH LOGIN CREATEROLE"
	if adminPassword != "" {
		create += " PASSWORD " + passwordLiteral(adminPassword)
	}
	stmts := []string{
		create,
		"GRANT pg_signal_backend TO " + a,
		"REVOKE CONNECT ON DATABASE postgres FROM PUBLIC",
		"REVOKE CONNECT ON DATABASE template1 FROM PUBLIC",
		"GRANT CONNECT ON DATABASE postgres TO " + a,
	}
	var seen []string
	for _, d := range databases {
		if slices.Contains(seen, d) {
			continue
		}
		seen = append(seen, d)
		db := QuoteIdent(d)
		stmts = append(stmts,
			"REVOKE CONNECT ON DATABASE "+db+" FROM PUBLIC",
			"GRANT CONNECT ON DATABASE "+db+" TO "+a+" WITH GRANT OPTION")
	}
	for _, r := range roles {
		stmts = append(stmts, "GRANT "+QuoteIdent(r)+" TO "+a+" WITH ADMIN OPTION")
	}
	return stmts
}

// passwordLiteral returns the literal to put after PASSWORD: the password's SCRAM-SHA-256
// verifier, or the quoted plaintext when PostgreSQL must normalise it itself (non-ASCII).
func passwordLiteral(password string) string {
	if validPassword(password) == nil {
		if v, err := newVerifier(password); err == nil {
			return QuoteLiteral(v.String())
		}
	}
	return QuoteLiteral(password)
}
