package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// hookPoster posts to a URL that is itself a secret (a Teams workflow's trigger URL embeds
// its signature; a webhook URL often carries a token): the senders of Teams and webhook
// channels share it. Nothing it returns contains the URL, its path or its query.
type hookPoster struct {
	// what names the receiver in errors ("teams workflow", "webhook").
	what   string
	url    string
	client *http.Client
	// secrets are the parts of the URL (and, for webhooks, the signing keys) that are
	// scrubbed from any text that reaches an error.
	secrets []string
}

// maxAnswer is how much of a receiver's answer is read (and, clipped, shown in an error).
const maxAnswer = 4 << 10

// openHookURL resolves ref (env:/file:) to an absolute https URL (plain http only to a
// loopback host, for tests and local relays) and returns a poster for it. Errors name field
// and never contain the URL.
func openHookURL(what, field, ref string, client *http.Client) (*hookPoster, error) {
	if ref == "" {
		return nil, timebox.Errorf(timebox.EINVALID, "%s: required: a secret reference env:NAME or file:PATH holding the URL", field)
	}
	raw, err := timebox.ResolveSecret(ref)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "%s: %s (the URL is a secret: it carries the receiver's signature or token)", field, timebox.ErrorMessage(err))
	}
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Opaque != "":
		return nil, timebox.Errorf(timebox.EINVALID, "%s: the secret %s does not hold an absolute URL", field, ref)
	case u.Host == "" || u.Hostname() == "":
		return nil, timebox.Errorf(timebox.EINVALID, "%s: the URL in %s has no host", field, ref)
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		return nil, timebox.Errorf(timebox.EINVALID, "%s: the URL in %s is plain http to %s: use https (plain http only to a loopback address)", field, ref, timebox.Clip(u.Hostname()))
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, timebox.Errorf(timebox.EINVALID, "%s: the URL in %s must be https, not %s", field, ref, timebox.Clip(u.Scheme))
	}
	p := &hookPoster{what: what, url: raw, client: noRedirects(client)}
	p.secrets = urlSecrets(raw, u)
	return p, nil
}

// urlSecrets lists what of a URL must never be shown: the whole of it, its path, its query
// and each query value, and its userinfo. Longest first, so that Scrub replaces whole values.
func urlSecrets(raw string, u *url.URL) []string {
	s := []string{raw, u.String()}
	if len(u.EscapedPath()) > 1 {
		s = append(s, u.EscapedPath(), u.Path)
	}
	if u.RawQuery != "" {
		s = append(s, u.RawQuery)
		for _, vs := range u.Query() {
			for _, v := range vs {
				if len(v) >= 6 {
					s = append(s, v, url.QueryEscape(v))
				}
			}
		}
	}
	if u.User != nil {
		s = append(s, u.User.String())
		if pw, ok := u.User.Password(); ok && pw != "" {
			s = append(s, pw)
		}
	}
	return s
}

// loopbackHost reports whether host is localhost or a loopback IP.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// noRedirects returns a copy of c (default: 15 s timeout) that does not follow redirects:
// following one would send the body, signed, to a URL nobody configured; Standard Webhooks
// treats a 3xx as a failure.
func noRedirects(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{Timeout: 15 * time.Second}
	}
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// post sends body with header and returns the receiver's answer turned into an error (nil
// for 2xx): see answerError. Transport errors are retryable and scrubbed of the URL.
func (p *hookPoster) post(ctx context.Context, header http.Header, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return 0, Permanent(fmt.Errorf("%s: cannot make the request", p.what))
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, p.transportError(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	return resp.StatusCode, p.answerError(resp.StatusCode, resp.Header, string(answer))
}

// transportError describes a failed attempt without the URL that *url.Error carries.
func (p *hookPoster) transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := timebox.Scrub(err.Error(), p.secrets)
	return fmt.Errorf("%s: %s (%s)", p.what, timebox.ConnReason(err), timebox.Clip(msg))
}

// answerError returns nil for a 2xx answer; for a redirect, a Permanent error (the
// configuration must name the URL it points to); for a 503 with Retry-After, a RetryAfter;
// otherwise HTTPError's (4xx permanent, 429 RetryAfter, others retryable). The answer's text
// is scrubbed of the URL's parts.
func (p *hookPoster) answerError(status int, h http.Header, answer string) error {
	answer = strings.TrimSpace(timebox.Scrub(answer, p.secrets))
	switch {
	case status >= 200 && status < 300:
		return nil
	case status >= 300 && status < 400:
		return Permanent(fmt.Errorf("%s: HTTP %d: the receiver redirects, and redirects are not followed: configure the URL it points to", p.what, status))
	case status == http.StatusServiceUnavailable:
		if secs, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && secs > 0 {
			return RetryAfter(time.Duration(secs)*time.Second, HTTPError(p.what, status, "", answer))
		}
	}
	return HTTPError(p.what, status, h.Get("Retry-After"), answer)
}
