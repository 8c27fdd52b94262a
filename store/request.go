package store

import (
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// CreateRequest inserts r (not r.Grant: see PutGrant). Version must be 1 (0 is taken as 1;
// anything else is EINVALID); a zero CreatedAt becomes now. r's times are set to what is
// stored: UTC to the microsecond. ECONFLICT when the ID exists.
func (t *tx) CreateRequest(r *timebox.Request) error {
	switch r.Version {
	case 0:
		r.Version = 1
	case 1:
	default:
		return timebox.Errorf(timebox.EINVALID, "store: a new request must have version 1, not %d", r.Version)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	normRequest(r)
	reviews, err := json.Marshal(nonNil(r.Reviews))
	if err != nil {
		return internal(err, "encode the reviews of request %s", r.ID)
	}
	policy, err := json.Marshal(r.Policy)
	if err != nil {
		return internal(err, "encode the policy of request %s", r.ID)
	}
	res, err := t.exec(`
		INSERT INTO requests (id, requester, database, access, start_at, end_at, requested_start,
			requested_end, reason, ticket, state, ending, ending_since, reviews, activated_at,
			ended_at, created_at, updated_at, version, due_at, policy, follow_up_open,
			decision_tag, tampered)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		r.ID, r.Requester, r.Database, r.Access, t.timeArg(r.Start), t.timeArg(r.End),
		t.timeArg(r.RequestedStart), t.timeArg(r.RequestedEnd), r.Reason, r.Ticket,
		string(r.State), string(r.Ending), t.timeArg(r.EndingSince), string(reviews),
		t.timeArg(r.ActivatedAt), t.timeArg(r.EndedAt), t.timeArg(r.CreatedAt),
		t.timeArg(r.UpdatedAt), r.Version, t.dueArg(r), string(policy), followUpOpen(r),
		r.Decided.Tag, r.Tampered)
	if err != nil {
		return internal(err, "insert request %s", r.ID)
	}
	if n, err := res.RowsAffected(); err != nil {
		return internal(err, "insert request %s", r.ID)
	} else if n == 0 {
		return timebox.Errorf(timebox.ECONFLICT, "request %s already exists", r.ID)
	}
	return t.putProof(r.ID, "decision", r.Decided.Body)
}

// UpdateRequest stores every field of r if the stored version is still r.Version, then
// increments r.Version. ECONFLICT when someone else changed the request first, ENOTFOUND when
// it does not exist.
func (t *tx) UpdateRequest(r *timebox.Request) error {
	normRequest(r)
	reviews, err := json.Marshal(nonNil(r.Reviews))
	if err != nil {
		return internal(err, "encode the reviews of request %s", r.ID)
	}
	policy, err := json.Marshal(r.Policy)
	if err != nil {
		return internal(err, "encode the policy of request %s", r.ID)
	}
	res, err := t.exec(`
		UPDATE requests SET requester = ?, database = ?, access = ?, start_at = ?, end_at = ?,
			requested_start = ?, requested_end = ?, reason = ?, ticket = ?, state = ?,
			ending = ?, ending_since = ?, reviews = ?, activated_at = ?, ended_at = ?,
			created_at = ?, updated_at = ?, version = ?, due_at = ?, policy = ?, follow_up_open = ?,
			decision_tag = ?, tampered = ?
		WHERE id = ? AND version = ?`,
		r.Requester, r.Database, r.Access, t.timeArg(r.Start), t.timeArg(r.End),
		t.timeArg(r.RequestedStart), t.timeArg(r.RequestedEnd), r.Reason, r.Ticket,
		string(r.State), string(r.Ending), t.timeArg(r.EndingSince), string(reviews),
		t.timeArg(r.ActivatedAt), t.timeArg(r.EndedAt), t.timeArg(r.CreatedAt),
		t.timeArg(r.UpdatedAt), r.Version+1, t.dueArg(r), string(policy), followUpOpen(r),
		r.Decided.Tag, r.Tampered, r.ID, r.Version)
	if err != nil {
		return internal(err, "update request %s", r.ID)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return internal(err, "update request %s", r.ID)
	}
	if n == 0 {
		ok, err := t.exists(`SELECT 1 FROM requests WHERE id = ?`, r.ID)
		switch {
		case err != nil:
			return internal(err, "look up request %s", r.ID)
		case !ok:
			return timebox.Errorf(timebox.ENOTFOUND, "request %s not found", r.ID)
		}
		return timebox.WrapError(timebox.ECONFLICT, timebox.ErrStale, "request %s was changed by someone else; reload and retry", r.ID)
	}
	r.Version++
	return t.putProof(r.ID, "decision", r.Decided.Body)
}

// requestColumns are the columns scanRequest reads: a request left-joined with its grant,
// without the proofs' bodies (listings; see requestWithProofs).
var requestColumns = strings.NewReplacer("pd.body", "''", "pi.body", "''", proofJoins, "").Replace(requestWithProofs)

// proofJoins join the bodies of a request's proofs, which only reads of one request need.
const proofJoins = `
	LEFT JOIN proofs pd ON pd.request_id = r.id AND pd.kind = 'decision'
	LEFT JOIN proofs pi ON pi.request_id = r.id AND pi.kind = 'intent'`

// requestWithProofs are the columns scanRequest reads, with the proofs' bodies.
const requestWithProofs = `
	r.id, r.requester, r.database, r.access, r.start_at, r.end_at, r.requested_start,
	r.requested_end, r.reason, r.ticket, r.state, r.ending, r.ending_since, r.reviews,
	r.activated_at, r.ended_at, r.created_at, r.updated_at, r.version, r.policy,
	pd.body, r.decision_tag, r.tampered,
	g.request_id, g.server, g.principal, g.target_database, g.method, g.status, g.roles, g.privileges, g.tables, g.valid_until,
	g.sealed_password, g.attempts, g.last_error, g.last_attempt_at, g.next_attempt_at,
	g.outcome, g.created_at, g.updated_at, pi.body, g.intent_tag
	FROM requests r LEFT JOIN grants g ON g.request_id = r.id` + proofJoins

// FindRequest returns the request with the given ID and its grant, or ENOTFOUND. Times come
// back in UTC to the microsecond, the zero time for none; Reviews and Grant.Roles are never nil.
func (t *tx) FindRequest(id string) (*timebox.Request, error) {
	r, err := scanRequest(t.queryRow(`SELECT `+requestWithProofs+` WHERE r.id = ?`, id))
	switch {
	case err == sql.ErrNoRows:
		return nil, timebox.Errorf(timebox.ENOTFOUND, "request %s not found", id)
	case err != nil:
		return nil, internal(err, "read request %s", id)
	}
	return r, nil
}

// FindRequests returns the requests that match f, with their grants, newest first; with
// f.DueBy, in due order.
func (t *tx) FindRequests(f timebox.RequestFilter) ([]*timebox.Request, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		where = append(where, "r.state IN ("+placeholders(len(f.States))+")")
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	if !f.DueBy.IsZero() {
		where, args = append(where, "r.due_at <= ?"), append(args, t.timeArg(f.DueBy))
	}
	if !f.DueAfter.IsZero() {
		where, args = append(where, "r.due_at > ?"), append(args, t.timeArg(f.DueAfter))
	}
	if f.Requester != "" {
		where, args = append(where, "r.requester = ?"), append(args, f.Requester)
	}
	if f.Database != "" {
		where, args = append(where, "r.database = ?"), append(args, f.Database)
	}
	if f.FollowUpOpen {
		where = append(where, "r.follow_up_open = 1")
	}
	if f.Tampered {
		where = append(where, "r.tampered <> ''")
	}
	if v := f.Visible; v != nil {
		cond := "r.requester = ?"
		args = append(args, v.Requester)
		if len(v.Databases) > 0 {
			cond = "(r.requester = ? OR r.database IN (" + placeholders(len(v.Databases)) + "))"
			for _, d := range v.Databases {
				args = append(args, d)
			}
		}
		where = append(where, cond)
	}
	order := ` ORDER BY r.created_at DESC, r.id DESC`
	if !f.DueBy.IsZero() {
		// The scheduler's hot query: in due order, so the due_at index serves it instead of a
		// scan of every request ever stored in created_at order.
		order = ` ORDER BY r.due_at, r.id`
	}
	query := `SELECT ` + requestColumns + whereClause(where) + order
	if f.Limit > 0 {
		query, args = query+` LIMIT ?`, append(args, f.Limit)
	}
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, internal(err, "list requests")
	}
	defer rows.Close()
	var list []*timebox.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, internal(err, "read requests")
		}
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err, "list requests")
	}
	return list, nil
}

// dueArg is the due_at column of r: when the scheduler next has to act on it (NULL: never).
// It is written with every change of the request, after its grant, so that the scheduler
// finds due work with an index instead of reading every live request.
func (t *tx) dueArg(r *timebox.Request) any {
	due, ok := r.DueAt()
	if !ok {
		return nil
	}
	return t.timeArg(normTime(due))
}

// NextDue returns the earliest due time after after (zero when there is none).
func (t *tx) NextDue(after time.Time) (time.Time, error) {
	var next time.Time
	err := t.queryRow(`SELECT MIN(due_at) FROM requests WHERE due_at > ?`, t.timeArg(after)).Scan(timeCol{&next})
	if err != nil {
		return time.Time{}, internal(err, "find the next due request")
	}
	return next, nil
}

// CountRequests returns the number of requests in each state; every state of timebox.States
// is in the map, with 0 when it has none.
func (t *tx) CountRequests() (map[timebox.State]int, error) {
	counts := make(map[timebox.State]int, len(timebox.States))
	for _, s := range timebox.States {
		counts[s] = 0
	}
	rows, err := t.query(`SELECT state, COUNT(*) FROM requests GROUP BY state`)
	if err != nil {
		return nil, internal(err, "count requests")
	}
	defer rows.Close()
	for rows.Next() {
		var s timebox.State
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, internal(err, "count requests")
		}
		counts[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err, "count requests")
	}
	return counts, nil
}

// scanRequest reads one row of requestColumns.
func scanRequest(s rowScanner) (*timebox.Request, error) {
	var r timebox.Request
	var g timebox.Grant
	var reviews, policy string
	var decision sql.NullString
	var gID, gServer, gPrincipal, gTarget, gMethod, gStatus, gRoles, gPrivileges, gTables, gLastError, gOutcome, gIntent, gIntentTag sql.NullString
	var gAttempts sql.NullInt64
	err := s.Scan(&r.ID, &r.Requester, &r.Database, &r.Access, timeCol{&r.Start}, timeCol{&r.End},
		timeCol{&r.RequestedStart}, timeCol{&r.RequestedEnd}, &r.Reason, &r.Ticket, &r.State,
		&r.Ending, timeCol{&r.EndingSince}, &reviews, timeCol{&r.ActivatedAt}, timeCol{&r.EndedAt},
		timeCol{&r.CreatedAt}, timeCol{&r.UpdatedAt},
		&r.Version, &policy, &decision, &r.Decided.Tag, &r.Tampered,
		&gID, &gServer, &gPrincipal, &gTarget, &gMethod, &gStatus, &gRoles, &gPrivileges, &gTables, timeCol{&g.ValidUntil},
		&g.SealedPassword, &gAttempts, &gLastError, timeCol{&g.LastAttemptAt},
		timeCol{&g.NextAttemptAt}, &gOutcome, timeCol{&g.CreatedAt}, timeCol{&g.UpdatedAt}, &gIntent, &gIntentTag)
	if err != nil {
		return nil, err
	}
	r.Decided.Body = decision.String
	if err := json.Unmarshal([]byte(reviews), &r.Reviews); err != nil {
		return nil, err
	} else if err := json.Unmarshal([]byte(policy), &r.Policy); err != nil {
		return nil, err
	}
	if gID.Valid {
		g.RequestID, g.Server, g.Principal, g.Method = gID.String, gServer.String, gPrincipal.String, gMethod.String
		g.TargetDatabase = gTarget.String
		g.Status, g.Attempts = timebox.GrantStatus(gStatus.String), int(gAttempts.Int64)
		g.LastError, g.Outcome = gLastError.String, gOutcome.String
		g.Intended = timebox.Proof{Body: gIntent.String, Tag: gIntentTag.String}
		if err := json.Unmarshal([]byte(gRoles.String), &g.Roles); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(gPrivileges.String), &g.Privileges); err != nil {
			return nil, err
		} else if len(g.Privileges) == 0 {
			g.Privileges = nil
		}
		if err := json.Unmarshal([]byte(gTables.String), &g.Tables); err != nil {
			return nil, err
		} else if len(g.Tables) == 0 {
			g.Tables = nil
		}
		if len(g.SealedPassword) == 0 {
			g.SealedPassword = nil
		}
		r.Grant = &g
	}
	return &r, nil
}

// PutGrant inserts or replaces the grant of g.RequestID. Times are set to what is stored: UTC
// to the microsecond. ENOTFOUND when the request does not exist.
func (t *tx) PutGrant(g *timebox.Grant) error {
	ok, err := t.exists(`SELECT 1 FROM requests WHERE id = ?`, g.RequestID)
	switch {
	case err != nil:
		return internal(err, "look up request %s", g.RequestID)
	case !ok:
		return timebox.Errorf(timebox.ENOTFOUND, "request %s not found", g.RequestID)
	}
	g.ValidUntil, g.LastAttemptAt, g.NextAttemptAt = normTime(g.ValidUntil), normTime(g.LastAttemptAt), normTime(g.NextAttemptAt)
	g.CreatedAt, g.UpdatedAt = normTime(g.CreatedAt), normTime(g.UpdatedAt)
	roles, err := json.Marshal(nonNil(g.Roles))
	if err != nil {
		return internal(err, "encode the roles of request %s", g.RequestID)
	}
	privileges, err := json.Marshal(nonNil(g.Privileges))
	if err != nil {
		return internal(err, "encode the privileges of request %s", g.RequestID)
	}
	tables, err := json.Marshal(nonNil(g.Tables))
	if err != nil {
		return internal(err, "encode the tables of request %s", g.RequestID)
	}
	var sealed any // NULL when there is no password
	if len(g.SealedPassword) > 0 {
		sealed = g.SealedPassword
	}
	_, err = t.exec(`
		INSERT INTO grants (request_id, server, principal, target_database, method, status, roles,
			privileges, tables, valid_until, sealed_password, attempts, last_error, last_attempt_at,
			next_attempt_at, outcome, created_at, updated_at, intent_tag)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (request_id) DO UPDATE SET server = excluded.server,
			principal = excluded.principal, target_database = excluded.target_database, method = excluded.method, status = excluded.status,
			roles = excluded.roles, privileges = excluded.privileges, tables = excluded.tables, valid_until = excluded.valid_until,
			sealed_password = excluded.sealed_password, attempts = excluded.attempts,
			last_error = excluded.last_error, last_attempt_at = excluded.last_attempt_at,
			next_attempt_at = excluded.next_attempt_at, outcome = excluded.outcome,
			created_at = excluded.created_at, updated_at = excluded.updated_at,
			intent_tag = excluded.intent_tag`,
		g.RequestID, g.Server, g.Principal, g.TargetDatabase, g.Method, string(g.Status), string(roles),
		string(privileges), string(tables), t.timeArg(g.ValidUntil), sealed, g.Attempts, g.LastError, t.timeArg(g.LastAttemptAt),
		t.timeArg(g.NextAttemptAt), g.Outcome, t.timeArg(g.CreatedAt), t.timeArg(g.UpdatedAt),
		g.Intended.Tag)
	if err != nil {
		// The cause is a driver error, which never carries bound values such as the password.
		return internal(err, "store the grant of request %s", g.RequestID)
	}
	return t.putProof(g.RequestID, "intent", g.Intended.Body)
}

// putProof stores the body of a proof of request id, unless it is empty (a listing does not
// read the bodies, and writing such a request back keeps them) or already stored.
func (t *tx) putProof(id, kind, body string) error {
	if body == "" {
		return nil
	}
	_, err := t.exec(`INSERT INTO proofs (request_id, kind, body) VALUES (?, ?, ?)
		ON CONFLICT (request_id, kind) DO UPDATE SET body = excluded.body WHERE proofs.body <> excluded.body`, id, kind, body)
	if err != nil {
		return internal(err, "store the %s proof of request %s", kind, id)
	}
	return nil
}

// followUpOpen is the follow_up_open column of r.
func followUpOpen(r *timebox.Request) int {
	if r.FollowUp != nil && r.FollowUp.Open {
		return 1
	}
	return 0
}

// normRequest sets r's times, including those of its reviews, to what the store keeps.
func normRequest(r *timebox.Request) {
	r.Start, r.End = normTime(r.Start), normTime(r.End)
	r.RequestedStart, r.RequestedEnd = normTime(r.RequestedStart), normTime(r.RequestedEnd)
	r.EndingSince = normTime(r.EndingSince)
	r.ActivatedAt, r.EndedAt = normTime(r.ActivatedAt), normTime(r.EndedAt)
	r.CreatedAt, r.UpdatedAt = normTime(r.CreatedAt), normTime(r.UpdatedAt)
	for i := range r.Reviews {
		r.Reviews[i].At = normTime(r.Reviews[i].At)
	}
	r.UnusedBy, r.UsedAt = normTime(r.UnusedBy), normTime(r.UsedAt)
	if f := r.FollowUp; f != nil {
		f.ClosedAt = normTime(f.ClosedAt)
	}
	if x := r.Extension; x != nil {
		x.End, x.RequestedAt = normTime(x.End), normTime(x.RequestedAt)
		for i := range x.Reviews {
			x.Reviews[i].At = normTime(x.Reviews[i].At)
		}
	}
}

// nonNil returns s, or an empty slice for nil, so that it encodes as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// whereClause joins conditions with AND into a WHERE clause ("" when there are none).
func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}
