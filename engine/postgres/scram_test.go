package postgres

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

// TestVerifierRFC7677 checks the verifier against the SCRAM-SHA-256 exchange of RFC 7677,
// section 3: the ServerKey must produce the server signature and the StoredKey must accept
// the client proof.
func TestVerifierRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := computeVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	const authMessage = "n=user,r=rOprNGfwEbeRWgbNEkqO," +
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," +
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	serverKey, _ := base64.StdEncoding.DecodeString(v.serverKey)
	if got := base64.StdEncoding.EncodeToString(hmacSHA256(serverKey, authMessage)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature = %s", got)
	}
	storedKey, _ := base64.StdEncoding.DecodeString(v.storedKey)
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	sig := hmacSHA256(storedKey, authMessage)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	if sum := sha256.Sum256(clientKey); !hmac.Equal(sum[:], storedKey) {
		t.Error("stored key does not accept the RFC's client proof")
	}
	if want := "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + v.storedKey + ":" + v.serverKey; v.String() != want {
		t.Errorf("String() = %s", v.String())
	}
}
