package timebox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Event is one audit record, hash-chained to the one before it.
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
}

// GenesisHash is the PrevHash of the first event.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// ComputeHash returns the hash of e: SHA-256 over PrevHash and a canonical JSON encoding of
// every other field (times in UTC with nanoseconds, map keys sorted).
func (e *Event) ComputeHash() string {
	body, _ := json.Marshal(struct {
		Seq       int64          `json:"seq"`
		Time      string         `json:"time"`
		Actor     string         `json:"actor"`
		Action    string         `json:"action"`
		RequestID string         `json:"request_id"`
		Database  string         `json:"database"`
		Details   map[string]any `json:"details"`
	}{e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.RequestID, e.Database, e.Details})
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Chain sets e's Seq, PrevHash and Hash so that it follows prev (nil for the first event).
func (e *Event) Chain(prev *Event) {
	e.Seq, e.PrevHash = 1, GenesisHash
	if prev != nil {
		e.Seq, e.PrevHash = prev.Seq+1, prev.Hash
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Hash = e.ComputeHash()
}

// ChainProblem is one break found by VerifyChain.
type ChainProblem struct {
	Seq     int64  `json:"seq"`
	Problem string `json:"problem"`
}

// VerifyChain checks events (in Seq order, starting at Seq 1) and the stored head (the last
// Seq and Hash the store recorded). It reports every edited, inserted or deleted event.
func VerifyChain(events []*Event, headSeq int64, headHash string) []ChainProblem {
	var problems []ChainProblem
	add := func(seq int64, format string, args ...any) {
		problems = append(problems, ChainProblem{Seq: seq, Problem: fmt.Sprintf(format, args...)})
	}
	prevHash, want := GenesisHash, int64(1)
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
		if e.ComputeHash() != e.Hash {
			add(e.Seq, "event %d was edited: its content does not match its hash", e.Seq)
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
	return problems
}

// EventFilter selects audit events. Zero fields match everything.
type EventFilter struct {
	Actor     string
	User      string // the actor or the requester of the event's request
	Database  string
	RequestID string
	// Visible, when set, limits the result to what one non-admin user may see.
	Visible *Visibility
	Since   time.Time
	Until   time.Time
	Limit   int
}
