package http_test

import (
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
)

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.create("alice")
	resp := e.raw("GET", "/metrics", "", "")
	if resp.status != 200 {
		t.Fatalf("GET /metrics = %d %s", resp.status, resp.body)
	}
	body := string(resp.body)
	for _, st := range timebox.States {
		want := `timebox_requests{state="` + string(st) + `"} 0`
		if st == timebox.StatePending {
			want = `timebox_requests{state="pending"} 1`
		}
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Error("metrics lack the Go collector")
	}
}

func TestMetricsStoreDown(t *testing.T) {
	e := newEnv(t, nil)
	e.db.Close()
	resp := e.raw("GET", "/metrics", "", "")
	if strings.Contains(string(resp.body), "timebox_requests{") {
		t.Errorf("request counts reported with the store closed: %s", resp.body)
	}
	if !strings.Contains(e.logs.String(), "metrics") {
		t.Errorf("the failed scrape was not logged:\n%s", e.logs.String())
	}
}
