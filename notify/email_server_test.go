package notify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpServer is emersion/go-smtp's server on loopback, recording what it receives.
type smtpServer struct {
	Addr   string
	Port   int
	CAFile string // PEM of the server's certificate, for email.ca_file

	// What the server does: STARTTLS offered, TLS from the first byte, AUTH required with
	// this password, an SMTP error for RCPT or DATA, a DATA that hangs until the test ends.
	starttls, implicit bool
	insecureAuth       bool // AUTH offered without TLS (a loopback relay)
	password           string
	rcptErr, dataErr   error
	hang               chan struct{}

	mu    sync.Mutex
	mails []*receivedMail
	// mailFrom counts MAIL FROM commands: 0 after a refused session means nothing was sent.
	mailFrom int
	authed   []string
}

// receivedMail is one message the server accepted.
type receivedMail struct {
	From string
	To   []string
	Data []byte
	TLS  bool
}

const smtpUser, smtpPassword = "timebox", "s3cret-Pa55-w0rd"

type smtpOption func(*smtpServer)

func withSTARTTLS() smtpOption             { return func(s *smtpServer) { s.starttls = true } }
func withImplicitTLS() smtpOption          { return func(s *smtpServer) { s.implicit = true } }
func withAuth(password string) smtpOption  { return func(s *smtpServer) { s.password = password } }
func withRcptError(err error) smtpOption   { return func(s *smtpServer) { s.rcptErr = err } }
func withDataError(err error) smtpOption   { return func(s *smtpServer) { s.dataErr = err } }
func withHang(ch chan struct{}) smtpOption { return func(s *smtpServer) { s.hang = ch } }
func withInsecureAuth() smtpOption         { return func(s *smtpServer) { s.insecureAuth = true } }

// SMTP answers for the error tests.
var (
	smtpError550 = smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	smtpError451 = smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	smtpError552 = smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
	smtpError421 = smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Closing, busy"}
)

// startSMTP starts a server on 127.0.0.1 with a certificate made for this test.
func startSMTP(t *testing.T, opts ...smtpOption) *smtpServer {
	t.Helper()
	s := &smtpServer{}
	for _, o := range opts {
		o(s)
	}
	cert, caFile := testCertificate(t)
	s.CAFile = caFile
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.AllowInsecureAuth = s.insecureAuth
	srv.ErrorLog = log.New(io.Discard, "", 0) // connections the client closed are no news
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case s.implicit:
		l = tls.NewListener(l, tlsConfig)
	case s.starttls:
		srv.TLSConfig = tlsConfig
	}
	s.Addr = l.Addr().String()
	s.Port = l.Addr().(*net.TCPAddr).Port
	go srv.Serve(l)
	t.Cleanup(func() {
		if s.hang != nil {
			select {
			case <-s.hang:
			default:
				close(s.hang)
			}
		}
		srv.Close()
	})
	return s
}

// Mails returns the messages received so far.
func (s *smtpServer) Mails() []*receivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*receivedMail(nil), s.mails...)
}

// MailFrom returns how many MAIL FROM commands the server saw.
func (s *smtpServer) MailFrom() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mailFrom
}

// Authed returns the users who authenticated.
func (s *smtpServer) Authed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.authed...)
}

// NewSession starts a session (go-smtp's Backend).
func (s *smtpServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &smtpSession{srv: s, conn: c, tls: isTLS}, nil
}

type smtpSession struct {
	srv    *smtpServer
	conn   *smtp.Conn
	tls    bool
	authed bool
	mail   receivedMail
}

func (ss *smtpSession) AuthMechanisms() []string {
	if ss.srv.password == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != smtpUser || password != ss.srv.password {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		ss.srv.mu.Lock()
		ss.srv.authed = append(ss.srv.authed, username)
		ss.srv.mu.Unlock()
		return nil
	}), nil
}

func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.srv.mu.Lock()
	ss.srv.mailFrom++
	ss.srv.mu.Unlock()
	if ss.srv.password != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	_, ss.mail.TLS = ss.conn.TLSConnectionState()
	ss.mail.From = from
	return nil
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.srv.rcptErr != nil {
		return ss.srv.rcptErr
	}
	ss.mail.To = append(ss.mail.To, to)
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.srv.hang != nil {
		<-ss.srv.hang
		return errors.New("gave up")
	}
	if ss.srv.dataErr != nil {
		return ss.srv.dataErr
	}
	ss.mail.Data = b
	m := ss.mail
	ss.srv.mu.Lock()
	ss.srv.mails = append(ss.srv.mails, &m)
	ss.srv.mu.Unlock()
	return nil
}

func (ss *smtpSession) Reset()        { ss.mail = receivedMail{} }
func (ss *smtpSession) Logout() error { return nil }

// testCertificate makes a self-signed certificate for 127.0.0.1 and localhost and writes
// it, as PEM, to a file for email.ca_file.
func testCertificate(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "timebox test smtp"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, file
}

// parse reads a received message.
func (m *receivedMail) parse(t *testing.T) *mail.Message {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, m.Data)
	}
	return msg
}
