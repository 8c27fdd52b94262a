package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// maxResponseBytes bounds the answer the client reads.
const maxResponseBytes = 64 << 20

// Client calls a Timebox server's API. Every error it returns is a *timebox.Error: the
// server's own code and message, EUNAVAILABLE when the server cannot be reached, and
// EUNAUTHORIZED when there is no token.
type Client struct {
	// URL is the server's base URL, such as https://timebox.example.com.
	URL string
	// Token is the caller's API token.
	Token string
	// HTTP sends the requests; NewClient sets one that does not follow redirects.
	HTTP *http.Client
}

// NewClient returns a client of the server at baseURL that authenticates with token.
func NewClient(baseURL, token string) *Client {
	return &Client{
		URL:   strings.TrimRight(baseURL, "/"),
		Token: token,
		HTTP: &http.Client{
			Timeout: runTimeout + 50*time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // the API never redirects; do not resend the token
			},
		},
	}
}

// RequestQuery selects requests. Zero fields match everything.
type RequestQuery struct {
	States   []string // any of these states
	Mine     bool     // only the caller's own requests
	Database string
	Limit    int
	// FollowUp keeps the break-glass requests whose follow-up review is open.
	FollowUp bool
}

// EventQuery selects audit events. Zero fields match everything.
type EventQuery struct {
	User      string // the actor, or the requester of the event's request
	Actor     string
	Database  string
	RequestID string
	Since     time.Time
	Until     time.Time
	Limit     int
}

// Me returns who the token belongs to.
func (c *Client) Me(ctx context.Context) (*Me, error) {
	var me Me
	if err := c.do(ctx, "GET", "/api/v1/me", nil, nil, &me); err != nil {
		return nil, err
	}
	return &me, nil
}

// Databases returns every database access can be requested to.
func (c *Client) Databases(ctx context.Context) ([]DatabaseView, error) {
	var list databaseList
	if err := c.do(ctx, "GET", "/api/v1/databases", nil, nil, &list); err != nil {
		return nil, err
	}
	return list.Databases, nil
}

// CreateRequest files a request for access and returns it, pending.
func (c *Client) CreateRequest(ctx context.Context, in timebox.RequestInput) (*RequestView, error) {
	var v RequestView
	if err := c.do(ctx, "POST", "/api/v1/requests", nil, in, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Requests returns the requests matching q that the caller may see, newest first.
func (c *Client) Requests(ctx context.Context, q RequestQuery) ([]*RequestView, error) {
	v := url.Values{}
	for _, s := range q.States {
		v.Add("state", s)
	}
	if q.Mine {
		v.Set("mine", "true")
	}
	setString(v, "database", q.Database)
	setInt(v, "limit", q.Limit)
	if q.FollowUp {
		v.Set("follow_up", "true")
	}
	var list requestList
	if err := c.do(ctx, "GET", "/api/v1/requests", v, nil, &list); err != nil {
		return nil, err
	}
	return list.Requests, nil
}

// Request returns one request.
func (c *Client) Request(ctx context.Context, id string) (*RequestView, error) {
	return c.requestCall(ctx, "GET", id, "", nil)
}

// Approve approves a pending request, optionally narrowing its window.
func (c *Client) Approve(ctx context.Context, id string, in timebox.ApproveInput) (*RequestView, error) {
	return c.requestCall(ctx, "POST", id, "/approve", in)
}

// Deny denies a pending request; note says why and is required.
func (c *Client) Deny(ctx context.Context, id, note string) (*RequestView, error) {
	return c.requestCall(ctx, "POST", id, "/deny", noteInput{Note: note})
}

// Revoke ends an approved or active request; note says why and is required.
func (c *Client) Revoke(ctx context.Context, id, note string) (*RequestView, error) {
	return c.requestCall(ctx, "POST", id, "/revoke", noteInput{Note: note})
}

// Release gives up the caller's own active request before its end.
func (c *Client) Release(ctx context.Context, id, note string) (*RequestView, error) {
	return c.requestCall(ctx, "POST", id, "/release", noteInput{Note: note})
}

// Cancel withdraws the caller's own pending or approved request.
func (c *Client) Cancel(ctx context.Context, id, note string) (*RequestView, error) {
	return c.requestCall(ctx, "POST", id, "/cancel", noteInput{Note: note})
}

// Extend asks for more time on the caller's approved or active request.
func (c *Client) Extend(ctx context.Context, id string, in timebox.ExtendInput) (*RequestView, error) {
	return c.requestCall(ctx, "POST", id, "/extend", in)
}

// CloseFollowUp closes the follow-up review of a break-glass request; note is required.
func (c *Client) CloseFollowUp(ctx context.Context, id, note string) (*RequestView, error) {
	return c.requestCall(ctx, "POST", id, "/follow-up", noteInput{Note: note})
}

// Plan returns the statements the database will run for a request.
func (c *Client) Plan(ctx context.Context, id string) (*PlanView, error) {
	path, err := requestPath(id, "/plan")
	if err != nil {
		return nil, err
	}
	var p PlanView
	if err := c.do(ctx, "GET", path, nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Explain applies the approval policy to a hypothetical request.
func (c *Client) Explain(ctx context.Context, in timebox.ExplainInput) (*timebox.Explanation, error) {
	var x timebox.Explanation
	if err := c.do(ctx, "POST", "/api/v1/policy/explain", nil, in, &x); err != nil {
		return nil, err
	}
	return &x, nil
}

// DisableUser disables a user (admins): their live requests end; it returns how many.
func (c *Client) DisableUser(ctx context.Context, name, note string) (int, error) {
	var v cascadeView
	if err := c.do(ctx, "POST", "/api/v1/users/"+url.PathEscape(name)+"/disable", nil, noteInput{Note: note}, &v); err != nil {
		return 0, err
	}
	return v.Ended, nil
}

// EnableUser lifts a disable made through the API (admins).
func (c *Client) EnableUser(ctx context.Context, name string) error {
	var v cascadeView
	return c.do(ctx, "POST", "/api/v1/users/"+url.PathEscape(name)+"/enable", nil, struct{}{}, &v)
}

// Credentials returns the login of the caller's active request.
func (c *Client) Credentials(ctx context.Context, id string) (*timebox.Credentials, error) {
	path, err := requestPath(id, "/credentials")
	if err != nil {
		return nil, err
	}
	var cred timebox.Credentials
	if err := c.do(ctx, "GET", path, nil, nil, &cred); err != nil {
		return nil, err
	}
	return &cred, nil
}

// Events returns the audit events matching q that the caller may see, in sequence order.
func (c *Client) Events(ctx context.Context, q EventQuery) ([]*timebox.Event, error) {
	v := url.Values{}
	setString(v, "user", q.User)
	setString(v, "actor", q.Actor)
	setString(v, "database", q.Database)
	setString(v, "request", q.RequestID)
	setTime(v, "since", q.Since)
	setTime(v, "until", q.Until)
	setInt(v, "limit", q.Limit)
	var list eventList
	if err := c.do(ctx, "GET", "/api/v1/audit", v, nil, &list); err != nil {
		return nil, err
	}
	return list.Events, nil
}

// VerifyAudit checks the whole audit hash chain (admins and auditors only).
func (c *Client) VerifyAudit(ctx context.Context) (*timebox.AuditVerification, error) {
	var v timebox.AuditVerification
	if err := c.do(ctx, "GET", "/api/v1/audit/verify", nil, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Status returns the database servers' health and pending work (admins and auditors only).
func (c *Client) Status(ctx context.Context) (*timebox.Status, error) {
	var st timebox.Status
	if err := c.do(ctx, "GET", "/api/v1/status", nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// AccessReport returns every period of access that overlapped [since, until). A zero until
// means now; a zero since means 30 days before until.
func (c *Client) AccessReport(ctx context.Context, since, until time.Time) ([]timebox.AccessRecord, error) {
	v := url.Values{}
	setTime(v, "since", since)
	setTime(v, "until", until)
	var report accessReport
	if err := c.do(ctx, "GET", "/api/v1/reports/access", v, nil, &report); err != nil {
		return nil, err
	}
	return report.Records, nil
}

// requestCall sends a call about request id to its path plus suffix and returns the
// request the server answers with.
func (c *Client) requestCall(ctx context.Context, method, id, suffix string, body any) (*RequestView, error) {
	path, err := requestPath(id, suffix)
	if err != nil {
		return nil, err
	}
	var v RequestView
	if err := c.do(ctx, method, path, nil, body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// requestPath returns the API path of request id plus suffix, with id escaped.
func requestPath(id, suffix string) (string, error) {
	if id == "" || id == "." || id == ".." {
		return "", timebox.Errorf(timebox.EINVALID, "invalid request id %q", id)
	}
	return "/api/v1/requests/" + url.PathEscape(id) + suffix, nil
}

// do sends one call (see newRequest) and decodes a successful answer into out.
func (c *Client) do(ctx context.Context, method, path string, v url.Values, in, out any) error {
	if c.Token == "" {
		return timebox.Errorf(timebox.EUNAUTHORIZED, "no token: an admin issues tokens (timebox admin token create --user NAME); set TIMEBOX_TOKEN or run timebox login")
	} else if c.URL == "" {
		return timebox.Errorf(timebox.EINVALID, "no Timebox server URL is configured")
	}
	req, err := c.newRequest(ctx, method, path, v, in)
	if err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return timebox.WrapError(timebox.EUNAVAILABLE, err, "cannot reach the Timebox server at %s: %s", c.URL, shortReason(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.responseError(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(out); err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return timebox.WrapError(timebox.EUNAVAILABLE, err, "cannot reach the Timebox server at %s: %s", c.URL, shortReason(err))
		}
		return timebox.WrapError(timebox.EINTERNAL, err, "the Timebox server at %s sent an answer that is not valid JSON", c.URL)
	}
	return nil
}

// newRequest builds one authenticated call: query v, and body in as JSON when not nil.
func (c *Client) newRequest(ctx context.Context, method, path string, v url.Values, in any) (*http.Request, error) {
	u := strings.TrimRight(c.URL, "/") + path
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, timebox.WrapError(timebox.EINTERNAL, err, "encode the request body")
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "invalid Timebox server URL %q", c.URL)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// responseError returns the error that a non-2xx answer carries: the server's own
// {code, message}, or one made from the status when the body is not that (a proxy's page).
func (c *Client) responseError(resp *http.Response) error {
	var e errorResponse
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(b, &e); err == nil && e.Code != "" && e.Message != "" {
		return &timebox.Error{Code: e.Code, Message: e.Message}
	}
	code := errorCode(resp.StatusCode)
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(string(b), "HTTP request to an HTTPS server") {
		return timebox.Errorf(code, "the Timebox server at %s serves HTTPS only: use an https:// URL", c.URL)
	}
	if code == timebox.EUNAVAILABLE {
		return timebox.Errorf(code, "cannot reach the Timebox server at %s: it answered %s", c.URL, resp.Status)
	}
	return timebox.Errorf(code, "the Timebox server at %s answered %s", c.URL, resp.Status)
}

// shortReason describes a transport error in a few words, without the URL the caller
// already names.
func shortReason(err error) string {
	var (
		urlErr *url.Error
		dnsErr *net.DNSError
		opErr  *net.OpError
	)
	if r := tlsReason(err); r != "" {
		return r
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timed out"
	case errors.As(err, &dnsErr):
		return "cannot resolve " + dnsErr.Name + ": " + dnsErr.Err
	case errors.As(err, &opErr):
		return opErr.Err.Error()
	case errors.As(err, &urlErr):
		return urlErr.Err.Error()
	}
	return err.Error()
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func setString(v url.Values, name, s string) {
	if s != "" {
		v.Set(name, s)
	}
}

func setInt(v url.Values, name string, n int) {
	if n != 0 {
		v.Set(name, strconv.Itoa(n))
	}
}

func setTime(v url.Values, name string, t time.Time) {
	if !t.IsZero() {
		v.Set(name, t.Format(time.RFC3339Nano))
	}
}
