package notify

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/timebox-dev/timebox"
)

// planBatch is how many events one planning transaction reads: small, so that it holds the
// store's writer (SQLite) for a few milliseconds at most beside activations and expiries.
const planBatch = 100

// kindOf returns what event e means for people (with r, its request, or nil), "" for nothing;
// next is the event after e (nil when none yet), to tell a request that waits for review
// from one approved in the transaction that created it.
func kindOf(e, next *timebox.Event, r *timebox.Request) Kind {
	switch e.Action {
	case "request.created":
		if next != nil && next.RequestID == e.RequestID && (next.Action == "request.auto_approved" || next.Action == "request.break_glass") {
			return "" // its decision follows at once
		}
		return KindNewRequest
	case "request.approval_added":
		return KindAwaiting
	case "request.approved", "request.denied", "request.auto_approved":
		return KindDecision
	case "request.activated":
		return KindActivation
	case "request.expired":
		return KindExpiry
	case "request.revoked":
		return KindRevoke
	case "request.released":
		return KindRelease
	case "request.break_glass":
		return KindBreakGlass
	case "request.cancelled":
		return kindCancelled
	case "request.follow_up_closed":
		return kindFollowUpClosed
	case "extension.requested", "extension.approval_added", "extension.denied", "request.extended":
		return KindExtension
	case "drift.repaired":
		return KindDriftRepaired
	case "store.tampered":
		return KindStoreTampered
	}
	return ""
}

// ended reports whether e ends its request's access (a break-glass request's follow-up is
// then due).
func ended(e *timebox.Event) bool {
	return e.Action == "request.expired" || e.Action == "request.revoked" || e.Action == "request.released"
}

// planner turns events and warnings into deliveries inside one transaction.
type planner struct {
	o    *Outbox
	tx   timebox.Tx
	now  time.Time
	reqs map[string]*timebox.Request
	out  []*timebox.Delivery
	// warned are the warnings this pass planned (set when it planned them).
	warned map[string]time.Time
}

// request returns (and caches) request id, nil when there is none.
func (p *planner) request(id string) *timebox.Request {
	if id == "" {
		return nil
	}
	if r, ok := p.reqs[id]; ok {
		return r
	}
	r, err := p.tx.FindRequest(id)
	if err != nil {
		r = nil
	}
	p.reqs[id] = r
	return r
}

// event plans one audit event.
func (p *planner) event(e, next *timebox.Event) error {
	seq := "e" + strconv.FormatInt(e.Seq, 10)
	for _, ch := range p.o.channels {
		if ch.Events != nil && matchAction(ch.Events, e.Action) {
			p.add(ch, KindEvent, seq, e.Seq, e.RequestID, "")
		}
	}
	r := p.request(e.RequestID)
	k := kindOf(e, next, r)
	if k == "" {
		return nil
	}
	if err := p.people(k, seq, e.Seq, r, e); err != nil {
		return err
	}
	if r != nil && r.BreakGlass && r.FollowUp != nil && r.FollowUp.Open && ended(e) {
		return p.people(KindFollowUpDue, seq+"-follow-up", e.Seq, r, e)
	}
	return nil
}

// people plans kind k (about r, which may be nil) for the routes that want it, and a thread
// update on every channel whose message stands for r.
func (p *planner) people(k Kind, id string, seq int64, r *timebox.Request, e *timebox.Event) error {
	sharedDone := map[string]bool{}
	for i := range p.o.routes {
		rt := &p.o.routes[i]
		if !rt.wants(k, r, p.o.catalog()) {
			continue
		}
		for _, name := range rt.Channels {
			ch := p.o.channel(name)
			if ch == nil {
				continue
			}
			if rt.shared() && !sharedDone[name] {
				sharedDone[name] = true
				p.add(ch, k, id, seq, requestID(r), "")
			}
			for _, u := range p.o.direct(rt, k, r) {
				if d, ok := ch.Sender.(Directs); ok && d.Reaches(u) {
					p.add(ch, k, id, seq, requestID(r), u.Name)
				}
			}
		}
	}
	if r == nil {
		return nil
	}
	// The shared message of r moves on with it, whatever the routes ask for.
	for _, ch := range p.o.channels {
		if sharedDone[ch.Name] || ch.Events != nil {
			continue
		}
		thread, err := p.o.thread(p.tx, ch.Name, r.ID)
		if err != nil {
			return err
		}
		if thread != "" {
			p.add(ch, k, id, seq, r.ID, "")
		}
	}
	return nil
}

func requestID(r *timebox.Request) string {
	if r == nil {
		return ""
	}
	return r.ID
}

// add queues a delivery; its key is channel, id (event or warning) and recipient.
func (p *planner) add(ch *Channel, k Kind, id string, seq int64, requestID, recipient string) {
	key := ch.Name + ":" + id
	if recipient != "" {
		key += ":" + recipient
	}
	p.out = append(p.out, &timebox.Delivery{Key: key, Channel: ch.Name, Kind: string(k), EventSeq: seq,
		RequestID: requestID, Recipient: recipient, Status: timebox.DeliveryPending, NextAt: p.now, CreatedAt: p.now})
}

// warnings plans the expiry warnings of the active requests that end within ExpiryWarning.
func (p *planner) warnings() error {
	p.warned = map[string]time.Time{}
	horizon := p.now.Add(p.o.expiryWarning)
	rs, err := p.tx.FindRequests(timebox.RequestFilter{States: []timebox.State{timebox.StateActive}, DueBy: horizon})
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.End.After(horizon) || !r.End.After(p.now) || r.Ending != "" {
			continue
		}
		id := fmt.Sprintf("warn-%s-%d", r.ID, r.End.Unix()) // an extension gets its own warning
		if _, done := p.o.warned[id]; done {
			continue
		}
		p.reqs[r.ID], p.warned[id] = r, r.End
		if err := p.people(KindExpiryWarning, id, 0, r, nil); err != nil {
			return err
		}
	}
	return nil
}

// wants reports whether the route sends kind k about r (nil: an event about no request).
func (rt *Route) wants(k Kind, r *timebox.Request, cat *timebox.Catalog) bool {
	if k == kindCancelled || k == kindFollowUpClosed {
		return false // thread updates only
	}
	if len(rt.Events) > 0 && !slices.Contains(rt.Events, k) {
		return false
	}
	if r == nil {
		return len(rt.Databases) == 0 && len(rt.Environments) == 0 && len(rt.Rules) == 0
	}
	if len(rt.Databases) > 0 && !slices.Contains(rt.Databases, r.Database) {
		return false
	}
	if len(rt.Environments) > 0 {
		db, err := cat.Database(r.Database)
		if err != nil || !slices.Contains(rt.Environments, db.Environment) {
			return false
		}
	}
	return len(rt.Rules) == 0 || slices.Contains(rt.Rules, r.Rule)
}

// direct returns the people route rt writes to directly about kind k of r.
func (o *Outbox) direct(rt *Route, k Kind, r *timebox.Request) []*timebox.User {
	if r == nil || len(rt.Direct) == 0 {
		return nil
	}
	var out []*timebox.User
	seen := map[string]bool{}
	addUsers := func(us []*timebox.User) {
		for _, u := range us {
			if !seen[u.Name] {
				seen[u.Name] = true
				out = append(out, u)
			}
		}
	}
	for _, who := range rt.Direct {
		switch who {
		case "approvers":
			switch k {
			case KindNewRequest, KindAwaiting:
				addUsers(o.service.Reviewers(r))
			case KindExtension:
				if r.Extension != nil {
					addUsers(o.service.Reviewers(r))
				}
			case KindBreakGlass, KindFollowUpDue, KindStoreTampered, KindDriftRepaired:
				addUsers(o.service.Owners(r))
			}
		case "requester":
			if k != KindNewRequest && k != KindAwaiting && k != KindRelease {
				if u, err := o.catalog().User(r.Requester); err == nil {
					addUsers([]*timebox.User{u})
				}
			}
		}
	}
	return out
}
