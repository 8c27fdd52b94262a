package console

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"time"

	"github.com/timebox-dev/timebox"
)

const (
	// csrfField is the hidden field every console form carries.
	csrfField = "csrf"
	// preCookie holds the CSRF token of the forms shown before sign-in (double submit).
	preCookie = "timebox_pre"
)

// sessionCookie returns the name of the session cookie: __Host- prefixed when Secure, so a
// sibling subdomain cannot set it.
func (s *Server) sessionCookie() string {
	if s.Secure {
		return "__Host-timebox_session"
	}
	return "timebox_session"
}

// readSession fills c from r's session cookie. It ignores any Authorization header: API
// tokens do not sign anyone in to the console. A live update (fragment request, event
// stream) does not count as use for the idle timeout.
func (s *Server) readSession(r *http.Request, c *call) error {
	ck, err := r.Cookie(s.sessionCookie())
	if err != nil || ck.Value == "" {
		return timebox.Errorf(timebox.EUNAUTHORIZED, "you are not signed in")
	}
	check := s.Service.WebSession
	if r.Header.Get(fragmentHeader) != "" || r.URL.Path == "/events" {
		check = s.Service.PeekWebSession // the page updating itself is not the person using it
	}
	ws, u, err := check(r.Context(), ck.Value)
	if err != nil {
		return err
	}
	c.User, c.Session, c.secret = u, ws, ck.Value
	return nil
}

// startSession sets the session cookie for secret, which lasts until expires.
func (s *Server) startSession(w http.ResponseWriter, secret string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: s.sessionCookie(), Value: secret, Path: "/", Expires: expires,
		Secure: s.Secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// endSession clears the session cookie.
func (s *Server) endSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: s.sessionCookie(), Value: "", Path: "/", MaxAge: -1,
		Secure: s.Secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// csrfToken returns the CSRF token r's forms must carry: the session's, or before sign-in
// the pre-session cookie's ("" when there is neither).
func (s *Server) csrfToken(r *http.Request, c *call) string {
	if c.Session != nil {
		return c.Session.CSRF
	}
	if ck, err := r.Cookie(preCookie); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	return ""
}

// preToken returns the pre-session CSRF token for a page shown before sign-in, setting its
// cookie when r has none.
func (s *Server) preToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(preCookie); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	v := timebox.RandomID(32)
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: v, Path: "/", Secure: s.Secure, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return v
}

// toSignIn redirects a GET without a (live) session to the sign-in page, which says why
// and comes back to where the person was going.
func (s *Server) toSignIn(w http.ResponseWriter, r *http.Request, why error) {
	q := url.Values{"next": {r.URL.RequestURI()}}
	if c := timebox.ErrorMessage(why); c != "" && r.URL.Path != "/" {
		q.Set("why", s.sealWhy(c))
	}
	http.Redirect(w, r, "/sign-in?"+q.Encode(), http.StatusSeeOther)
}

const whyAAD = "timebox console sign-in reason v1"

// sealWhy seals the reason the sign-in page shows, so that only Timebox's own reasons are
// shown there: a link's own words ("Timebox has moved: sign in at …") are not.
func (s *Server) sealWhy(why string) string {
	return base64.RawURLEncoding.EncodeToString(s.Service.Keys.Sealer().Seal(why, whyAAD))
}

// openWhy returns the reason sealed by sealWhy, or "" for anything else.
func (s *Server) openWhy(v string) string {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || v == "" {
		return ""
	}
	why, err := s.Service.Keys.Sealer().Open(raw, whyAAD)
	if err != nil {
		return ""
	}
	return why
}

// localPath returns next when it is a path on this console (so a sign-in never redirects
// elsewhere), else "/".
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || next[0] != '/' || (len(next) > 1 && (next[1] == '/' || next[1] == '\\')) || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return u.RequestURI()
}
