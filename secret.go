package timebox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"time"
)

// ResolveSecret reads the secret that ref points to: env:NAME (an environment variable) or
// file:PATH (a file, trailing newline removed). Errors name the reference, never the value.
func ResolveSecret(ref string) (string, error) {
	if err := checkSecretRef(ref); err != nil {
		return "", Errorf(EINVALID, "%s", err.Error()) // never echo ref: it may be a literal secret
	}
	if name, ok := strings.CutPrefix(ref, "env:"); ok {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return "", Errorf(EINVALID, "secret %s: environment variable %s is not set", ref, name)
		}
		return v, nil
	}
	path := strings.TrimPrefix(ref, "file:")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", Errorf(EINVALID, "secret %s: cannot read file %s", ref, path)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", Errorf(EINVALID, "secret %s: file %s is empty", ref, path)
	}
	return v, nil
}

// Sealer encrypts and decrypts stored secrets (database passwords) with AES-256-GCM.
type Sealer struct {
	aead cipher.AEAD
	// id and ring are set when the sealer belongs to a Keyring: Seal then prefixes the key id,
	// and Open finds the key a value was sealed with among the ring's keys.
	id   string
	ring *Keyring
}

// sealedPrefix marks a value sealed with a key id: 'k', the 8-character id, then nonce and
// ciphertext. Values without it (sealed before key ids existed) are tried with every key.
const sealedPrefix = 'k'

const sealedIDLen = 8

// NewSealer derives an AES-256 key from secretKey, which must be at least 16 bytes.
func NewSealer(secretKey string) (*Sealer, error) {
	if len(secretKey) < 16 {
		return nil, Errorf(EINVALID, "secret_key must be at least 16 bytes long")
	}
	key := sha256.Sum256([]byte("timebox secret_key v1\x00" + secretKey))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, WrapError(EINTERNAL, err, "secret key")
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, WrapError(EINTERNAL, err, "secret key")
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext; aad binds the ciphertext to its owner (e.g. the request id).
func (s *Sealer) Seal(plaintext, aad string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	var out []byte
	if s.id != "" {
		out = append([]byte{sealedPrefix}, s.id...)
	}
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, []byte(plaintext), []byte(aad))
}

// Open decrypts what Seal produced with the same aad: with the key whose id the value
// carries, or, for a value sealed without an id, with each key of the ring in turn.
func (s *Sealer) Open(sealed []byte, aad string) (string, error) {
	if s.ring == nil {
		return s.open(sealed, aad)
	}
	if len(sealed) > 1+sealedIDLen && sealed[0] == sealedPrefix {
		if m, ok := s.ring.byID[string(sealed[1:1+sealedIDLen])]; ok {
			if v, err := m.sealer.open(sealed[1+sealedIDLen:], aad); err == nil {
				return v, nil
			}
		}
	}
	for _, m := range s.ring.order {
		if v, err := m.sealer.open(sealed, aad); err == nil {
			return v, nil
		}
	}
	return "", Errorf(EINTERNAL, "stored secret cannot be decrypted with secret_key or any of previous_secret_keys (wrong secret_key?)")
}

func (s *Sealer) open(sealed []byte, aad string) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", Errorf(EINTERNAL, "stored secret is corrupt")
	}
	b, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(aad))
	if err != nil {
		return "", Errorf(EINTERNAL, "stored secret cannot be decrypted (wrong secret_key?)")
	}
	return string(b), nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// RandomID returns a random lowercase identifier of n characters (5 bits each).
func RandomID(n int) string {
	b := make([]byte, (n*5+7)/8)
	rand.Read(b)
	return idEncoding.EncodeToString(b)[:n]
}

// CheckPassword refuses passwords the engines do not hand out: empty, longer than 1024 bytes,
// or holding a byte outside printable ASCII (PostgreSQL normalises passwords with SASLprep,
// the identity only for printable ASCII, so a SCRAM verifier computed here could differ;
// MySQL client libraries send other bytes in differing encodings). Timebox generates its
// passwords (RandomPassword), so this costs nothing.
func CheckPassword(password string) error {
	if password == "" {
		return errors.New("empty password")
	} else if len(password) > 1024 {
		return errors.New("password is longer than 1024 bytes")
	}
	for i := 0; i < len(password); i++ {
		if c := password[i]; c < 0x20 || c > 0x7e {
			return errors.New("password must be printable ASCII")
		}
	}
	return nil
}

// RandomPassword returns a random password of n characters from [A-Za-z0-9] (about 5.95 bits
// each), free of characters that need quoting in a URI or a shell.
func RandomPassword(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[randIntn(len(alphabet))]
	}
	return string(b)
}

func randIntn(n int) int {
	var b [1]byte
	for {
		rand.Read(b[:])
		if int(b[0]) < 256-256%n { // rejection sampling keeps it uniform
			return int(b[0]) % n
		}
	}
}

// NewToken creates an API token for user. It returns the secret, shown once to its owner,
// and the Token to store, which keeps only the secret's hash.
func NewToken(user string, now time.Time) (string, *Token) {
	secret := "tbx_" + RandomID(40)
	return secret, &Token{ID: RandomID(10), User: user, Hash: TokenHash(secret), CreatedAt: now.UTC().Truncate(time.Microsecond)}
}

// TokenHash returns the stored form of a token secret: its SHA-256, hex encoded.
func TokenHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}
