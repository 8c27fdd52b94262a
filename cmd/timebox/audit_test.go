package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/internal/testdb"
)

var auditDatabases atomic.Int64

// auditStores are the stores the audit CLI tests run on: a new SQLite file and a new
// database on the shared PostgreSQL cluster. Each returns the DSN and the SQL connection an
// intruder would use (closed when the test ends).
var auditStores = map[string]func(t *testing.T) (string, *sql.DB){
	"sqlite": func(t *testing.T) (string, *sql.DB) {
		path := filepath.Join(t.TempDir(), "t.db")
		return "sqlite:///" + path, openRaw(t, "sqlite", path+"?_pragma=busy_timeout(10000)")
	},
	"postgres": func(t *testing.T) (string, *sql.DB) {
		pg := testdb.RequirePostgres(t)
		name := fmt.Sprintf("cli_audit_%d", auditDatabases.Add(1))
		if err := pg.CreateDatabase(t.Context(), name); err != nil {
			t.Fatal(err)
		}
		return pg.SuperURL(name), openRaw(t, "pgx", pg.SuperURL(name))
	},
}

func openRaw(t *testing.T, driver, dsn string) *sql.DB {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newAuditCLITest is newCLITestOn with the store's chain keyed and checkpointed, as the
// server runs it, and three requests filed (events 1-3, checkpointed).
func newAuditCLITest(t *testing.T, dsn string) (*cliTest, *timebox.CheckpointFile) {
	ct := newCLITestOn(t, dsn)
	cp, err := timebox.OpenCheckpointFile(filepath.Join(t.TempDir(), "audit-checkpoint.log"), ct.svc.Keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	ct.db.Keys, ct.db.Checkpoint, ct.svc.Checkpoint = ct.svc.Keys, cp, cp
	for i := range 3 {
		ct.create("--for", "1h", "--reason", fmt.Sprintf("audit test %d", i))
	}
	if err := cp.Flush(); err != nil {
		t.Fatal(err)
	}
	return ct, cp
}

// TestCLIAuditVerify tampers with the store and the checkpoint as someone without the key
// would, and checks that timebox audit --verify (through the API and the Service) names each
// change and fails with exit code 6; on SQLite and on a PostgreSQL store.
func TestCLIAuditVerify(t *testing.T) {
	_, wrongKey := mustKeys(t, "an attacker's guess of the secret key").Key(timebox.PurposeAudit)
	tests := []struct {
		name   string
		tamper func(ct *cliTest, raw *sql.DB, cp *timebox.CheckpointFile, events []*timebox.Event) []string
		want   []string // lines of the output
	}{
		{"intact", nil, []string{"audit log OK: 3 events, chain intact (keyed since event 1), checkpoint at event 3"}},
		{"edit and re-hash with plain SHA-256", func(ct *cliTest, _ *sql.DB, _ *timebox.CheckpointFile, es []*timebox.Event) []string {
			e := *es[1]
			e.Actor, e.KeyID = "root", ""
			return []string{fmt.Sprintf(`UPDATE events SET actor = 'root', key_id = '', hash = '%s' WHERE seq = 2`, e.ComputeHash())}
		}, []string{"seq 2: event 2 has a plain SHA-256 hash although the chain is keyed since event 1"}},
		{"edit and re-hash with a wrong key", func(ct *cliTest, _ *sql.DB, _ *timebox.CheckpointFile, es []*timebox.Event) []string {
			e := *es[2]
			e.Actor = "root"
			return []string{fmt.Sprintf(`UPDATE events SET actor = 'root', hash = '%s' WHERE seq = 3`, e.KeyedHash(wrongKey)),
				fmt.Sprintf(`UPDATE audit_head SET hash = '%s'`, e.KeyedHash(wrongKey))}
		}, []string{"seq 3: event 3 was edited: its content does not match its keyed hash (HMAC)", "seq 3: event 3 is not the event the checkpoint recorded"}},
		{"delete a middle event", func(*cliTest, *sql.DB, *timebox.CheckpointFile, []*timebox.Event) []string {
			return []string{`DELETE FROM events WHERE seq = 2`}
		}, []string{"seq 2: events 2 to 2 are missing (deleted)"}},
		{"delete the tail and move the head back", func(_ *cliTest, _ *sql.DB, _ *timebox.CheckpointFile, es []*timebox.Event) []string {
			return []string{`DELETE FROM events WHERE seq = 3`, fmt.Sprintf(`UPDATE audit_head SET seq = 2, hash = '%s'`, es[1].Hash)}
		}, []string{"seq 3: events 3..3 recorded in the checkpoint are missing"}},
		{"delete everything", func(*cliTest, *sql.DB, *timebox.CheckpointFile, []*timebox.Event) []string {
			return []string{`DELETE FROM events`, `DELETE FROM audit_head`}
		}, []string{"seq 1: every event was deleted: the checkpoint recorded events 1 to 3"}},
		{"checkpoint edited", func(ct *cliTest, _ *sql.DB, cp *timebox.CheckpointFile, _ []*timebox.Event) []string {
			b, err := os.ReadFile(cp.Path)
			if err != nil {
				ct.t.Fatal(err)
			}
			lines := strings.SplitAfter(string(b), "\n")
			lines[0] = strings.Replace(lines[0], `"seq":`, `"seq":1`, 1)
			if err := os.WriteFile(cp.Path, []byte(strings.Join(lines, "")), 0o600); err != nil {
				ct.t.Fatal(err)
			}
			return nil
		}, []string{"checkpoint: checkpoint line 1 (seq 1", "fails its HMAC: the checkpoint file was edited"}},
		{"checkpoint missing", func(ct *cliTest, _ *sql.DB, cp *timebox.CheckpointFile, _ []*timebox.Event) []string {
			os.Remove(cp.Path)
			return nil
		}, []string{"checkpoint: the checkpoint file ", "is missing: a truncated or rolled-back log cannot be told from an intact one"}},
	}
	for dialect, open := range auditStores {
		for _, tt := range tests {
			t.Run(dialect+"/"+tt.name, func(t *testing.T) {
				dsn, raw := open(t)
				ct, cp := newAuditCLITest(t, dsn)
				ct.as("audrey")
				if tt.tamper != nil {
					var events []*timebox.Event
					ct.db.View(context.Background(), func(tx timebox.Tx) (err error) {
						events, err = tx.FindEvents(timebox.EventFilter{})
						return err
					})
					for _, q := range tt.tamper(ct, raw, cp, events) {
						if _, err := raw.Exec(q); err != nil {
							t.Fatalf("%s: %v", q, err)
						}
					}
				}
				out, errOut, code := ct.run("audit", "--verify")
				t.Log(out)
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("audit --verify does not say %q:\n%s", w, out)
					}
				}
				if wantCode := map[bool]int{true: 0, false: 6}[tt.tamper == nil]; code != wantCode {
					t.Errorf("exit %d, want %d; stderr %q", code, wantCode, errOut)
				}
				if tt.tamper != nil && !strings.Contains(errOut, "audit log verification failed") {
					t.Errorf("stderr %q", errOut)
				}
			})
		}
	}
}

func mustKeys(t *testing.T, secret string) *timebox.Keyring {
	k, err := timebox.NewKeyring(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The checkpoint file is audit_checkpoint, or sits next to a SQLite store, or in the working
// directory for a PostgreSQL store.
func TestCheckpointPath(t *testing.T) {
	for _, tt := range []struct{ store, setting, want string }{
		{"sqlite:///var/lib/timebox/timebox.db", "", "/var/lib/timebox/audit-checkpoint.log"},
		{"sqlite://timebox.db", "", "audit-checkpoint.log"},
		{"sqlite://data/timebox.db", "", "data/audit-checkpoint.log"},
		{"postgres://timebox@db/timebox", "", "audit-checkpoint.log"},
		{"postgres://timebox@db/timebox", "/srv/a.log", "/srv/a.log"},
		{"sqlite:///var/lib/timebox/timebox.db", "/srv/b.log", "/srv/b.log"},
	} {
		c := &Config{Store: tt.store, AuditCheckpoint: tt.setting}
		if got := c.checkpointPath(); got != tt.want {
			t.Errorf("store %s, audit_checkpoint %q: %s, want %s", tt.store, tt.setting, got, tt.want)
		}
	}
}

// TestAuditVerifyFreshServer: a server started on a new store, then a token made with
// timebox admin token create (another process, so events the server did not commit): the
// log verifies, with a note, instead of calling the checkpoint file truncated.
func TestAuditVerifyFreshServer(t *testing.T) {
	dir := t.TempDir()
	path := transportConfig(t, dir, fmt.Sprintf("127.0.0.1:%d", freePort(t)), "")
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	in, err := startInstance(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, stderr, code := runCLI("", "admin", "token", "create", "--config", path, "--user", "alice"); code != 0 {
		t.Fatalf("admin token create: %d %s", code, stderr)
	}
	in.Checkpoint.Flush()
	var events []*timebox.Event
	var seq int64
	var hash string
	err = in.Store.View(context.Background(), func(tx timebox.Tx) (err error) {
		if events, err = tx.FindEvents(timebox.EventFilter{}); err != nil {
			return err
		}
		seq, hash, err = tx.AuditHead()
		return err
	})
	if err != nil || len(events) == 0 {
		t.Fatalf("events %d, %v", len(events), err)
	}
	v := timebox.VerifyAuditLog(events, seq, hash, in.Checkpoint.Read(), in.Service.Keys)
	if !v.OK || len(v.Notes) == 0 {
		t.Errorf("a fresh server's log: %+v", v)
	}
}
