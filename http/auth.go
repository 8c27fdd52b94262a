package http

import (
	"net/http"
	"strings"

	"github.com/timebox-dev/timebox"
)

// authenticate returns the catalog user whose bearer token r carries. EUNAUTHORIZED when the
// token is missing, unknown, or belongs to a user the catalog no longer lists or disabled;
// the store's own errors (EUNAVAILABLE, EINTERNAL) otherwise. The token itself is never
// logged or echoed.
func (s *Server) authenticate(r *http.Request) (*timebox.User, error) {
	secret, err := bearerToken(r)
	if err != nil {
		return nil, err
	}
	u, err := s.Service.Authenticate(r.Context(), secret)
	if err != nil {
		return nil, err
	}
	setUser(r, u.Name)
	return u, nil
}

// bearerToken returns the secret of r's "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", timebox.Errorf(timebox.EUNAUTHORIZED, "no token: send the header Authorization: Bearer <token>")
	}
	scheme, secret, ok := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return "", timebox.Errorf(timebox.EUNAUTHORIZED, "the Authorization header must be: Bearer <token>")
	}
	return secret, nil
}
