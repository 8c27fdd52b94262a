package http

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// ServerTLS loads a PEM certificate (chain) and its private key for Server.TLS. EINVALID
// names the file that cannot be read, or says that the two do not make a pair or that the
// certificate is outside its validity period.
func ServerTLS(certFile, keyFile string, now time.Time) (*tls.Config, error) {
	for _, f := range [][2]string{{"cert_file", certFile}, {"key_file", keyFile}} {
		if f[1] == "" {
			return nil, timebox.Errorf(timebox.EINVALID, "%s: required with TLS", f[0])
		} else if _, err := os.ReadFile(f[1]); err != nil {
			return nil, timebox.Errorf(timebox.EINVALID, "%s: cannot read %s: %s", f[0], f[1], timebox.FileReason(err))
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "cert_file %s and key_file %s are not a PEM certificate and its private key: %s",
			certFile, keyFile, strings.TrimPrefix(err.Error(), "tls: "))
	}
	if leaf := cert.Leaf; leaf != nil && (now.After(leaf.NotAfter) || now.Before(leaf.NotBefore)) {
		return nil, timebox.Errorf(timebox.EINVALID, "cert_file %s: the certificate is valid from %s to %s only",
			certFile, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// TrustCAFile makes the client trust the PEM certificates in path, besides the system's, to
// verify the server's certificate (a private CA or a self-signed certificate). EINVALID when
// the file cannot be read or holds no certificate.
func (c *Client) TrustCAFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return timebox.Errorf(timebox.EINVALID, "CA file %s: cannot read it: %s", path, timebox.FileReason(err))
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return timebox.Errorf(timebox.EINVALID, "CA file %s holds no PEM certificate", path)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if c.HTTP == nil {
		c.HTTP = &http.Client{}
	}
	c.HTTP.Transport = t
	return nil
}

// tlsReason explains a certificate error with what to do, or returns "".
func tlsReason(err error) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return "its certificate is signed by an unknown authority: set TIMEBOX_CA_FILE (or timebox login --ca-file) to the CA certificate"
	case errors.As(err, &host):
		return "its certificate is not valid for " + host.Host
	case errors.As(err, &invalid):
		return "its certificate is not valid: " + invalid.Error()
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "it answers plain HTTP, not HTTPS: use an http:// URL, or configure tls on the server"
	}
	return ""
}
