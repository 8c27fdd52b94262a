package postgres

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// scramSaltLen is the salt length PostgreSQL itself uses (SCRAM_DEFAULT_SALT_LEN).
const scramSaltLen = 16

// verifier is a SCRAM-SHA-256 password verifier as stored in pg_authid.rolpassword, with its
// parts kept so that they can be scrubbed from error messages one by one.
type verifier struct {
	salt, storedKey, serverKey string // base64
}

// String returns the verifier in PostgreSQL's format:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
func (v verifier) String() string {
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, v.salt, v.storedKey, v.serverKey)
}

// secrets lists what must never appear in an error about password, whose verifier v is: the
// password, the verifier and each of its parts.
func (v verifier) secrets(password string) []string {
	return []string{password, v.String(), v.salt, v.storedKey, v.serverKey}
}

// newVerifier computes the SCRAM-SHA-256 verifier of password with a random salt (RFC 5802
// and RFC 7677), so that the plaintext password never reaches the server.
func newVerifier(password string) (verifier, error) {
	salt := make([]byte, scramSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return verifier{}, err
	}
	return computeVerifier(password, salt, scramIterations)
}

// computeVerifier computes the verifier of password for a given salt and iteration count.
func computeVerifier(password string, salt []byte, iterations int) (verifier, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return verifier{}, err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	enc := base64.StdEncoding
	return verifier{
		salt:      enc.EncodeToString(salt),
		storedKey: enc.EncodeToString(storedKey[:]),
		serverKey: enc.EncodeToString(serverKey),
	}, nil
}

// hmacSHA256 returns HMAC-SHA-256(key, msg).
func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}
