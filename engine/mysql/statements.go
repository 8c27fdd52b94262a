package mysql

import "strings"

// The builders below return the account statements that Grant, Revoke and Extend run, so
// that PlanStatements shows exactly those: each statement is written in one place only.
// Every name goes through QuoteIdent or QuoteString (account).

// killComment stands, in the statements PlanStatements shows, for the loop that ends an
// account's sessions (killSessions): it has nothing to run while the account holds none.
const killComment = "-- KILL CONNECTION <id> for each session of the account (information_schema.PROCESSLIST), until none is left"

// createSQL returns the CREATE USER of a new ephemeral login, locked until its grants are in
// place; identified is the clause of flavor.identified or flavor.identifiedWith.
func createSQL(who, identified string) string {
	return "CREATE USER " + who + " " + identified + " ACCOUNT LOCK"
}

// passwordLockSQL returns the ALTER USER that sets an account's password (identified, as in
// createSQL) and locks (lock) or unlocks it.
func passwordLockSQL(who, identified string, lock bool) string {
	if lock {
		return "ALTER USER " + who + " " + identified + " ACCOUNT LOCK"
	}
	return "ALTER USER " + who + " " + identified + " ACCOUNT UNLOCK"
}

// lockSQL returns the ALTER USER that locks an account and changes nothing else.
func lockSQL(who string) string { return "ALTER USER " + who + " ACCOUNT LOCK" }

// dropUserSQL returns the DROP USER of an account; it does not end the account's sessions.
func dropUserSQL(who string) string { return "DROP USER IF EXISTS " + who }

// grantRoleSQL returns the GRANT of role to account who.
func grantRoleSQL(role, who string) string { return "GRANT " + QuoteString(role) + " TO " + who }

// revokeRoleSQL returns the REVOKE of role from account who.
func revokeRoleSQL(role, who string) string { return "REVOKE " + QuoteString(role) + " FROM " + who }

// grantDBSQL returns the GRANT of privs, normalised by normalizePrivileges, on database db
// (escaped: _ and % are no wildcards) to account who.
func grantDBSQL(privs []string, db, who string) string {
	return "GRANT " + strings.Join(privs, ", ") + " ON " + onDB(db) + " TO " + who
}

// revokeDBSQL returns the REVOKE of privs on the database pattern pattern (as stored in
// mysql.db, see dbPattern) from account who.
func revokeDBSQL(privs []string, pattern, who string) string {
	return "REVOKE " + strings.Join(privs, ", ") + " ON " + QuoteIdent(pattern) + ".* FROM " + who
}

// roleList returns roles as the list of SET DEFAULT ROLE, or NONE.
func roleList(roles []string) string {
	if len(roles) == 0 {
		return "NONE"
	}
	quoted := make([]string, len(roles))
	for i, r := range roles {
		quoted[i] = QuoteString(r)
	}
	return strings.Join(quoted, ", ")
}

// defaultRoleSQL returns the statement by which the admin makes roles the default roles of
// account who: ALTER USER … DEFAULT ROLE on MySQL, SET DEFAULT ROLE … FOR on MariaDB.
func defaultRoleSQL(f *flavor, who string, roles []string) string {
	if !f.mariadb {
		return "ALTER USER " + who + " DEFAULT ROLE " + roleList(roles)
	}
	return "SET DEFAULT ROLE " + roleList(roles) + " FOR " + who
}
