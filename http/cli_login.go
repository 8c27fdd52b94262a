package http

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// CLITokenInput is the body of POST /api/v1/cli/token: the one-time code the console gave
// `timebox login --sso` (through the browser) and the PKCE verifier of the challenge the
// CLI started with.
type CLITokenInput struct {
	Code     string `json:"code"`
	Verifier string `json:"verifier"`
}

// CLIToken is the answer of POST /api/v1/cli/token: a new API token, shown once.
type CLIToken struct {
	Token     string    `json:"token"`
	TokenID   string    `json:"token_id"`
	User      string    `json:"user"`
	ExpiresAt time.Time `json:"expires_at"`
}

// handleCLIToken exchanges a one-time code and its verifier for an API token. It is public:
// the code (single use, two minutes, bound to the verifier) is the credential.
func (s *Server) handleCLIToken(w http.ResponseWriter, r *http.Request, _ *timebox.User) error {
	var in CLITokenInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	switch {
	case in.Code == "":
		return timebox.Errorf(timebox.EINVALID, "code is required")
	case in.Verifier == "":
		return timebox.Errorf(timebox.EINVALID, "verifier is required")
	}
	secret, t, err := s.Service.RedeemCLICode(r.Context(), in.Code, in.Verifier, r.RemoteAddr)
	if err != nil {
		return err
	}
	setUser(r, t.User)
	writeJSON(w, http.StatusOK, CLIToken{Token: secret, TokenID: t.ID, User: t.User, ExpiresAt: t.ExpiresAt})
	return nil
}

// CLIToken exchanges the one-time code of `timebox login --sso` and the PKCE verifier for an
// API token. It needs no token of its own.
func (c *Client) CLIToken(ctx context.Context, code, verifier string) (*CLIToken, error) {
	b, _ := json.Marshal(CLITokenInput{Code: code, Verifier: verifier})
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimRight(c.URL, "/")+"/api/v1/cli/token", bytes.NewReader(b))
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "invalid Timebox server URL %q", c.URL)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, timebox.WrapError(timebox.EUNAVAILABLE, err, "cannot reach the Timebox server at %s: %s", c.URL, shortReason(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.responseError(resp)
	}
	var out CLIToken
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&out); err != nil || out.Token == "" {
		return nil, timebox.Errorf(timebox.EINTERNAL, "the Timebox server at %s sent an answer that is not a token", c.URL)
	}
	return &out, nil
}
