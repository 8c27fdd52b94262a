package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/postgres"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// expiryRun is what one run of n grants ending within the same window measured.
type expiryRun struct {
	label       string
	n           int
	down        *cluster // stopped across the window, nil when every server stayed up
	lead        time.Duration
	activation  time.Duration
	lags        map[string][]time.Duration // by server: window end → request expired, as stored
	sessions    []time.Duration            // window end → session's query failed
	opened      int
	survived    int
	memActive   memory            // with n active grants, before the window
	memPeak     int64             // highest RSS sampled during the window
	storeSize   int64             // with n active grants
	managed     map[string]string // the reconciler's listing query timed on each cluster
	maxAdmin    map[string]int    // most Timebox admin connections seen on each cluster
	cpu         time.Duration     // the server's CPU time from the first end to the last removal
	wall        time.Duration     // first end → no Timebox role left anywhere
	stopAt      time.Time
	restartAt   time.Time
	downLast    time.Duration // restart → the down server's last request expired
	retried     int           // requests whose removal needed more than one attempt
	maxTries    int
	notExpired  int
	withError   int // requests with a grant last_error left
	notDropped  int
	rolesLeft   map[string]int
	tbxBackends map[string]int
	firstEnd    time.Time
	lastEnd     time.Time
	cpuAct      string // CPU use during activation
	cpuWindow   string // CPU use from the first end to the last removal
	pgAct       string // top statements during activation (-pgstat)
	pgWindow    string // top statements from the first end to the last removal (-pgstat)
	partial     bool   // the run was cut short: the figures cover the requests that expired
}

// allDatabases lists every database of every cluster, interleaved so that consecutive
// grants land on different servers.
func (e *scaleEnv) allDatabases() []grantSpec {
	var out []grantSpec
	for j := range e.clusters[0].databases {
		for _, c := range e.clusters {
			out = append(out, grantSpec{db: c.databases[j], server: c.name})
		}
	}
	return out
}

// runExpiry activates n grants whose ends are spread over window, starting lead from now;
// opens sessions on about `sessions` of them; when down is set, stops that cluster before
// the window and starts it again after; and measures how each grant's removal went.
func (e *scaleEnv) runExpiry(ctx context.Context, label string, n int, window, lead time.Duration, sessions int, down *cluster) (*expiryRun, error) {
	res := &expiryRun{label: label, n: n, down: down, lead: lead, lags: map[string][]time.Duration{},
		managed: map[string]string{}, maxAdmin: map[string]int{}, rolesLeft: map[string]int{}, tbxBackends: map[string]int{}}
	dbs := e.allDatabases()
	base := time.Now().Add(lead)
	specs := make([]grantSpec, n)
	for i := range specs {
		specs[i] = dbs[i%len(dbs)]
		specs[i].end = base.Add(time.Duration(i) * window / time.Duration(n))
	}
	lastEnd := specs[n-1].end
	res.firstEnd, res.lastEnd = base, lastEnd
	progress("%s: activating %d grants on %d databases (%d in flight), ends %s … %s from now", label, n, len(dbs), inFlight,
		fmtD(lead), fmtD(lead+window))
	e.resetStatements(ctx)
	cpu0 := e.cpuSnap()
	rs, took, err := e.activateAll(ctx, label, specs, base.Add(-2*time.Second))
	res.activation, res.cpuAct, res.pgAct = took, cpuShare(cpu0, e.cpuSnap()), e.topStatements(ctx, 8)
	if err != nil {
		return res, err
	}
	progress("%s: %d grants active in %s (%.0f/s)", label, n, fmtD(took), float64(n)/took.Seconds())
	res.memActive, res.storeSize = e.memory(), e.storeSize()
	for _, c := range e.clusters {
		d, err := e.timeManaged(ctx, c)
		res.managed[c.name] = fmtD(d)
		if err != nil {
			res.managed[c.name] = fmt.Sprintf("failed after %s: %s", fmtD(d), timebox.ErrorMessage(err))
		}
	}

	var candidates []*tbhttp.RequestView
	for _, r := range rs {
		if down == nil || r.Grant.Server != down.name {
			candidates = append(candidates, r)
		}
	}
	// Every k-th request, k odd, so that the sessions are spread over both servers (the
	// requests alternate between them).
	var picked []*tbhttp.RequestView
	if k := max(len(candidates)/max(sessions, 1), 1) | 1; sessions > 0 {
		for i := 0; i < len(candidates) && len(picked) < sessions; i += k {
			picked = append(picked, candidates[i])
		}
	}
	sess, err := e.openSessions(ctx, picked)
	if err != nil {
		return res, fmt.Errorf("%s: open sessions: %w", label, err)
	}
	res.opened = len(sess)
	progress("%s: %d sessions open, each running pg_sleep across its end; RSS %s (store %s)", label, len(sess), mb(res.memActive.rss), mb(res.storeSize))
	if down != nil {
		progress("%s: stopping %s (pg_ctl stop -m fast) before the window", label, down.name)
		if err := down.pg.Stop(); err != nil {
			return res, err
		}
		res.stopAt = time.Now()
	}
	if time.Now().After(base) {
		return res, fmt.Errorf("%s: preparation ran past the first end; raise -lead", label)
	}
	time.Sleep(time.Until(base))
	e.resetStatements(ctx)
	err = e.watchWindow(ctx, res, base, lastEnd)
	res.pgWindow = e.topStatements(ctx, 10)
	if err != nil {
		// Bailing out: still report the requests that did expire, from one pass over the API.
		partial, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res.sessions, res.survived = sessionLags(sess, time.Second)
		if cerr := e.collect(partial, res, rs, 0); cerr == nil {
			res.partial = true
		}
		return res, err
	}
	res.sessions, res.survived = sessionLags(sess, 30*time.Second)
	return res, e.collect(ctx, res, rs, 60*time.Second)
}

// watchWindow samples the server and the clusters every second from the first end until no
// Timebox role is left on any cluster, starting the down cluster again 5 s after the last end.
func (e *scaleEnv) watchWindow(ctx context.Context, res *expiryRun, base, lastEnd time.Time) error {
	cpu0, snap0 := e.cpuTime(), e.cpuSnap()
	var restarted chan error // the down cluster's Start, once begun
	up := res.down == nil
	lastPrint := time.Now()
	for {
		if !e.alive() {
			return fmt.Errorf("%s: the server exited:\n%s", res.label, tailOf(e.serverLog, 20))
		}
		if !up && restarted == nil && time.Now().After(lastEnd.Add(5*time.Second)) {
			res.restartAt = time.Now()
			progress("%s: starting %s again", res.label, res.down.name)
			restarted = make(chan error, 1)
			go func() { restarted <- res.down.pg.Start() }()
		}
		if restarted != nil && !up {
			select {
			case err := <-restarted:
				if err != nil {
					return fmt.Errorf("%s: restart %s: %w", res.label, res.down.name, err)
				}
				progress("%s: %s is up again (Start took %s)", res.label, res.down.name, fmtD(time.Since(res.restartAt)))
				up = true
			default:
			}
		}
		res.memPeak = max(res.memPeak, e.memory().rss)
		left, clear := map[string]int{}, true
		for _, c := range e.clusters {
			admin, _ := c.activity(ctx)
			res.maxAdmin[c.name] = max(res.maxAdmin[c.name], admin)
			left[c.name] = c.tbxRoles(ctx) // -1: unreachable
			clear = clear && left[c.name] == 0
		}
		if clear && up && time.Now().After(lastEnd) {
			res.wall, res.cpu, res.cpuWindow = time.Since(base), e.cpuTime()-cpu0, cpuShare(snap0, e.cpuSnap())
			return nil
		}
		if time.Since(lastPrint) >= 5*time.Second {
			lastPrint = time.Now()
			progress("%s: %s after the first end: Timebox roles left %v (-1: down); server RSS %s; most Timebox admin connections %v",
				res.label, fmtD(time.Since(base)), left, mb(e.memory().rss), res.maxAdmin)
		}
		if time.Now().After(lastEnd.Add(5 * time.Minute)) {
			return fmt.Errorf("%s: Timebox roles still left 5 min after the last end: %v", res.label, left)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (Timebox roles left: %v)", res.label, context.Cause(ctx), left)
		case <-time.After(time.Second):
		}
	}
}

// collect reads the run's requests from the API in bulk (one call per database) until each
// is expired or wait passed, and fills in the lags and checks.
func (e *scaleEnv) collect(ctx context.Context, res *expiryRun, rs []*tbhttp.RequestView, wait time.Duration) error {
	want := map[string]bool{}
	for _, r := range rs {
		want[r.ID] = true
	}
	var got map[string]*tbhttp.RequestView
	for deadline := time.Now().Add(wait); ; time.Sleep(time.Second) {
		got = map[string]*tbhttp.RequestView{}
		for _, c := range e.clusters {
			for _, db := range c.databases {
				list, err := e.owner.Requests(ctx, tbhttp.RequestQuery{Database: db})
				if err != nil {
					return fmt.Errorf("%s: list requests of %s: %w", res.label, db, err)
				}
				for _, v := range list {
					if want[v.ID] {
						got[v.ID] = v
					}
				}
			}
		}
		res.notExpired = 0
		for id := range want {
			if v := got[id]; v == nil || v.State != timebox.StateExpired {
				res.notExpired++
			}
		}
		if res.notExpired == 0 || time.Now().After(deadline) {
			break
		}
	}
	var downLast time.Time
	for id := range want {
		v := got[id]
		if v == nil || v.State != timebox.StateExpired || v.Grant == nil {
			continue
		}
		g := v.Grant
		res.lags[g.Server] = append(res.lags[g.Server], v.EndedAt.Sub(v.End))
		if g.LastError != "" {
			res.withError++
		}
		if g.Outcome != "dropped" {
			res.notDropped++
		}
		if g.Attempts > 1 {
			res.retried++
		}
		res.maxTries = max(res.maxTries, g.Attempts)
		if res.down != nil && g.Server == res.down.name && v.EndedAt.After(downLast) {
			downLast = v.EndedAt
		}
	}
	if !downLast.IsZero() {
		res.downLast = downLast.Sub(res.restartAt)
	}
	for _, c := range e.clusters {
		res.rolesLeft[c.name] = c.tbxRoles(ctx)
		_, res.tbxBackends[c.name] = c.activity(ctx)
	}
	return nil
}

// timeManaged times the reconciler's listing query (the engine's Managed) on c, with the
// engine's own timeouts, as the reconciler runs it every 10 seconds.
func (e *scaleEnv) timeManaged(ctx context.Context, c *cluster) (time.Duration, error) {
	u := url.URL{Scheme: "postgres", User: url.User(e.admin), Host: "127.0.0.1:" + strconv.Itoa(c.pg.Port), Path: "/postgres", RawQuery: "sslmode=disable"}
	eng, err := postgres.New(c.name, u.String(), e.adminPassword, 1)
	if err != nil {
		return 0, err
	}
	defer eng.Close()
	if err := eng.Ping(ctx); err != nil {
		return 0, err
	}
	// The listing's signature is being changed by others: take whichever form the engine has.
	var list func() error
	switch inv := any(eng).(type) {
	case interface {
		Managed(context.Context, []string) ([]timebox.ManagedPrincipal, error)
	}:
		list = func() error { _, err := inv.Managed(ctx, nil); return err }
	case interface {
		Managed(context.Context) ([]timebox.ManagedPrincipal, error)
	}:
		list = func() error { _, err := inv.Managed(ctx); return err }
	default:
		return 0, fmt.Errorf("the engine has no Managed listing")
	}
	start := time.Now()
	err = list()
	return time.Since(start), err
}
