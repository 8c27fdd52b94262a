package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// tokenRoutes are the API tokens page: the person's tokens (everyone's for admins and
// auditors, ?all=1), making one (its secret shown once) and revoking one.
func (s *Server) tokenRoutes() []route {
	return []route{
		{Method: "GET", Path: "/tokens", h: s.handleTokens},
		{Method: "POST", Path: "/tokens", h: s.handleTokenCreate},
		{Method: "POST", Path: "/tokens/{id}/revoke", h: s.handleTokenRevoke},
	}
}

// tokensPage is the API tokens page.
type tokensPage struct {
	Tokens []tokenRow
	// All says the list is everyone's; MayAll that the person may ask for it.
	All, MayAll bool
	Form        tokenForm
	// Created is the token just made, with its secret: only on the answer to its POST.
	Created *createdToken
	Notice  string
	// DefaultTTL and MaxTTL are the lifetimes a new token gets without one, and at most.
	DefaultTTL, MaxTTL string
}

// Still keeps the page (and a secret on it) from being replaced in place.
func (*tokensPage) Still() bool { return true }

// tokenRow is one token of the list, never with its secret.
type tokenRow struct {
	*timebox.Token
	State     string
	Revocable bool
}

// tokenForm is the "new token" form as sent, and what is wrong with it.
type tokenForm struct {
	Name, Lifetime string
	Errors         map[string]string
	Problem        string
}

// createdToken is a token just made: the secret is shown this once.
type createdToken struct {
	Secret, ID, Name string
	Expires          time.Time
	// Server is the URL to give timebox login.
	Server string
}

func (s *Server) handleTokens(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := s.tokensPage(r, c, r.URL.Query().Get("all") == "1")
	if err != nil {
		return err
	}
	if r.URL.Query().Get("done") == "revoked" {
		p.Notice = "The token was revoked: it no longer signs anything in."
	}
	s.render(w, r, c, http.StatusOK, "tokens", "API tokens", p)
	return nil
}

// handleTokenCreate makes a token for the signed-in person and shows its secret once.
func (s *Server) handleTokenCreate(w http.ResponseWriter, r *http.Request, c *call) error {
	f := tokenForm{Name: strings.TrimSpace(r.PostFormValue("name")), Lifetime: strings.TrimSpace(r.PostFormValue("lifetime")), Errors: map[string]string{}}
	var ttl time.Duration
	var err error
	if f.Lifetime != "" {
		if ttl, err = timebox.ParseDuration(f.Lifetime); err != nil {
			f.Errors["lifetime"] = "lifetime: " + timebox.ErrorMessage(err)
		}
	}
	var secret string
	var t *timebox.Token
	if len(f.Errors) == 0 {
		secret, t, err = s.Service.IssueToken(r.Context(), c.User.Name, c.User.Name, f.Name, ttl)
		switch msg := timebox.ErrorMessage(err); {
		case err == nil:
		case timebox.ErrorCode(err) != timebox.EINVALID:
			return err
		case strings.HasPrefix(msg, "ttl"):
			f.Errors["lifetime"] = "lifetime" + strings.TrimPrefix(msg, "ttl")
		case strings.HasPrefix(msg, "name"):
			f.Errors["name"] = msg
		default:
			f.Problem = msg
		}
	}
	p, perr := s.tokensPage(r, c, false)
	if perr != nil {
		return perr
	}
	p.Form = f
	if t == nil {
		s.render(w, r, c, http.StatusBadRequest, "tokens", "API tokens", p)
		return nil
	}
	p.Form = tokenForm{}
	p.Created = &createdToken{Secret: secret, ID: t.ID, Name: t.Name, Expires: t.ExpiresAt, Server: s.tokenLoginServer(r)}
	s.render(w, r, c, http.StatusOK, "tokens", "New API token", p)
	return nil
}

// handleTokenRevoke revokes one token: the Service lets its owner or an admin.
func (s *Server) handleTokenRevoke(w http.ResponseWriter, r *http.Request, c *call) error {
	if _, err := s.Service.RevokeToken(r.Context(), c.User.Name, r.PathValue("id")); err != nil {
		return err
	}
	to := "/tokens?done=revoked"
	if r.PostFormValue("all") == "1" {
		to += "&all=1"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// tokensPage lists the person's tokens, or everyone's (all, when they may).
func (s *Server) tokensPage(r *http.Request, c *call, all bool) (*tokensPage, error) {
	me, cat := c.User.Name, s.Service.Catalog
	p := &tokensPage{MayAll: cat.IsAdmin(me) || cat.IsAuditor(me)}
	p.All = all && p.MayAll
	user := me
	if p.All {
		user = ""
	}
	toks, err := s.Service.ListTokens(r.Context(), me, user)
	if err != nil {
		return nil, err
	}
	now, admin := s.Service.Now(), cat.IsAdmin(me)
	for i := len(toks) - 1; i >= 0; i-- { // newest first
		t := toks[i]
		st := t.State(now)
		p.Tokens = append(p.Tokens, tokenRow{Token: t, State: st, Revocable: st == timebox.TokenActive && (t.User == me || admin)})
	}
	// The Service's defaults when the configuration sets none (see timebox.TokenPolicy).
	maxTTL, defTTL := s.Service.Tokens.MaxTTL, s.Service.Tokens.DefaultTTL
	if maxTTL <= 0 {
		maxTTL = timebox.MaxTokenTTL
	}
	if defTTL <= 0 {
		defTTL = min(timebox.DefaultTokenTTL, maxTTL)
	}
	p.DefaultTTL, p.MaxTTL = tokenDays(defTTL), tokenDays(maxTTL)
	return p, nil
}

// tokenDays writes d in whole days when it is some (30d).
func tokenDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return shortDuration(d)
}

// tokenLoginServer is the URL that timebox login is given: the console's, which serves the
// API too.
func (s *Server) tokenLoginServer(r *http.Request) string {
	if s.BaseURL != "" {
		return strings.TrimRight(s.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil || s.Secure {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
