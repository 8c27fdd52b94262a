package timebox_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
)

func checkpointKeys(t *testing.T) *timebox.Keyring {
	k, err := timebox.NewKeyring("the checkpoint tests' secret key")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The checkpoint file is private, held by one process at a time, and resumes its chain of
// MACs after a restart and after a crash that left a partial line.
func TestCheckpointFile(t *testing.T) {
	keys := checkpointKeys(t)
	path := filepath.Join(t.TempDir(), "audit-checkpoint.log")
	cp, err := timebox.OpenCheckpointFile(path, keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	cp.Note(3, "h3", "k")
	cp.Note(2, "h2", "k") // older than a head already noted: ignored
	if err := cp.Flush(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	if _, err := timebox.OpenCheckpointFile(path, keys, 0); err == nil || !strings.Contains(err.Error(), "in use by another Timebox process") {
		t.Fatalf("a second open of the same file: %v", err)
	}
	cp.Note(5, "h5", "k")
	if err := cp.Close(); err != nil { // writes the pending head
		t.Fatal(err)
	}
	// A crash in the middle of a line: the next open cuts it.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":6,"ha`)
	f.Close()
	if l := timebox.ReadCheckpoints(path, keys); len(l.Problems) != 1 || !strings.Contains(l.Problems[0].Problem, "partial line 3 (truncated)") {
		t.Fatalf("partial line: %+v", l.Problems)
	}
	cp, err = timebox.OpenCheckpointFile(path, keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if cp.Noted() != 5 {
		t.Errorf("Noted = %d after reopening, want 5", cp.Noted())
	}
	cp.Note(7, "h7", "k")
	cp.Flush()
	l := cp.Read()
	var seqs []int64
	for _, c := range l.Lines {
		seqs = append(seqs, c.Seq)
	}
	if len(l.Problems) != 0 || len(seqs) != 3 || seqs[0] != 3 || seqs[1] != 5 || seqs[2] != 7 {
		t.Fatalf("lines %v, problems %+v; want 3, 5, 7 and none", seqs, l.Problems)
	}
	// Another key does not verify them; deleting a middle line breaks the next one's MAC.
	other, _ := timebox.NewKeyring("somebody else's secret key")
	if l := timebox.ReadCheckpoints(path, other); len(l.Lines) != 0 || len(l.Problems) != 3 {
		t.Errorf("read with another key: %d lines, problems %+v", len(l.Lines), l.Problems)
	}
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	os.WriteFile(path, []byte(lines[0]+lines[2]), 0o600)
	if l := timebox.ReadCheckpoints(path, keys); len(l.Problems) != 1 || !strings.Contains(l.Problems[0].Problem, "line 2 (seq 7) fails its HMAC") {
		t.Errorf("a middle line deleted: %+v", l.Problems)
	}
	os.WriteFile(path, nil, 0o600)
	if l := timebox.ReadCheckpoints(path, keys); len(l.Problems) != 1 || !strings.Contains(l.Problems[0].Problem, "is empty") {
		t.Errorf("an empty file: %+v", l.Problems)
	}
}

// A keyed chain verifies; edits re-hashed without the key, and plain events after the
// switch, are named; a legacy chain followed by the switch verifies.
func TestVerifyKeyedChain(t *testing.T) {
	keys := checkpointKeys(t)
	events, _, _ := chainOf(3) // legacy
	prev := events[2]
	for i, action := range []string{timebox.ActionAuditKeyed, "request.created", "request.approved"} {
		e := &timebox.Event{Time: prev.Time, Actor: "alice", Action: action, Details: map[string]any{"i": float64(i)}}
		e.Chain(prev, keys)
		events, prev = append(events, e), e
	}
	if ps := timebox.VerifyChain(events, prev.Seq, prev.Hash, keys); len(ps) != 0 {
		t.Fatalf("legacy chain and switch:%s", problemsText(ps))
	}
	if ps := timebox.VerifyChain(events, prev.Seq, prev.Hash, nil); !hasProblem(ps, 4, "neither secret_key") {
		t.Errorf("without keys:%s", problemsText(ps))
	}
	edited := *events[4]
	edited.Actor = "mallory"
	edited.Chain(events[3], nil) // plain re-hash
	ps := timebox.VerifyChain([]*timebox.Event{events[0], events[1], events[2], events[3], &edited}, 5, edited.Hash, keys)
	if !hasProblem(ps, 5, "plain SHA-256 hash although the chain is keyed since event 4") {
		t.Errorf("plain re-hash:%s", problemsText(ps))
	}
	// Without the switch, the first keyed event after plain ones is named.
	noSwitch := *events[4]
	noSwitch.Action = "request.created"
	noSwitch.Chain(events[2], keys)
	ps = timebox.VerifyChain([]*timebox.Event{events[0], events[1], events[2], &noSwitch}, 4, noSwitch.Hash, keys)
	if !hasProblem(ps, 4, "not the switch event") {
		t.Errorf("no switch:%s", problemsText(ps))
	}
	// A second switch says the head was edited.
	again := &timebox.Event{Time: prev.Time, Actor: "timebox", Action: timebox.ActionAuditKeyed}
	again.Chain(prev, keys)
	ps = timebox.VerifyChain(append(events, again), again.Seq, again.Hash, keys)
	if !hasProblem(ps, 7, "switches to a keyed chain again") {
		t.Errorf("second switch:%s", problemsText(ps))
	}
}

// A line appended to the checkpoint file without the key, with a huge seq, is reported and
// does not stop the server from writing the heads that follow.
func TestCheckpointForgedLineDoesNotStopWriting(t *testing.T) {
	keys := checkpointKeys(t)
	path := filepath.Join(t.TempDir(), "audit-checkpoint.log")
	cp, err := timebox.OpenCheckpointFile(path, keys, 0)
	if err != nil {
		t.Fatal(err)
	}
	cp.Note(3, "h3", "k")
	cp.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":999999999,"hash":"x","time":"2026-01-01T00:00:00Z","key_id":"k","mac":"00000000:00"}` + "\n")
	f.Close()
	if cp, err = timebox.OpenCheckpointFile(path, keys, 0); err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	cp.Note(4, "h4", "k")
	cp.Flush()
	l := cp.Read()
	if len(l.Problems) != 1 || !strings.Contains(l.Problems[0].Problem, "line 2 (seq 999999999)") {
		t.Errorf("problems %+v, want the forged line named", l.Problems)
	}
	if len(l.Lines) != 2 || l.Lines[1].Seq != 4 {
		t.Errorf("lines %+v, want seq 3 and 4 (written after the forged line)", l.Lines)
	}
}
