package notify

import (
	"context"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

const mailConsole = "https://timebox.example.com/console/"

// openTestEmail opens a starttls channel to srv with AUTH and the test CA; change adjusts
// the configuration first.
func openTestEmail(t *testing.T, srv *smtpServer, change func(*EmailConfig)) *Email {
	t.Helper()
	t.Setenv("TIMEBOX_TEST_SMTP_PASSWORD", smtpPassword)
	c := &EmailConfig{Host: "127.0.0.1", Port: srv.Port, CAFile: srv.CAFile, Username: smtpUser,
		Password: "env:TIMEBOX_TEST_SMTP_PASSWORD", From: "Timebox <timebox@example.com>",
		To: []string{"dba-team@example.com", "Ops <ops@example.com>"}}
	if change != nil {
		change(c)
	}
	s, err := openEmail("mail", c, Env{ConsoleURL: mailConsole})
	if err != nil {
		t.Fatalf("openEmail: %v", err)
	}
	e := s.(*Email)
	e.Timeout = 10 * time.Second
	return e
}

func testRequest() *timebox.Request {
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Minute)
	return &timebox.Request{ID: "k3v9q2mxa7", Requester: "alice", Database: "orders", Access: "read-only",
		Start: start, End: start.Add(75 * time.Minute), Reason: "INC-42: <b>why</b> & fix", State: timebox.StateActive,
		Reviews: []timebox.Review{{Reviewer: "bob", Decision: timebox.ActionApprove}}}
}

// testMessage is a delivery of kind about r, laid out by the shared summarizer.
func testMessage(kind Kind, key string, r *timebox.Request) *Message {
	m := &Message{Kind: kind, Request: r,
		Delivery: &timebox.Delivery{ID: 7, Key: key, Channel: "mail", Kind: string(kind), RequestID: r.ID}}
	if kind != KindExpiryWarning {
		m.Event = &timebox.Event{Seq: 42, Time: time.Now().UTC(), Actor: "bob", Action: "request.approved", RequestID: r.ID, Database: r.Database}
	}
	m.Summary = summarize(m, mailConsole)
	return m
}

// send sends m and fails the test on an error.
func send(t *testing.T, e *Email, m *Message) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := e.Send(ctx, m)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	return res
}

// mimeParts checks that msg is multipart/alternative of a UTF-8 text/plain part and a UTF-8
// text/html part, in that order, and returns their decoded bodies.
func mimeParts(t *testing.T, msg *mail.Message) (text, html string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	if v := msg.Header.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version = %q", v)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pt, pp, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil || !strings.EqualFold(pp["charset"], "utf-8") {
			t.Errorf("part %q: charset %q, want UTF-8 (%v)", p.Header.Get("Content-Type"), pp["charset"], err)
		}
		var body io.Reader = p // multipart decodes quoted-printable itself
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			t.Errorf("part %s is base64; want quoted-printable", pt)
		}
		if _, ok := p.Header["Content-Transfer-Encoding"]; ok && !strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, pt)
		switch pt {
		case "text/plain":
			text = strings.ReplaceAll(string(b), "\r\n", "\n")
		case "text/html":
			html = strings.ReplaceAll(string(b), "\r\n", "\n")
		}
	}
	if !slices.Equal(types, []string{"text/plain", "text/html"}) {
		t.Fatalf("parts = %v, want [text/plain text/html]", types)
	}
	return text, html
}

func TestEmailSTARTTLSSharedList(t *testing.T) {
	srv := startSMTP(t, withSTARTTLS(), withAuth(smtpPassword))
	e := openTestEmail(t, srv, nil)
	r := testRequest()
	m := testMessage(KindExpiryWarning, "mail:warn:k3v9q2mxa7", r)
	res := send(t, e, m)

	mails := srv.Mails()
	if len(mails) != 1 {
		t.Fatalf("server received %d messages, want 1", len(mails))
	}
	got := mails[0]
	if !got.TLS {
		t.Error("the message crossed a connection without TLS")
	}
	if got.From != "timebox@example.com" || !slices.Equal(got.To, []string{"dba-team@example.com", "ops@example.com"}) {
		t.Errorf("envelope from %q to %v", got.From, got.To)
	}
	if a := srv.Authed(); !slices.Equal(a, []string{smtpUser}) {
		t.Errorf("authenticated as %v", a)
	}
	msg := got.parse(t)
	h := msg.Header
	if subj, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject")); subj != "[Timebox] "+m.Summary.Title {
		t.Errorf("Subject = %q, want %q", subj, "[Timebox] "+m.Summary.Title)
	}
	if to, _ := h.AddressList("To"); len(to) != 2 || to[0].Address != "dba-team@example.com" || to[1].Address != "ops@example.com" {
		t.Errorf("To = %q", h.Get("To"))
	}
	if from, _ := h.AddressList("From"); len(from) != 1 || from[0].Address != "timebox@example.com" || from[0].Name != "Timebox" {
		t.Errorf("From = %q", h.Get("From"))
	}
	thread := "<request-k3v9q2mxa7.timebox@example.com>"
	for name, want := range map[string]string{"Auto-Submitted": "auto-generated", "In-Reply-To": thread, "References": thread,
		"X-Auto-Response-Suppress": "All", "Message-Id": res.ExternalID} {
		if v := h.Get(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	if !strings.HasPrefix(res.ExternalID, "<timebox.") || !strings.HasSuffix(res.ExternalID, "@example.com>") {
		t.Errorf("Message-ID = %q", res.ExternalID)
	}
	if d, err := h.Date(); err != nil || time.Since(d) > time.Minute {
		t.Errorf("Date = %q (%v)", h.Get("Date"), err)
	}

	text, html := mimeParts(t, msg)
	link := "https://timebox.example.com/console/requests/k3v9q2mxa7"
	if !strings.Contains(text, m.Summary.Text()) {
		t.Errorf("text part does not hold the summary:\n%s", text)
	}
	for _, want := range []string{`href="` + link + `"`, `href="https://timebox.example.com/console/#req-k3v9q2mxa7-h"`, ">Open in Timebox</a>", ">Extend</a>",
		"INC-42: &lt;b&gt;why&lt;/b&gt; &amp; fix", "<th", ">Requester</th>", m.Summary.Status} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, html)
		}
	}
	if strings.Contains(html, "<b>why</b>") {
		t.Error("the reason reached the HTML part unescaped")
	}
}

func TestEmailMessageIDStableAcrossRetries(t *testing.T) {
	srv := startSMTP(t, withSTARTTLS(), withAuth(smtpPassword))
	e := openTestEmail(t, srv, nil)
	r := testRequest()
	first := send(t, e, testMessage(KindDecision, "mail:event:42", r))
	// The outbox tries the same delivery again (the server stopped mid-delivery): the
	// message is laid out anew, with the same key.
	again := send(t, e, testMessage(KindDecision, "mail:event:42", r))
	other := send(t, e, testMessage(KindDecision, "mail:event:43", r))
	ids := []string{}
	for _, m := range srv.Mails() {
		ids = append(ids, m.parse(t).Header.Get("Message-Id"))
	}
	if len(ids) != 3 || ids[0] != ids[1] || ids[0] != first.ExternalID || again.ExternalID != first.ExternalID {
		t.Errorf("Message-IDs of two sends of one delivery differ: %v (results %q, %q)", ids, first.ExternalID, again.ExternalID)
	}
	if ids[2] == ids[0] || other.ExternalID == first.ExternalID {
		t.Errorf("two deliveries share a Message-ID: %v", ids)
	}
	// Another installation (another console) sending the same key gets its own id.
	e2, err := openEmail("mail", &EmailConfig{Host: "127.0.0.1", From: "timebox@example.com"}, Env{ConsoleURL: "https://staging.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if id := e2.(*Email).messageID(testMessage(KindDecision, "mail:event:42", r)); "<"+id+">" == first.ExternalID {
		t.Errorf("two installations share Message-ID %s", id)
	}
}

func TestEmailDirectMessage(t *testing.T) {
	srv := startSMTP(t, withSTARTTLS(), withAuth(smtpPassword))
	e := openTestEmail(t, srv, nil)
	alice := &timebox.User{Name: "alice", Email: "alice@example.com"}
	if !e.Reaches(alice) || e.Reaches(&timebox.User{Name: "carol"}) || e.Reaches(&timebox.User{Name: "dave", Email: "not an address"}) || e.Reaches(nil) {
		t.Error("Reaches: want true only for a user with an e-mail address")
	}
	m := testMessage(KindActivation, "mail:event:42:alice", testRequest())
	m.Recipient = alice
	send(t, e, m)
	got := srv.Mails()[0]
	if !slices.Equal(got.To, []string{"alice@example.com"}) {
		t.Errorf("envelope to %v, want only alice", got.To)
	}
	h := got.parse(t).Header
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "alice@example.com" {
		t.Errorf("To = %q, want alice alone", h.Get("To"))
	}

	m.Recipient = &timebox.User{Name: "carol"}
	if _, err := e.Send(context.Background(), m); !IsPermanent(err) || !strings.Contains(err.Error(), "carol has no e-mail address") {
		t.Errorf("to a user without e-mail: %v, want a permanent error", err)
	}
	noList := openTestEmail(t, srv, func(c *EmailConfig) { c.To = nil })
	m.Recipient = nil
	if _, err := noList.Send(context.Background(), m); !IsPermanent(err) || !strings.Contains(err.Error(), "email.to") {
		t.Errorf("shared message without email.to: %v, want a permanent error naming email.to", err)
	}
	if n := len(srv.Mails()); n != 1 {
		t.Errorf("server received %d messages, want 1", n)
	}
}

func TestEmailImplicitTLS(t *testing.T) {
	srv := startSMTP(t, withImplicitTLS(), withAuth(smtpPassword))
	e := openTestEmail(t, srv, func(c *EmailConfig) { c.TLS = "tls" })
	send(t, e, testMessage(KindNewRequest, "mail:event:1", testRequest()))
	if mails := srv.Mails(); len(mails) != 1 || !mails[0].TLS {
		t.Fatalf("received %d messages (want 1, over TLS)", len(mails))
	}
	// Without the CA file the server's certificate is not trusted: nothing is sent.
	untrusted := openTestEmail(t, srv, func(c *EmailConfig) { c.TLS, c.CAFile = "tls", "" })
	_, err := untrusted.Send(context.Background(), testMessage(KindNewRequest, "mail:event:2", testRequest()))
	if err == nil || !strings.Contains(err.Error(), "email.ca_file") || srv.MailFrom() != 1 {
		t.Errorf("untrusted certificate: %v (MAIL FROM seen %d times, want 1)", err, srv.MailFrom())
	}
}

func TestEmailRefusesServerWithoutSTARTTLS(t *testing.T) {
	srv := startSMTP(t) // plain SMTP, no STARTTLS offered
	e := openTestEmail(t, srv, func(c *EmailConfig) { c.Username, c.Password = "", "" })
	_, err := e.Send(context.Background(), testMessage(KindNewRequest, "mail:event:1", testRequest()))
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Errorf("server without STARTTLS: %v, want a permanent error saying so", err)
	}
	if srv.MailFrom() != 0 || len(srv.Mails()) != 0 {
		t.Errorf("the server saw %d MAIL FROM: something was sent in clear text", srv.MailFrom())
	}
}

func TestEmailSTARTTLSVerifiesTheCertificate(t *testing.T) {
	srv := startSMTP(t, withSTARTTLS(), withAuth(smtpPassword))
	e := openTestEmail(t, srv, func(c *EmailConfig) { c.CAFile = "" }) // the system's roots
	_, err := e.Send(context.Background(), testMessage(KindNewRequest, "mail:event:1", testRequest()))
	if err == nil || !strings.Contains(err.Error(), "not trusted") || !strings.Contains(err.Error(), "email.ca_file") {
		t.Errorf("untrusted certificate after STARTTLS: %v, want an error naming email.ca_file", err)
	}
	if srv.MailFrom() != 0 || len(srv.Authed()) != 0 {
		t.Error("the client authenticated or sent without a trusted certificate")
	}
}

func TestEmailWrongPassword(t *testing.T) {
	srv := startSMTP(t, withSTARTTLS(), withAuth("the-right-one"))
	e := openTestEmail(t, srv, nil)
	_, err := e.Send(context.Background(), testMessage(KindNewRequest, "mail:event:1", testRequest()))
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "535") || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("wrong password: %v, want a permanent authentication error", err)
	}
	if strings.Contains(err.Error(), smtpPassword) || strings.Contains(err.Error(), "czNjcmV0") { // base64 of the password's start
		t.Errorf("the error holds the password: %v", err)
	}
	if len(srv.Mails()) != 0 {
		t.Error("a message was accepted without authentication")
	}
}

func TestEmailSMTPErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opt       smtpOption
		permanent bool
		want      string
	}{
		{"550 recipient", withRcptError(&smtpError550), true, "550"},
		{"451 recipient", withRcptError(&smtpError451), false, "451"},
		{"552 data", withDataError(&smtpError552), true, "552"},
		{"421 data", withDataError(&smtpError421), false, "421"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startSMTP(t, withSTARTTLS(), withAuth(smtpPassword), tc.opt)
			e := openTestEmail(t, srv, nil)
			_, err := e.Send(context.Background(), testMessage(KindNewRequest, "mail:event:1", testRequest()))
			if err == nil || IsPermanent(err) != tc.permanent || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Send: %v (permanent %v), want permanent=%v with %s on one line", err, IsPermanent(err), tc.permanent, tc.want)
			}
		})
	}
	// Nobody listens: retry later.
	srv := startSMTP(t)
	e := openTestEmail(t, srv, func(c *EmailConfig) { c.Port = 1 })
	if _, err := e.Send(context.Background(), testMessage(KindNewRequest, "mail:event:1", testRequest())); err == nil || IsPermanent(err) {
		t.Errorf("connection refused: %v, want a retryable error", err)
	}
}

func TestEmailTimeoutFromContext(t *testing.T) {
	srv := startSMTP(t, withSTARTTLS(), withAuth(smtpPassword), withHang(make(chan struct{})))
	e := openTestEmail(t, srv, nil)
	e.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.Send(ctx, testMessage(KindNewRequest, "mail:event:1", testRequest()))
	if err == nil || IsPermanent(err) {
		t.Errorf("hung server: %v, want a retryable error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %s with a 500ms context", d)
	}
	// A context already done: not tried, and retryable.
	if _, err := e.Send(ctx, testMessage(KindNewRequest, "mail:event:2", testRequest())); err == nil || IsPermanent(err) {
		t.Errorf("expired context: %v, want a retryable error", err)
	}
}

func TestEmailNoTLSOnLoopback(t *testing.T) {
	srv := startSMTP(t, withAuth(smtpPassword), withInsecureAuth())
	e := openTestEmail(t, srv, func(c *EmailConfig) { c.TLS, c.CAFile = "none", "" })
	send(t, e, testMessage(KindNewRequest, "mail:event:1", testRequest()))
	if len(srv.Mails()) != 1 {
		t.Fatal("nothing received over loopback without TLS")
	}
}
