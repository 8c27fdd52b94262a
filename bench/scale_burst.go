package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
)

// burst compares removal rates on both servers at once.
type burst struct {
	n                       int
	timebox, direct         float64 // roles/s
	timeboxTook, directTook time.Duration
	directPer               map[string]time.Duration // each server's loop
	activation              time.Duration
	cpu                     string // CPU use while Timebox removed them
	maxAdmin                map[string]int
	pgWindow                string // top statements while Timebox removed them (-pgstat)
}

// runBurst ends n grants spread over every database at the same instant and times Timebox
// removing them all (end → the last confirmation stored); then it creates n roles directly
// and times the engine's statements issued with pgx in a tight loop, one loop per server
// (the two loops run side by side, each on one connection per database it works in).
func (e *scaleEnv) runBurst(ctx context.Context, n int, rate float64) (*burst, error) {
	b := &burst{n: n, directPer: map[string]time.Duration{}}
	dbs := e.allDatabases()
	lead := time.Duration(float64(n)/rate*1.5*float64(time.Second)) + 10*time.Second
	end := time.Now().Add(lead)
	specs := make([]grantSpec, n)
	for i := range specs {
		specs[i] = dbs[i%len(dbs)]
		specs[i].end = end
	}
	progress("burst: activating %d grants ending at the same instant, %s from now", n, fmtD(lead))
	rs, took, err := e.activateAll(ctx, "burst", specs, end.Add(-time.Second))
	b.activation = took
	if err != nil {
		return b, err
	}
	time.Sleep(time.Until(end))
	e.resetStatements(ctx)
	res := &expiryRun{label: "burst", lags: map[string][]time.Duration{}, managed: map[string]string{},
		maxAdmin: map[string]int{}, rolesLeft: map[string]int{}, tbxBackends: map[string]int{}}
	err = e.watchWindow(ctx, res, end, end)
	b.pgWindow = e.topStatements(ctx, 10)
	if err != nil {
		return b, err
	}
	if err := e.collect(ctx, res, rs, 60*time.Second); err != nil {
		return b, err
	}
	if res.notExpired > 0 {
		return b, fmt.Errorf("burst: %d of %d requests not expired", res.notExpired, n)
	}
	var all []time.Duration
	for _, l := range res.lags {
		all = append(all, l...)
	}
	b.timeboxTook, b.cpu, b.maxAdmin = pct(all, 100), res.cpuWindow, res.maxAdmin
	b.timebox = float64(n) / b.timeboxTook.Seconds()
	progress("burst: Timebox removed %d roles in %s (%.1f/s); now the same statements directly", n, fmtD(b.timeboxTook), b.timebox)

	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(e.clusters))
	for ci, c := range e.clusters {
		var mine []directRole
		for i, s := range specs {
			if s.server == c.name {
				mine = append(mine, directRole{db: s.db, name: fmt.Sprintf("direct_scale_%d", i)})
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := e.directLoop(ctx, c, mine)
			mu.Lock()
			b.directPer[c.name], errs[ci] = d, err
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return b, fmt.Errorf("burst: direct loop: %w", err)
	}
	for _, d := range b.directPer {
		b.directTook = max(b.directTook, d)
	}
	b.direct = float64(n) / b.directTook.Seconds()
	return b, nil
}

// directRole is a role created directly on database db.
type directRole struct{ db, name string }

// directLoop creates roles on c with the direct activation statements (untimed), then times
// removing them all with the engine's statements in one loop, on one connection per database.
func (e *scaleEnv) directLoop(ctx context.Context, c *cluster, roles []directRole) (time.Duration, error) {
	conns := map[string]*pgx.Conn{}
	defer func() {
		for _, conn := range conns {
			conn.Close(context.Background())
		}
	}()
	for _, r := range roles {
		if conns[r.db] == nil {
			conn, err := pgx.Connect(ctx, c.pg.URL(e.admin, e.adminPassword, r.db))
			if err != nil {
				return 0, err
			}
			conns[r.db] = conn
		}
		sql := directGrantSQLIn(r.name, timebox.RandomPassword(32), time.Now().Add(time.Hour), e.admin, r.db, scaleReadRole)
		if _, err := conns[r.db].Exec(ctx, sql); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	for _, r := range roles {
		if err := directRevoke(ctx, conns[r.db], r.name, e.admin, r.db, scaleReadRole); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
