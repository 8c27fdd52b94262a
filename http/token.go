package http

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"

	"github.com/timebox-dev/timebox"
)

// tokenParams are the query parameters of GET /api/v1/tokens.
var tokenParams = []string{"user", "all"}

// TokenView is one API token as the API shows it: its ID, owner, label, times and state,
// never its secret or hash.
type TokenView struct {
	*timebox.Token
	// State is active, expired or revoked.
	State string `json:"state"`
}

// tokenList is the body of GET /api/v1/tokens.
type tokenList struct {
	Tokens []TokenView `json:"tokens"`
}

func (s *Server) tokenView(t *timebox.Token) TokenView {
	return TokenView{Token: t, State: t.State(s.now())}
}

// handleTokens lists the caller's tokens, another user's (?user=NAME) or everyone's
// (?all=true), the last two for admins and auditors.
func (s *Server) handleTokens(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	q, err := parseQuery(r, tokenParams...)
	if err != nil {
		return err
	}
	user, err := q.string("user")
	if err != nil {
		return err
	}
	all, err := q.string("all")
	switch {
	case err != nil:
		return err
	case all != "" && all != "true" && all != "false":
		return timebox.Errorf(timebox.EINVALID, "query parameter \"all\" must be true or false")
	case all == "true" && user != "":
		return timebox.Errorf(timebox.EINVALID, "give either user or all=true, not both")
	case all != "true" && user == "":
		user = u.Name
	}
	toks, err := s.Service.ListTokens(r.Context(), u.Name, user)
	if err != nil {
		return err
	}
	out := tokenList{Tokens: make([]TokenView, 0, len(toks))}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, s.tokenView(t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleRevokeToken revokes one token: the caller's own, or anyone's for an admin.
func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	id := r.PathValue("id")
	if err := checkParam("the token id", id); err != nil {
		return err
	}
	t, err := s.Service.RevokeToken(r.Context(), u.Name, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.tokenView(t))
	return nil
}

// Tokens lists the caller's API tokens; user names another user's, all asks for everyone's
// (admins and auditors).
func (c *Client) Tokens(ctx context.Context, user string, all bool) ([]TokenView, error) {
	v := url.Values{}
	setString(v, "user", user)
	if all {
		v.Set("all", "true")
	}
	var out tokenList
	if err := c.do(ctx, "GET", "/api/v1/tokens", v, nil, &out); err != nil {
		return nil, err
	}
	return out.Tokens, nil
}

// RevokeToken revokes the API token with the given ID (not its secret).
func (c *Client) RevokeToken(ctx context.Context, id string) (*TokenView, error) {
	if id == "" || id == "." || id == ".." {
		return nil, timebox.Errorf(timebox.EINVALID, "invalid token id %q", id)
	}
	var out TokenView
	if err := c.do(ctx, "POST", "/api/v1/tokens/"+url.PathEscape(id)+"/revoke", nil, struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// metricsHandler serves h, the Prometheus metrics, to callers that send MetricsToken as a
// bearer token when it is set, and to everyone otherwise.
func (s *Server) metricsHandler(h http.Handler) http.Handler {
	if s.MetricsToken == "" {
		return h
	}
	want := sha256.Sum256([]byte(s.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, err := bearerToken(r)
		if err == nil {
			// Hashing first makes the comparison constant-time in the length too.
			if got := sha256.Sum256([]byte(secret)); subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				err = timebox.Errorf(timebox.EUNAUTHORIZED, "the metrics token is not valid: send the token that metrics.token names")
			}
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}
