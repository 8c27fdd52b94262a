package timebox

import (
	"encoding/json"
	"slices"
	"time"
)

// integrityVersion is the version of the canonical encodings below; a stored copy of another
// version never verifies.
const integrityVersion = 1

// Proof is an authenticated copy of what was decided: the canonical encoding (Body) and its
// tag, Keyring.MAC(PurposeGrant, Body). Someone who can write the store but does not hold
// secret_key can delete a proof or copy one, but not make one that verifies for other values.
// The tag alone verifies fields that were not edited; the body names the edited ones and gives
// their authenticated values (listings of the store leave it empty).
type Proof struct {
	Body string
	Tag  string
}

// Decision is what the approval of a request allowed, as authenticated when it was decided
// (approval, quorum, auto-approval, break-glass, narrowing, extension). Its JSON encoding, with
// this fixed field order, is the canonical form; it is bound to the request's id.
type Decision struct {
	V           int           `json:"v"`
	Kind        string        `json:"kind"` // "decision"
	Request     string        `json:"request"`
	Requester   string        `json:"requester"`
	Database    string        `json:"database"`
	Access      string        `json:"access"`
	Tables      []TableGrant  `json:"tables"`
	Start       time.Time     `json:"start"`
	End         time.Time     `json:"end"`
	State       State         `json:"state"`
	Rule        string        `json:"rule"`
	Approvers   []string      `json:"approvers"`
	ExtendedBy  []string      `json:"extended_by"`
	BreakGlass  bool          `json:"break_glass"`
	Auto        bool          `json:"auto"`
	UnusedAfter time.Duration `json:"unused_after"`
}

// Intent is what the scheduler planned to create on the database for a request, as
// authenticated when it stored the intent (and again when an extension moved ValidUntil).
type Intent struct {
	V              int          `json:"v"`
	Kind           string       `json:"kind"` // "intent"
	Request        string       `json:"request"`
	Server         string       `json:"server"`
	Principal      string       `json:"principal"`
	TargetDatabase string       `json:"target_database"`
	Method         string       `json:"method"`
	Roles          []string     `json:"roles"`
	Privileges     []string     `json:"privileges"`
	Tables         []TableGrant `json:"tables"`
	ValidUntil     time.Time    `json:"valid_until"`
	// The sealed password is not part of it: the seal itself binds it to the request id, and
	// only Timebox can make one.
}

// DecisionOf returns the decision r's fields say was made: approved, by whom, under which rule.
func DecisionOf(r *Request) Decision {
	approvers := reviewers(r.Reviews, ActionApprove)
	return Decision{
		V: integrityVersion, Kind: "decision", Request: r.ID, Requester: r.Requester, Database: r.Database, Access: r.Access,
		Tables: nonNilSlice(r.Tables), Start: r.Start.UTC(), End: r.End.UTC(), State: StateApproved,
		Rule: r.Rule, Approvers: nonNilSlice(approvers), ExtendedBy: nonNilSlice(reviewers(r.Reviews, ActionExtend)),
		BreakGlass: r.BreakGlass, Auto: slices.Contains(approvers, Actor), UnusedAfter: time.Duration(r.UnusedAfter),
	}
}

// IntentOf returns the intent g's fields say was planned for request g.RequestID.
func IntentOf(g *Grant) Intent {
	in := Intent{
		V: integrityVersion, Kind: "intent", Request: g.RequestID, Server: g.Server, Principal: g.Principal,
		TargetDatabase: g.TargetDatabase, Method: g.Method, Roles: nonNilSlice(g.Roles),
		Privileges: nonNilSlice(g.Privileges), Tables: nonNilSlice(g.Tables), ValidUntil: g.ValidUntil.UTC(),
	}
	return in
}

// Canonical returns the canonical encoding of d (what its tag authenticates).
func (d Decision) Canonical() []byte { return canonical(d) }

// Canonical returns the canonical encoding of in (what its tag authenticates).
func (in Intent) Canonical() []byte { return canonical(in) }

func canonical(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain strings, times and slices of them: cannot fail
	}
	return b
}

// SealDecision authenticates what r's fields say was decided, with the current key, and
// stores the proof in r.Decided. The service calls it at the moment of each decision.
func (k *Keyring) SealDecision(r *Request) {
	body := DecisionOf(r).Canonical()
	r.Decided = Proof{Body: string(body), Tag: k.MAC(PurposeGrant, body)}
}

// SealIntent authenticates g's intent with the current key and stores it in g.Intended.
func (k *Keyring) SealIntent(g *Grant) {
	body := IntentOf(g).Canonical()
	g.Intended = Proof{Body: string(body), Tag: k.MAC(PurposeGrant, body)}
}

// CheckDecision verifies r's decision proof and compares it with r's fields. It returns the
// authenticated decision (nil when the proof is missing or does not verify) and the fields
// that do not verify: "decision" alone when there is no valid proof at all. A request that is
// neither approved nor active has nothing to check.
func (k *Keyring) CheckDecision(r *Request) (*Decision, []string) {
	if r.State != StateApproved && r.State != StateActive {
		return nil, nil
	}
	got := DecisionOf(r)
	if k.same(r.Decided, got.Canonical()) { // the fields are what was authenticated
		return &got, nil
	}
	var d Decision
	if !k.open(r.Decided, r.ID, "decision", &d, &d.V, &d.Kind, &d.Request) {
		return nil, []string{"decision"}
	}
	var bad []string
	diff := func(name string, same bool) {
		if !same {
			bad = append(bad, name)
		}
	}
	diff("requester", got.Requester == d.Requester)
	diff("database", got.Database == d.Database)
	diff("access", got.Access == d.Access)
	diff("tables", slices.EqualFunc(got.Tables, d.Tables, sameTable))
	diff("start", got.Start.Equal(d.Start))
	diff("end", got.End.Equal(d.End))
	diff("state", d.State == StateApproved)
	diff("rule", got.Rule == d.Rule)
	diff("approvers", slices.Equal(got.Approvers, d.Approvers) && got.Auto == d.Auto)
	diff("extended_by", slices.Equal(got.ExtendedBy, d.ExtendedBy))
	diff("break_glass", got.BreakGlass == d.BreakGlass)
	diff("unused_after", got.UnusedAfter == d.UnusedAfter)
	return &d, bad
}

// CheckIntent verifies g's intent proof and compares it with g's fields. It returns the
// authenticated intent (nil when the proof is missing or does not verify) and the fields that
// do not verify: "intent" alone when there is no valid proof at all.
func (k *Keyring) CheckIntent(g *Grant) (*Intent, []string) {
	got := IntentOf(g)
	if k.same(g.Intended, got.Canonical()) {
		return &got, nil
	}
	var in Intent
	if !k.open(g.Intended, g.RequestID, "intent", &in, &in.V, &in.Kind, &in.Request) {
		return nil, []string{"intent"}
	}
	var bad []string
	diff := func(name string, same bool) {
		if !same {
			bad = append(bad, name)
		}
	}
	diff("server", got.Server == in.Server)
	diff("principal", got.Principal == in.Principal)
	diff("target_database", got.TargetDatabase == in.TargetDatabase)
	diff("method", got.Method == in.Method)
	diff("roles", slices.Equal(got.Roles, in.Roles))
	diff("privileges", slices.Equal(got.Privileges, in.Privileges))
	diff("grant_tables", slices.EqualFunc(got.Tables, in.Tables, sameTable))
	diff("valid_until", got.ValidUntil.Equal(in.ValidUntil))
	return &in, bad
}

// CheckRequest returns the fields of r that fail their integrity check, nil when everything
// that may give access verifies: an approved or active request needs a valid decision proof
// that matches its fields, its grant a valid intent proof that matches its fields and does
// not outlast the decided end. Other states give nothing and are not checked.
func (k *Keyring) CheckRequest(r *Request) []string {
	d, bad := k.CheckDecision(r)
	if r.Grant == nil || d == nil && bad == nil { // nothing decided, nothing to give
		return bad
	}
	in, gbad := k.CheckIntent(r.Grant)
	bad = append(bad, gbad...)
	if in != nil && d != nil && in.ValidUntil.After(d.End) {
		bad = append(bad, "valid_until (after the decided end)")
	}
	return bad
}

// same reports whether proof p's tag authenticates exactly body, the canonical encoding of
// the fields as they are: the fast path of a check, which needs neither the proof's stored
// body nor any decoding.
func (k *Keyring) same(p Proof, body []byte) bool {
	return p.Tag != "" && k.VerifyMAC(PurposeGrant, body, p.Tag)
}

// open verifies proof p and decodes it into v; false unless its tag verifies (with the current
// or a previous key), it decodes, and its version, kind and request id (read into version,
// gotKind and request) are this encoding's, kind and id.
func (k *Keyring) open(p Proof, id, kind string, v any, version *int, gotKind, request *string) bool {
	if p.Tag == "" || !k.VerifyMAC(PurposeGrant, []byte(p.Body), p.Tag) {
		return false
	}
	if err := json.Unmarshal([]byte(p.Body), v); err != nil {
		return false
	}
	return *version == integrityVersion && *gotKind == kind && *request == id
}

// ExtensionScope is what the approvals of r's pending extension are sealed for: the request
// and that extension, so that neither the request's own approvals nor those of an earlier
// extension count for it. "" when r has no pending extension.
func (r *Request) ExtensionScope() string {
	if r.Extension == nil {
		return ""
	}
	return r.ID + "#extension@" + r.Extension.RequestedAt.UTC().Format(time.RFC3339Nano)
}

// AdoptReviews seals the unsealed approvals of pending r and of its pending extension as they
// are (trust on first use, for a store made before reviews were sealed); it reports whether it
// sealed any.
func (k *Keyring) AdoptReviews(r *Request) bool {
	sealed := false
	adopt := func(id string, reviews []Review) {
		for i := range reviews {
			if rv := &reviews[i]; rv.Decision == ActionApprove && rv.Seal == "" {
				k.SealReview(id, rv)
				sealed = true
			}
		}
	}
	if r.State == StatePending {
		adopt(r.ID, r.Reviews)
	}
	if r.Extension != nil {
		adopt(r.ExtensionScope(), r.Extension.Reviews)
	}
	return sealed
}

// reviewProof is the canonical encoding of one review's seal.
type reviewProof struct {
	V        int       `json:"v"`
	Kind     string    `json:"kind"` // "review"
	Request  string    `json:"request"`
	Reviewer string    `json:"reviewer"`
	Decision Action    `json:"decision"`
	At       time.Time `json:"at"`
}

func reviewBody(id string, rv *Review) []byte {
	return canonical(reviewProof{V: integrityVersion, Kind: "review", Request: id, Reviewer: rv.Reviewer, Decision: rv.Decision, At: rv.At.UTC()})
}

// SealReview authenticates rv as a review of id (a request's id, or the scope of one of its
// extensions), when it is recorded: an approval written into the store without the key never
// counts towards a quorum.
func (k *Keyring) SealReview(id string, rv *Review) {
	rv.Seal = k.MAC(PurposeGrant, reviewBody(id, rv))
}

// Genuine returns reviews without the approvals whose seal does not verify as reviews of id
// (see SealReview), and who those forged approvals named.
func (k *Keyring) Genuine(id string, reviews []Review) (kept []Review, forged []string) {
	for i := range reviews {
		rv := &reviews[i]
		if rv.Decision == ActionApprove && !k.VerifyMAC(PurposeGrant, reviewBody(id, rv), rv.Seal) {
			forged = append(forged, rv.Reviewer)
			continue
		}
		kept = append(kept, *rv)
	}
	return kept, forged
}

// Retag re-authenticates the valid proofs of r (and its grant) that a previous key made, with
// the current key, so that a previous key can be retired once every live row was written
// again. It never re-tags a proof that does not verify.
func (k *Keyring) Retag(r *Request) {
	retag := func(p *Proof) {
		if p.Tag != "" && !k.Current(p.Tag) && k.VerifyMAC(PurposeGrant, []byte(p.Body), p.Tag) {
			p.Tag = k.MAC(PurposeGrant, []byte(p.Body))
		}
	}
	retag(&r.Decided)
	if r.Grant != nil {
		retag(&r.Grant.Intended)
	}
}

// Apply returns g with what its authenticated intent says in place of the stored fields: the
// server, principal, database, method, roles, privileges, tables and expiry a removal or a
// repair may use.
func (in *Intent) Apply(g *Grant) *Grant {
	c := *g
	c.Server, c.Principal, c.TargetDatabase, c.Method = in.Server, in.Principal, in.TargetDatabase, in.Method
	c.Roles, c.Privileges, c.Tables, c.ValidUntil = in.Roles, in.Privileges, in.Tables, in.ValidUntil
	if len(c.Privileges) == 0 {
		c.Privileges = nil
	}
	if len(c.Tables) == 0 {
		c.Tables = nil
	}
	return &c
}

func sameTable(a, b TableGrant) bool {
	return a.Schema == b.Schema && a.Table == b.Table && slices.Equal(a.Operations, b.Operations) && slices.Equal(a.Columns, b.Columns)
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
