package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/timebox-dev/timebox"
)

// Send writes m to the recipient of a direct message (m.Recipient's e-mail address) or to
// the channel's To list, through the SMTP server. SMTP 5xx answers (a refused recipient, a
// wrong password), a server without STARTTLS in starttls mode and a message with nowhere to
// go are permanent; 4xx answers, connection and TLS failures and time-outs are retried. The
// Result's ExternalID is the Message-ID.
func (e *Email) Send(ctx context.Context, m *Message) (Result, error) {
	to, err := e.recipients(m)
	if err != nil {
		return Result{}, err
	}
	msg, id := e.compose(m, to)
	if err := e.deliver(ctx, msg); err != nil {
		return Result{}, err
	}
	return Result{ExternalID: id}, nil
}

// recipients returns the addresses m goes to; a message with none is a permanent error.
func (e *Email) recipients(m *Message) ([]*mail.Address, error) {
	if u := m.Recipient; u != nil {
		if u.Email == "" {
			return nil, Permanent(fmt.Errorf("email: user %s has no e-mail address (set email for them in the configuration or at the identity provider)", timebox.Clip(u.Name)))
		}
		a, err := mail.ParseAddress(u.Email)
		if err != nil {
			return nil, Permanent(fmt.Errorf("email: the e-mail address of user %s, %q, is not an address", timebox.Clip(u.Name), timebox.Clip(u.Email)))
		}
		return []*mail.Address{{Name: headerText(u.Name), Address: a.Address}}, nil
	}
	if len(e.to) == 0 {
		return nil, Permanent(fmt.Errorf("email: channel %s has no email.to list for the messages to its shared destination: add email.to, or set shared: false on the routes that name it so that it sends direct messages only", e.name))
	}
	return e.to, nil
}

// deliver sends msg in one SMTP session bounded by ctx (or by Timeout when ctx has no
// deadline): cancelling ctx closes the connection at once.
func (e *Email) deliver(ctx context.Context, msg *gomail.Msg) error {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if ctx.Err() != nil || timeout <= 0 {
		return fmt.Errorf("email: %s: not tried: the time for this delivery had run out", e.addr())
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The connection is closed when ctx is done or deliver returns (cancel): this ends a
	// hung session, and also a session go-mail gave up on without QUIT (a refused STARTTLS).
	dial := func(dialCtx context.Context, network, addr string) (net.Conn, error) {
		conn, err := e.dial(dialCtx, network, addr)
		if err == nil {
			context.AfterFunc(ctx, func() { conn.Close() })
		}
		return conn, err
	}
	opts := []gomail.Option{gomail.WithPort(e.port), gomail.WithTimeout(timeout), gomail.WithDialContextFunc(dial)}
	switch e.mode {
	case emailSTARTTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(e.tls))
	default: // tls: the connection is TLS from the first byte (dial); none: plain, on loopback
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if e.username != "" {
		// PLAIN, else LOGIN (go-mail's own check refuses either without TLS off loopback),
		// else whatever else the server offers that go-mail can do.
		opts = append(opts, gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(e.username), gomail.WithPassword(e.password))
	}
	c, err := gomail.NewClient(e.host, opts...)
	if err != nil {
		return Permanent(fmt.Errorf("email: %s", e.scrub(err.Error())))
	}
	err = c.DialAndSendWithContext(ctx, msg)
	if err != nil && msg.IsDelivered() {
		// The server took the message (250 after DATA); only RSET or QUIT failed after.
		if e.env.Logger != nil {
			e.env.Logger.Debug("email: sent; closing the session failed", "channel", e.name, "err", e.scrub(err.Error()))
		}
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("email: %s: no answer within %s (%s)", e.addr(), timeout.Round(time.Millisecond), ctx.Err())
		}
		return e.failure(err)
	}
	return nil
}

// dial connects to addr; in tls mode it completes the TLS handshake before SMTP starts.
func (e *Email) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil || e.mode != emailTLS {
		return conn, err
	}
	tc := tls.Client(conn, e.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

func (e *Email) addr() string { return net.JoinHostPort(e.host, strconv.Itoa(e.port)) }

// failure turns an error of the SMTP session into Send's error: one line naming the server,
// what failed and what the server said, permanent for SMTP 5xx, never holding the password.
func (e *Email) failure(err error) error {
	code, what := 0, ""
	var tpErr *textproto.Error
	var sendErr *gomail.SendError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	text := err.Error()
	switch {
	case errors.As(err, &sendErr):
		code, text = sendErr.ErrorCode(), sendErr.Error() // "sending SMTP RCPT TO command: 550 …"
		if code == 0 && !sendErr.IsTemp() && (sendErr.Reason == gomail.ErrGetSender || sendErr.Reason == gomail.ErrGetRcpts) {
			code = 550 // the message itself is unsendable
		}
	case errors.As(err, &tpErr):
		code, text = tpErr.Code, fmt.Sprintf("%d %s", tpErr.Code, tpErr.Msg)
		what = "session refused"
		if strings.Contains(err.Error(), "SMTP AUTH failed") {
			what = "authentication failed (check email.username and email.password)"
		}
	case strings.Contains(text, "does not support STARTTLS"):
		return Permanent(fmt.Errorf("email: %s does not offer STARTTLS, and email.tls is starttls: nothing was sent (use tls for a server that speaks TLS from the first byte, on port 465)", e.addr()))
	case strings.Contains(text, "server does not support SMTP AUTH"):
		return Permanent(fmt.Errorf("email: %s does not offer SMTP AUTH (after TLS), and email.username is set: nothing was sent", e.addr()))
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr):
		return fmt.Errorf("email: %s: the server's certificate is not trusted (%s): set email.ca_file to the CA that signed it", e.addr(), e.clip(e.scrub(certText(err))))
	}
	msg := fmt.Sprintf("email: %s: %s", e.addr(), e.clip(e.scrub(text)))
	if what != "" {
		msg = fmt.Sprintf("email: %s: %s: %s", e.addr(), what, e.clip(e.scrub(text)))
	}
	if code >= 500 {
		return Permanent(errors.New(msg))
	}
	return errors.New(msg)
}

// certText is the certificate error's own words, without go-mail's prefixes.
func certText(err error) string {
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) && certErr.Err != nil {
		return certErr.Err.Error()
	}
	return err.Error()
}

// scrub removes the password, and the base64 forms AUTH PLAIN and LOGIN send it in, from s.
func (e *Email) scrub(s string) string {
	if e.password == "" {
		return s
	}
	enc := base64.StdEncoding.EncodeToString
	return timebox.Scrub(s, []string{
		enc([]byte("\x00" + e.username + "\x00" + e.password)), enc([]byte(e.username + "\x00" + e.username + "\x00" + e.password)),
		enc([]byte(e.password)), e.password,
	})
}

// clip keeps an error to one line of at most 300 bytes (a server's answer can be long).
func (e *Email) clip(s string) string {
	s = headerText(s)
	if len(s) <= 300 {
		return s
	}
	cut := 300
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
