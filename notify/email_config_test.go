package notify

import (
	"context"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/timebox-dev/timebox"
)

func TestOpenEmailValidation(t *testing.T) {
	t.Setenv("TIMEBOX_TEST_SMTP_PASSWORD", smtpPassword)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	ok := func(c *EmailConfig) {}
	for _, tc := range []struct {
		name   string
		change func(*EmailConfig)
		want   string // "" for a configuration that opens
	}{
		{"minimal", ok, ""},
		{"no host", func(c *EmailConfig) { c.Host = "" }, "email.host: required"},
		{"host with scheme", func(c *EmailConfig) { c.Host = "smtp://mail.example.com" }, "email.host: "},
		{"host with port", func(c *EmailConfig) { c.Host = "mail.example.com:587" }, "email.host: \"mail.example.com:587\": give the port in email.port"},
		{"host with blank", func(c *EmailConfig) { c.Host = "mail example.com" }, "email.host: \"mail example.com\" is not a host name"},
		{"IPv6 host", func(c *EmailConfig) { c.Host = "[2001:db8::25]" }, ""},
		{"port", func(c *EmailConfig) { c.Port = 70000 }, "email.port: 70000 is not a TCP port"},
		{"tls mode", func(c *EmailConfig) { c.TLS = "ssl" }, `email.tls: "ssl" is not starttls, tls or none`},
		{"no tls off loopback", func(c *EmailConfig) { c.TLS = "none" }, "email.tls: none is allowed only for a server on loopback"},
		{"no tls on loopback", func(c *EmailConfig) { c.TLS, c.Host = "none", "127.0.0.1" }, ""},
		{"no tls on localhost", func(c *EmailConfig) { c.TLS, c.Host = "none", "localhost" }, ""},
		{"no tls on ::1", func(c *EmailConfig) { c.TLS, c.Host = "none", "::1" }, ""},
		{"ca_file without tls", func(c *EmailConfig) { c.TLS, c.Host, c.CAFile = "none", "localhost", notPEM }, "email.ca_file: has no use"},
		{"ca_file missing", func(c *EmailConfig) { c.CAFile = "/nonexistent/ca.pem" }, "email.ca_file: cannot read /nonexistent/ca.pem"},
		{"ca_file not PEM", func(c *EmailConfig) { c.CAFile = notPEM }, "holds no PEM certificate"},
		{"literal password", func(c *EmailConfig) { c.Username, c.Password = "timebox", "hunter2" }, "email.password: literal secrets are refused"},
		{"unset password", func(c *EmailConfig) { c.Username, c.Password = "timebox", "env:TIMEBOX_TEST_UNSET" }, "email.password: secret env:TIMEBOX_TEST_UNSET: environment variable TIMEBOX_TEST_UNSET is not set"},
		{"password", func(c *EmailConfig) { c.Username, c.Password = "timebox", "env:TIMEBOX_TEST_SMTP_PASSWORD" }, ""},
		{"password without user", func(c *EmailConfig) { c.Password = "env:TIMEBOX_TEST_SMTP_PASSWORD" }, "email.username: required with email.password"},
		{"user without password", func(c *EmailConfig) { c.Username = "timebox" }, "email.password: required with email.username"},
		{"no from", func(c *EmailConfig) { c.From = "" }, "email.from: required"},
		{"from", func(c *EmailConfig) { c.From = "timebox at example.com" }, `email.from: "timebox at example.com" is not an address`},
		{"from with header", func(c *EmailConfig) { c.From = "a@example.com\r\nBcc: b@example.com" }, "email.from: "},
		{"to", func(c *EmailConfig) { c.To = []string{"dba@example.com", "ops"} }, `email.to[1]: "ops" is not an address`},
		{"prefix", func(c *EmailConfig) { c.SubjectPrefix = "[TB]\r\nBcc: x@example.com" }, "email.subject_prefix: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &EmailConfig{Host: "smtp.example.com", From: "timebox@example.com"}
			tc.change(c)
			_, err := openEmail("mail", c, Env{})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("openEmail: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("openEmail: %v, want %q", err, tc.want)
			case err != nil && (timebox.ErrorCode(err) != timebox.EINVALID || strings.Contains(err.Error(), "\n")):
				t.Errorf("openEmail: %v: want one EINVALID line", err)
			case err != nil && strings.Contains(err.Error(), smtpPassword):
				t.Errorf("openEmail: %v holds the password", err)
			}
		})
	}
}

func TestEmailConfigDefaults(t *testing.T) {
	var c EmailConfig
	if err := yaml.Unmarshal([]byte("host: smtp.example.com\nfrom: Timebox <timebox@example.com>\nto: [dba@example.com]\n"), &c); err != nil {
		t.Fatal(err)
	}
	s, err := openEmail("mail", &c, Env{})
	if err != nil {
		t.Fatal(err)
	}
	e := s.(*Email)
	if e.mode != emailSTARTTLS || e.port != 587 || e.prefix != "[Timebox]" || e.tls.ServerName != "smtp.example.com" {
		t.Errorf("defaults: mode %s port %d prefix %q", e.mode, e.port, e.prefix)
	}
	c.TLS = "tls"
	if s, _ = openEmail("mail", &c, Env{}); s.(*Email).port != 465 {
		t.Errorf("tls: port %d, want 465", s.(*Email).port)
	}
}

func TestEmailHostileTitleStaysOutOfHeaders(t *testing.T) {
	// go-mail (through mime.QEncoding) already writes a value with a control character as
	// an encoded word, so a CR/LF cannot start a header on the wire; the sender also turns
	// them into spaces, so the subject a mail client decodes is one line too.
	for _, tc := range []struct{ title, want string }{
		{"alice asks\r\nBcc: title@evil.example\nX-Evil: 1\r\n\r\nfake body",
			"[Timebox] alice asks Bcc: title@evil.example X-Evil: 1 fake body"},
		{"alice asks\r\nBcc: title@evil.example\r\n\r\nfake body \u2028 ünïcødé",
			"[Timebox] alice asks Bcc: title@evil.example fake body ünïcødé"},
	} {
		srv := startSMTP(t, withSTARTTLS(), withAuth(smtpPassword))
		e := openTestEmail(t, srv, nil)
		r := testRequest()
		r.Reason = "x\r\nBcc: reason@evil.example\r\n\r\n<script>alert(1)</script>"
		m := testMessage(KindNewRequest, "mail:event:9", r)
		m.Summary.Title = tc.title
		m.Summary.Links = append(m.Summary.Links, Link{"Click", "javascript:alert(1)"})
		send(t, e, m)

		got := srv.Mails()[0]
		if !slices.Equal(got.To, []string{"dba-team@example.com", "ops@example.com"}) {
			t.Errorf("envelope to %v: the title added a recipient", got.To)
		}
		msg := got.parse(t)
		for name := range msg.Header {
			if name == "Bcc" || name == "X-Evil" {
				t.Errorf("header %s came from the title", name)
			}
		}
		subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		if err != nil || subj != tc.want {
			t.Errorf("Subject = %q (%v), want %q", subj, err, tc.want)
		}
		_, html := mimeParts(t, msg)
		if strings.Contains(html, "<script>") || !strings.Contains(html, "&lt;script&gt;") {
			t.Error("the reason's markup reached the HTML part")
		}
		if strings.Contains(html, "javascript:") {
			t.Error("a javascript: link reached the HTML part")
		}
	}
}

func TestEmailWithoutSummaryOrDelivery(t *testing.T) {
	// A message the planner did not lay out (no Summary) and no outbox record (a preview):
	// the sender lays it out itself and picks a random Message-ID.
	srv := startSMTP(t, withSTARTTLS())
	e := openTestEmail(t, srv, func(c *EmailConfig) { c.Username, c.Password = "", "" })
	m := &Message{Kind: KindStoreTampered, Event: &timebox.Event{Action: "store.tampered", Actor: "timebox"}}
	res, err := e.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Mails()[0].parse(t).Header
	if h.Get("Message-Id") != res.ExternalID || h.Get("In-Reply-To") != "" {
		t.Errorf("Message-ID %q In-Reply-To %q", h.Get("Message-Id"), h.Get("In-Reply-To"))
	}
	if subj, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); !strings.Contains(subj, "STORE TAMPERED") {
		t.Errorf("Subject = %q", subj)
	}
}
