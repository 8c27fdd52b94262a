package browsertest_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/timebox-dev/timebox/internal/browsertest"
)

// TestAxeFindsViolations proves the checker can fail: a page with an unlabelled input and an
// image without alt text, served under a strict CSP like the console's.
func TestAxeFindsViolations(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'")
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><html><head><title>bad</title></head><body><main><h1>Bad</h1>
			<form><input type="text" name="x"></form><img src="/x.png"></main></body></html>`))
	}))
	defer srv.Close()
	b := browsertest.New(t, "tester")
	b.Run(30*time.Second, chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.CSS("h1")))
	vs := b.Axe()
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.ID)
	}
	if got := strings.Join(ids, " "); !strings.Contains(got, "label") || !strings.Contains(got, "image-alt") {
		t.Fatalf("axe found %q, want label and image-alt", got)
	}
	if path := b.Screenshot("bad"); !fileExists(path) {
		t.Fatalf("no screenshot at %s", path)
	}
}

func fileExists(p string) bool { st, err := os.Stat(p); return err == nil && st.Size() > 0 }
