package main

import (
	"fmt"
	"strings"
	"time"
)

// print writes every figure the run got, each beside its target or baseline.
func (r *scaleReport) print() {
	o := r.opts
	fmt.Printf("\n== scale: %d grants ending within the same %s ==\n", o.grants, o.window)
	fmt.Printf("2 PostgreSQL %d clusters × %d databases, %d tables each (%d, not 1,000, to keep setup time sane on %d CPUs),\n",
		r.version, o.databases, o.tables, o.tables, numCPU())
	fmt.Printf("hardened with postgres.SetupStatements, one read role %q per cluster granted SELECT in every database;\n", scaleReadRole)
	fmt.Printf("Timebox server as a child process, SQLite store, max_conns %d per server, %d create+approve calls in flight.\n\n", maxConns, inFlight)

	fmt.Println("phases:")
	var total time.Duration
	for _, p := range r.phases {
		fmt.Printf("  %-44s %9s\n", p.name, fmtD(p.took))
		total += p.took
	}
	fmt.Printf("  %-44s %9s\n\n", "total (plus cleanup)", fmtD(total))

	row := func(name string, d []time.Duration, note string) {
		if len(d) == 0 {
			fmt.Printf("%-52s %9s  %9s  %9s     %s\n", name, "-", "-", "-", note)
			return
		}
		fmt.Printf("%-52s %9s  %9s  %9s     %s\n", name, fmtD(pct(d, 50)), fmtD(pct(d, 99)), fmtD(pct(d, 100)), note)
	}
	fmt.Println("figure                                                     p50        p99        max     target / note")
	for _, run := range []*expiryRun{r.run1, r.run2} {
		if run == nil {
			continue
		}
		title := "run 1, all servers up"
		if run.down != nil {
			title = "run 2, " + run.down.name + " down across the window"
		}
		fmt.Printf("%s — activation of %d grants took %s (%.0f/s), first end %s after it began\n",
			title, run.n, fmtD(run.activation), float64(run.n)/run.activation.Seconds(), fmtD(run.lead))
		if run.partial {
			fmt.Printf("  CUT SHORT: the figures below cover only the requests that had expired when the run bailed out\n")
		}
		var all []time.Duration
		for _, name := range sortedKeys(run.lags) {
			all = append(all, run.lags[name]...)
		}
		if run.down == nil {
			row(fmt.Sprintf("  end → request expired, all (n=%d)", len(all)), all, "target p99 ≤ 1s")
		}
		for _, name := range sortedKeys(run.lags) {
			l := run.lags[name]
			switch {
			case run.down != nil && name == run.down.name:
				row(fmt.Sprintf("  end → expired, %s (down) (n=%d)", name, len(l)), l, "includes the outage")
				fmt.Printf("    %s stopped %s before the first end, started again %s after the last end; its last request expired %s after the restart\n",
					name, fmtD(run.firstEnd.Sub(run.stopAt)), fmtD(run.restartAt.Sub(run.lastEnd)), fmtD(run.downLast))
			case run.down != nil && r.run1 != nil:
				row(fmt.Sprintf("  end → expired, %s (healthy) (n=%d)", name, len(l)), l, "target: unchanged from run 1:")
				row(fmt.Sprintf("    run 1, %s, same figure (n=%d)", name, len(r.run1.lags[name])), r.run1.lags[name], "")
			default:
				row(fmt.Sprintf("  end → expired, %s (n=%d)", name, len(l)), l, "")
			}
		}
		row(fmt.Sprintf("  end → session ended (n=%d of %d held)", len(run.sessions), run.opened), run.sessions, "each session in pg_sleep across its end")
		fmt.Printf("  checks: %d not expired; %d with a grant last_error; %d outcome not \"dropped\"; %d sessions survived;\n",
			run.notExpired, run.withError, run.notDropped, run.survived)
		fmt.Printf("          Timebox roles left in pg_roles %v; Timebox sessions left in pg_stat_activity %v\n", run.rolesLeft, run.tbxBackends)
		fmt.Printf("          %d removals needed more than one attempt (most attempts: %d)\n", run.retried, run.maxTries)
		if run.wall > 0 {
			fmt.Printf("  first end → no Timebox role left: %s; server CPU in that time %s (%.0f%% of one CPU)\n",
				fmtD(run.wall), fmtD(run.cpu), 100*run.cpu.Seconds()/max(run.wall.Seconds(), 0.001))
		}
		fmt.Printf("  CPU during activation: %s\n", run.cpuAct)
		if run.cpuWindow != "" {
			fmt.Printf("  CPU during expiry:     %s\n", run.cpuWindow)
		}
		fmt.Printf("  most Timebox admin connections seen per cluster: %v\n", run.maxAdmin)
		if run.pgAct != "" {
			fmt.Printf("  PostgreSQL time by statement during activation (pg_stat_statements):\n%s", run.pgAct)
		}
		if run.pgWindow != "" {
			fmt.Printf("  PostgreSQL time by statement during expiry (pg_stat_statements):\n%s", run.pgWindow)
		}
		fmt.Printf("  reconciler listing (engine.Managed) with the grants active: %v\n", fmtMap(run.managed, func(s string) string { return s }))
		fmt.Println()
	}

	fmt.Println("memory (server VmRSS):")
	fmt.Printf("  idle                                       %9s\n", mb(r.memIdle.rss))
	if r.run1 != nil {
		fmt.Printf("  with %d active grants                   %9s     target ≤ 150 MB (store %s)\n", r.run1.n, mb(r.run1.memActive.rss), mb(r.run1.storeSize))
		fmt.Printf("  highest sampled during run 1's expiry      %9s\n", mb(r.run1.memPeak))
	}
	if r.run2 != nil {
		fmt.Printf("  highest sampled during run 2's expiry      %9s\n", mb(r.run2.memPeak))
	}
	if b := r.burst; b != nil && b.timeboxTook > 0 {
		fmt.Printf("\nrevocation throughput (%d grants on %d databases ending at the same instant, no sessions):\n", b.n, 2*o.databases)
		fmt.Printf("  timebox (scheduler, max_conns %d per server)   %7.1f roles/s  (%s)\n", maxConns, b.timebox, fmtD(b.timeboxTook))
		fmt.Printf("  baseline: same statements, pgx loop per server %7.1f roles/s  (%s; %v)\n", b.direct, fmtD(b.directTook), fmtMap(b.directPer, fmtD))
		fmt.Printf("  ratio timebox / direct                         %7.2f×   target ≥ 0.5×\n", b.timebox/b.direct)
		fmt.Printf("  CPU while Timebox removed them: %s\n", b.cpu)
		fmt.Printf("  most Timebox admin connections seen per cluster: %v\n", b.maxAdmin)
		if b.pgWindow != "" {
			fmt.Printf("  PostgreSQL time by statement while Timebox removed them (pg_stat_statements):\n%s", b.pgWindow)
		}
	}
	if len(r.logCounts) > 0 {
		fmt.Println("\nserver log lines by message:")
		for _, k := range sortedKeys(r.logCounts) {
			fmt.Printf("  %6d  %s\n", r.logCounts[k], k)
		}
	}
}

// fmtMap writes m as "key value, …" in key order, each value written by f.
func fmtMap[V any](m map[string]V, f func(V) string) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+" "+f(m[k]))
	}
	return strings.Join(parts, ", ")
}
