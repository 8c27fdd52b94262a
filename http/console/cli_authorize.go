package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/timebox-dev/timebox"
)

// The pages of `timebox login --sso`: the CLI listens on 127.0.0.1:PORT and opens
// /cli/authorize?port=PORT&state=S&challenge=C&name=HOST; the signed-in person allows it
// (a CSRF-protected form); the console stores a one-time code bound to the PKCE challenge
// and sends the browser to http://127.0.0.1:PORT/callback?code=…&state=S, from where the CLI
// exchanges code and verifier for an API token (POST /api/v1/cli/token). The browser is only
// ever sent to 127.0.0.1 on the port given, never to a host the link names.

func (s *Server) cliRoutes() []route {
	return []route{
		{Method: "GET", Path: "/cli/authorize", h: s.handleCLIAuthorize},
		{Method: "POST", Path: "/cli/authorize", h: s.handleCLIDecide},
	}
}

// cliParams are the parameters of the CLI's link, and nothing else.
var cliParams = []string{"port", "state", "challenge", "name"}

var cliStatePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)

// cliRequest is what the CLI asks for.
type cliRequest struct {
	Port      int
	State     string
	Challenge string
	Name      string
}

// callback is the CLI's loopback address for the request.
func (q *cliRequest) callback(v url.Values) string {
	v.Set("state", q.State)
	return "http://127.0.0.1:" + strconv.Itoa(q.Port) + "/callback?" + v.Encode()
}

// parseCLIRequest reads and checks the CLI's parameters from v: EINVALID, naming the
// parameter, for anything else than a port on 127.0.0.1, a state, an S256 challenge and a
// host name.
func parseCLIRequest(v url.Values, form bool) (*cliRequest, error) {
	for k, vs := range v {
		if form && (k == csrfField || k == "decision") {
			continue
		}
		switch {
		case !containsString(cliParams, k):
			return nil, timebox.Errorf(timebox.EINVALID, "the CLI's link has an unknown parameter %q (the CLI only ever comes back to 127.0.0.1): run timebox login --sso again", timebox.Clip(k))
		case len(vs) != 1:
			return nil, timebox.Errorf(timebox.EINVALID, "the CLI's link gives %s more than once", k)
		}
	}
	q := &cliRequest{State: v.Get("state"), Challenge: v.Get("challenge"), Name: v.Get("name")}
	port := v.Get("port")
	n, err := strconv.Atoi(port)
	switch {
	case err != nil || strings.TrimLeft(port, "0123456789") != "" || n < 1024 || n > 65535:
		return nil, timebox.Errorf(timebox.EINVALID, "port: %q is not a port number from 1024 to 65535 (the CLI listens on 127.0.0.1 only)", timebox.Clip(port))
	case !cliStatePattern.MatchString(q.State):
		return nil, timebox.Errorf(timebox.EINVALID, "state: missing or not 16 to 128 letters, digits, '-' or '_'")
	}
	q.Port = n
	if err := timebox.CheckCLIRequest(q.Challenge, q.Name); err != nil {
		return nil, err
	}
	return q, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// cliData is what the consent page shows.
type cliData struct {
	*cliRequest
	Lasts string
}

// handleCLIAuthorize asks the signed-in person whether the CLI may act as them.
func (s *Server) handleCLIAuthorize(w http.ResponseWriter, r *http.Request, c *call) error {
	q, err := parseCLIRequest(r.URL.Query(), false)
	if err != nil {
		return err
	}
	// The Allow form's answer redirects to the CLI: form-action must allow that one address.
	w.Header().Set("Content-Security-Policy", strings.Replace(contentSecurityPolicy, "form-action 'self'",
		"form-action 'self' http://127.0.0.1:"+strconv.Itoa(q.Port), 1))
	s.render(w, r, c, http.StatusOK, "cli_authorize", "Allow the CLI", &cliData{cliRequest: q,
		Lasts: shortDuration(s.Service.Tokens.Lifetime())})
	return nil
}

// handleCLIDecide answers the consent form: on Allow it stores a one-time code and sends
// the browser back to the CLI with it; on Deny it tells the CLI so.
func (s *Server) handleCLIDecide(w http.ResponseWriter, r *http.Request, c *call) error {
	q, err := parseCLIRequest(r.PostForm, true)
	if err != nil {
		return err
	}
	switch r.PostFormValue("decision") {
	case "allow":
		code, _, err := s.Service.CreateCLICode(r.Context(), c.User.Name, q.Challenge, q.Name)
		if err != nil {
			return err
		}
		http.Redirect(w, r, q.callback(url.Values{"code": {code}}), http.StatusSeeOther)
	case "deny":
		http.Redirect(w, r, q.callback(url.Values{"error": {"access_denied"}}), http.StatusSeeOther)
	default:
		return timebox.Errorf(timebox.EINVALID, "decision: choose Allow or Deny")
	}
	return nil
}
