package timebox

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
)

// Key purposes: each use of secret_key gets its own derived key, so that a value authenticated
// for one use can never be replayed as another.
const (
	// PurposeGrant authenticates what a decided request may do on a database (store tampering).
	PurposeGrant = "grant"
	// PurposeAudit keys the audit chain's hashes.
	PurposeAudit = "audit"
	// PurposeCheckpoint keys the audit head checkpoints kept outside the store.
	PurposeCheckpoint = "checkpoint"
	// PurposeToken authenticates what an API token lets its holder do (Token.Sign).
	PurposeToken = "token"
	// PurposeNotify authenticates what the notification outbox keeps about messages it
	// posted (which chat message stands for a request), so that chat.update never rewrites
	// a message the store points it at.
	PurposeNotify = "notify"
)

// Keyring holds the keys derived from secret_key and from the previous secret keys an
// operator keeps after a rotation. New values are always sealed and authenticated with the
// current key; values made with a previous key still open and verify, found by key id.
type Keyring struct {
	current *masterKey
	byID    map[string]*masterKey
	order   []*masterKey // current first, then the previous keys in configured order
}

type masterKey struct {
	id     string
	secret []byte
	sealer *Sealer
	// derived caches the key of each purpose (HKDF per MAC cost more than the MAC itself).
	derived sync.Map
}

// NewKeyring derives the keys of current (secret_key) and of previous (earlier secret keys,
// kept so that what they sealed or authenticated stays readable). Each must be at least 16
// bytes long (EINVALID otherwise); errors never contain a key.
func NewKeyring(current string, previous ...string) (*Keyring, error) {
	k := &Keyring{byID: map[string]*masterKey{}}
	for i, s := range append([]string{current}, previous...) {
		if len(s) < 16 {
			if i == 0 {
				return nil, Errorf(EINVALID, "secret_key must be at least 16 bytes long")
			}
			return nil, Errorf(EINVALID, "previous_secret_keys[%d] must be at least 16 bytes long", i-1)
		}
		sealer, err := NewSealer(s)
		if err != nil {
			return nil, err
		}
		m := &masterKey{secret: []byte(s), sealer: sealer}
		m.id = hex.EncodeToString(m.derive("key-id")[:4])
		if _, dup := k.byID[m.id]; dup {
			if i == 0 {
				continue
			}
			return nil, Errorf(EINVALID, "previous_secret_keys[%d] is the same key as secret_key or an earlier previous key", i-1)
		}
		sealer.id = m.id
		k.byID[m.id] = m
		k.order = append(k.order, m)
	}
	k.current = k.order[0]
	for _, m := range k.order {
		m.sealer.ring = k
	}
	return k, nil
}

// derive returns the 32-byte key of one purpose (HKDF-SHA256 over the secret key).
func (m *masterKey) derive(purpose string) []byte {
	if b, ok := m.derived.Load(purpose); ok {
		return b.([]byte)
	}
	b, err := hkdf.Key(sha256.New, m.secret, nil, "timebox/"+purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF-SHA256 cannot produce
	}
	m.derived.Store(purpose, b)
	return b
}

// ID returns the id of the current key: 8 hex characters, safe to store and show.
func (k *Keyring) ID() string { return k.current.id }

// IDs returns the ids of every key, current first.
func (k *Keyring) IDs() []string {
	ids := make([]string, len(k.order))
	for i, m := range k.order {
		ids[i] = m.id
	}
	return ids
}

// Key returns the current key for purpose and its id.
func (k *Keyring) Key(purpose string) (id string, key []byte) {
	return k.current.id, bytes.Clone(k.current.derive(purpose))
}

// KeyByID returns the key for purpose derived from the key with id, and whether it is known.
func (k *Keyring) KeyByID(id, purpose string) ([]byte, bool) {
	m, ok := k.byID[id]
	if !ok {
		return nil, false
	}
	return bytes.Clone(m.derive(purpose)), true
}

// MAC authenticates msg for purpose with the current key. The tag is "<key id>:<hex>".
func (k *Keyring) MAC(purpose string, msg []byte) string {
	id, key := k.Key(purpose)
	return id + ":" + hex.EncodeToString(hmacSum(key, msg))
}

// VerifyMAC reports whether tag (from MAC, with the current or a previous key) authenticates
// msg for purpose. An unknown key id, a malformed tag or a mismatch all return false.
func (k *Keyring) VerifyMAC(purpose string, msg []byte, tag string) bool {
	id, sum, ok := strings.Cut(tag, ":")
	if !ok {
		return false
	}
	key, ok := k.KeyByID(id, purpose)
	if !ok {
		return false
	}
	want, err := hex.DecodeString(sum)
	if err != nil {
		return false
	}
	return hmac.Equal(want, hmacSum(key, msg))
}

// Current reports whether tag was made with the current key (false: a previous key or none).
func (k *Keyring) Current(tag string) bool {
	id, _, _ := strings.Cut(tag, ":")
	return id == k.current.id
}

// Sealer returns the sealer of the current key; what it opens may have been sealed with any
// key of the ring.
func (k *Keyring) Sealer() *Sealer { return k.current.sealer }

func hmacSum(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// CheckStoreKey refuses (EINVALID) a keyring that did not make the store: when the last audit
// event was keyed with a key the ring does not hold, the server was started with the wrong
// secret_key. Started anyway, it could open no sealed password and verify no decision, and
// would remove every live grant as edited in the store. A store with no keyed event passes.
func CheckStoreKey(ctx context.Context, store Store, keys *Keyring) error {
	var last []*Event
	err := store.View(ctx, func(tx Tx) (err error) {
		last, err = tx.FindEvents(EventFilter{Limit: 1})
		return err
	})
	if err != nil || len(last) == 0 || last[0].KeyID == "" {
		return err
	}
	if _, ok := keys.KeyByID(last[0].KeyID, PurposeAudit); !ok {
		return Errorf(EINVALID, "secret_key does not match the store: its audit log is keyed with key %s, secret_key is key %s "+
			"(use the key this store was made with, or, after a rotation, list the old key in previous_secret_keys)", last[0].KeyID, keys.ID())
	}
	return nil
}
