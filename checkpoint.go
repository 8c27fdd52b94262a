package timebox

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultCheckpointInterval is how long a CheckpointFile coalesces audit heads before it
// writes the latest one: the longest a committed event goes unrecorded outside the store.
const DefaultCheckpointInterval = 250 * time.Millisecond

// Checkpoint is one line of a checkpoint file: the audit head (Seq, Hash and the KeyID of its
// hash) a server saw committed at Time, authenticated by MAC, an HMAC-SHA256 with the
// checkpoint key over these fields and the MAC of the line before it.
type Checkpoint struct {
	Seq   int64     `json:"seq"`
	Hash  string    `json:"hash"`
	Time  time.Time `json:"time"`
	KeyID string    `json:"key_id"`
	MAC   string    `json:"mac"`
	// Line is the line number in the file (not written).
	Line int `json:"-"`
}

// message returns what MAC authenticates: the fields, chained to the previous line's MAC.
func (c *Checkpoint) message(prevMAC string) []byte {
	return fmt.Appendf(nil, "timebox audit checkpoint v1\n%d\n%s\n%s\n%s\n%s",
		c.Seq, c.Hash, c.Time.UTC().Format(time.RFC3339Nano), c.KeyID, prevMAC)
}

// CheckpointFile is an append-only file outside the store where one server records the audit
// heads it saw committed. The store hands it each head after a commit (Note, which never
// waits for the disk); a goroutine writes the latest one at most every Interval and syncs the
// file. One process at a time holds the file (an exclusive lock): give each server replica
// its own. Methods are safe for concurrent use.
type CheckpointFile struct {
	// Path is the file's path. Logger, when set, receives write errors.
	Path   string
	Logger *slog.Logger

	keys     *Keyring
	interval time.Duration

	mu      sync.Mutex // guards pending, noted and empty
	pending *Checkpoint
	noted   int64 // the highest Seq noted or found in the file
	empty   bool  // the file holds no line and none is pending: head 0 may be noted

	fmu     sync.Mutex // guards f and prevMAC, and the file's contents
	f       *os.File
	prevMAC string

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// OpenCheckpointFile opens (or creates, mode 0600) the checkpoint file at path, locks it and
// starts its writer; interval 0 means DefaultCheckpointInterval. A partial last line (a crash
// while writing) is cut off. Errors are EINVALID and name the path.
func OpenCheckpointFile(path string, keys *Keyring, interval time.Duration) (*CheckpointFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, Errorf(EINVALID, "audit checkpoint %s: cannot open the file: %s", path, FileReason(err))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, Errorf(EINVALID, "audit checkpoint %s is in use by another Timebox process: give each server its own file (audit_checkpoint)", path)
	}
	c := &CheckpointFile{Path: path, keys: keys, interval: cmp.Or(interval, DefaultCheckpointInterval), f: f,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if err := c.resume(); err != nil {
		f.Close()
		return nil, err
	}
	go c.run()
	return c, nil
}

// FileReason returns the cause of a file error without repeating the path (which the caller's
// message names once): "permission denied", "no such file or directory".
func FileReason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// resume makes the file 0600, cuts a partial last line and finds the last line's MAC and the
// highest Seq recorded by a line whose MAC verifies.
func (c *CheckpointFile) resume() error {
	if err := c.f.Chmod(0o600); err != nil {
		return Errorf(EINVALID, "audit checkpoint %s: cannot make the file private (0600): %s", c.Path, FileReason(err))
	}
	b, err := os.ReadFile(c.Path)
	if err != nil {
		return Errorf(EINVALID, "audit checkpoint %s: cannot read the file: %s", c.Path, FileReason(err))
	}
	if i := bytes.LastIndexByte(b, '\n'); i+1 < len(b) {
		if err := c.f.Truncate(int64(i + 1)); err != nil {
			return Errorf(EINVALID, "audit checkpoint %s: cannot cut its partial last line: %s", c.Path, FileReason(err))
		}
		b = b[:i+1]
	}
	for line := range bytes.Lines(b) {
		var cp Checkpoint
		if json.Unmarshal(line, &cp) != nil {
			continue
		}
		// Only a line that verifies raises noted: a forged line with a huge seq must not
		// stop every later head from being written.
		if c.keys.VerifyMAC(PurposeCheckpoint, cp.message(c.prevMAC), cp.MAC) {
			c.noted = max(c.noted, cp.Seq)
		}
		c.prevMAC = cp.MAC
	}
	c.empty = len(b) == 0
	return nil
}

// Noted returns the highest Seq noted or found in the file when it was opened (0: none).
func (c *CheckpointFile) Noted() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.noted
}

// Note records that the audit head is now (seq, hash, keyID). It returns at once: the head is
// written within Interval, unless a higher one is noted first. Heads at or below one already
// noted are ignored, except head 0 (an empty store) in an empty file: that line tells a new
// checkpoint from one that was emptied.
func (c *CheckpointFile) Note(seq int64, hash, keyID string) {
	c.mu.Lock()
	if seq < c.noted || (seq == c.noted && !c.empty) {
		c.mu.Unlock()
		return
	}
	c.noted, c.empty, c.pending = seq, false, &Checkpoint{Seq: seq, Hash: hash, KeyID: keyID}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *CheckpointFile) run() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			c.Flush()
			return
		}
		if err := c.Flush(); err != nil && c.Logger != nil {
			c.Logger.Error("cannot write the audit checkpoint", "path", c.Path, "err", ErrorMessage(err))
		}
		select {
		case <-time.After(c.interval):
		case <-c.stop:
			c.Flush()
			return
		}
	}
}

// Flush writes the pending head now, if there is one, and syncs the file.
// Once it returns, every head noted before the call is on disk (fmu is held while the
// pending head is taken, so a write in progress finishes first).
func (c *CheckpointFile) Flush() error {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	c.mu.Lock()
	cp := c.pending
	c.pending = nil
	c.mu.Unlock()
	if cp == nil {
		return nil
	}
	cp.Time = time.Now().UTC().Truncate(time.Microsecond)
	cp.MAC = c.keys.MAC(PurposeCheckpoint, cp.message(c.prevMAC))
	line, _ := json.Marshal(cp)
	if _, err := c.f.Write(append(line, '\n')); err != nil {
		return Errorf(EINTERNAL, "audit checkpoint %s: cannot write: %s", c.Path, FileReason(err))
	}
	if err := c.f.Sync(); err != nil {
		return Errorf(EINTERNAL, "audit checkpoint %s: cannot sync: %s", c.Path, FileReason(err))
	}
	c.prevMAC = cp.MAC
	return nil
}

// Read reads the file back for verification (see ReadCheckpoints), never in the middle of a
// write of this process.
func (c *CheckpointFile) Read() *CheckpointLog {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	return ReadCheckpoints(c.Path, c.keys)
}

// Close writes the pending head, stops the writer and releases the file. Later calls do
// nothing.
func (c *CheckpointFile) Close() error {
	c.closeOnce.Do(func() {
		close(c.stop)
		<-c.done
		c.fmu.Lock()
		defer c.fmu.Unlock()
		c.closeErr = c.f.Close()
	})
	return c.closeErr
}

// CheckpointLog is a checkpoint file as read for verification.
type CheckpointLog struct {
	Path string
	// Lines are the lines whose MAC verifies, in file order.
	Lines []Checkpoint
	// Problems are the file's own: missing, empty, partial, edited or unknown lines.
	Problems []ChainProblem
}

// ReadCheckpoints reads the checkpoint file at path and checks each line's MAC with keys.
func ReadCheckpoints(path string, keys *Keyring) *CheckpointLog {
	l := &CheckpointLog{Path: path}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			l.problem("the checkpoint file %s is missing: a truncated or rolled-back log cannot be told from an intact one", path)
		} else {
			l.problem("the checkpoint file %s cannot be read (%s): a truncated or rolled-back log cannot be told from an intact one", path, FileReason(err))
		}
		return l
	}
	defer f.Close()
	r := bufio.NewReader(f)
	prevMAC := ""
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			if n == 1 {
				l.problem("the checkpoint file %s is empty (truncated)", path)
			}
			return l
		}
		if err != nil {
			l.problem("the checkpoint file %s ends in a partial line %d (truncated)", path, n)
			return l
		}
		var cp Checkpoint
		switch {
		case json.Unmarshal(line, &cp) != nil:
			l.problem("checkpoint line %d is not a checkpoint (the file was edited)", n)
		case !knownKey(keys, cp.MAC):
			l.problem("checkpoint line %d (seq %d) is signed with a key that is neither secret_key nor one of previous_secret_keys (forged, or a previous key is missing from the configuration)", n, cp.Seq)
		case !keys.VerifyMAC(PurposeCheckpoint, cp.message(prevMAC), cp.MAC):
			l.problem("checkpoint line %d (seq %d) fails its HMAC: the checkpoint file was edited, or a line before it was deleted or moved", n, cp.Seq)
		default:
			cp.Line = n
			l.Lines = append(l.Lines, cp)
		}
		prevMAC = cp.MAC
	}
}

func (l *CheckpointLog) problem(format string, args ...any) {
	l.Problems = append(l.Problems, ChainProblem{Problem: fmt.Sprintf(format, args...)})
}

// knownKey reports whether the key id of tag is one of keys.
func knownKey(keys *Keyring, tag string) bool {
	id, _, _ := strings.Cut(tag, ":")
	return slices.Contains(keys.IDs(), id)
}

// top returns the line with the highest Seq (the first of equals), or nil when there is none.
func (l *CheckpointLog) top() *Checkpoint {
	var top *Checkpoint
	for i := range l.Lines {
		if top == nil || l.Lines[i].Seq > top.Seq {
			top = &l.Lines[i]
		}
	}
	return top
}

// CompareCheckpoint compares the store's events (every event, in Seq order) with l, read
// before them. Its problems name every event the checkpoint recorded that the store lost (a
// truncation with the head moved back, everything deleted), and a head that differs from the
// recorded one (a rollback to an older copy, or a rewrite); l's own problems come first. A
// checkpoint behind the store (its lag, or heads other replicas wrote) is a note, never a
// problem.
func CompareCheckpoint(events []*Event, l *CheckpointLog) (problems []ChainProblem, notes []string) {
	problems = append(problems, l.Problems...)
	add := func(seq int64, format string, args ...any) {
		problems = append(problems, ChainProblem{Seq: seq, Problem: fmt.Sprintf(format, args...)})
	}
	top := l.top()
	if top == nil {
		return problems, notes
	}
	at := func(c *Checkpoint) string { return c.Time.Format(time.RFC3339) }
	if len(events) == 0 {
		if top.Seq > 0 {
			add(1, "every event was deleted: the checkpoint recorded events 1 to %d (at %s)", top.Seq, at(top))
		}
		return problems, notes
	}
	bySeq := make(map[int64]*Event, len(events))
	for _, e := range events {
		bySeq[e.Seq] = e
	}
	last := events[len(events)-1].Seq
	if last < top.Seq {
		add(last+1, "events %d..%d recorded in the checkpoint are missing (head recorded at %s): the end of the log was deleted and its head moved back, or the store was restored from an older copy", last+1, top.Seq, at(top))
	}
	var first *Checkpoint
	differ := 0
	for i := range l.Lines {
		c := &l.Lines[i]
		if e := bySeq[c.Seq]; e != nil && e.Hash != c.Hash {
			differ++
			if first == nil || c.Seq < first.Seq {
				first = c
			}
		}
	}
	if first != nil {
		if e := bySeq[first.Seq]; e.KeyID == "" && first.KeyID != "" {
			add(first.Seq, "event %d has a plain SHA-256 hash but the checkpoint recorded it keyed (at %s): the log was rewritten without the key from there on (checkpoint lines that disagree: %d)", first.Seq, at(first), differ)
		} else {
			add(first.Seq, "event %d is not the event the checkpoint recorded at %s (checkpoint lines that disagree: %d): the store was rolled back to an older copy and went on, or its events were rewritten", first.Seq, at(first), differ)
		}
	}
	return problems, checkpointNotes(l, top, last)
}

// checkpointNotes says which events the checkpoint does not cover.
func checkpointNotes(l *CheckpointLog, top *Checkpoint, last int64) []string {
	var notes []string
	low := top.Seq
	for _, c := range l.Lines {
		low = min(low, c.Seq)
	}
	if low > 1 {
		notes = append(notes, fmt.Sprintf("the checkpoint file %s starts at event %d: events before it are protected by the hash chain only", l.Path, low))
	}
	if last > top.Seq {
		notes = append(notes, fmt.Sprintf("events %d to %d are newer than the checkpoint's last head (%s): written since, or by another server; deleting them would not be seen",
			top.Seq+1, last, top.Time.Format(time.RFC3339)))
	}
	return notes
}
