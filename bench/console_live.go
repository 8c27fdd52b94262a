package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/timebox-dev/timebox"
)

// liveRounds is how many decisions the live-update figure times.
const liveRounds = 20

// liveTarget is the issue's target for a decision made elsewhere to show on an open page.
const liveTarget = time.Second

// measureLive times a decision in the CLI (`timebox approve ID`, the real binary, as owner)
// to the update shown in a second browser: Debian's Chromium, signed in as the requester,
// with the request's page open. The page's own script (live.js) notices the change feed's
// event and swaps the page's content; a MutationObserver in the page records when the
// approval appears. Figures: from the CLI's start, and from its exit (the decision is
// committed by then).
func (s *consoleServer) measureLive(ctx context.Context, svc *timebox.Service) error {
	chromium := os.Getenv("TIMEBOX_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		fmt.Printf("live update: skipped (no Chromium at %s: apt-get install chromium)\n", chromium)
		return nil
	}
	dir, err := os.MkdirTemp("", "timebox-live-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "timebox")
	if err := buildTimebox(ctx, bin); err != nil {
		return err
	}
	token, _, err := svc.IssueToken(ctx, "admin", "owner", "bench", 0)
	if err != nil {
		return err
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true))
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	run := func(steps ...chromedp.Action[chromedp.Void]) error {
		c, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		return chromedp.Do(c, steps...)
	}
	if err := chromedp.Do(bctx); err != nil {
		return fmt.Errorf("start chromium: %w", err)
	}
	who := person(0)
	if err := run(chromedp.Navigate(s.url+"/sign-in"),
		chromedp.Click(chromedp.CSS(`form[action="/sign-in/dev"] input[value="`+who+`"] ~ button`)),
		chromedp.WaitVisible(chromedp.CSS(`form.signout`))); err != nil {
		return fmt.Errorf("sign in as %s: %w", who, err)
	}
	var fromStart, fromExit []time.Duration
	for i := 0; i < liveRounds; i++ {
		r, err := svc.CreateRequest(ctx, who, timebox.RequestInput{Database: "orders", Access: "read-only", Duration: "1h",
			Start: ptr(time.Now().Add(2 * time.Hour)), Reason: fmt.Sprintf("live update %d", i), Ticket: "OPS-1"})
		if err != nil {
			return err
		}
		if err := run(chromedp.Navigate(s.url+"/requests/"+r.ID), chromedp.WaitVisible(chromedp.CSS("h1")),
			void(chromedp.Evaluate[bool](`(() => { window.__seen = 0; const m = document.querySelector("main");
				new MutationObserver(() => { if (!window.__seen && m.textContent.includes("request.approved")) window.__seen = Date.now(); })
				.observe(m, {childList: true, subtree: true, characterData: true}); return true; })()`))); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // the page's event stream is open
		cli := exec.CommandContext(ctx, bin, "approve", r.ID, "--note", "bench")
		cli.Env = append(os.Environ(), "TIMEBOX_SERVER="+s.url, "TIMEBOX_TOKEN="+token)
		start := time.Now()
		if out, err := cli.CombinedOutput(); err != nil {
			return fmt.Errorf("timebox approve: %v: %s", err, out)
		}
		exited := time.Now()
		var seen int64
		for deadline := time.Now().Add(5 * time.Second); seen == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			c, cancel := context.WithTimeout(bctx, 5*time.Second)
			seen, err = chromedp.Run(c, chromedp.Evaluate[int64](`window.__seen || 0`))
			cancel()
			if err != nil {
				return err
			}
		}
		if seen == 0 {
			c, cancel := context.WithTimeout(bctx, 5*time.Second)
			text, _ := chromedp.Run(c, chromedp.Text(chromedp.CSS("main")))
			cancel()
			return fmt.Errorf("round %d: the page did not show the approval within 5s:\n%s", i, text)
		}
		at := time.UnixMilli(seen)
		fromStart, fromExit = append(fromStart, at.Sub(start)), append(fromExit, at.Sub(exited))
	}
	p := func(ds []time.Duration, q float64) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[int(q*float64(len(ds)-1))]
	}
	fmt.Printf("\nlive update: a decision in the CLI → the update shown in a second browser (Chromium, live.js), %d decisions\n", liveRounds)
	fmt.Println("measured from                 p50        p99        max     target")
	for _, row := range []struct {
		name string
		ds   []time.Duration
	}{{"the CLI's start", fromStart}, {"the CLI's exit (committed)", fromExit}} {
		fmt.Printf("%-26s %10s %10s %10s %10s\n", row.name, fmtD(p(row.ds, 0.5)), fmtD(p(row.ds, 0.99)), fmtD(p(row.ds, 1)), "≤ "+strings.TrimSuffix(liveTarget.String(), "0s"))
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// void makes an action whose value is not needed into a step.
func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}
