package notify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/timebox-dev/timebox"
)

// receiver is a local HTTP endpoint standing in for a Teams workflow or a webhook consumer:
// it records every request and answers what answer says (default 202 Accepted).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(n int, r *received) (status int, header http.Header, body string)
}

// received is one request a receiver got.
type received struct {
	method string
	path   string
	query  string
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, tls bool) *receiver {
	t.Helper()
	rc := &receiver{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := received{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: body}
		rc.mu.Lock()
		rc.got = append(rc.got, got)
		n := len(rc.got)
		answer := rc.answer
		rc.mu.Unlock()
		status, header, text := http.StatusAccepted, http.Header(nil), ""
		if answer != nil {
			status, header, text = answer(n, &got)
		}
		for k, vs := range header {
			w.Header()[k] = vs
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
	})
	if tls {
		rc.srv = httptest.NewTLSServer(h)
	} else {
		rc.srv = httptest.NewServer(h)
	}
	t.Cleanup(rc.srv.Close)
	return rc
}

// requests returns what the receiver got so far.
func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// answerWith makes the receiver answer status (with header and body) from now on.
func (rc *receiver) answerWith(status int, header http.Header, body string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answer = func(int, *received) (int, http.Header, string) { return status, header, body }
}

// secretURL sets an environment variable to the receiver's URL with a path and a signature
// query like a Teams workflow's, and returns the variable's reference and the URL.
func (rc *receiver) secretURL(t *testing.T, env string) (ref, rawURL string) {
	t.Helper()
	rawURL = rc.srv.URL + "/workflows/5b1c0a7e9d/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=" + testSig
	t.Setenv(env, rawURL)
	return "env:" + env, rawURL
}

// testSig is the signature embedded in the test URLs: it must never show in an error.
const testSig = "Zq8tSECRETsig0aLw9xYHc3uKf1bV2nM"

// checkNoSecret fails when err's text holds any of secrets.
func checkNoSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error() + " " + timebox.ErrorMessage(err)
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("error shows a secret (%q): %s", s, msg)
		}
	}
}
