package http_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more
	_, err = tbhttp.NewClient(url, "tbx_x").Me(context.Background())
	te := wantCode(t, err, timebox.EUNAVAILABLE)
	if want := "cannot reach the Timebox server at " + url + ": connect: connection refused"; te.Message != want {
		t.Errorf("message = %q, want %q", te.Message, want)
	}
}

func TestClientForeignAnswers(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		code   string
	}{
		{502, "<html>Bad Gateway</html>", timebox.EUNAVAILABLE},
		{404, "404 page not found", timebox.ENOTFOUND},
		{200, "<html>login page</html>", timebox.EINTERNAL},
		{302, "", timebox.EINTERNAL}, // a redirect is not followed
	} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.status == 302 {
				w.Header().Set("Location", "http://example.com/")
			}
			w.WriteHeader(tt.status)
			w.Write([]byte(tt.body))
		}))
		_, err := tbhttp.NewClient(ts.URL, "tbx_x").Me(context.Background())
		te := wantCode(t, err, tt.code)
		if !strings.Contains(te.Message, ts.URL) {
			t.Errorf("message %q does not name the server", te.Message)
		}
		ts.Close()
	}
}
