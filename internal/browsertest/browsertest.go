// Package browsertest drives Debian's Chromium (headless, through chromedp) for the console's
// end-to-end tests: one isolated browser per person (its own profile, so its own cookies),
// screenshots saved as test artifacts, and axe-core run inside the page.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium returns the path of the browser the tests drive: $TIMEBOX_CHROMIUM, else Debian's
// /usr/bin/chromium. The test is skipped without one, and fails when CI is set (make test
// sets it and installs chromium first).
func Chromium(t testing.TB) string {
	t.Helper()
	path := os.Getenv("TIMEBOX_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("no Chromium at %s: run make test (it installs Debian's chromium) or apt-get install chromium", path)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// Browser is one person's headless Chromium.
type Browser struct {
	t   testing.TB
	Ctx context.Context // the tab: pass it to chromedp.Run
	// Name names the person in screenshot files.
	Name string
}

// New starts a Chromium with a fresh profile for name, in the time zone Europe/Berlin (so
// tests see times rendered in the viewer's zone, not the server's UTC); it is stopped when
// the test ends.
func New(t testing.TB, name string) *Browser {
	t.Helper()
	exec := Chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.Env("TZ=Europe/Berlin"),
		chromedp.ExecPath(exec),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium for %s: %v", name, err)
	}
	return &Browser{t: t, Ctx: ctx, Name: name}
}

// Run runs actions in the browser's tab with a timeout, failing the test on an error.
func (b *Browser) Run(timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s's browser: %v", b.Name, err)
	}
}

// Get runs one action that returns a value (chromedp.Text, chromedp.Location,
// chromedp.Evaluate[T] …) with a timeout, failing the test on an error.
func Get[T any](b *Browser, timeout time.Duration, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s's browser: %v", b.Name, err)
	}
	return v
}

// ArtifactDir is where screenshots go: $TIMEBOX_ARTIFACTS, else .tmp/artifacts at the module
// root (ignored by git).
func ArtifactDir(t testing.TB) string {
	dir := os.Getenv("TIMEBOX_ARTIFACTS")
	if dir == "" {
		_, file, _, _ := goruntime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", ".tmp", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// Screenshot saves a full-page PNG of the current page as <artifacts>/<test>-<person>-<name>.png
// and returns its path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	png := Get(b, 20*time.Second, chromedp.FullScreenshot(100))
	file := unsafeName.ReplaceAllString(b.t.Name()+"-"+b.Name+"-"+name, "_") + ".png"
	path := filepath.Join(ArtifactDir(b.t), file)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// Violation is one axe-core finding.
type Violation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any  `json:"target"`
		HTML   string `json:"html"`
	} `json:"nodes"`
}

func (v Violation) String() string {
	var where []string
	for _, n := range v.Nodes {
		where = append(where, fmt.Sprint(n.Target...))
	}
	return fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(where, ", "))
}

var (
	axeOnce sync.Once
	axeJS   string
	axeErr  error
)

// axeSource returns axe-core's script, which make test installs into .cache/axe.
func axeSource() (string, error) {
	axeOnce.Do(func() {
		path := os.Getenv("TIMEBOX_AXE")
		if path == "" {
			_, file, _, _ := goruntime.Caller(0)
			path = filepath.Join(filepath.Dir(file), "..", "..", ".cache", "axe", "node_modules", "axe-core", "axe.min.js")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			axeErr = fmt.Errorf("axe-core is not installed at %s: run scripts/ensure-deps (make test does)", path)
			return
		}
		axeJS = string(b)
	})
	return axeJS, axeErr
}

// Axe runs axe-core inside the current page (WCAG 2.1 A and AA rules) and returns the
// serious and critical violations. The script is injected through the DevTools protocol, so
// the page's Content-Security-Policy does not stop it.
func (b *Browser) Axe() []Violation {
	b.t.Helper()
	src, err := axeSource()
	if err != nil {
		if os.Getenv("CI") != "" {
			b.t.Fatal(err)
		}
		b.t.Skip(err)
	}
	run := `(async () => {
		const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
		return JSON.stringify(r.violations);
	})()`
	Get(b, 60*time.Second, chromedp.Evaluate[int](src+";0"))
	raw := Get(b, 60*time.Second, chromedp.Evaluate[string](run, chromedp.EvalAwaitPromise))
	var all []Violation
	if err := json.Unmarshal([]byte(raw), &all); err != nil {
		b.t.Fatalf("axe result: %v", err)
	}
	var out []Violation
	for _, v := range all {
		if v.Impact == "serious" || v.Impact == "critical" {
			out = append(out, v)
		}
	}
	return out
}
