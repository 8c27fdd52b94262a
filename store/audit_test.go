package store_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// auditKeys is the keyring of the keyed-chain tests; wrongKeys an attacker's guess.
var auditKeys, wrongKeys = mustKeyring("the store tests' secret key"), mustKeyring("an attacker's guess of the key")

func mustKeyring(secret string, previous ...string) *timebox.Keyring {
	k, err := timebox.NewKeyring(secret, previous...)
	if err != nil {
		panic(err)
	}
	return k
}

// openCheckpoint opens a new checkpoint file for db (closed when the test ends) and makes
// db checkpoint into it.
func openCheckpoint(t *testing.T, db *store.DB, keys *timebox.Keyring) *timebox.CheckpointFile {
	t.Helper()
	cp, err := timebox.OpenCheckpointFile(filepath.Join(t.TempDir(), "audit-checkpoint.log"), keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	db.Checkpoint = cp
	return cp
}

// verifyAudit runs the verification of timebox audit --verify on db and cp, as the Service
// does: the checkpoint first, then the store.
func verifyAudit(t *testing.T, db *store.DB, cp *timebox.CheckpointFile, keys *timebox.Keyring) *timebox.AuditVerification {
	t.Helper()
	if err := cp.Flush(); err != nil {
		t.Fatal(err)
	}
	log := cp.Read()
	events, seq, hash := allEvents(t, db)
	return timebox.VerifyAuditLog(events, seq, hash, log, keys)
}

// appendN appends n events, each in its own transaction, flushing the checkpoint after each
// so that it records every head.
func appendN(t *testing.T, db *store.DB, n int, actor string) {
	t.Helper()
	for i := range n {
		update(t, db, func(tx timebox.Tx) error {
			return tx.AppendEvent(&timebox.Event{Time: at(i), Actor: actor, Action: "request.created",
				RequestID: fmt.Sprintf("r%d", i), Details: map[string]any{"i": i}})
		})
		if db.Checkpoint != nil {
			if err := db.Checkpoint.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// replaceFrom deletes the events from seq on and stores es instead (as they are), with the
// head moved to the last event left: what someone who can write the store can do.
func replaceFrom(t *testing.T, db *store.DB, seq int64, es []*timebox.Event) {
	t.Helper()
	raw(t, db, `DELETE FROM events WHERE seq >= ?`, seq)
	for _, e := range es {
		var details any
		if e.Details != nil {
			b, _ := json.Marshal(e.Details)
			details = string(b)
		}
		raw(t, db, `INSERT INTO events (seq, time, actor, action, request_id, database, details, prev_hash, hash, key_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, db.TimeArg(e.Time), e.Actor, e.Action, e.RequestID, e.Database, details, e.PrevHash, e.Hash, e.KeyID)
	}
	events, _, _ := allEvents(t, db)
	raw(t, db, `DELETE FROM audit_head`)
	if n := len(events); n > 0 {
		last := events[n-1]
		raw(t, db, `INSERT INTO audit_head (id, seq, hash, key_id) VALUES (1, ?, ?, ?)`, last.Seq, last.Hash, last.KeyID)
	}
}

func raw(t *testing.T, db *store.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecRaw(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// rechain edits events from seq on with edit, chains each to the one before it and hashes it
// with keys (nil: plain SHA-256) or, with key, as an HMAC with key under key id id.
func rechain(events []*timebox.Event, seq int64, edit func(e *timebox.Event), keys *timebox.Keyring, id string, key []byte) []*timebox.Event {
	var out []*timebox.Event
	var prev *timebox.Event
	for _, e := range events {
		if e.Seq < seq {
			prev = e
			continue
		}
		c := *e
		if edit != nil {
			edit(&c)
			edit = nil // only the first one is edited
		}
		if key != nil {
			c.PrevHash, c.KeyID = prev.Hash, id
			c.Hash = c.KeyedHash(key)
			c.Seq = prev.Seq + 1
		} else {
			c.Chain(prev, keys)
		}
		out, prev = append(out, &c), &c
	}
	return out
}

// testAuditKeyed runs a legacy chain into the keyed one and then tampers with the store (and
// the checkpoint) as someone without the key would: each change is named by the verification.
//
// Before each case: events 1-3 plain SHA-256, 4 the switch event, 5-9 keyed, each head
// checkpointed (4 and 5 were committed together: the checkpoint's first line is 5).
func testAuditKeyed(t *testing.T, db *store.DB) {
	_, wrongKey := wrongKeys.Key(timebox.PurposeAudit)
	auditID, _ := auditKeys.Key(timebox.PurposeAudit)
	tests := []struct {
		name   string
		tamper func(t *testing.T, events []*timebox.Event, cp *timebox.CheckpointFile) *timebox.CheckpointFile
		want   []string // "seq: part of the message"; none: intact
	}{
		{"legacy chain and switch", nil, nil},
		{"edit and re-hash with plain SHA-256", func(t *testing.T, es []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			replaceFrom(t, db, 6, rechain(es, 6, func(e *timebox.Event) { e.Actor = "mallory" }, nil, "", nil))
			return nil
		}, []string{"6: plain SHA-256 hash although the chain is keyed", "6: recorded it keyed"}},
		{"edit and re-hash with a wrong key", func(t *testing.T, es []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			replaceFrom(t, db, 6, rechain(es, 6, func(e *timebox.Event) { e.Actor = "mallory" }, nil, auditID, wrongKey))
			return nil
		}, []string{"6: its keyed hash (HMAC)", "9: its keyed hash (HMAC)", "6: is not the event the checkpoint recorded"}},
		{"edit and re-hash with a made-up key id", func(t *testing.T, es []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			replaceFrom(t, db, 9, rechain(es, 9, func(e *timebox.Event) { e.Actor = "mallory" }, nil, "deadbeef", wrongKey))
			return nil
		}, []string{"9: neither secret_key nor one of previous_secret_keys", "9: is not the event the checkpoint recorded"}},
		{"details made unreadable (not JSON)", func(t *testing.T, _ []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			raw(t, db, `UPDATE events SET details = '{"i":' WHERE seq = 7`)
			return nil
		}, []string{"7: its keyed hash (HMAC)"}},
		{"details made a JSON array", func(t *testing.T, _ []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			raw(t, db, `UPDATE events SET details = '[1]' WHERE seq = 2`)
			return nil
		}, []string{"2: its content does not match its hash"}},
		{"delete a middle event", func(t *testing.T, _ []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			raw(t, db, `DELETE FROM events WHERE seq = 6`)
			return nil
		}, []string{"6: events 6 to 6 are missing (deleted)", "7: does not follow"}},
		{"delete the tail and move the head back", func(t *testing.T, es []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			replaceFrom(t, db, 8, nil)
			return nil
		}, []string{"8: events 8..9 recorded in the checkpoint are missing"}},
		{"delete everything", func(t *testing.T, _ []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			replaceFrom(t, db, 1, nil)
			return nil
		}, []string{"1: every event was deleted"}},
		{"delete the switch and rewrite the rest as plain SHA-256", func(t *testing.T, es []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			rest := rechain(append(es[:3:3], es[4:]...), 4, nil, nil, "", nil)
			replaceFrom(t, db, 4, rest)
			return nil
		}, []string{"5: recorded it keyed", "9: events 9..9 recorded in the checkpoint are missing"}},
		{"roll back to an older copy and go on", func(t *testing.T, es []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			appendN(t, db, 2, "bob") // 10, 11: checkpointed, then lost by the restore
			replaceFrom(t, db, 10, nil)
			appendN(t, db, 3, "carol") // 10-12: another history
			return nil
		}, []string{"10: is not the event the checkpoint recorded"}},
		{"a checkpoint behind the store (another replica's)", func(t *testing.T, es []*timebox.Event, _ *timebox.CheckpointFile) *timebox.CheckpointFile {
			behind := openCheckpoint(t, db, auditKeys)
			behind.Note(es[4].Seq, es[4].Hash, es[4].KeyID)
			return behind
		}, nil},
		{"checkpoint edited", func(t *testing.T, _ []*timebox.Event, cp *timebox.CheckpointFile) *timebox.CheckpointFile {
			b, _ := os.ReadFile(cp.Path)
			b = []byte(strings.Replace(string(b), `{"seq":9,`, `{"seq":7,`, 1))
			if err := os.WriteFile(cp.Path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			replaceFrom(t, db, 8, nil) // and the tail it covered deleted
			return nil
		}, []string{"0: checkpoint line 5 (seq 7) fails its HMAC", "8: events 8..8 recorded in the checkpoint are missing"}},
		{"checkpoint missing", func(t *testing.T, _ []*timebox.Event, cp *timebox.CheckpointFile) *timebox.CheckpointFile {
			os.Remove(cp.Path)
			return nil
		}, []string{"0: is missing"}},
	}
	for _, tt := range tests {
		raw(t, db, `DELETE FROM events`)
		raw(t, db, `DELETE FROM audit_head`)
		db.Keys, db.Checkpoint = nil, nil
		appendN(t, db, 3, "alice") // before the upgrade
		db.Keys = auditKeys
		cp := openCheckpoint(t, db, auditKeys)
		appendN(t, db, 5, "alice")
		events, _, _ := allEvents(t, db)
		if len(events) != 9 || events[3].Action != timebox.ActionAuditKeyed || events[2].KeyID != "" || events[3].KeyID != auditID {
			t.Fatalf("%s: the chain is not 3 plain events, the switch and 5 keyed ones: %+v", tt.name, events)
		}
		if v := verifyAudit(t, db, cp, auditKeys); !v.OK || v.KeyedFrom != 4 || v.Checkpoint.Seq != 9 {
			t.Fatalf("%s: before tampering: %+v", tt.name, v)
		}
		if tt.tamper != nil {
			if other := tt.tamper(t, events, cp); other != nil {
				cp = other
			}
		}
		v := verifyAudit(t, db, cp, auditKeys)
		checkProblems(t, tt.name, v, tt.want)
	}
}

// checkProblems checks that v has a problem matching each of want ("seq: part of the
// message") and no other, and that v.OK says whether there is any.
func checkProblems(t *testing.T, name string, v *timebox.AuditVerification, want []string) {
	t.Helper()
	var got []string
	for _, p := range v.Problems {
		got = append(got, fmt.Sprintf("%d: %s", p.Seq, p.Problem))
	}
	matched := make([]bool, len(got))
	for _, w := range want {
		seq, part, _ := strings.Cut(w, ": ")
		found := false
		for i, g := range got {
			if strings.HasPrefix(g, seq+": ") && strings.Contains(g, part) {
				found, matched[i] = true, true
			}
		}
		if !found {
			t.Errorf("%s: no problem %q in\n  %s", name, w, strings.Join(got, "\n  "))
		}
	}
	if want == nil && len(got) > 0 {
		t.Errorf("%s: problems in an intact log:\n  %s", name, strings.Join(got, "\n  "))
	}
	if v.OK != (len(got) == 0) {
		t.Errorf("%s: OK = %v with %d problems", name, v.OK, len(got))
	}
}

// testAuditRotation seals a password and writes events with one secret key, rotates it (the
// old one kept as a previous key), and checks that the chain and the checkpoint verify, the
// password opens, and events keep being appended with the new key.
func testAuditRotation(t *testing.T, db *store.DB) {
	oldKeys := mustKeyring("the secret key before the rotation")
	db.Keys = oldKeys
	cp := openCheckpoint(t, db, oldKeys)
	r := newRequest("r1", "alice", "orders", timebox.StateActive, at(1))
	update(t, db, func(tx timebox.Tx) error {
		if err := tx.CreateRequest(r); err != nil {
			return err
		}
		return tx.PutGrant(&timebox.Grant{RequestID: "r1", Server: "pg", Principal: "tbx_alice_r1", Method: "ephemeral_login",
			Status: timebox.GrantActive, SealedPassword: oldKeys.Sealer().Seal("pw-before-rotation", "r1")})
	})
	appendN(t, db, 3, "alice")
	cp.Close()

	newKeys := mustKeyring("the secret key after the rotation", "the secret key before the rotation")
	db.Keys = newKeys
	cp, err := timebox.OpenCheckpointFile(cp.Path, newKeys, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	db.Checkpoint = cp
	if v := verifyAudit(t, db, cp, newKeys); !v.OK {
		t.Fatalf("after the rotation: %+v", v)
	}
	if pw, err := newKeys.Sealer().Open(findRequest(t, db, "r1").Grant.SealedPassword, "r1"); err != nil || pw != "pw-before-rotation" {
		t.Fatalf("the password sealed before the rotation opens as %q, %v", pw, err)
	}
	appendN(t, db, 2, "bob")
	v := verifyAudit(t, db, cp, newKeys)
	if !v.OK || v.Events != 5 || v.Checkpoint.Seq != 5 || v.KeyedFrom != 1 {
		t.Fatalf("after appending with the new key: %+v", v)
	}
	events, _, _ := allEvents(t, db)
	if events[0].KeyID != oldKeys.ID() || events[4].KeyID != newKeys.ID() {
		t.Errorf("key ids %s … %s, want %s … %s", events[0].KeyID, events[4].KeyID, oldKeys.ID(), newKeys.ID())
	}
	// Without the previous key, the old events are named, not silently accepted.
	if v := verifyAudit(t, db, cp, mustKeyring("the secret key after the rotation")); v.OK || !strings.Contains(v.Problems[0].Problem, "previous_secret_keys") {
		t.Errorf("without the previous key: %+v", v)
	}
}

// testAuditReplicas appends through two handles on one database, as two server replicas do,
// each with its own checkpoint: both verify without a false alarm though each saw only part.
func testAuditReplicas(t *testing.T, dsn string) {
	var dbs [2]*store.DB
	var cps [2]*timebox.CheckpointFile
	for i := range dbs {
		db, err := store.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		db.Keys = auditKeys
		dbs[i], cps[i] = db, openCheckpoint(t, db, auditKeys)
	}
	appendConcurrently(t, 20, func(i int) *store.DB { return dbs[i%2] })
	appendN(t, dbs[0], 1, "last") // replica 1 is behind
	for i := range dbs {
		v := verifyAudit(t, dbs[i], cps[i], auditKeys)
		if !v.OK || v.Events != 21 || v.Checkpoint.Lines == 0 {
			t.Errorf("replica %d: %+v", i, v)
		}
	}
}
