package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox/internal/testdb"
)

// TestE2ELiveAcrossReplicas: two timebox servers on one PostgreSQL store, as two replicas. A
// console page open on the second hears of a decision made with the CLI through the first
// within a second (the store's LISTEN/NOTIFY feed, wired by startConsole); and closing the
// second server with the stream open is quick (Close ends the console's streams first).
func TestE2ELiveAcrossReplicas(t *testing.T) {
	pg := testdb.RequirePostgres(t)
	e := newEnv(t, envOptions{pg: pg, storePG: pg})
	e.cfg.devSignIn = true
	e.start()
	second := *e.cfg
	second.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	second.AuditCheckpoint = filepath.Join(e.dir, "audit-checkpoint-2.log")
	logger, _ := newLogger(io.Discard, "warn")
	b, err := startInstance(context.Background(), &second, logger)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			b.Close()
		}
	})
	base := "http://" + second.Listen

	// bob signs in to the second replica's console (timebox dev's one-click sign-in).
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get(base + "/sign-in")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page: %s", page)
	}
	req, _ := http.NewRequest("POST", base+"/sign-in/dev", strings.NewReader(url.Values{"user": {"bob"}, "csrf": {string(m[1])}, "next": {"/"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	if res, err = c.Do(req); err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("dev sign-in: %v %v", res.StatusCode, err)
	}
	res.Body.Close()

	res, err = c.Get(base + "/events")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /events: %v %v", res, err)
	}
	defer res.Body.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitChange := func(what string) {
		t.Helper()
		deadline := time.After(time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s: the stream ended", what)
				}
				if strings.HasPrefix(l, "data: ") {
					return
				}
			case <-deadline:
				t.Fatalf("%s: no change on the second replica within a second", what)
			}
		}
	}

	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "1h", "--reason", "live test", "--ticket", "T-1")
	waitChange("request")
	e.ok("bob", "approve", id, "--note", "ok")
	waitChange("approval")

	start := time.Now()
	if err := b.Close(); err != nil {
		t.Errorf("closing the second replica: %v", err)
	}
	closed = true
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closing a server with an open console stream took %s", d)
	}
	for range lines { // the stream ended
	}
}
