package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// consoleDatabases are the benchmark's databases with their share of the requests: a few
// busy production databases, quieter ones, two staging copies.
var consoleDatabases = []struct {
	name, env string
	weight    float64
}{
	{"orders", "prod", 30}, {"billing", "prod", 15}, {"users", "prod", 15}, {"payments", "prod", 10},
	{"inventory", "prod", 10}, {"analytics", "prod", 10}, {"orders-staging", "staging", 5}, {"billing-staging", "staging", 5},
}

const consolePeople = 40

// benchCatalog is the console benchmark's configuration: 40 developers, an owner of every
// database, an auditor; one server that nothing connects to (nothing is activated).
func benchCatalog() (*timebox.Catalog, error) {
	c := &timebox.Catalog{
		Users: []timebox.User{
			{Name: "owner", Groups: []string{"dba"}},
			{Name: "auditor", Groups: []string{"audit"}},
			{Name: "admin", Groups: []string{"platform"}},
		},
		AdminGroups: []string{"platform"}, AuditorGroups: []string{"audit"},
		Servers: []timebox.Server{{Name: "pg1", Engine: timebox.EnginePostgres,
			URL: "postgres://timebox@127.0.0.1:1/postgres", Password: "env:TIMEBOX_BENCH_UNUSED"}},
		AccessLevels: []timebox.AccessLevel{
			{Name: "read-only", Postgres: timebox.EngineRoles{Roles: []string{"app_reader"}}},
			{Name: "read-write", Postgres: timebox.EngineRoles{Roles: []string{"app_writer"}}},
			{Name: "ddl", Postgres: timebox.EngineRoles{Roles: []string{"app_owner"}}},
		},
		BreakGlass: &timebox.BreakGlass{Groups: []string{"developers"}},
		Directory:  timebox.NewDirectory(),
	}
	for i := range consolePeople {
		c.Users = append(c.Users, timebox.User{Name: person(i), Groups: []string{"developers"}})
	}
	for _, d := range consoleDatabases {
		c.Databases = append(c.Databases, timebox.Database{Name: d.name, Server: "pg1", Database: d.name, Environment: d.env, Owners: []string{"dba"}})
	}
	return c, c.Validate()
}

func person(i int) string { return fmt.Sprintf("dev%02d", i+1) }

// fillStats says what the store holds.
type fillStats map[timebox.State]int

func (f fillStats) String() string {
	total := 0
	for _, n := range f {
		total += n
	}
	s := fmt.Sprintf("%d requests over 90 days on %d databases by %d people (", total, len(consoleDatabases), consolePeople)
	for i, st := range timebox.States {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", f[st], st)
	}
	return s + ")"
}

// fillConsoleStore stores o.requests requests: o.pending filed through the Service (pending
// for an owner, as the inbox shows them), the others written as the scheduler leaves them —
// created over the 90 days before now by people of very different activity, most approved
// and activated for 30 minutes to 8 hours, then expired, revoked or released; some denied,
// cancelled or never reviewed; the few whose end is still ahead active. The seed is fixed.
func fillConsoleStore(ctx context.Context, svc *timebox.Service, db *store.DB, o consoleOptions, now time.Time) (fillStats, error) {
	rng := rand.New(rand.NewPCG(11, 2026))
	stats := fillStats{}
	pick := weighted(rng)
	for i := range o.pending {
		d := consoleDatabases[pick.database()]
		r, err := svc.CreateRequest(ctx, person(pick.person()), timebox.RequestInput{
			Database: d.name, Access: []string{"read-only", "read-write"}[rng.IntN(2)], Duration: "2h",
			Reason: fmt.Sprintf("benchmark: investigate incident %d", i), Ticket: fmt.Sprintf("OPS-%d", 4000+i),
		})
		if err != nil {
			return nil, err
		}
		stats[r.State]++
	}
	const batch = 500
	for left := o.requests - o.pending; left > 0; left -= batch {
		err := db.Update(ctx, func(tx timebox.Tx) error {
			for range min(batch, left) {
				r, g := pastRequest(rng, pick, now)
				if err := tx.CreateRequest(r); err != nil {
					return err
				}
				if g != nil {
					if err := tx.PutGrant(g); err != nil {
						return err
					}
				}
				stats[r.State]++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return stats, nil
}

// picker draws databases and people by weight.
type picker struct {
	rng             *rand.Rand
	dbCum, whoCum   []float64
	dbTotal, whoSum float64
}

func weighted(rng *rand.Rand) *picker {
	p := &picker{rng: rng}
	for _, d := range consoleDatabases {
		p.dbTotal += d.weight
		p.dbCum = append(p.dbCum, p.dbTotal)
	}
	for i := range consolePeople {
		p.whoSum += 1 / math.Pow(float64(i+1), 0.8) // a few people ask far more than the rest
		p.whoCum = append(p.whoCum, p.whoSum)
	}
	return p
}

func draw(rng *rand.Rand, cum []float64, total float64) int {
	x := rng.Float64() * total
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	return len(cum) - 1
}

func (p *picker) database() int { return draw(p.rng, p.dbCum, p.dbTotal) }
func (p *picker) person() int   { return draw(p.rng, p.whoCum, p.whoSum) }

var durations = []time.Duration{30 * time.Minute, time.Hour, time.Hour, 2 * time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour}

// pastRequest is one request filed at a random time of the last 90 days, as it stands now.
func pastRequest(rng *rand.Rand, pick *picker, now time.Time) (*timebox.Request, *timebox.Grant) {
	d := consoleDatabases[pick.database()]
	created := now.Add(-time.Duration(rng.Int64N(int64(90 * 24 * time.Hour))))
	dur := durations[rng.IntN(len(durations))]
	level := "read-only"
	if x := rng.Float64(); x > 0.95 {
		level = "ddl"
	} else if x > 0.7 {
		level = "read-write"
	}
	r := &timebox.Request{
		ID: timebox.RandomID(10), Requester: person(pick.person()), Database: d.name, Access: level,
		Start: created, End: created.Add(dur), RequestedStart: created, RequestedEnd: created.Add(dur),
		Reason: "benchmark: a past request", Ticket: fmt.Sprintf("OPS-%d", rng.IntN(9000)),
		Reviews: []timebox.Review{}, CreatedAt: created, UpdatedAt: created, Version: 1,
	}
	r.Rule = timebox.DefaultRule.Name
	decided := created.Add(time.Duration(rng.Int64N(int64(20 * time.Minute))))
	switch x := rng.Float64(); {
	case x < 0.07:
		r.State, r.EndedAt = timebox.StateDenied, decided
		r.Reviews = append(r.Reviews, timebox.Review{Reviewer: "owner", Decision: timebox.ActionDeny, Note: "not for this", At: decided})
		return r, nil
	case x < 0.10:
		r.State, r.EndedAt = timebox.StateCancelled, decided
		r.Reviews = append(r.Reviews, timebox.Review{Reviewer: r.Requester, Decision: timebox.ActionCancel, At: decided})
		return r, nil
	case x < 0.11:
		r.State, r.EndedAt = timebox.StateExpired, r.End // nobody reviewed it in time
		return r, nil
	}
	if rng.Float64() < 0.01 {
		r.BreakGlass, r.Rule, r.FollowUp = true, timebox.BreakGlassRule, &timebox.FollowUp{Open: false, ClosedBy: "owner", ClosedAt: created.Add(24 * time.Hour)}
		decided = created
	} else {
		r.Reviews = append(r.Reviews, timebox.Review{Reviewer: "owner", Decision: timebox.ActionApprove, At: decided})
	}
	r.Start, r.ActivatedAt = decided, decided.Add(time.Duration(50+rng.IntN(200))*time.Millisecond)
	r.End = r.Start.Add(dur)
	g := &timebox.Grant{RequestID: r.ID, Server: "pg1", Principal: "tbx_" + r.ID, TargetDatabase: d.name,
		Method: timebox.MethodEphemeralLogin, Status: timebox.GrantRevoked, Roles: []string{"app_reader"},
		ValidUntil: r.End, CreatedAt: r.Start, UpdatedAt: r.End}
	switch x := rng.Float64(); {
	case r.End.After(now):
		r.State, g.Status, g.UpdatedAt = timebox.StateActive, timebox.GrantActive, r.ActivatedAt
	case x < 0.06:
		r.State, r.EndedAt = timebox.StateRevoked, r.ActivatedAt.Add(time.Duration(rng.Float64()*float64(dur)))
		r.Reviews = append(r.Reviews, timebox.Review{Reviewer: "owner", Decision: timebox.ActionRevoke, Note: "done", At: r.EndedAt})
	case x < 0.12:
		r.State, r.EndedAt = timebox.StateReleased, r.ActivatedAt.Add(time.Duration(rng.Float64()*float64(dur)))
	default:
		r.State, r.EndedAt = timebox.StateExpired, r.End.Add(time.Duration(100+rng.IntN(400))*time.Millisecond)
	}
	if r.State != timebox.StateActive {
		r.UpdatedAt, g.UpdatedAt = r.EndedAt, r.EndedAt
	}
	return r, g
}
