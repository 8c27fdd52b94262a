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

// AuditVerification is the outcome of checking the whole audit chain.
type AuditVerification struct {
	Events   int            `json:"events"`
	HeadSeq  int64          `json:"head_seq"`
	OK       bool           `json:"ok"`
	Problems []ChainProblem `json:"problems"`
}

// VerifyAudit checks the whole hash chain. Only admins and auditors may run it (EFORBIDDEN).
func (s *Service) VerifyAudit(ctx context.Context, actor string) (*AuditVerification, error) {
	if s.visibility(actor) != nil {
		return nil, Errorf(EFORBIDDEN, "only admins and auditors may verify the whole audit log")
	}
	var v AuditVerification
	err := s.Store.View(ctx, func(tx Tx) error {
		events, err := tx.FindEvents(EventFilter{})
		if err != nil {
			return err
		}
		seq, hash, err := tx.AuditHead()
		if err != nil {
			return err
		}
		v.Events, v.HeadSeq = len(events), seq
		v.Problems = VerifyChain(events, seq, hash)
		return nil
	})
	if err != nil {
		return nil, err
	}
	v.OK = len(v.Problems) == 0
	if v.Problems == nil {
		v.Problems = []ChainProblem{}
	}
	return &v, nil
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
