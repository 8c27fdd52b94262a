package timebox

import (
	"context"
	"time"
)

// FindEvents returns the audit events matching f that actor may see: everything for admins
// and auditors; for others, their own actions and the events of requests they may see.
func (s *Service) FindEvents(ctx context.Context, actor string, f EventFilter) (es []*Event, err error) {
	f.Visible = s.visibility(actor)
	err = s.Store.View(ctx, func(tx Tx) error {
		es, err = tx.FindEvents(f)
		return err
	})
	return es, err
}

// AuditVerification is the outcome of checking the whole audit chain and its checkpoint.
type AuditVerification struct {
	Events  int   `json:"events"`
	HeadSeq int64 `json:"head_seq"`
	// KeyedFrom is the first keyed event (0: the chain has only plain SHA-256 events).
	KeyedFrom int64 `json:"keyed_from"`
	OK        bool  `json:"ok"`
	// Problems are what proves an edit, a deletion, a truncation or a rollback, or what keeps
	// the log from being called intact (a missing or edited checkpoint file).
	Problems []ChainProblem `json:"problems"`
	// Checkpoint summarises the checkpoint file compared with the store (nil: none).
	Checkpoint *CheckpointSummary `json:"checkpoint,omitempty"`
	// Notes say what the verification could not cover (events newer than the checkpoint).
	Notes []string `json:"notes"`
}

// CheckpointSummary is the last head a checkpoint file recorded.
type CheckpointSummary struct {
	Path  string    `json:"path"`
	Lines int       `json:"lines"`
	Seq   int64     `json:"seq"`
	Time  time.Time `json:"time,omitzero"`
}

// VerifyAudit checks the whole hash chain and compares it with the checkpoint. Only admins
// and auditors may run it (EFORBIDDEN).
func (s *Service) VerifyAudit(ctx context.Context, actor string) (*AuditVerification, error) {
	if s.visibility(actor) != nil {
		return nil, Errorf(EFORBIDDEN, "only admins and auditors may verify the whole audit log")
	}
	// The checkpoint is read first: each of its lines was written after its event was
	// committed, so the store's snapshot, taken later, holds every event it names.
	var cp *CheckpointLog
	if s.Checkpoint != nil {
		cp = s.Checkpoint.Read()
	}
	var events []*Event
	var seq int64
	var hash string
	err := s.Store.View(ctx, func(tx Tx) (err error) {
		if events, err = tx.FindEvents(EventFilter{}); err != nil {
			return err
		}
		seq, hash, err = tx.AuditHead()
		return err
	})
	if err != nil {
		return nil, err
	}
	return VerifyAuditLog(events, seq, hash, cp, s.Keys), nil
}

// VerifyAuditLog checks events (every event, in Seq order) and the store's head with keys,
// and compares them with cp, the checkpoint read before the events (nil: none configured).
func VerifyAuditLog(events []*Event, headSeq int64, headHash string, cp *CheckpointLog, keys *Keyring) *AuditVerification {
	v := &AuditVerification{Events: len(events), HeadSeq: headSeq, Notes: []string{}}
	v.KeyedFrom, v.Problems = verifyChain(events, headSeq, headHash, keys)
	if cp == nil {
		v.Notes = append(v.Notes, "no checkpoint file is configured: a truncated or rolled-back log cannot be detected")
	} else {
		problems, notes := CompareCheckpoint(events, cp)
		v.Problems, v.Notes = append(v.Problems, problems...), append(v.Notes, notes...)
		v.Checkpoint = &CheckpointSummary{Path: cp.Path, Lines: len(cp.Lines)}
		if top := cp.top(); top != nil {
			v.Checkpoint.Seq, v.Checkpoint.Time = top.Seq, top.Time
		}
	}
	v.OK = len(v.Problems) == 0
	if v.Problems == nil {
		v.Problems = []ChainProblem{}
	}
	return v
}

// AccessRecord is one period during which a person held access to a database.
type AccessRecord struct {
	RequestID   string    `json:"request_id"`
	User        string    `json:"user"`
	Database    string    `json:"database"`
	Environment string    `json:"environment"`
	Access      string    `json:"access"`
	Principal   string    `json:"principal"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to,omitzero"` // zero while the access still exists
	State       State     `json:"state"`
	ApprovedBy  []string  `json:"approved_by"`
	Ticket      string    `json:"ticket,omitempty"`
	Reason      string    `json:"reason"`
}

// AccessReport answers "who had access to which database, from when to when, at what level,
// approved by whom, with which ticket" for access that overlapped [since, until).
func (s *Service) AccessReport(ctx context.Context, actor string, since, until time.Time) ([]AccessRecord, error) {
	rs, err := s.FindRequests(ctx, actor, RequestFilter{States: []State{StateActive, StateExpired, StateRevoked, StateApproved, StateCancelled, StateReleased}})
	if err != nil {
		return nil, err
	}
	records := []AccessRecord{}
	for _, r := range rs {
		if r.ActivatedAt.IsZero() || !r.ActivatedAt.Before(until) || (!r.EndedAt.IsZero() && r.EndedAt.Before(since)) {
			continue
		}
		rec := AccessRecord{
			RequestID: r.ID, User: r.Requester, Database: r.Database, Access: r.Access,
			From: r.ActivatedAt, State: r.State, ApprovedBy: []string{}, Ticket: r.Ticket, Reason: r.Reason,
		}
		if r.State != StateActive && r.State != StateApproved {
			rec.To = r.EndedAt
		}
		if db, err := s.Catalog.Database(r.Database); err == nil {
			rec.Environment = db.Environment
		}
		if r.Grant != nil {
			rec.Principal = r.Grant.Principal
		}
		for _, rv := range r.Reviews {
			if rv.Decision == ActionApprove {
				rec.ApprovedBy = append(rec.ApprovedBy, rv.Reviewer)
			}
		}
		records = append(records, rec)
	}
	return records, nil
}
