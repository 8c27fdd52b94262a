package console

import (
	"net/http"

	"github.com/timebox-dev/timebox"
)

// authRoutes are the sign-in page, timebox dev's one-click sign-in, and sign-out. The
// provider's flow is in oidc.go.
func (s *Server) authRoutes() []route {
	rs := []route{
		{Method: "GET", Path: "/sign-in", Public: true, h: s.handleSignInPage},
		{Method: "POST", Path: "/sign-out", Public: true, h: s.handleSignOut},
	}
	if s.DevSignIn {
		rs = append(rs, route{Method: "POST", Path: "/sign-in/dev", Public: true, h: s.handleDevSignIn})
	}
	return append(rs, s.oidcRoutes()...)
}

// signInData is what the sign-in page shows.
type signInData struct {
	Next     string
	Why      string
	Provider string // the provider's display name; "" without OIDC
	Dev      []*timebox.User
}

func (s *Server) handleSignInPage(w http.ResponseWriter, r *http.Request, c *call) error {
	next := localPath(r.URL.Query().Get("next"))
	if c.User != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return nil
	}
	d := &signInData{Next: next, Why: timebox.Clip(s.openWhy(r.URL.Query().Get("why")))}
	if s.OIDC != nil {
		d.Provider = s.OIDC.DisplayName()
	}
	if s.DevSignIn {
		d.Dev = s.Service.Catalog.People()
	}
	s.renderPre(w, r, c, http.StatusOK, "signin", "Sign in", d)
	return nil
}

// renderPre renders a page shown before sign-in, with the pre-session CSRF token.
func (s *Server) renderPre(w http.ResponseWriter, r *http.Request, c *call, status int, name, title string, data any) {
	token := s.preToken(w, r)
	s.render(w, r, &call{Zone: c.Zone, Session: &timebox.WebSession{CSRF: token}}, status, name, title, data)
}

// handleDevSignIn signs in as the configuration user the form names: timebox dev only.
func (s *Server) handleDevSignIn(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PostFormValue("user")
	secret, ws, err := s.Service.SignIn(r.Context(), &timebox.Identity{Name: name}, timebox.ViaDev, clientAddr(r))
	if err != nil {
		return err
	}
	s.startSession(w, secret, ws.ExpiresAt)
	http.Redirect(w, r, localPath(r.PostFormValue("next")), http.StatusSeeOther)
	return nil
}

// handleSignOut ends the session in the store (so a copied cookie stops working too) and
// clears the cookie.
func (s *Server) handleSignOut(w http.ResponseWriter, r *http.Request, c *call) error {
	if c.secret != "" {
		if err := s.Service.SignOut(r.Context(), c.secret); err != nil {
			return err
		}
	}
	s.endSession(w)
	http.Redirect(w, r, "/sign-in", http.StatusSeeOther)
	return nil
}

// clientAddr is the address a request came from, for the audit log.
func clientAddr(r *http.Request) string { return r.RemoteAddr }
