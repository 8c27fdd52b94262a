package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/http/console"
	"github.com/timebox-dev/timebox/internal/testdb"
	"github.com/timebox-dev/timebox/store"
)

// consoleOptions are the settings of the console benchmark (`go run ./bench -console`): a
// store filled with requests, then the server-side render time of console pages, each GET
// through the production handler (API + console) by a signed-in browser.
type consoleOptions struct {
	requests int      // requests in the store
	pending  int      // of which pending, filed through the Service
	rounds   int      // measured GETs per page
	pages    []string // "user:path", path with {today} and {today-N} (UTC dates)
	stores   []string // "sqlite", "postgres"
}

// defaultConsolePages are the inbox as an owner and 30 days of the busiest database's
// timeline as an auditor.
const defaultConsolePages = "owner:/approvals,auditor:/timeline?database=orders&from={today-29}&to={today}"

// consoleTarget is the target for a page's server time.
const consoleTarget = 100 * time.Millisecond

func runConsole(o consoleOptions) error {
	ctx := context.Background()
	fmt.Printf("== console: page render with %d requests in the store (%d pending) ==\n", o.requests, o.pending)
	fmt.Printf("in-process server: the production handler (API + console), dev sign-in; %d GETs per page after 10 to warm up; %d CPUs\n",
		o.rounds, numCPU())
	for _, kind := range o.stores {
		if err := runConsoleOn(ctx, kind, o); err != nil {
			return fmt.Errorf("%s store: %w", kind, err)
		}
	}
	return nil
}

func runConsoleOn(ctx context.Context, kind string, o consoleOptions) error {
	dir, err := os.MkdirTemp("", "timebox-console-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var dsn, label string
	switch kind {
	case "sqlite":
		dsn, label = "sqlite://"+filepath.Join(dir, "timebox.db"), "SQLite"
	case "postgres":
		pg, err := testdb.StartPostgres(ctx)
		if err != nil {
			return err
		}
		defer pg.Close()
		if err := pg.CreateDatabase(ctx, "timebox"); err != nil {
			return err
		}
		dsn, label = pg.SuperURL("timebox"), fmt.Sprintf("PostgreSQL %d", pg.Version)
	default:
		return fmt.Errorf("unknown store %q (sqlite, postgres)", kind)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	catalog, err := benchCatalog()
	if err != nil {
		return err
	}
	keys, err := timebox.NewKeyring("the console benchmark's secret key, long enough")
	if err != nil {
		return err
	}
	svc := timebox.NewService(db, catalog, keys)
	started := time.Now()
	fill, err := fillConsoleStore(ctx, svc, db, o, time.Now())
	if err != nil {
		return fmt.Errorf("fill the store: %w", err)
	}
	fmt.Printf("\n%s store: %s in %s\n", label, fill, fmtD(time.Since(started)))

	srv, err := startConsoleServer(svc, db.Feed())
	if err != nil {
		return err
	}
	defer srv.close()
	fmt.Println("page                                                         p50        p99        max     target")
	for _, spec := range o.pages {
		user, path, ok := strings.Cut(spec, ":")
		if !ok || !strings.HasPrefix(path, "/") {
			return fmt.Errorf("page %q: want user:/path", spec)
		}
		path = expandDates(path, time.Now().UTC())
		if err := srv.measure(ctx, user, path, o.rounds); err != nil {
			return fmt.Errorf("GET %s as %s: %w", path, user, err)
		}
	}
	return srv.measureLive(ctx, svc)
}

// consoleServer is the production handler on a loopback port, timed around each answer.
type consoleServer struct {
	url  string
	http *http.Server
	took chan time.Duration
}

func startConsoleServer(svc *timebox.Service, feed timebox.Feed) (*consoleServer, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := console.New(svc)
	c.DevSignIn, c.Logger, c.Feed = true, quiet, feed
	h, err := c.Handler()
	if err != nil {
		return nil, err
	}
	api := tbhttp.NewServer(svc)
	api.Logger, api.Console = quiet, h
	prod := api.Handler()
	s := &consoleServer{took: make(chan time.Duration, 1)}
	s.http = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		prod.ServeHTTP(w, r)
		select { // the measured GETs are sequential; sign-in's answers are not read
		case s.took <- time.Since(start):
		default:
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.url = "http://" + ln.Addr().String()
	go s.http.Serve(ln)
	return s, nil
}

func (s *consoleServer) close() { s.http.Close() }

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// signIn signs in as user with the dev sign-in and returns the browser's client.
func (s *consoleServer) signIn(ctx context.Context, user string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	status, body, err := s.get(ctx, c, "/sign-in")
	if err != nil {
		return nil, err
	}
	m := csrfField.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		return nil, fmt.Errorf("the sign-in page answered %d without a form", status)
	}
	form := url.Values{"csrf": {m[1]}, "user": {user}, "next": {"/"}}
	req, _ := http.NewRequestWithContext(ctx, "POST", s.url+"/sign-in/dev", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.url)
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	s.drain()
	if res.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("dev sign-in as %s answered %d", user, res.StatusCode)
	}
	return c, nil
}

func (s *consoleServer) get(ctx context.Context, c *http.Client, path string) (int, string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+path, nil)
	res, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// drain forgets a timing nobody reads.
func (s *consoleServer) drain() {
	select {
	case <-s.took:
	default:
	}
}

var tableRow = regexp.MustCompile(`<tr[ >]`)

// measure GETs path as user rounds times and prints the server time beside the target and
// the round trip the browser saw. A page this build does not have (404) is skipped.
func (s *consoleServer) measure(ctx context.Context, user, path string, rounds int) error {
	c, err := s.signIn(ctx, user)
	if err != nil {
		return err
	}
	var server, trip []time.Duration
	var size, rows int
	for i := range rounds + 10 {
		start := time.Now()
		status, body, err := s.get(ctx, c, path)
		rt := time.Since(start)
		if err != nil {
			return err
		}
		took := <-s.took
		switch {
		case status == http.StatusNotFound:
			fmt.Printf("%-58s skipped: 404, this build has no such page\n", clipPath("GET "+path+" as "+user, 58))
			return nil
		case status != http.StatusOK:
			return fmt.Errorf("answered %d: %s", status, clipPath(body, 300))
		}
		if i >= 10 {
			server, trip = append(server, took), append(trip, rt)
		}
		size, rows = len(body), len(tableRow.FindAllStringIndex(body, -1))
	}
	row := func(name string, d []time.Duration, note string) {
		fmt.Printf("%-58s %9s  %9s  %9s     %s\n", clipPath(name, 58), fmtD(pct(d, 50)), fmtD(pct(d, 99)), fmtD(pct(d, 100)), note)
	}
	verdict := "met"
	if pct(server, 99) > consoleTarget {
		verdict = "MISSED"
	}
	row(fmt.Sprintf("GET %s as %s (n=%d)", path, user, len(server)), server, fmt.Sprintf("target p99 ≤ %s server time: %s", fmtD(consoleTarget), verdict))
	row(fmt.Sprintf("  round trip seen by the browser (%d KB, %d table rows)", size/1024, rows), trip, "(loopback)")
	return nil
}

func clipPath(s string, n int) string {
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

var datePlaceholder = regexp.MustCompile(`\{today(-\d+)?\}`)

// expandDates replaces {today} and {today-N} in path with dates (YYYY-MM-DD) of now's day.
func expandDates(path string, now time.Time) string {
	return datePlaceholder.ReplaceAllStringFunc(path, func(m string) string {
		days, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(m, "{today"), "}"))
		return now.AddDate(0, 0, days).Format("2006-01-02")
	})
}
