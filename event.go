package timebox

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Event is one audit record, hash-chained to the one before it. Events written before the
// chain was keyed have a plain SHA-256 hash and no KeyID; every later event's hash is an
// HMAC-SHA256 with the audit key of KeyID (see Keyring), so nobody without secret_key can
// edit an event and compute its hash again.
type Event struct {
	Seq       int64          `json:"seq"`
	Time      time.Time      `json:"time"`
	Actor     string         `json:"actor"`
	Action    string         `json:"action"`
	RequestID string         `json:"request_id,omitempty"`
	Database  string         `json:"database,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
	PrevHash  string         `json:"prev_hash"`
	Hash      string         `json:"hash"`
	// KeyID is the id of the key whose HMAC is Hash; empty for a plain SHA-256 (legacy) event.
	KeyID string `json:"key_id,omitempty"`
}

// GenesisHash is the PrevHash of the first event.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// ActionAuditKeyed is the action of the switch event: the first keyed event of a chain that
// began with plain SHA-256 events. From it on, every event must be keyed.
const ActionAuditKeyed = "audit.keyed"

// body returns the canonical JSON encoding of every field but the hashes (times in UTC with
// nanoseconds, map keys sorted); a keyed event's body also covers its key id.
func (e *Event) body() []byte {
	type plain struct {
		Seq       int64          `json:"seq"`
		Time      string         `json:"time"`
		Actor     string         `json:"actor"`
		Action    string         `json:"action"`
		RequestID string         `json:"request_id"`
		Database  string         `json:"database"`
		Details   map[string]any `json:"details"`
	}
	p := plain{e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.RequestID, e.Database, e.Details}
	var body []byte
	if e.KeyID == "" {
		body, _ = json.Marshal(p)
	} else {
		body, _ = json.Marshal(struct {
			plain
			KeyID string `json:"key_id"`
		}{p, e.KeyID})
	}
	return body
}

// ComputeHash returns the plain (legacy) hash of e: SHA-256 over PrevHash and the canonical
// JSON encoding of every other field.
func (e *Event) ComputeHash() string {
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write(e.body())
	return hex.EncodeToString(h.Sum(nil))
}

// KeyedHash returns the keyed hash of e: HMAC-SHA256 with key over PrevHash and the canonical
// JSON encoding of every other field, key id included.
func (e *Event) KeyedHash(key []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(e.PrevHash))
	h.Write(e.body())
	return hex.EncodeToString(h.Sum(nil))
}

// Chain sets e's Seq, PrevHash, KeyID and Hash so that it follows prev (nil for the first
// event). With keys, the hash is keyed with the current audit key; without (nil), it is a
// plain SHA-256, as before the chain was keyed.
func (e *Event) Chain(prev *Event, keys *Keyring) {
	e.Seq, e.PrevHash = 1, GenesisHash
	if prev != nil {
		e.Seq, e.PrevHash = prev.Seq+1, prev.Hash
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if keys == nil {
		e.KeyID = ""
		e.Hash = e.ComputeHash()
		return
	}
	id, key := keys.Key(PurposeAudit)
	e.KeyID = id
	e.Hash = e.KeyedHash(key)
}

// ChainProblem is one break found by VerifyChain or in the checkpoint. Seq is the event it
// concerns (0 for a problem of the checkpoint file itself).
type ChainProblem struct {
	Seq     int64  `json:"seq"`
	Problem string `json:"problem"`
}

// VerifyChain checks events (in Seq order, starting at Seq 1) and the stored head (the last
// Seq and Hash the store recorded). It reports every edited, inserted or deleted event, and,
// with keys (nil: none known), every keyed event whose HMAC does not match and every plain
// event after the chain became keyed (forged without the key). It does not see a truncated
// tail whose head was moved back: only the checkpoint does (CompareCheckpoint).
func VerifyChain(events []*Event, headSeq int64, headHash string, keys *Keyring) []ChainProblem {
	_, problems := verifyChain(events, headSeq, headHash, keys)
	return problems
}

// verifyChain is VerifyChain that also returns the Seq of the first keyed event (0: none).
func verifyChain(events []*Event, headSeq int64, headHash string, keys *Keyring) (int64, []ChainProblem) {
	var problems []ChainProblem
	add := func(seq int64, format string, args ...any) {
		problems = append(problems, ChainProblem{Seq: seq, Problem: fmt.Sprintf(format, args...)})
	}
	prevHash, want, keyedFrom, sawPlain := GenesisHash, int64(1), int64(0), false
	for _, e := range events {
		switch {
		case e.Seq > want:
			add(want, "events %d to %d are missing (deleted)", want, e.Seq-1)
		case e.Seq < want:
			add(e.Seq, "event %d appears again or out of order (inserted)", e.Seq)
		}
		if e.PrevHash != prevHash {
			add(e.Seq, "event %d does not follow the event before it (an event before it was deleted, inserted or edited)", e.Seq)
		}
		if e.KeyID == "" {
			sawPlain = true
			switch {
			case keyedFrom > 0:
				add(e.Seq, "event %d has a plain SHA-256 hash although the chain is keyed since event %d: it was forged or re-hashed without the key", e.Seq, keyedFrom)
			case e.ComputeHash() != e.Hash:
				add(e.Seq, "event %d was edited: its content does not match its hash", e.Seq)
			}
		} else {
			checkKeyed(e, keys, add)
			switch {
			case keyedFrom == 0 && sawPlain && e.Action != ActionAuditKeyed:
				add(e.Seq, "event %d is the first keyed event but not the switch event %s (the switch was deleted)", e.Seq, ActionAuditKeyed)
			case keyedFrom > 0 && e.Action == ActionAuditKeyed:
				add(e.Seq, "event %d switches to a keyed chain again (keyed since event %d): the store's audit head was edited", e.Seq, keyedFrom)
			}
			if keyedFrom == 0 {
				keyedFrom = e.Seq
			}
		}
		prevHash, want = e.Hash, e.Seq+1
	}
	last := want - 1
	switch {
	case headSeq > last:
		add(last+1, "events %d to %d are missing at the end of the log (deleted)", last+1, headSeq)
	case headSeq < last:
		add(headSeq+1, "the log has events after the recorded head %d (inserted)", headSeq)
	case headSeq > 0 && headHash != prevHash:
		add(last, "the last event does not match the recorded head (edited)")
	}
	return keyedFrom, problems
}

// Authentic reports whether e is keyed with one of keys and its HMAC matches: it was written
// by Timebox, not by someone who can only write the store.
func (e *Event) Authentic(keys *Keyring) bool {
	if keys == nil || e.KeyID == "" {
		return false
	}
	key, ok := keys.KeyByID(e.KeyID, PurposeAudit)
	return ok && hmac.Equal([]byte(e.KeyedHash(key)), []byte(e.Hash))
}

// checkKeyed reports a keyed event whose key is unknown or whose HMAC does not match.
func checkKeyed(e *Event, keys *Keyring, add func(int64, string, ...any)) {
	var key []byte
	ok := false
	if keys != nil {
		key, ok = keys.KeyByID(e.KeyID, PurposeAudit)
	}
	switch {
	case !ok:
		add(e.Seq, "event %d is keyed with key %q, which is neither secret_key nor one of previous_secret_keys (forged, or a previous key is missing from the configuration)", e.Seq, e.KeyID)
	case !hmac.Equal([]byte(e.KeyedHash(key)), []byte(e.Hash)):
		add(e.Seq, "event %d was edited: its content does not match its keyed hash (HMAC)", e.Seq)
	}
}

// EventFilter selects audit events. Zero fields match everything.
type EventFilter struct {
	Actor string
	// Action keeps the events of this action; ending in "*", those whose action starts with
	// what precedes it ("request.*").
	Action    string
	User      string // the actor or the requester of the event's request
	Database  string
	RequestID string
	// Visible, when set, limits the result to what one non-admin user may see.
	Visible *Visibility
	Since   time.Time
	Until   time.Time
	// Before, when set, keeps the events whose Seq is below it (to page back from a Limit).
	Before int64
	// From, when set, keeps the events whose Seq is From or above; with a Limit, the first
	// Limit of them (to follow the log forward) rather than the last.
	From  int64
	Limit int
}

// DetailsText writes an event's details as compact key=value pairs sorted by key, as
// `timebox audit` and the console show them: empty values are left out, strings (after
// str, which may rewrite them, e.g. their times into the viewer's zone; nil keeps them)
// are quoted when they hold spaces, quotes or "=", other values are written as JSON.
func DetailsText(d map[string]any, str func(string) string) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		var v string
		switch x := d[k].(type) {
		case nil:
			continue
		case string:
			if v = x; str != nil {
				v = str(x)
			}
			if strings.ContainsAny(v, " \t\n\"'=") {
				v = strconv.Quote(v)
			}
		default:
			b, _ := json.Marshal(x)
			v = string(b)
		}
		if v != "" && v != `""` {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, " ")
}
