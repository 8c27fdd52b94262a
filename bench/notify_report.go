package main

import (
	"fmt"
	"time"
)

func storeLabel(s string) string {
	if s == "postgres" {
		return "PostgreSQL"
	}
	return "SQLite"
}

func rateLabel(rate float64) string {
	if rate == 0 {
		return "default: 50/s, burst 3"
	}
	return fmt.Sprintf("%g/s (never waits)", rate)
}

// printLatency prints event → delivered for each store and rate.
func printLatency(runs []*latencyRun, n int) {
	fmt.Printf("== 1. audit event → webhook delivered, healthy receiver ==\n")
	fmt.Printf("%d requests created and approved back to back through the API (each: request.created, request.approved,\n", n)
	fmt.Printf("request.activated, a real login); from the API call that caused the event returning, and from the event's\n")
	fmt.Printf("time in the envelope (data.event.time), to the receiver having read and verified the POST.\n\n")
	fmt.Printf("%-11s %-28s %6s %9s   %-29s %-29s %s\n", "store", "channel rate", "events", "offered", "call returned → received", "event time → received", "first call → last received")
	fmt.Printf("%-11s %-28s %6s %9s   %9s %9s %9s   %9s %9s %9s\n", "", "", "", "", "p50", "p99", "max", "p50", "p99", "max")
	for _, r := range runs {
		fmt.Printf("%-11s %-28s %6d %7.0f/s   %9s %9s %9s   %9s %9s %9s   %s (calls %s)\n", storeLabel(r.store), rateLabel(r.rate), r.events, r.offered,
			fmtD(pct(r.fromCall, 50)), fmtD(pct(r.fromCall, 99)), fmtD(pct(r.fromCall, 100)),
			fmtD(pct(r.fromEvent, 50)), fmtD(pct(r.fromEvent, 99)), fmtD(pct(r.fromEvent, 100)), fmtD(r.last), fmtD(r.calls))
		if r.dups > 0 || r.bad > 0 {
			fmt.Printf("  receiver: %d duplicates, %d refused\n", r.dups, r.bad)
		}
	}
	fmt.Println()
}

// printLags prints each lag figure of each configuration beside configuration (a)'s, with
// the ratios, then the drains.
func printLags(runs []*lagRun, o notifyOptions) {
	fmt.Printf("== 2. activation and expiry lag beside the baseline (SQLite store; webhook channel rate %g/s) ==\n", o.rate)
	fmt.Printf("each configuration a fresh server: %d activations, then %d grants ending within the same 10 seconds (as make bench)\n\n", o.activations, o.grants)
	fmt.Printf("%-46s %-32s %9s  %9s  %9s   %s\n", "figure", "configuration", "p50", "p99", "max", "p50 / p99 ÷ (a)")
	base := runs[0]
	figures := []struct {
		name string
		get  func(*lagRun) []time.Duration
	}{
		{fmt.Sprintf("activation: approve returns → login (n=%d)", o.activations), func(r *lagRun) []time.Duration { return r.act }},
		{"  approve call sent → login", func(r *lagRun) []time.Duration { return addAll(r.call, r.act) }},
		{"  same DDL directly → login (machine noise)", func(r *lagRun) []time.Duration { return r.direct }},
		{fmt.Sprintf("expiry: end → session ended (n=%d)", o.grants), func(r *lagRun) []time.Duration { return r.expiry().sessionEnded }},
		{"expiry: end → login refused (≤)", func(r *lagRun) []time.Duration { return r.expiry().loginRefused }},
		{"expiry: end → request expired", func(r *lagRun) []time.Duration { return r.expiry().confirmed }},
	}
	for _, f := range figures {
		b := f.get(base)
		for i, r := range runs {
			d := f.get(r)
			name := ""
			if i == 0 {
				name = f.name
			}
			ratio := "baseline"
			if len(d) == 0 {
				fmt.Printf("%-46s %-32s %9s  %9s  %9s   %s\n", name, r.cfg.name, "-", "-", "-", "not measured: "+errText(r.err))
				continue
			}
			if i > 0 {
				ratio = fmt.Sprintf("%s / %s", ratioOf(pct(d, 50), pct(b, 50)), ratioOf(pct(d, 99), pct(b, 99)))
			}
			fmt.Printf("%-46s %-32s %9s  %9s  %9s   %s\n", name, r.cfg.name, fmtD(pct(d, 50)), fmtD(pct(d, 99)), fmtD(pct(d, 100)), ratio)
		}
	}
	for _, r := range runs {
		if r.err != nil {
			fmt.Printf("  %s failed: %v\n", r.cfg.name, r.err)
		}
		if r.dups > 0 || r.bad > 0 {
			fmt.Printf("  %s: receiver saw %d duplicates, refused %d\n", r.cfg.name, r.dups, r.bad)
		}
	}
	fmt.Println()
	for _, r := range runs {
		if !r.cfg.burst {
			continue
		}
		if !r.cfg.healthy {
			d := r.drains[0]
			fmt.Printf("%s: %d events generated in %s before the activations, all failing (connection refused) and retried with backoff during the measures\n\n",
				r.cfg.name, d.events, fmtD(d.generated))
			continue
		}
		if len(r.drains) == 3 {
			printDrains(r)
		}
	}
}

// printDrains prints the drain rate of each burst of r.
func printDrains(r *lagRun) {
	d0 := r.drains[0]
	fmt.Printf("== 3. drain: %d audit events (%d requests created and cancelled through the API, 8 calls in flight: %s, %.0f events/s) ==\n",
		d0.events, d0.events/2, fmtD(d0.generated), float64(d0.events)/d0.generated.Seconds())
	fmt.Printf("planned while the receiver held the channel (503, Retry-After: 1), then released; first → last event received\n")
	fmt.Printf("(the sender first waits out the last Retry-After: up to 1 s from the release)\n")
	labels := []string{"alone", "during the activations", "during the expiry window"}
	for i, d := range r.drains {
		extra := ""
		switch i {
		case 1:
			n := d.within(r.actSpan[0], r.actSpan[1])
			extra = fmt.Sprintf("; the activations took %s, %d events arrived meanwhile", fmtD(r.actSpan[1].Sub(r.actSpan[0])), n)
		case 2:
			n := d.within(r.window[0], r.window[1])
			extra = fmt.Sprintf("; released %s the first end, %d events arrived within the 10 s window (%.0f/s)",
				signedD(r.window[0].Sub(d.release)), n, float64(n)/10)
		}
		fmt.Printf("  %-26s %5d in %8s = %6.0f events/s, server CPU %3.0f%% of one CPU%s\n", labels[i], d.events, fmtD(d.took()),
			float64(d.events)/d.took().Seconds(), 100*d.cpu.Seconds()/d.last.Sub(d.release).Seconds(), extra)
	}
	fmt.Printf("  the receiver answered 503 %d times while held; %d duplicates, %d refused signatures\n\n", r.refusals, r.dups, r.bad)
}

// signedD says how long before (or after) the first end d is.
func signedD(d time.Duration) string {
	if d >= 0 {
		return fmtD(d) + " before"
	}
	return fmtD(-d) + " after"
}

func ratioOf(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// expiry returns what expiryLag measured (empty when it failed).
func (r *lagRun) expiry() *expiry {
	if r.exp == nil {
		return &expiry{}
	}
	return r.exp
}

func errText(err error) string {
	if err == nil {
		return "-"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}
