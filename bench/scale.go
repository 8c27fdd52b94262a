package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"
	"time"

	"github.com/timebox-dev/timebox"
)

// scaleOptions are the settings of the scale run (`go run ./bench -scale`).
type scaleOptions struct {
	grants    int           // grants ending within the window, per run
	databases int           // databases per server
	tables    int           // tables per database
	window    time.Duration // the ends are spread over this
	sessions  int           // sessions held across their end, per run
	burst     int           // grants ending at one instant, for the throughput figure
	lead      time.Duration // first end after activation starts (0: from the warm-up rate)
	outage    bool          // run again with one server down across the window
	timeout   time.Duration // bail out after this
}

var benchStart = time.Now()

// progress prints one line of progress with the time since the bench started.
func progress(format string, args ...any) {
	fmt.Printf("[%6.1fs] %s\n", time.Since(benchStart).Seconds(), fmt.Sprintf(format, args...))
}

// phase is one timed step of the scale run.
type phase struct {
	name string
	took time.Duration
}

// scaleReport holds every figure of the scale run, printed even when a step failed.
type scaleReport struct {
	opts       scaleOptions
	version    int
	phases     []phase
	memIdle    memory
	warmRate   float64
	run1, run2 *expiryRun
	burst      *burst
	final      map[string]int // Timebox roles left per cluster at the end
	logCounts  map[string]int
}

func runScale(o scaleOptions) (err error) {
	benchStart = time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("bailed out: the scale run passed its %s limit (-timeout)", o.timeout))
	defer cancel()
	rep := &scaleReport{opts: o}
	dir, err := os.MkdirTemp("", "timebox-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &scaleEnv{dir: dir, bin: filepath.Join(dir, "timebox"), admin: "timebox_admin", adminPassword: timebox.RandomPassword(32), maxConns: maxConns}
	defer e.close()
	defer func() {
		if e.serverLog != "" {
			rep.logCounts = countLog(e.serverLog)
		}
		rep.print()
		if err != nil && e.serverLog != "" {
			fmt.Printf("\nserver log (last 15 lines):\n%s\n", tailOf(e.serverLog, 15))
		}
	}()
	step := func(name string, f func() error) error {
		t := time.Now()
		err := f()
		rep.phases = append(rep.phases, phase{name, time.Since(t)})
		if err == nil && ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return err
	}
	if err := step("build timebox", func() error { return buildTimebox(ctx, e.bin) }); err != nil {
		return err
	}
	progress("starting 2 PostgreSQL clusters, %d databases × %d tables each", o.databases, o.tables)
	if err := step("2 clusters, databases, tables, hardening", func() error { return e.startClusters(ctx, 2, o.databases, o.tables) }); err != nil {
		return err
	}
	rep.version = e.clusters[0].pg.Version
	progress("clusters ready: %s on :%d, %s on :%d", e.clusters[0].name, e.clusters[0].pg.Port, e.clusters[1].name, e.clusters[1].pg.Port)
	if err := step("server start", func() error { return e.startServer(ctx) }); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	rep.memIdle = e.memory()
	progress("server up (pid %d), idle RSS %s", e.server.Process.Pid, mb(rep.memIdle.rss))

	if err := step("warm-up", func() error { return e.warmUp(ctx, rep) }); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	lead := o.lead
	if lead == 0 {
		// Activation slows down as grants accumulate (see the report): budget for it.
		lead = time.Duration(float64(o.grants)/rep.warmRate*1.4*float64(time.Second)) + 15*time.Second
	}
	if err := step("run 1: expiry, all servers up", func() (err error) {
		rep.run1, err = e.runExpiry(ctx, "run 1", o.grants, o.window, lead, o.sessions, nil)
		return err
	}); err != nil {
		return err
	}
	rate := float64(o.grants) / rep.run1.activation.Seconds()
	if o.burst > 0 {
		if err := step("throughput burst", func() (err error) {
			rep.burst, err = e.runBurst(ctx, o.burst, rate)
			return err
		}); err != nil {
			return err
		}
	}
	if o.outage {
		if o.lead == 0 {
			lead = time.Duration(float64(o.grants)/rate*1.4*float64(time.Second)) + 15*time.Second
		}
		down := e.clusters[1]
		if err := step("run 2: expiry, "+down.name+" down across the window", func() (err error) {
			rep.run2, err = e.runExpiry(ctx, "run 2", o.grants, o.window, lead, o.sessions, down)
			return err
		}); err != nil {
			return err
		}
	}
	rep.final = map[string]int{}
	for _, c := range e.clusters {
		rep.final[c.name] = c.tbxRoles(ctx)
	}
	return rep.check()
}

// warmUp activates a few grants on every database (opening the server's pools), revokes them,
// and measures the activation rate to place the first run's window.
func (e *scaleEnv) warmUp(ctx context.Context, rep *scaleReport) error {
	dbs := e.allDatabases()
	specs := make([]grantSpec, 4*len(dbs))
	for i := range specs {
		specs[i] = dbs[i%len(dbs)]
		specs[i].duration = "10m"
	}
	rs, took, err := e.activateAll(ctx, "warm-up", specs, time.Time{})
	if err != nil {
		return err
	}
	rep.warmRate = float64(len(specs)) / took.Seconds()
	progress("warm-up: %d grants active in %s (%.0f/s); revoking them", len(specs), fmtD(took), rep.warmRate)
	if err := e.revokeAll(ctx, rs); err != nil {
		return err
	}
	for _, c := range e.clusters {
		if n := c.tbxRoles(ctx); n != 0 {
			return fmt.Errorf("%d Timebox roles left on %s after revoking the warm-up grants", n, c.name)
		}
	}
	return nil
}

// check returns an error for each promise the run broke.
func (r *scaleReport) check() error {
	var errs []error
	for _, run := range []*expiryRun{r.run1, r.run2} {
		if run == nil {
			continue
		}
		if run.notExpired > 0 || run.withError > 0 || run.survived > 0 {
			errs = append(errs, fmt.Errorf("%s: %d not expired, %d with a grant error left, %d sessions survived",
				run.label, run.notExpired, run.withError, run.survived))
		}
	}
	for name, n := range r.final {
		if n != 0 {
			errs = append(errs, fmt.Errorf("%d Timebox roles left on %s", n, name))
		}
	}
	return errors.Join(errs...)
}

var logMsg = regexp.MustCompile(`level=(\w+) msg="([^"]*)"`)

// countLog counts the server's log lines by level and message.
func countLog(path string) map[string]int {
	b, _ := os.ReadFile(path)
	out := map[string]int{}
	for _, m := range logMsg.FindAllStringSubmatch(string(b), -1) {
		out[m[1]+" "+m[2]]++
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
