package timebox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// svcEnv is a Service on a real SQLite store with a small catalog and a clock the test moves.
type svcEnv struct {
	t    *testing.T
	ctx  context.Context
	db   *store.DB
	svc  *timebox.Service
	now  time.Time
	path string // the SQLite file
}

var t0 = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

func svcCatalog(t *testing.T) *timebox.Catalog {
	c := &timebox.Catalog{
		Users: []timebox.User{
			{Name: "alice", Groups: []string{"developers"}},
			{Name: "bob", Groups: []string{"prod-owners"}},
			{Name: "root", Groups: []string{"platform"}},
			{Name: "audrey", Groups: []string{"audit"}},
			{Name: "carol"}, // in the catalog, in no group
		},
		AdminGroups:   []string{"platform"},
		AuditorGroups: []string{"audit"},
		Servers: []timebox.Server{{
			Name: "pg1", Engine: timebox.EnginePostgres, URL: "postgres://timebox@db.internal:5432/postgres",
			Password: "env:TBX_TEST_NEVER_READ", ConnectHost: "db.example.com", ConnectPort: 6432,
		}},
		Databases: []timebox.Database{
			{Name: "prod", Server: "pg1", Database: "shop", Environment: "prod", Owners: []string{"prod-owners"}},
			{Name: "dev", Server: "pg1", Database: "shop_dev", Environment: "dev", Owners: []string{"dev-leads"}},
		},
		AccessLevels: []timebox.AccessLevel{
			{Name: "read-only", Postgres: timebox.EngineRoles{Roles: []string{"shop_ro"}}},
			{Name: "nothing"},
		},
		Limits: map[string]timebox.Limits{
			"prod": {
				MaxDuration: timebox.Duration(4 * time.Hour), MinDuration: timebox.Duration(15 * time.Minute),
				MaxLeadTime: timebox.Duration(48 * time.Hour), RequireTicket: true,
			},
		},
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("catalog: %v", err)
	}
	return c
}

func newSvcEnv(t *testing.T) *svcEnv {
	t.Helper()
	return newSvcEnvWith(t, svcCatalog(t), "")
}

// newSvcEnvWith is newSvcEnv with a catalog of the test's and, when dsn is set, that store
// instead of a new SQLite file.
func newSvcEnvWith(t *testing.T, catalog *timebox.Catalog, dsn string) *svcEnv {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.db")
	if dsn == "" {
		dsn = "sqlite://" + path
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := timebox.NewKeyring("service-test-secret-key")
	if err != nil {
		t.Fatal(err)
	}
	e := &svcEnv{t: t, ctx: ctx, db: db, now: t0, path: path}
	e.svc = timebox.NewService(db, catalog, keys)
	e.svc.Now = func() time.Time { return e.now }
	// Whatever a test did, the audit chain must verify at its end.
	t.Cleanup(func() {
		v, err := e.svc.VerifyAudit(ctx, "audrey")
		if err != nil {
			t.Errorf("VerifyAudit: %v", err)
		} else if !v.OK || len(v.Problems) != 0 || int64(v.Events) != v.HeadSeq {
			t.Errorf("audit chain does not verify: %+v", v)
		}
	})
	return e
}

func (e *svcEnv) events() []*timebox.Event {
	e.t.Helper()
	var es []*timebox.Event
	if err := e.db.View(e.ctx, func(tx timebox.Tx) (err error) {
		es, err = tx.FindEvents(timebox.EventFilter{})
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return es
}

func (e *svcEnv) stored(id string) *timebox.Request {
	e.t.Helper()
	var r *timebox.Request
	if err := e.db.View(e.ctx, func(tx timebox.Tx) (err error) {
		r, err = tx.FindRequest(id)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *svcEnv) requestCount() int {
	e.t.Helper()
	var n int
	if err := e.db.View(e.ctx, func(tx timebox.Tx) error {
		counts, err := tx.CountRequests()
		for _, c := range counts {
			n += c
		}
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// changed runs fn, which must succeed, and checks that it stored exactly one new audit event
// with the given action about request id, and (when bump) exactly one new request version.
func (e *svcEnv) changed(id, action string, bump bool, fn func() error) {
	e.t.Helper()
	before := len(e.events())
	var version int
	if id != "" {
		version = e.stored(id).Version
	}
	if err := fn(); err != nil {
		e.t.Fatalf("%s: %v", action, err)
	}
	es := e.events()
	if len(es) != before+1 {
		e.t.Fatalf("%s stored %d audit events, want exactly 1", action, len(es)-before)
	}
	last := es[len(es)-1]
	if last.Action != action || (id != "" && last.RequestID != id) {
		e.t.Fatalf("last event is %s on %q, want %s on %q", last.Action, last.RequestID, action, id)
	}
	if id != "" {
		want := version
		if bump {
			want++
		}
		if got := e.stored(id).Version; got != want {
			e.t.Fatalf("%s: version %d → %d, want %d", action, version, got, want)
		}
	}
}

// refused runs fn, which must fail with code and message parts, and checks that neither the
// request (when id is set), the number of requests nor the audit log changed.
func (e *svcEnv) refused(id, code string, parts []string, fn func() error) {
	e.t.Helper()
	before, requests := len(e.events()), e.requestCount()
	var old *timebox.Request
	if id != "" {
		old = e.stored(id)
	}
	wantErr(e.t, fn(), code, parts...)
	if n := len(e.events()); n != before {
		e.t.Fatalf("a refused call stored %d audit events", n-before)
	}
	if n := e.requestCount(); n != requests {
		e.t.Fatalf("a refused call created %d requests", n-requests)
	}
	if id != "" {
		if r := e.stored(id); r.Version != old.Version || r.State != old.State || r.Ending != old.Ending || len(r.Reviews) != len(old.Reviews) {
			e.t.Fatalf("a refused call changed the request: %+v → %+v", old, r)
		}
	}
}

func tp(t time.Time) *time.Time { return &t }

// create files a request through the service and checks its event.
func (e *svcEnv) create(actor string, in timebox.RequestInput) *timebox.Request {
	e.t.Helper()
	var r *timebox.Request
	e.changed("", "request.created", false, func() (err error) {
		r, err = e.svc.CreateRequest(e.ctx, actor, in)
		return err
	})
	if got := e.events(); got[len(got)-1].RequestID != r.ID || got[len(got)-1].Actor != actor {
		e.t.Fatalf("created event %+v", got[len(got)-1])
	}
	return r
}

func prodInput() timebox.RequestInput {
	return timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "2h", Reason: "investigate INC-7", Ticket: "INC-7"}
}

func devInput() timebox.RequestInput {
	return timebox.RequestInput{Database: "dev", Access: "read-only", Duration: "1h", Reason: "debug"}
}

func (e *svcEnv) approve(actor, id string, in timebox.ApproveInput) *timebox.Request {
	e.t.Helper()
	var r *timebox.Request
	e.changed(id, "request.approved", true, func() (err error) {
		r, err = e.svc.Approve(e.ctx, actor, id, in)
		return err
	})
	return r
}

// activate does what the scheduler does once the database confirmed the access: request
// active, grant active with a sealed password, and its audit event.
func (e *svcEnv) activate(id, password string) {
	e.t.Helper()
	e.changed(id, "request.activated", true, func() error {
		return e.db.Update(e.ctx, func(tx timebox.Tx) error {
			r, err := tx.FindRequest(id)
			if err != nil {
				return err
			}
			to, err := timebox.Transition(r.State, timebox.ActionActivate)
			if err != nil {
				return err
			}
			now := e.now
			r.State, r.ActivatedAt, r.UpdatedAt = to, now, now
			if err := tx.UpdateRequest(r); err != nil {
				return err
			}
			g := &timebox.Grant{
				RequestID: id, Server: "pg1", Principal: "tbx_" + r.Requester + "_" + id,
				Method: timebox.MethodEphemeralLogin, Status: timebox.GrantActive, Roles: []string{"shop_ro"},
				ValidUntil: r.End, SealedPassword: e.svc.Sealer.Seal(password, id), Attempts: 1,
				CreatedAt: now, UpdatedAt: now,
			}
			if err := tx.PutGrant(g); err != nil {
				return err
			}
			return tx.AppendEvent(&timebox.Event{Time: now, Actor: "timebox", Action: "request.activated", RequestID: id, Database: r.Database,
				Details: map[string]any{"principal": g.Principal}})
		})
	})
}

// expire does what the scheduler does once the database confirmed the removal at expiry.
func (e *svcEnv) expire(id string) {
	e.t.Helper()
	e.changed(id, "request.expired", true, func() error {
		return e.db.Update(e.ctx, func(tx timebox.Tx) error {
			r, err := tx.FindRequest(id)
			if err != nil {
				return err
			}
			if r.State, err = timebox.Transition(r.State, timebox.ActionExpire); err != nil {
				return err
			}
			r.EndedAt, r.UpdatedAt = e.now, e.now
			if err := tx.UpdateRequest(r); err != nil {
				return err
			}
			r.Grant.Status, r.Grant.Outcome, r.Grant.UpdatedAt = timebox.GrantRevoked, "dropped", e.now
			if err := tx.PutGrant(r.Grant); err != nil {
				return err
			}
			return tx.AppendEvent(&timebox.Event{Time: e.now, Actor: "timebox", Action: "request.expired", RequestID: id, Database: r.Database})
		})
	})
}

func TestServiceCreateRequest(t *testing.T) {
	e := newSvcEnv(t)
	r := e.create("alice", prodInput())
	if r.State != timebox.StatePending || r.Requester != "alice" || r.Version != 1 || len(r.ID) != 10 {
		t.Fatalf("created %+v", r)
	}
	if !r.Start.Equal(t0) || !r.End.Equal(t0.Add(2*time.Hour)) || !r.RequestedStart.Equal(r.Start) || !r.RequestedEnd.Equal(r.End) {
		t.Errorf("window %v–%v (requested %v–%v)", r.Start, r.End, r.RequestedStart, r.RequestedEnd)
	}
	got := e.stored(r.ID)
	if got.Reason != "investigate INC-7" || got.Ticket != "INC-7" || got.State != timebox.StatePending || got.Grant != nil {
		t.Errorf("stored %+v", got)
	}

	// An explicit end; a start up to a minute in the past is taken as now; text is trimmed;
	// newlines and tabs are fine.
	in := devInput()
	in.Duration, in.Start, in.End = "", tp(t0.Add(-30*time.Second)), tp(t0.Add(90*time.Minute))
	in.Reason = "  line one\n\tline two  "
	r2 := e.create("carol", in)
	if !r2.Start.Equal(t0) || !r2.End.Equal(t0.Add(90*time.Minute)) || r2.Reason != "line one\n\tline two" {
		t.Errorf("created %+v", r2)
	}
	// A later start within the lead time, and a duration in days on dev (default limits: 8h).
	in = devInput()
	in.Start, in.Duration = tp(t0.Add(6*24*time.Hour)), "8h"
	if r3 := e.create("alice", in); !r3.End.Equal(t0.Add(6*24*time.Hour + 8*time.Hour)) {
		t.Errorf("end = %v", r3.End)
	}
	// Exactly 2000 bytes of reason are accepted.
	in = devInput()
	in.Reason = strings.Repeat("é", 1000)
	e.create("alice", in)
}

func TestServiceCreateRequestRefused(t *testing.T) {
	e := newSvcEnv(t)
	with := func(edit func(in *timebox.RequestInput)) timebox.RequestInput {
		in := prodInput()
		edit(&in)
		return in
	}
	for _, tc := range []struct {
		name  string
		actor string
		in    timebox.RequestInput
		code  string
		parts []string
	}{
		{"unknown requester", "mallory", prodInput(), timebox.EFORBIDDEN, []string{`"mallory"`}},
		{"unknown database", "alice", with(func(in *timebox.RequestInput) { in.Database = "nope" }), timebox.ENOTFOUND, []string{`"nope"`}},
		{"unknown access", "alice", with(func(in *timebox.RequestInput) { in.Access = "god" }), timebox.ENOTFOUND, []string{`"god"`}},
		{"access grants nothing", "alice", with(func(in *timebox.RequestInput) { in.Access = "nothing" }), timebox.EINVALID, []string{`"nothing"`, "grants nothing"}},
		{"over max", "alice", with(func(in *timebox.RequestInput) { in.Duration = "5h" }), timebox.EINVALID,
			[]string{"duration 5h0m0s exceeds the prod limit of 4h0m0s"}},
		{"under min", "alice", with(func(in *timebox.RequestInput) { in.Duration = "10m" }), timebox.EINVALID,
			[]string{"duration 10m0s is below the prod minimum of 15m0s"}},
		{"lead time", "alice", with(func(in *timebox.RequestInput) { in.Start = tp(t0.Add(49 * time.Hour)) }), timebox.EINVALID,
			[]string{"more than 48h0m0s ahead", "prod limit", "2026-03-12T10:00:00Z"}},
		{"no ticket", "alice", with(func(in *timebox.RequestInput) { in.Ticket = "" }), timebox.EINVALID,
			[]string{"a ticket is required for prod databases"}},
		{"blank ticket", "alice", with(func(in *timebox.RequestInput) { in.Ticket = "   " }), timebox.EINVALID,
			[]string{"a ticket is required for prod databases"}},
		{"start in the past", "alice", with(func(in *timebox.RequestInput) { in.Start = tp(t0.Add(-2 * time.Minute)) }), timebox.EINVALID,
			[]string{"start 2026-03-10T08:58:00Z is in the past"}},
		{"end and duration", "alice", with(func(in *timebox.RequestInput) { in.End = tp(t0.Add(time.Hour)) }), timebox.EINVALID,
			[]string{"either an end time or a duration, not both"}},
		{"no end", "alice", with(func(in *timebox.RequestInput) { in.Duration = "" }), timebox.EINVALID, []string{"an end is required"}},
		{"end before start", "alice", with(func(in *timebox.RequestInput) {
			in.Duration, in.Start, in.End = "", tp(t0.Add(time.Hour)), tp(t0.Add(30*time.Minute))
		}), timebox.EINVALID, []string{"is not after start"}},
		{"end in the past", "alice", with(func(in *timebox.RequestInput) { in.Duration, in.End = "", tp(t0.Add(-time.Minute)) }), timebox.EINVALID,
			[]string{"end 2026-03-10T08:59:00Z is not after start 2026-03-10T09:00:00Z"}},
		{"bad duration", "alice", with(func(in *timebox.RequestInput) { in.Duration = "soon" }), timebox.EINVALID, []string{`"soon"`}},
		{"no reason", "alice", with(func(in *timebox.RequestInput) { in.Reason = " \n " }), timebox.EINVALID, []string{"reason is required"}},
		{"control character", "alice", with(func(in *timebox.RequestInput) { in.Reason = "ring \a the bell" }), timebox.EINVALID,
			[]string{"reason contains a control character"}},
		{"carriage return", "alice", with(func(in *timebox.RequestInput) { in.Reason = "fake\rline" }), timebox.EINVALID,
			[]string{"reason contains a control character"}},
		{"escape sequence", "alice", with(func(in *timebox.RequestInput) { in.Reason = "\x1b[31mred" }), timebox.EINVALID,
			[]string{"reason contains a control character"}},
		{"C1 control", "alice", with(func(in *timebox.RequestInput) { in.Reason = "next\u0085line" }), timebox.EINVALID,
			[]string{"reason contains a control character"}},
		{"NUL", "alice", with(func(in *timebox.RequestInput) { in.Reason = "a\x00b" }), timebox.EINVALID,
			[]string{"reason contains a control character"}},
		{"invalid UTF-8", "alice", with(func(in *timebox.RequestInput) { in.Reason = "caf\xe9" }), timebox.EINVALID,
			[]string{"reason is not valid UTF-8"}},
		{"too long", "alice", with(func(in *timebox.RequestInput) { in.Reason = strings.Repeat("x", 2001) }), timebox.EINVALID,
			[]string{"reason is longer than 2000 bytes"}},
		{"ticket control character", "alice", with(func(in *timebox.RequestInput) { in.Ticket = "INC\t\x07" }), timebox.EINVALID,
			[]string{"ticket contains a control character"}},
		{"ticket invalid UTF-8", "alice", with(func(in *timebox.RequestInput) { in.Ticket = "\xff" }), timebox.EINVALID,
			[]string{"ticket is not valid UTF-8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.refused("", tc.code, tc.parts, func() error {
				r, err := e.svc.CreateRequest(e.ctx, tc.actor, tc.in)
				if r != nil {
					t.Errorf("a refused request was returned: %+v", r)
				}
				return err
			})
		})
	}
	e.t = t
}

func TestServiceApproveNarrowing(t *testing.T) {
	e := newSvcEnv(t)
	in := prodInput()
	in.Start = tp(t0.Add(time.Hour)) // 10:00–12:00
	r := e.create("alice", in)

	e.refused(r.ID, timebox.EINVALID, []string{"may only narrow", "start 2026-03-10T09:30:00Z is before the requested 2026-03-10T10:00:00Z"}, func() error {
		_, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{Start: tp(t0.Add(30 * time.Minute))})
		return err
	})
	e.refused(r.ID, timebox.EINVALID, []string{"may only narrow", "end 2026-03-10T12:01:00Z is after the requested 2026-03-10T12:00:00Z"}, func() error {
		_, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{End: tp(t0.Add(3*time.Hour + time.Minute))})
		return err
	})
	e.refused(r.ID, timebox.EINVALID, []string{"is not after start"}, func() error {
		_, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{Start: tp(t0.Add(2 * time.Hour)), End: tp(t0.Add(2 * time.Hour))})
		return err
	})
	e.refused(r.ID, timebox.EINVALID, []string{"note contains a control character"}, func() error {
		_, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{Note: "ok\x1b"})
		return err
	})

	got := e.approve("bob", r.ID, timebox.ApproveInput{Note: "shorter", Start: tp(t0.Add(90 * time.Minute)), End: tp(t0.Add(150 * time.Minute))})
	const changes = "start 2026-03-10T10:00:00Z → 2026-03-10T10:30:00Z; end 2026-03-10T12:00:00Z → 2026-03-10T11:30:00Z"
	for _, r := range []*timebox.Request{got, e.stored(r.ID)} {
		if r.State != timebox.StateApproved || !r.Start.Equal(t0.Add(90*time.Minute)) || !r.End.Equal(t0.Add(150*time.Minute)) {
			t.Errorf("approved window %v–%v state %s", r.Start, r.End, r.State)
		}
		if !r.RequestedStart.Equal(t0.Add(time.Hour)) || !r.RequestedEnd.Equal(t0.Add(3*time.Hour)) {
			t.Errorf("requested window lost: %v–%v", r.RequestedStart, r.RequestedEnd)
		}
		if len(r.Reviews) != 1 || r.Reviews[0].Reviewer != "bob" || r.Reviews[0].Decision != timebox.ActionApprove ||
			r.Reviews[0].Note != "shorter" || r.Reviews[0].Changes != changes || !r.Reviews[0].At.Equal(t0) {
			t.Errorf("reviews %+v", r.Reviews)
		}
	}
	es := e.events()
	if ev := es[len(es)-1]; ev.Actor != "bob" || ev.Details["changes"] != changes || ev.Details["note"] != "shorter" {
		t.Errorf("approval event %+v", ev)
	}
	// Once approved, nobody approves again.
	e.refused(r.ID, timebox.ECONFLICT, []string{"cannot approve a request that is approved"}, func() error {
		_, err := e.svc.Approve(e.ctx, "root", r.ID, timebox.ApproveInput{})
		return err
	})

	// An approval without changes records none.
	r2 := e.create("alice", prodInput())
	if got := e.approve("root", r2.ID, timebox.ApproveInput{}); got.Reviews[0].Changes != "" || !got.Start.Equal(r2.Start) || !got.End.Equal(r2.End) {
		t.Errorf("plain approval: %+v", got.Reviews)
	}
}

func TestServiceApproveAfterWindowEnded(t *testing.T) {
	e := newSvcEnv(t)
	r := e.create("alice", prodInput())
	e.now = t0.Add(3 * time.Hour)
	e.refused(r.ID, timebox.ECONFLICT, []string{"already ended"}, func() error {
		_, err := e.svc.Approve(e.ctx, "bob", r.ID, timebox.ApproveInput{})
		return err
	})
}

func TestServiceReviewPermissions(t *testing.T) {
	e := newSvcEnv(t)
	r := e.create("alice", prodInput())
	mine := e.create("root", prodInput())

	for _, tc := range []struct {
		actor, id, code string
		parts           []string
	}{
		{"alice", r.ID, timebox.EFORBIDDEN, []string{"own request"}},
		{"root", mine.ID, timebox.EFORBIDDEN, []string{"own request", "admins included"}},
		{"audrey", r.ID, timebox.EFORBIDDEN, []string{"audrey is not an owner of database prod"}},
		{"carol", r.ID, timebox.ENOTFOUND, []string{r.ID}},   // not visible to her
		{"mallory", r.ID, timebox.ENOTFOUND, []string{r.ID}}, // not in the catalog
		{"bob", "nosuchid12", timebox.ENOTFOUND, []string{"nosuchid12"}},
	} {
		id := tc.id
		if id == "nosuchid12" {
			id = ""
		}
		e.refused(id, tc.code, tc.parts, func() error {
			_, err := e.svc.Approve(e.ctx, tc.actor, tc.id, timebox.ApproveInput{})
			return err
		})
		e.refused(id, tc.code, tc.parts, func() error {
			_, err := e.svc.Deny(e.ctx, tc.actor, tc.id, "no")
			return err
		})
	}
	// An admin may approve someone else's request on a database they do not own.
	e.approve("root", r.ID, timebox.ApproveInput{})
	// An owner approves the admin's.
	e.approve("bob", mine.ID, timebox.ApproveInput{})
}

func TestServiceDeny(t *testing.T) {
	e := newSvcEnv(t)
	r := e.create("alice", prodInput())
	for _, note := range []string{"", "   \n"} {
		e.refused(r.ID, timebox.EINVALID, []string{"a denial needs a note"}, func() error {
			_, err := e.svc.Deny(e.ctx, "bob", r.ID, note)
			return err
		})
	}
	e.refused(r.ID, timebox.EINVALID, []string{"note is not valid UTF-8"}, func() error {
		_, err := e.svc.Deny(e.ctx, "bob", r.ID, "no\xff")
		return err
	})
	e.now = t0.Add(time.Minute)
	var got *timebox.Request
	e.changed(r.ID, "request.denied", true, func() (err error) {
		got, err = e.svc.Deny(e.ctx, "bob", r.ID, "use the replica")
		return err
	})
	s := e.stored(r.ID)
	for _, r := range []*timebox.Request{got, s} {
		if r.State != timebox.StateDenied || !r.EndedAt.Equal(t0.Add(time.Minute)) || len(r.Reviews) != 1 ||
			r.Reviews[0].Decision != timebox.ActionDeny || r.Reviews[0].Note != "use the replica" {
			t.Errorf("denied: %+v", r)
		}
	}
	e.refused(r.ID, timebox.ECONFLICT, []string{"cannot deny a request that is denied"}, func() error {
		_, err := e.svc.Deny(e.ctx, "root", r.ID, "again")
		return err
	})
	e.refused(r.ID, timebox.ECONFLICT, []string{"cannot approve a request that is denied"}, func() error {
		_, err := e.svc.Approve(e.ctx, "root", r.ID, timebox.ApproveInput{})
		return err
	})
}

func TestServiceRevokeWithoutGrant(t *testing.T) {
	e := newSvcEnv(t)
	r := e.create("alice", prodInput())
	// A pending request is denied, not revoked.
	e.refused(r.ID, timebox.ECONFLICT, []string{"cannot revoke a request that is pending"}, func() error {
		_, err := e.svc.Revoke(e.ctx, "bob", r.ID, "x")
		return err
	})
	e.approve("bob", r.ID, timebox.ApproveInput{})
	e.refused(r.ID, timebox.EINVALID, []string{"a revocation needs a note"}, func() error {
		_, err := e.svc.Revoke(e.ctx, "bob", r.ID, " ")
		return err
	})
	e.refused(r.ID, timebox.EFORBIDDEN, []string{"alice is not an owner"}, func() error {
		_, err := e.svc.Revoke(e.ctx, "alice", r.ID, "never mind")
		return err
	})
	e.now = t0.Add(5 * time.Minute)
	var got *timebox.Request
	e.changed(r.ID, "request.revoked", true, func() (err error) {
		got, err = e.svc.Revoke(e.ctx, "bob", r.ID, "incident over")
		return err
	})
	s := e.stored(r.ID)
	for _, r := range []*timebox.Request{got, s} {
		if r.State != timebox.StateRevoked || r.Ending != timebox.EndingNone || !r.EndedAt.Equal(t0.Add(5*time.Minute)) ||
			len(r.Reviews) != 2 || r.Reviews[1].Decision != timebox.ActionRevoke || r.Reviews[1].Reviewer != "bob" {
			t.Errorf("revoked: %+v", r)
		}
	}
	e.refused(r.ID, timebox.ECONFLICT, []string{"cannot revoke a request that is revoked"}, func() error {
		_, err := e.svc.Revoke(e.ctx, "root", r.ID, "again")
		return err
	})
}

func TestServiceRevokeWithGrant(t *testing.T) {
	e := newSvcEnv(t)
	woken := 0
	e.svc.Wake = func() { woken++ }
	r := e.create("alice", prodInput())
	e.approve("bob", r.ID, timebox.ApproveInput{})
	e.now = t0.Add(time.Second)
	e.activate(r.ID, "pw")
	e.now = t0.Add(10 * time.Minute)
	before := woken
	var got *timebox.Request
	e.changed(r.ID, "request.revoke_requested", true, func() (err error) {
		got, err = e.svc.Revoke(e.ctx, "bob", r.ID, "leaving")
		return err
	})
	if woken != before+1 {
		t.Errorf("Revoke woke the scheduler %d times", woken-before)
	}
	s := e.stored(r.ID)
	want := "active, revoke pending since 2026-03-10T09:10:00Z"
	for _, r := range []*timebox.Request{got, s} {
		if r.State != timebox.StateActive || r.Ending != timebox.EndingRevoke || !r.EndingSince.Equal(e.now) || !r.EndedAt.IsZero() {
			t.Errorf("revocation pending: %+v", r)
		}
		if r.Status() != want {
			t.Errorf("Status() = %q, want %q", r.Status(), want)
		}
	}
	if s.Grant == nil || s.Grant.Status != timebox.GrantActive {
		t.Errorf("the service touched the grant: %+v", s.Grant)
	}
	es := e.events()
	if ev := es[len(es)-1]; ev.Actor != "bob" || ev.Details["note"] != "leaving" {
		t.Errorf("event %+v", ev)
	}
	e.refused(r.ID, timebox.ECONFLICT, []string{"already being removed", want}, func() error {
		_, err := e.svc.Revoke(e.ctx, "root", r.ID, "again")
		return err
	})
	// No credentials once removal is under way.
	e.refused(r.ID, timebox.ECONFLICT, []string{"has no credentials", "revoke pending"}, func() error {
		_, err := e.svc.Credentials(e.ctx, "alice", r.ID)
		return err
	})
}

func TestServiceCancel(t *testing.T) {
	e := newSvcEnv(t)
	r := e.create("alice", prodInput())
	for _, actor := range []string{"bob", "root", "audrey"} {
		e.refused(r.ID, timebox.EFORBIDDEN, []string{"only the requester may cancel"}, func() error {
			_, err := e.svc.Cancel(e.ctx, actor, r.ID, "")
			return err
		})
	}
	e.refused(r.ID, timebox.ENOTFOUND, nil, func() error {
		_, err := e.svc.Cancel(e.ctx, "carol", r.ID, "")
		return err
	})
	e.refused(r.ID, timebox.EINVALID, []string{"note contains a control character"}, func() error {
		_, err := e.svc.Cancel(e.ctx, "alice", r.ID, "\x7f")
		return err
	})
	e.changed(r.ID, "request.cancelled", true, func() error {
		_, err := e.svc.Cancel(e.ctx, "alice", r.ID, "") // the note is optional
		return err
	})
	if s := e.stored(r.ID); s.State != timebox.StateCancelled || s.EndedAt.IsZero() {
		t.Errorf("cancelled: %+v", s)
	}

	// An approved request whose activation is under way: the cancel waits for the database.
	r2 := e.create("alice", prodInput())
	e.approve("bob", r2.ID, timebox.ApproveInput{})
	if err := e.db.Update(e.ctx, func(tx timebox.Tx) error {
		return tx.PutGrant(&timebox.Grant{RequestID: r2.ID, Server: "pg1", Principal: "tbx_alice_" + r2.ID,
			Method: timebox.MethodEphemeralLogin, Status: timebox.GrantCreating, Roles: []string{"shop_ro"},
			ValidUntil: r2.End, Attempts: 1, LastError: "connection refused", CreatedAt: e.now, UpdatedAt: e.now})
	}); err != nil {
		t.Fatal(err)
	}
	if s := e.stored(r2.ID); s.Status() != "approved, activation retrying, last error: connection refused" {
		t.Errorf("Status() = %q", s.Status())
	}
	e.changed(r2.ID, "request.cancel_requested", true, func() error {
		_, err := e.svc.Cancel(e.ctx, "alice", r2.ID, "not needed")
		return err
	})
	if s := e.stored(r2.ID); s.State != timebox.StateApproved || s.Ending != timebox.EndingCancel {
		t.Errorf("cancel pending: %+v", s)
	}
	e.refused(r2.ID, timebox.ECONFLICT, []string{"already being removed"}, func() error {
		_, err := e.svc.Cancel(e.ctx, "alice", r2.ID, "")
		return err
	})

	// An active request cannot be cancelled: it is revoked.
	r3 := e.create("alice", prodInput())
	e.approve("bob", r3.ID, timebox.ApproveInput{})
	e.activate(r3.ID, "pw")
	e.refused(r3.ID, timebox.ECONFLICT, []string{"cannot cancel a request that is active"}, func() error {
		_, err := e.svc.Cancel(e.ctx, "alice", r3.ID, "")
		return err
	})
}

func TestServiceCredentials(t *testing.T) {
	e := newSvcEnv(t)
	const password = "p@ss:w/rd?#%& ok"
	r := e.create("alice", prodInput())
	e.refused(r.ID, timebox.ECONFLICT, []string{"has no credentials", "pending"}, func() error {
		_, err := e.svc.Credentials(e.ctx, "alice", r.ID)
		return err
	})
	e.approve("bob", r.ID, timebox.ApproveInput{})
	e.refused(r.ID, timebox.ECONFLICT, []string{"has no credentials", "approved"}, func() error {
		_, err := e.svc.Credentials(e.ctx, "alice", r.ID)
		return err
	})
	e.activate(r.ID, password)

	for _, tc := range []struct{ actor, code string }{
		{"bob", timebox.EFORBIDDEN}, {"root", timebox.EFORBIDDEN}, {"audrey", timebox.EFORBIDDEN},
		{"carol", timebox.ENOTFOUND}, {"mallory", timebox.ENOTFOUND},
	} {
		e.refused(r.ID, tc.code, nil, func() error {
			c, err := e.svc.Credentials(e.ctx, tc.actor, r.ID)
			if c != nil {
				t.Errorf("%s got credentials", tc.actor)
			}
			return err
		})
	}

	var c *timebox.Credentials
	e.changed(r.ID, "credentials.viewed", true, func() (err error) { // the first view records UsedAt
		c, err = e.svc.Credentials(e.ctx, "alice", r.ID)
		return err
	})
	principal := "tbx_alice_" + r.ID
	if c.User != principal || c.Password != password || c.Host != "db.example.com" || c.Port != 6432 ||
		c.Database != "shop" || !c.ExpiresAt.Equal(r.End) {
		t.Errorf("credentials %+v", c)
	}
	u, err := url.Parse(c.URI)
	if err != nil {
		t.Fatalf("URI %q: %v", c.URI, err)
	}
	if pw, _ := u.User.Password(); u.Scheme != "postgres" || u.User.Username() != principal || pw != password ||
		u.Host != "db.example.com:6432" || u.Path != "/shop" || u.RawQuery != "" || u.Fragment != "" {
		t.Errorf("URI %q parses as %+v", c.URI, u)
	}
	es := e.events()
	ev := es[len(es)-1]
	if ev.Actor != "alice" || ev.Details["user"] != principal {
		t.Errorf("event %+v", ev)
	}
	all, _ := json.Marshal(es)
	if strings.Contains(string(all), "p@ss") || strings.Contains(string(all), url.QueryEscape(password)) {
		t.Error("the audit log contains the password")
	}

	// A grant sealed for another request (or with another key) is refused, not garbled.
	if err := e.db.Update(e.ctx, func(tx timebox.Tx) error {
		s, err := tx.FindRequest(r.ID)
		if err != nil {
			return err
		}
		s.Grant.SealedPassword = e.svc.Sealer.Seal(password, "some-other-id")
		return tx.PutGrant(s.Grant)
	}); err != nil {
		t.Fatal(err)
	}
	e.refused(r.ID, timebox.EINTERNAL, []string{"cannot be decrypted"}, func() error {
		c, err := e.svc.Credentials(e.ctx, "alice", r.ID)
		if c != nil || (err != nil && strings.Contains(err.Error(), password)) {
			t.Errorf("credentials %+v, error %v", c, err)
		}
		return err
	})
}

func TestServiceVisibility(t *testing.T) {
	e := newSvcEnv(t)
	aliceProd := e.create("alice", prodInput())
	aliceDev := e.create("alice", devInput())
	rootProd := e.create("root", prodInput())
	rootDev := e.create("root", devInput())
	e.approve("bob", aliceProd.ID, timebox.ApproveInput{})
	e.changed(rootDev.ID, "request.cancelled", true, func() error {
		_, err := e.svc.Cancel(e.ctx, "root", rootDev.ID, "")
		return err
	})

	ids := func(actor string, f timebox.RequestFilter) []string {
		t.Helper()
		rs, err := e.svc.FindRequests(e.ctx, actor, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s ...string) []string { slices.Sort(s); return s }
	all := sorted(aliceProd.ID, aliceDev.ID, rootProd.ID, rootDev.ID)
	for _, tc := range []struct {
		actor string
		want  []string
	}{
		{"alice", sorted(aliceProd.ID, aliceDev.ID)},
		{"bob", sorted(aliceProd.ID, rootProd.ID)},
		{"carol", nil},
		{"mallory", nil},
		{"audrey", all},
		{"root", all},
	} {
		if got := ids(tc.actor, timebox.RequestFilter{}); !slices.Equal(got, tc.want) {
			t.Errorf("FindRequests(%s) = %v, want %v", tc.actor, got, tc.want)
		}
		// A caller's own filter cannot widen what they see.
		if got := ids(tc.actor, timebox.RequestFilter{Visible: nil, Requester: "root"}); len(got) > 0 && (tc.actor == "alice" || tc.actor == "carol") {
			t.Errorf("FindRequests(%s, requester=root) = %v", tc.actor, got)
		}
	}
	if got := ids("bob", timebox.RequestFilter{States: []timebox.State{timebox.StatePending}}); !slices.Equal(got, []string{rootProd.ID}) {
		t.Errorf("bob's pending = %v", got)
	}
	// FindRequest hides what FindRequests hides.
	if _, err := e.svc.FindRequest(e.ctx, "bob", aliceDev.ID); timebox.ErrorCode(err) != timebox.ENOTFOUND {
		t.Errorf("bob sees alice's dev request: %v", err)
	}
	if r, err := e.svc.FindRequest(e.ctx, "audrey", aliceDev.ID); err != nil || r.ID != aliceDev.ID {
		t.Errorf("audrey: %v", err)
	}

	// Events: admins and auditors see all; others their own actions and the events of the
	// requests they may see.
	full, err := e.svc.FindEvents(e.ctx, "audrey", timebox.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(full) != len(e.events()) || len(full) != 6 {
		t.Fatalf("audrey sees %d of %d events", len(full), len(e.events()))
	}
	byRequest := map[string]string{aliceProd.ID: "alice/prod", aliceDev.ID: "alice/dev", rootProd.ID: "root/prod", rootDev.ID: "root/dev"}
	for _, tc := range []struct {
		actor string
		want  map[string]bool // the requests whose events the actor sees
	}{
		{"alice", map[string]bool{"alice/prod": true, "alice/dev": true}},
		{"bob", map[string]bool{"alice/prod": true, "root/prod": true}},
		{"carol", map[string]bool{}},
		{"root", map[string]bool{"alice/prod": true, "alice/dev": true, "root/prod": true, "root/dev": true}},
	} {
		es, err := e.svc.FindEvents(e.ctx, tc.actor, timebox.EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var want int
		for _, ev := range full {
			if tc.want[byRequest[ev.RequestID]] || ev.Actor == tc.actor {
				want++
			}
		}
		if len(es) != want {
			t.Errorf("%s sees %d events, want %d", tc.actor, len(es), want)
		}
		for _, ev := range es {
			if !tc.want[byRequest[ev.RequestID]] && ev.Actor != tc.actor {
				t.Errorf("%s sees %s on %s", tc.actor, ev.Action, byRequest[ev.RequestID])
			}
		}
	}
	// Filters narrow further.
	if es, _ := e.svc.FindEvents(e.ctx, "bob", timebox.EventFilter{RequestID: rootProd.ID}); len(es) != 1 || es[0].Action != "request.created" {
		t.Errorf("bob's events of %s: %v", rootProd.ID, es)
	}
	if es, _ := e.svc.FindEvents(e.ctx, "alice", timebox.EventFilter{RequestID: rootProd.ID}); len(es) != 0 {
		t.Errorf("alice sees events of root's request: %v", es)
	}
}

func TestServiceVerifyAuditPermissions(t *testing.T) {
	e := newSvcEnv(t)
	r := e.create("alice", prodInput())
	e.approve("bob", r.ID, timebox.ApproveInput{})
	for _, actor := range []string{"alice", "bob", "carol", "mallory"} {
		v, err := e.svc.VerifyAudit(e.ctx, actor)
		if v != nil {
			t.Errorf("%s got a verification", actor)
		}
		wantErr(t, err, timebox.EFORBIDDEN, "only admins and auditors")
	}
	for _, actor := range []string{"root", "audrey"} {
		v, err := e.svc.VerifyAudit(e.ctx, actor)
		if err != nil || !v.OK || v.Events != 2 || v.HeadSeq != 2 || v.Problems == nil || len(v.Problems) != 0 {
			t.Errorf("VerifyAudit(%s) = %+v, %v", actor, v, err)
		}
	}
}

// VerifyAudit over the real store notices an event edited behind the service's back.
func TestServiceVerifyAuditDetectsTampering(t *testing.T) {
	e := newSvcEnv(t)
	r := e.create("alice", prodInput())
	e.approve("bob", r.ID, timebox.ApproveInput{})
	e.create("alice", devInput())
	// Rewrite the approver of event 2 directly in SQLite.
	raw, err := openRawSQLite(e)
	if err != nil {
		t.Fatalf("cannot open the SQLite file directly: %v", err)
	}
	if _, err := raw.ExecContext(e.ctx, `UPDATE events SET actor = 'root' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	v, err := e.svc.VerifyAudit(e.ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || !hasProblem(v.Problems, 2, "edited") {
		t.Fatalf("tampering not found: %+v", v)
	}
	// Put it back so that the cleanup check passes.
	raw, _ = openRawSQLite(e)
	raw.ExecContext(e.ctx, `UPDATE events SET actor = 'bob' WHERE seq = 2`)
	raw.Close()
}

// openRawSQLite opens the store's file with the plain driver, as an intruder would.
func openRawSQLite(e *svcEnv) (*sql.DB, error) {
	db, err := sql.Open("sqlite", e.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	return db, db.PingContext(e.ctx)
}

func TestServiceAccessReport(t *testing.T) {
	e := newSvcEnv(t)
	old := e.create("alice", timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "30m", Reason: "old", Ticket: "OPS-1"})
	e.approve("bob", old.ID, timebox.ApproveInput{Note: "ok"})
	e.activate(old.ID, "pw1")
	e.now = t0.Add(30 * time.Minute)
	e.expire(old.ID)

	e.now = t0.Add(2 * time.Hour)
	cur := e.create("alice", timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "1h", Reason: "current", Ticket: "OPS-2"})
	e.approve("root", cur.ID, timebox.ApproveInput{})
	e.activate(cur.ID, "pw2")
	// Never activated (approved but not yet active, or still pending) is not access.
	e.approve("bob", e.create("alice", prodInput()).ID, timebox.ApproveInput{})
	e.create("alice", prodInput())

	report := func(actor string, since, until time.Time) map[string]timebox.AccessRecord {
		t.Helper()
		recs, err := e.svc.AccessReport(e.ctx, actor, since, until)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]timebox.AccessRecord{}
		for _, r := range recs {
			m[r.RequestID] = r
		}
		return m
	}
	got := report("audrey", t0.Add(time.Hour), t0.Add(3*time.Hour))
	if len(got) != 1 {
		t.Fatalf("report since 10:00 = %+v, want only %s", got, cur.ID)
	}
	rec := got[cur.ID]
	if rec.User != "alice" || rec.Database != "prod" || rec.Environment != "prod" || rec.Access != "read-only" ||
		rec.Principal != "tbx_alice_"+cur.ID || !rec.From.Equal(t0.Add(2*time.Hour)) || !rec.To.IsZero() ||
		rec.State != timebox.StateActive || !slices.Equal(rec.ApprovedBy, []string{"root"}) || rec.Ticket != "OPS-2" || rec.Reason != "current" {
		t.Errorf("record %+v", rec)
	}

	got = report("audrey", t0, t0.Add(3*time.Hour))
	if len(got) != 2 {
		t.Fatalf("report since 09:00 = %+v", got)
	}
	if rec := got[old.ID]; !rec.From.Equal(t0) || !rec.To.Equal(t0.Add(30*time.Minute)) || rec.State != timebox.StateExpired ||
		!slices.Equal(rec.ApprovedBy, []string{"bob"}) || rec.Ticket != "OPS-1" {
		t.Errorf("old record %+v", rec)
	}
	// Access that began at or after until is not in the window.
	if got := report("audrey", t0, t0.Add(2*time.Hour)); len(got) != 1 || got[old.ID].RequestID == "" {
		t.Errorf("report until 11:00 = %+v", got)
	}
	// The report follows visibility: carol sees nothing, bob sees prod.
	if got := report("carol", t0, t0.Add(3*time.Hour)); len(got) != 0 {
		t.Errorf("carol's report = %+v", got)
	}
	if got := report("bob", t0, t0.Add(3*time.Hour)); len(got) != 2 {
		t.Errorf("bob's report = %+v", got)
	}
}

func TestServiceConcurrentApprove(t *testing.T) {
	e := newSvcEnv(t)
	for range 5 {
		r := e.create("alice", prodInput())
		before := len(e.events())
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 2)
		for i, actor := range []string{"bob", "root"} {
			wg.Go(func() {
				<-start
				_, errs[i] = e.svc.Approve(e.ctx, actor, r.ID, timebox.ApproveInput{Note: actor})
			})
		}
		close(start)
		wg.Wait()
		var ok, conflict int
		for _, err := range errs {
			switch timebox.ErrorCode(err) {
			case "":
				ok++
			case timebox.ECONFLICT:
				conflict++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if ok != 1 || conflict != 1 {
			t.Fatalf("%d approvals succeeded and %d conflicted (%v), want 1 and 1", ok, conflict, errs)
		}
		s := e.stored(r.ID)
		if s.State != timebox.StateApproved || len(s.Reviews) != 1 || s.Version != 2 {
			t.Errorf("stored after the race: %+v", s)
		}
		if n := len(e.events()) - before; n != 1 {
			t.Errorf("%d audit events for one approval", n)
		}
	}
}
