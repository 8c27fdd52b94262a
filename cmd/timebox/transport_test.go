package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/store"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key (PEM) into dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "timebox test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// transportConfig writes a configuration with a SQLite store in dir, listening on listen,
// with extra appended, and returns its path.
func transportConfig(t *testing.T, dir, listen, extra string) string {
	t.Helper()
	cfgSetenv(t)
	body := strings.Replace(cfgValidYAML, "db.internal:5432", "127.0.0.1:1", 1) +
		fmt.Sprintf("listen: %q\nstore: sqlite://%s\nlog_level: debug\n", listen, filepath.Join(dir, "t.db")) + extra
	path := filepath.Join(dir, "timebox.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCLI runs one command line with stdin and returns its stdout, stderr and exit code.
func runCLI(stdin string, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// TestServeTLS: with tls.cert_file and key_file the server answers HTTPS only; the CLI
// trusts its self-signed certificate through TIMEBOX_CA_FILE or login --ca-file, and says
// what to do without; /metrics needs metrics.token.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir)
	t.Setenv("TBX_METRICS_TOKEN", "metrics-secret-123")
	path := transportConfig(t, dir, fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\nmetrics: {token: env:TBX_METRICS_TOKEN}\n", certFile, keyFile))
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	in, err := startInstance(context.Background(), c, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	secret, err := createToken(context.Background(), in.Store, &c.Catalog, in.Service.Keys, "alice")
	if err != nil {
		t.Fatal(err)
	}
	url := in.URL()
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("URL = %q, want https", url)
	}
	t.Setenv("TIMEBOX_CONFIG_DIR", filepath.Join(dir, "cli"))
	t.Setenv("TIMEBOX_SERVER", url)
	t.Setenv("TIMEBOX_TOKEN", secret)
	t.Setenv("TIMEBOX_CA_FILE", "")
	if _, errOut, code := runCLI("", "whoami"); code != 7 || !strings.Contains(errOut, "unknown authority: set TIMEBOX_CA_FILE") {
		t.Errorf("whoami without the CA: exit %d, %q", code, errOut)
	}
	t.Setenv("TIMEBOX_CA_FILE", certFile)
	if out, errOut, code := runCLI("", "whoami"); code != 0 || !strings.Contains(out, "alice") {
		t.Errorf("whoami with TIMEBOX_CA_FILE: exit %d, %q %q", code, out, errOut)
	}
	t.Setenv("TIMEBOX_SERVER", "http://"+strings.TrimPrefix(url, "https://"))
	if _, errOut, code := runCLI("", "whoami"); code == 0 || !strings.Contains(errOut, "serves HTTPS only: use an https:// URL") {
		t.Errorf("whoami over plain HTTP: exit %d, %q", code, errOut)
	}

	// login --ca-file saves the CA with the server for later commands.
	t.Setenv("TIMEBOX_SERVER", "")
	t.Setenv("TIMEBOX_TOKEN", "")
	t.Setenv("TIMEBOX_CA_FILE", "")
	if out, errOut, code := runCLI(secret+"\n", "login", "--server", url, "--ca-file", certFile); code != 0 || !strings.Contains(out, "as alice") {
		t.Fatalf("login --ca-file: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := runCLI("", "whoami"); code != 0 || !strings.Contains(out, "alice") {
		t.Errorf("whoami after login --ca-file: exit %d, %q %q", code, out, errOut)
	}

	// /metrics: refused without the token or with another one (a user's API token too).
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for auth, want := range map[string]int{"": 401, "Bearer wrong": 401, "Bearer " + secret: 401, "Bearer metrics-secret-123": 200} {
		req, _ := http.NewRequest("GET", url+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 200) != strings.Contains(string(body), "timebox_requests") {
			t.Errorf("/metrics with %q: %d %.80s, want %d", auth, resp.StatusCode, body, want)
		}
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "metrics-secret-123") {
		t.Error("a token reached the log")
	}
}

// TestListenWithoutTLS: a non-loopback address without TLS is refused at start with one
// line saying what to set; with tls.terminated_by_proxy it starts and logs that it relies
// on the proxy; a missing certificate is named.
func TestListenWithoutTLS(t *testing.T) {
	dir := t.TempDir()
	path := transportConfig(t, dir, "0.0.0.0:0", "")
	_, errOut, code := runCLI("", "server", "--config", path)
	if code != 3 || strings.Count(errOut, "\n") != 1 ||
		!strings.Contains(errOut, "listen: 0.0.0.0:0 is not a loopback address and TLS is off: set tls.cert_file and tls.key_file, or tls.terminated_by_proxy: true") {
		t.Errorf("server on 0.0.0.0 without TLS: exit %d, %q", code, errOut)
	}

	path = transportConfig(t, dir, "0.0.0.0:0", "tls: {cert_file: "+filepath.Join(dir, "nope.pem")+", key_file: k.pem}\n")
	if _, errOut, code := runCLI("", "server", "--config", path); code != 3 || strings.Count(errOut, "\n") != 1 ||
		!strings.Contains(errOut, "tls.cert_file: cannot read "+filepath.Join(dir, "nope.pem")) {
		t.Errorf("missing certificate: exit %d, %q", code, errOut)
	}

	path = transportConfig(t, dir, "0.0.0.0:0", "tls: {terminated_by_proxy: true}\nmetrics: {}\n")
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	in, err := startInstance(context.Background(), c, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if !strings.Contains(logs.String(), "tls.terminated_by_proxy says a proxy in front terminates TLS") {
		t.Errorf("the server does not log that it relies on a proxy:\n%s", logs.String())
	}
	port := in.listener.Addr().(*net.TCPAddr).Port
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("/metrics without metrics.token: %v %v, want public", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
}

// TestAdminTokenCreate: admin token create names and times a token within tokens.max_ttl.
func TestAdminTokenCreate(t *testing.T) {
	dir := t.TempDir()
	path := transportConfig(t, dir, "127.0.0.1:0", "tokens: {default_ttl: 1d, max_ttl: 7d}\n")
	out, errOut, code := runCLI("", "admin", "token", "create", "--config", path, "--user", "alice", "--name", "ci", "--ttl", "2d")
	secret := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(secret, "tbx_") || !strings.Contains(errOut, "expires at") {
		t.Fatalf("admin token create: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := runCLI("", "admin", "token", "create", "--config", path, "--user", "alice", "--ttl", "8d"); code != 3 || !strings.Contains(errOut, "tokens.max_ttl (7d)") {
		t.Errorf("--ttl over max_ttl: exit %d, %q", code, errOut)
	}
	if _, _, code := runCLI("", "admin", "token", "create", "--config", path, "--user", "bob"); code != 0 {
		t.Fatalf("admin token create with the default ttl: exit %d", code)
	}
	if _, errOut, code := runCLI("", "admin", "token", "create", "--config", path, "--user", "nobody"); code != 4 || !strings.Contains(errOut, "nobody") {
		t.Errorf("a token for an unknown user: exit %d, %q", code, errOut)
	}
	db, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var toks []*timebox.Token
	db.View(context.Background(), func(tx timebox.Tx) (err error) { toks, err = tx.FindTokens(""); return err })
	if len(toks) != 2 {
		t.Fatalf("tokens = %+v, want 2", toks)
	}
	if a := toks[0]; a.Name != "ci" || a.Hash != timebox.TokenHash(secret) || a.ExpiresAt.Sub(a.CreatedAt) != 48*time.Hour {
		t.Errorf("alice's token = %+v, want name ci, 2d", a)
	}
	if b := toks[1]; b.ExpiresAt.Sub(b.CreatedAt) != 24*time.Hour {
		t.Errorf("bob's token = %+v, want the default 1d", b)
	}
	_, err = parseConfig([]byte(cfgValidYAML + "tokens: {default_ttl: 30d, max_ttl: 7d}\n"))
	cfgWantErr(t, err, "tokens: default_ttl 30d is longer than max_ttl 7d")
}
