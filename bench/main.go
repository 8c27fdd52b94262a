// Command bench measures Timebox against a real PostgreSQL cluster whose database has a
// realistic catalog (1,000 tables) and prints each figure beside its baseline:
//
//   - activation latency: the approve call returns → the first successful login with the
//     credentials, beside the same CREATE ROLE/GRANT statements issued directly with pgx;
//   - expiry lag: 200 grants, each with an open session, ending within the same 10 seconds:
//     window end → session ended, and window end → login refused;
//   - revocation throughput: 200 removals by Timebox beside the same statements issued
//     directly with pgx in a loop, as a ratio.
//
// Run it with `make bench` (or `go run ./bench`). It builds the timebox binary and runs the
// real server as a child process. `go run ./bench -scale` runs the scale benchmark instead
// (scale.go): two servers, 50 databases, 10,000 grants ending within the same minute;
// `go run ./bench -mysql` the MariaDB benchmark (maria.go): 1,000 grants ending within the
// same 10 seconds; `go run ./bench -console` the console benchmark (console.go): page render
// p50/p99 of the approvals inbox and the access timeline with 10,000 requests in the store;
// `go run ./bench -notify` the notification benchmark (notify.go): event → webhook delivered,
// and activation and expiry lag with a webhook receiver down, healthy and draining a burst of
// 10,000 events, beside the same figures without notifications.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	grants := flag.Int("grants", 200, "grants ending within the expiry window")
	activations := flag.Int("activations", 50, "activations to time")
	tables := flag.Int("tables", 1000, "tables in the benchmark database")
	flag.IntVar(&maxConns, "max-conns", 8, "the server's max_conns: concurrent admin connections to the database server")
	scale := flag.Bool("scale", false, "run the scale benchmark instead (see scale.go): 2 servers, 50 databases, 10,000 grants")
	var o scaleOptions
	flag.IntVar(&o.databases, "databases", 25, "scale: databases per server")
	flag.DurationVar(&o.window, "window", 60*time.Second, "scale: the grants' ends are spread over this window")
	flag.IntVar(&o.sessions, "sessions", 100, "scale: sessions held open across their end, per run")
	flag.IntVar(&o.burst, "burst", 2000, "scale: grants ending at one instant for the throughput figure (0: skip)")
	flag.DurationVar(&o.lead, "lead", 0, "scale: first end after activation begins (0: from the warm-up's rate)")
	flag.BoolVar(&o.outage, "outage", true, "scale: run again with the second server stopped across the window")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "scale: bail out after this long")
	flag.BoolVar(&pgStat, "pgstat", false, "scale: load pg_stat_statements on the clusters and print where PostgreSQL's time goes")
	consoleRun := flag.Bool("console", false, "run the console benchmark instead (see console.go): page render times with 10,000 requests in the store")
	var co consoleOptions
	flag.IntVar(&co.requests, "console-requests", 10000, "console: requests in the store")
	flag.IntVar(&co.pending, "console-pending", 300, "console: of which pending (filed through the Service)")
	flag.IntVar(&co.rounds, "console-rounds", 300, "console: measured GETs per page")
	consolePages := flag.String("console-pages", defaultConsolePages, "console: comma-separated user:/path to measure ({today}, {today-N}: UTC dates)")
	consoleStores := flag.String("console-stores", "sqlite,postgres", "console: stores to fill and measure on (sqlite, postgres)")
	notifyRun := flag.Bool("notify", false, "run the notification benchmark instead (see notify.go): event → webhook p50/p99, activation and expiry lag with the receiver down, healthy and draining a burst (-activations, -grants, -tables apply)")
	var no notifyOptions
	flag.IntVar(&no.requests, "notify-requests", 200, "notify: requests created and approved for event → delivered")
	flag.IntVar(&no.burst, "notify-burst", 10000, "notify: audit events in the burst")
	flag.Float64Var(&no.rate, "notify-rate", fastRate, "notify: the webhook channel's rate (and burst) where the limiter is not measured")
	notifyStores := flag.String("notify-stores", "sqlite,postgres", "notify: stores for event → delivered (sqlite, postgres)")
	flag.StringVar(&no.configs, "notify-configs", "abcde", "notify: lag configurations: a none, b receiver down, c healthy, d draining a burst, e down with the burst as a backlog")
	maria := flag.Bool("mysql", false, "run the MariaDB benchmark instead (see maria.go): 1,000 grants ending within 10 seconds (-grants, -tables, -sessions apply)")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// orDefault is the value of an int flag when given, else def (the benchmark's own default).
	orDefault := func(name string, v, def int) int {
		if set[name] {
			return v
		}
		return def
	}
	var err error
	switch {
	case *notifyRun:
		no.activations, no.grants, no.tables, no.stores = *activations, *grants, *tables, strings.Split(*notifyStores, ",")
		err = runNotifyBench(no)
	case *consoleRun:
		co.pages, co.stores = strings.Split(*consolePages, ","), strings.Split(*consoleStores, ",")
		err = runConsole(co)
	case *maria:
		err = runMaria(orDefault("grants", *grants, 1000), orDefault("tables", *tables, 100), o.sessions)
	case *scale:
		o.grants, o.tables = orDefault("grants", *grants, 10000), orDefault("tables", *tables, 100)
		err = runScale(o)
	default:
		err = runBench(*grants, *activations, *tables)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var maxConns int

func runBench(grants, activations, tables int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "timebox-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "timebox")
	if err := buildTimebox(ctx, bin); err != nil {
		return err
	}
	h, err := newHarness(ctx, dir, bin, tables)
	if err != nil {
		return err
	}
	defer h.close()
	fmt.Printf("PostgreSQL %d on 127.0.0.1:%d, database with %d tables; %d CPUs\n\n", h.pg.Version, h.pg.Port, tables, numCPU())

	act, call, direct, err := h.activationLatency(ctx, activations)
	if err != nil {
		return fmt.Errorf("activation latency: %w", err)
	}
	exp, err := h.expiryLag(ctx, grants)
	if err != nil {
		return fmt.Errorf("expiry lag: %w", err)
	}
	tput, err := h.revocationThroughput(ctx, grants)
	if err != nil {
		return fmt.Errorf("revocation throughput: %w", err)
	}

	fmt.Println("figure                                         p50        p99        max     target / baseline")
	row := func(name string, d []time.Duration, baseline string) {
		fmt.Printf("%-44s %9s  %9s  %9s     %s\n", name, fmtD(pct(d, 50)), fmtD(pct(d, 99)), fmtD(pct(d, 100)), baseline)
	}
	row(fmt.Sprintf("activation: approve returns → login (n=%d)", len(act)), act, "target p99 ≤ 100ms")
	row("  approve call sent → login", addAll(call, act), "(the approve call waits for the activation)")
	row("  baseline: same DDL directly → login", direct, "(pgx, one connection)")
	row(fmt.Sprintf("expiry: end → session ended (n=%d)", len(exp.sessionEnded)), exp.sessionEnded, "target p99 ≤ 1s; anchors sweep every 1–10 min")
	row(fmt.Sprintf("expiry: end → login refused (n=%d, ≤)", len(exp.loginRefused)), exp.loginRefused, "(VALID UNTIL = end exactly)")
	row(fmt.Sprintf("expiry: end → request expired (n=%d)", len(exp.confirmed)), exp.confirmed, "(database confirmed, stored)")
	fmt.Printf("\nrevocation throughput (%d roles, each with an open session):\n", grants)
	fmt.Printf("  timebox (scheduler, max_conns %d)        %7.1f roles/s  (%s)\n", maxConns, tput.timebox, fmtD(tput.timeboxTook))
	fmt.Printf("  baseline: same statements, pgx loop     %7.1f roles/s  (%s)\n", tput.direct, fmtD(tput.directTook))
	fmt.Printf("  ratio timebox / direct                  %7.2f×\n", tput.timebox/tput.direct)
	return nil
}

func addAll(a, b []time.Duration) []time.Duration {
	out := make([]time.Duration, len(a))
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}

// pct returns the p-th percentile (nearest rank) of d; 100 is the maximum.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p/100+0.9999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func fmtD(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
}
