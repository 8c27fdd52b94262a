package mysql

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"strings"
)

// nativeHash returns the mysql_native_password hash of password, as stored in the grant
// tables: '*' and the upper-case hex of SHA1(SHA1(password)). Sending it instead of the
// password keeps the plaintext out of the server's logs and of any error message.
func nativeHash(password string) string {
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	return "*" + strings.ToUpper(hex.EncodeToString(h2[:]))
}

// identified returns the IDENTIFIED clause that sets password: the mysql_native_password
// hash on MariaDB and on MySQL before 8.4. MySQL 8.4 disables that plugin by default and 9.0
// removes it; its caching_sha2_password hash is salted and costly to compute client side, so
// there the password itself travels, over the admin connection (use tls=true), and MySQL
// masks it in its logs.
func (f *flavor) identified(password string) string {
	if f.nativePasswords() {
		return f.identifiedWith(QuoteString(nativeHash(password)))
	}
	return f.identifiedWith(QuoteString(password))
}

// identifiedWith returns the IDENTIFIED clause of the flavor around literal, the quoted hash
// (or, on MySQL 8.4+, password) that identified computes, or passwordPlaceholder when
// statements are only shown (PlanStatements).
func (f *flavor) identifiedWith(literal string) string {
	if f.nativePasswords() {
		return "IDENTIFIED WITH mysql_native_password AS " + literal
	}
	return "IDENTIFIED WITH caching_sha2_password BY " + literal
}

// passwordPlaceholder stands for the password, or its hash, in the statements PlanStatements
// shows.
const passwordPlaceholder = "'<password>'"

// secretsOf lists what must never appear in an error about password: the password and its
// hash.
func secretsOf(password string) []string {
	if password == "" {
		return nil
	}
	h := nativeHash(password)
	return []string{password, h, strings.TrimPrefix(h, "*")}
}

// randomPassword returns an unusable random password, for locking a shared login.
func randomPassword() string {
	return "x" + rand.Text() + rand.Text()
}
