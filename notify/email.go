package notify

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/mail"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/timebox-dev/timebox"
)

// EmailConfig is an e-mail channel's configuration: the SMTP server that relays Timebox's
// messages, how to reach it, and who the messages are from and (for the channel's shared
// destination) to.
type EmailConfig struct {
	// Host is the SMTP server's name (smtp.example.com) or address.
	Host string `yaml:"host"`
	// Port defaults to 587 for starttls, 465 for tls and 25 for none.
	Port int `yaml:"port"`
	// TLS is starttls (the default: refuse to send if the server does not offer STARTTLS),
	// tls (implicit TLS from the first byte, "SMTPS") or none (loopback servers only).
	TLS string `yaml:"tls"`
	// CAFile is a PEM file of the certificates to trust for the server (an internal CA), in
	// place of the system's roots.
	CAFile string `yaml:"ca_file"`
	// Username and Password authenticate to the server (AUTH PLAIN or LOGIN, over TLS);
	// Password is a secret reference, env:NAME or file:PATH.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// From is the sender, an RFC 5322 address: timebox@example.com or
	// "Timebox <timebox@example.com>".
	From string `yaml:"from"`
	// To is the channel's shared destination (a team list); direct messages go to the
	// recipient's own address instead.
	To []string `yaml:"to"`
	// SubjectPrefix starts every subject (default "[Timebox]").
	SubjectPrefix string `yaml:"subject_prefix"`
}

// The TLS modes of an e-mail channel.
const (
	emailSTARTTLS = "starttls"
	emailTLS      = "tls"
	emailNoTLS    = "none"
)

// Email sends notifications as e-mail through an SMTP server: a text and an HTML part laid
// out from the message's Summary, to the recipient of a direct message or to the channel's
// To list. It implements Sender and Directs.
type Email struct {
	name     string
	host     string
	port     int
	mode     string
	tls      *tls.Config
	username string
	password string
	from     *mail.Address
	to       []*mail.Address
	prefix   string
	console  string
	// idSalt makes this installation's Message-IDs its own (see messageID).
	idSalt string
	// Timeout bounds a delivery whose context has no deadline (default 30 s).
	Timeout time.Duration
	env     Env
}

var (
	_ Sender  = (*Email)(nil)
	_ Directs = (*Email)(nil)
)

// openEmail checks c field by field (each error one line naming the field), reads the CA
// file and resolves the password.
func openEmail(name string, c *EmailConfig, env Env) (Sender, error) {
	e := &Email{name: name, console: env.ConsoleURL, env: env, Timeout: 30 * time.Second}
	var err error
	if e.host, err = emailHost(c.Host); err != nil {
		return nil, err
	}
	if e.mode, e.port, err = emailTransport(c, e.host); err != nil {
		return nil, err
	}
	if e.mode != emailNoTLS {
		e.tls = &tls.Config{ServerName: e.host, MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			if e.tls.RootCAs, err = emailRoots(c.CAFile); err != nil {
				return nil, err
			}
		}
	} else if c.CAFile != "" {
		return nil, timebox.Errorf(timebox.EINVALID, "email.ca_file: has no use with email.tls: none (nothing is encrypted)")
	}
	if e.username, e.password, err = emailAuth(c); err != nil {
		return nil, err
	}
	if e.from, err = emailAddress("email.from", c.From); err != nil {
		return nil, err
	}
	for i, s := range c.To {
		a, err := emailAddress(fmt.Sprintf("email.to[%d]", i), s)
		if err != nil {
			return nil, err
		}
		e.to = append(e.to, a)
	}
	e.prefix = c.SubjectPrefix
	if e.prefix == "" {
		e.prefix = "[Timebox]"
	} else if strings.ContainsFunc(e.prefix, unicode.IsControl) {
		return nil, timebox.Errorf(timebox.EINVALID, "email.subject_prefix: %q holds a control character (a line break?)", timebox.Clip(e.prefix))
	}
	e.idSalt = strings.TrimRight(env.ConsoleURL, "/") + "\x00" + e.from.Address
	return e, nil
}

// emailHost checks the server's name: required, no scheme, no port, no blanks.
func emailHost(host string) (string, error) {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	switch {
	case h == "":
		return "", timebox.Errorf(timebox.EINVALID, "email.host: required: the SMTP server's name, e.g. smtp.example.com")
	case strings.Contains(h, "://"):
		return "", timebox.Errorf(timebox.EINVALID, "email.host: %q: give the server's name only, without a scheme (the mode is email.tls)", timebox.Clip(host))
	case strings.ContainsFunc(h, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '/' || r == '@' }):
		return "", timebox.Errorf(timebox.EINVALID, "email.host: %q is not a host name", timebox.Clip(host))
	}
	if _, _, err := net.SplitHostPort(h); err == nil && net.ParseIP(h) == nil {
		return "", timebox.Errorf(timebox.EINVALID, "email.host: %q: give the port in email.port, not in the host", timebox.Clip(host))
	}
	return h, nil
}

// emailTransport checks tls and port, and that a server without TLS is on loopback.
func emailTransport(c *EmailConfig, host string) (mode string, port int, err error) {
	mode = c.TLS
	switch mode {
	case "", emailSTARTTLS:
		mode, port = emailSTARTTLS, 587
	case emailTLS:
		port = 465
	case emailNoTLS:
		port = 25
		if !isLoopbackHost(host) {
			return "", 0, timebox.Errorf(timebox.EINVALID, "email.tls: none is allowed only for a server on loopback (localhost, 127.0.0.1, ::1), not %s: the password and the messages would cross the network in clear text; use starttls or tls", timebox.Clip(host))
		}
	default:
		return "", 0, timebox.Errorf(timebox.EINVALID, "email.tls: %q is not starttls, tls or none", timebox.Clip(c.TLS))
	}
	if c.Port < 0 || c.Port > 65535 {
		return "", 0, timebox.Errorf(timebox.EINVALID, "email.port: %d is not a TCP port (1–65535)", c.Port)
	}
	if c.Port != 0 {
		port = c.Port
	}
	return mode, port, nil
}

// isLoopbackHost reports whether host is localhost or a loopback address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// emailRoots reads the certificates of ca_file.
func emailRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "email.ca_file: cannot read %s", timebox.Clip(path))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, timebox.Errorf(timebox.EINVALID, "email.ca_file: %s holds no PEM certificate", timebox.Clip(path))
	}
	return pool, nil
}

// emailAuth checks that username and password come together and resolves the password.
func emailAuth(c *EmailConfig) (user, password string, err error) {
	switch {
	case c.Username == "" && c.Password == "":
		return "", "", nil
	case c.Username == "":
		return "", "", timebox.Errorf(timebox.EINVALID, "email.username: required with email.password")
	case c.Password == "":
		return "", "", timebox.Errorf(timebox.EINVALID, "email.password: required with email.username: a secret reference env:NAME or file:PATH")
	case strings.ContainsFunc(c.Username, unicode.IsControl):
		return "", "", timebox.Errorf(timebox.EINVALID, "email.username: holds a control character")
	}
	password, err = timebox.ResolveSecret(c.Password)
	if err != nil {
		return "", "", timebox.Errorf(timebox.EINVALID, "email.password: %s", timebox.ErrorMessage(err))
	}
	if strings.ContainsAny(password, "\x00\r\n") {
		return "", "", timebox.Errorf(timebox.EINVALID, "email.password: %s holds a NUL or line break, which SMTP AUTH cannot carry", c.Password)
	}
	return c.Username, password, nil
}

// emailAddress parses one RFC 5322 address (with or without a display name).
func emailAddress(field, s string) (*mail.Address, error) {
	if s == "" {
		return nil, timebox.Errorf(timebox.EINVALID, "%s: required: an address such as timebox@example.com", field)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || strings.ContainsFunc(a.Address, unicode.IsSpace) {
		return nil, timebox.Errorf(timebox.EINVALID, "%s: %q is not an address (write timebox@example.com or \"Timebox <timebox@example.com>\")", field, timebox.Clip(s))
	}
	return a, nil
}

// Reaches reports whether u has an e-mail address to write to.
func (e *Email) Reaches(u *timebox.User) bool {
	if u == nil || u.Email == "" {
		return false
	}
	_, err := mail.ParseAddress(u.Email)
	return err == nil
}
