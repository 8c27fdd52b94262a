package console

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/timebox-dev/timebox"
	"golang.org/x/oauth2"
)

// OIDC signs people in through an OpenID Connect provider: the authorization code flow with
// PKCE (S256), state and nonce. The state, nonce and PKCE verifier travel in a short-lived,
// sealed, HttpOnly cookie bound to the browser that started the sign-in; the store records
// each state when it is used, so a callback works once, on any replica.
//
// Set the fields before the console's Handler is made. The provider's discovery document
// is fetched at the first sign-in (or by Discover): a provider that cannot be reached does
// not stop the console, and the sign-in page says why.
type OIDC struct {
	// Issuer is the provider's issuer URL (required); ClientID and ClientSecret are the
	// console's registration with it.
	Issuer, ClientID, ClientSecret string
	// Scopes are asked for (default openid, profile, email).
	Scopes []string
	// UsernameClaim names the claim that gives the Timebox user name (default
	// preferred_username).
	UsernameClaim string
	// StripEmailDomain, when set (example.com), makes a username claim in that e-mail domain
	// (alice@example.com) the name before the @ (alice).
	StripEmailDomain string
	// GroupsClaim names the claim that lists the person's groups (default groups).
	GroupsClaim string
	// GroupMap maps a provider group to Timebox groups. Without it the claim's values are
	// Timebox groups as they are (those that are valid group names); with it, only mapped
	// groups count.
	GroupMap map[string][]string
	// AllowedGroups, when set, refuses the sign-in of anyone in none of these Timebox groups
	// (after GroupMap; groups the configuration gives the user count too).
	AllowedGroups []string
	// Name is the provider's name on the sign-in button.
	Name string
	// HTTPClient talks to the provider (default: a client with a 15s timeout).
	HTTPClient *http.Client
	// RateLimit is how many sign-ins one client address may start, and how many callbacks
	// it may send, in RateWindow (default 20 a minute); more are refused, and audited.
	RateLimit  int
	RateWindow time.Duration

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier

	limiter rateLimiter
}

// Defaults of the OIDC fields.
const (
	DefaultUsernameClaim = "preferred_username"
	DefaultGroupsClaim   = "groups"
	defaultRateLimit     = 20
	// flowTTL is how long a person has between starting a sign-in and coming back.
	flowTTL = 10 * time.Minute
)

// DefaultScopes are the scopes asked for when OIDC.Scopes is empty.
var DefaultScopes = []string{oidc.ScopeOpenID, "profile", "email"}

// DisplayName is the provider's name on the sign-in button.
func (o *OIDC) DisplayName() string {
	if o.Name != "" {
		return o.Name
	}
	return "single sign-on"
}

// GroupNamePattern is what a provider's group must look like to count as a Timebox group
// without a group map: the catalog's name rules (lowercase letters, digits, '.', '_', '-').
var GroupNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func (o *OIDC) client() *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return &http.Client{Timeout: 15 * time.Second}
}

// Discover fetches the provider's discovery document, once it succeeds. EUNAVAILABLE,
// naming the issuer and the cause, when the provider cannot be reached or answers wrong.
func (o *OIDC) Discover(ctx context.Context) error {
	_, _, err := o.discover(ctx)
	return err
}

func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, *oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, o.verifier, nil
	}
	// The provider keeps this context to fetch its signing keys later: never a request's.
	pctx := oidc.ClientContext(context.Background(), o.client())
	type result struct {
		p   *oidc.Provider
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := oidc.NewProvider(pctx, o.Issuer)
		done <- result{p, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		res.err = ctx.Err()
	}
	if res.err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(res.err, &mismatch) {
			return nil, nil, timebox.Errorf(timebox.EUNAVAILABLE, "the sign-in provider's discovery document names the issuer %q, not %q: set oidc.issuer to exactly the provider's issuer",
				timebox.Clip(mismatch.Discovered), timebox.Clip(o.Issuer))
		}
		return nil, nil, timebox.Errorf(timebox.EUNAVAILABLE, "the sign-in provider %s cannot be reached (%s): try again in a moment, or ask an admin", timebox.Clip(o.Issuer), timebox.Clip(res.err.Error()))
	}
	o.provider = res.p
	o.verifier = res.p.Verifier(&oidc.Config{ClientID: o.ClientID})
	return o.provider, o.verifier, nil
}

// oauth2Config is the code flow's configuration for the console at base.
func (o *OIDC) oauth2Config(p *oidc.Provider, base string) *oauth2.Config {
	scopes := o.Scopes
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	return &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: base + "/auth/callback", Scopes: scopes}
}

// oidcRoutes are the provider's sign-in flow (with OIDC set) and the pages that let
// `timebox login --sso` act as the signed-in person (always).
func (s *Server) oidcRoutes() []route {
	rs := s.cliRoutes()
	if s.OIDC == nil {
		return rs
	}
	return append(rs,
		route{Method: "GET", Path: "/auth/start", Public: true, h: s.handleAuthStart},
		route{Method: "GET", Path: "/auth/callback", Public: true, h: s.handleAuthCallback},
	)
}

// baseURL is the console's external URL: BaseURL, else the scheme and host r came to.
func (s *Server) baseURL(r *http.Request) string {
	if s.BaseURL != "" {
		return strings.TrimRight(s.BaseURL, "/")
	}
	scheme := "http"
	if s.Secure || r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// flow is what the sign-in cookie carries from /auth/start to /auth/callback.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
	Expires  int64  `json:"e"`
}

const flowAAD = "timebox console sign-in v1"

func (s *Server) flowCookie() string {
	if s.Secure {
		return "__Host-timebox_signin"
	}
	return "timebox_signin"
}

func (s *Server) setFlow(w http.ResponseWriter, f *flow) {
	b, _ := json.Marshal(f)
	v := base64.RawURLEncoding.EncodeToString(s.Service.Keys.Sealer().Seal(string(b), flowAAD))
	http.SetCookie(w, &http.Cookie{Name: s.flowCookie(), Value: v, Path: "/", MaxAge: int(flowTTL / time.Second),
		Secure: s.Secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// takeFlow reads and clears the sign-in cookie. It returns nil when there is none, or when
// it does not open with secret_key or has expired.
func (s *Server) takeFlow(w http.ResponseWriter, r *http.Request) *flow {
	ck, err := r.Cookie(s.flowCookie())
	if err != nil {
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: s.flowCookie(), Value: "", Path: "/", MaxAge: -1,
		Secure: s.Secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return nil
	}
	plain, err := s.Service.Keys.Sealer().Open(raw, flowAAD)
	if err != nil {
		return nil
	}
	var f flow
	if json.Unmarshal([]byte(plain), &f) != nil || f.State == "" || time.Now().Unix() > f.Expires {
		return nil
	}
	return &f
}

// handleAuthStart sends the browser to the provider, with a new state, nonce and PKCE
// challenge, to come back to next.
func (s *Server) handleAuthStart(w http.ResponseWriter, r *http.Request, c *call) error {
	next := localPath(r.URL.Query().Get("next"))
	if err := s.limit(r, "start"); err != nil {
		return s.signInError(w, r, c, next, err)
	}
	p, _, err := s.OIDC.discover(r.Context())
	if err != nil {
		s.Logger.Warn("console: sign-in provider unavailable", "err", err)
		return s.signInError(w, r, c, next, err)
	}
	f := &flow{State: timebox.RandomID(32), Nonce: timebox.RandomID(32), Verifier: oauth2.GenerateVerifier(),
		Next: next, Expires: time.Now().Add(flowTTL).Unix()}
	s.setFlow(w, f)
	u := s.OIDC.oauth2Config(p, s.baseURL(r)).AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier), oidc.Nonce(f.Nonce))
	http.Redirect(w, r, u, http.StatusFound)
	return nil
}

// handleAuthCallback completes a sign-in: it checks the state against the browser's cookie
// and the store (once only), exchanges the code with the PKCE verifier, verifies the ID
// token and its nonce, and signs the person in. Every refusal is audited.
func (s *Server) handleAuthCallback(w http.ResponseWriter, r *http.Request, c *call) error {
	f := s.takeFlow(w, r)
	next := "/"
	if f != nil {
		next = f.Next
	}
	who, err := s.completeSignIn(w, r, f)
	if err == nil {
		if c.secret != "" { // signed in again (perhaps as someone else): end the old session
			if err := s.Service.SignOut(r.Context(), c.secret); err != nil {
				s.Logger.Error("console: end the session replaced by a new sign-in", "err", err)
			}
		}
		return nil
	}
	var rl *rateLimited
	if errors.As(err, &rl) { // limit audited the first refusal of the window
		return s.signInError(w, r, c, next, err)
	}
	if aerr := s.Service.SignInFailed(r.Context(), who, timebox.ErrorMessage(err), clientAddr(r)); aerr != nil {
		return aerr
	}
	return s.signInError(w, r, c, next, err)
}

// completeSignIn does the work of the callback; it returns the claimed user name (when known)
// with the reason a sign-in is refused.
func (s *Server) completeSignIn(w http.ResponseWriter, r *http.Request, f *flow) (string, error) {
	if err := s.limit(r, "callback"); err != nil {
		return "", err
	}
	q := r.URL.Query()
	state, code := q.Get("state"), q.Get("code")
	// The state is checked before the provider's error is read: the error's words come from
	// the link, and only the provider, answering this browser's sign-in, may have them shown
	// and audited.
	switch {
	case f == nil:
		return "", timebox.Errorf(timebox.EUNAUTHORIZED, "this sign-in was not started in this browser, or took longer than %s: start again", shortDuration(flowTTL))
	case state == "" || subtle.ConstantTimeCompare([]byte(state), []byte(f.State)) != 1:
		return "", timebox.Errorf(timebox.EUNAUTHORIZED, "the provider sent back a state that does not match this browser's sign-in (a forged or altered link): start again")
	case q.Get("error") != "":
		msg := "the sign-in provider refused the sign-in (" + timebox.Clip(q.Get("error")) + ")"
		if d := q.Get("error_description"); d != "" {
			msg += ": " + timebox.Clip(d)
		}
		return "", timebox.Errorf(timebox.EUNAUTHORIZED, "%s", msg)
	case code == "":
		return "", timebox.Errorf(timebox.EUNAUTHORIZED, "the provider sent back no code: start again")
	}
	if err := s.Service.UseSignInState(r.Context(), f.State, time.Unix(f.Expires, 0)); err != nil {
		if timebox.ErrorCode(err) == timebox.ECONFLICT {
			return "", timebox.Errorf(timebox.EUNAUTHORIZED, "%s", timebox.ErrorMessage(err))
		}
		return "", err
	}
	id, err := s.OIDC.identify(r.Context(), s.baseURL(r), code, f)
	if err != nil {
		name := ""
		if id != nil {
			name = id.Name
		}
		return name, err
	}
	if err := s.allowed(id); err != nil {
		return id.Name, err
	}
	secret, ws, err := s.Service.SignIn(r.Context(), id, timebox.ViaOIDC, clientAddr(r))
	if err != nil {
		return id.Name, err
	}
	s.startSession(w, secret, ws.ExpiresAt)
	http.Redirect(w, r, localPath(f.Next), http.StatusSeeOther)
	return id.Name, nil
}

// identify exchanges code and verifies the ID token, returning the identity its claims
// name (with only Name set when the claims are refused after the name is known).
func (o *OIDC) identify(ctx context.Context, base, code string, f *flow) (*timebox.Identity, error) {
	p, v, err := o.discover(ctx)
	if err != nil {
		return nil, err
	}
	cctx := oidc.ClientContext(ctx, o.client())
	tok, err := o.oauth2Config(p, base).Exchange(cctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "the sign-in provider refused the code (%s): it was used already, expired, or was not issued to Timebox; start again", timebox.Clip(re.ErrorCode))
		}
		return nil, timebox.Errorf(timebox.EUNAVAILABLE, "the sign-in provider's token endpoint failed: start again")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "the sign-in provider sent no ID token (is the openid scope asked for?)")
	}
	idt, err := v.Verify(cctx, raw)
	if err != nil {
		var exp *oidc.TokenExpiredError
		if errors.As(err, &exp) {
			return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "the ID token expired at %s (is this server's clock right?): start again", exp.Expiry.UTC().Format(time.RFC3339))
		}
		return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "the ID token does not verify: %s", timebox.Clip(strings.TrimPrefix(err.Error(), "oidc: ")))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "the ID token's nonce does not match this sign-in (a replayed or injected token)")
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "the ID token's claims cannot be read")
	}
	if _, ok := claims[o.usernameClaim()]; !ok && p.UserInfoEndpoint() != "" {
		// Some providers keep the profile out of the ID token: ask the userinfo endpoint.
		if err := o.fillFromUserInfo(cctx, p, tok, idt.Subject, claims); err != nil {
			return nil, err
		}
	}
	return o.claimsIdentity(idt.Issuer, idt.Subject, claims)
}

// fillFromUserInfo adds the userinfo endpoint's claims that claims lacks, when that answer
// is about subject.
func (o *OIDC) fillFromUserInfo(ctx context.Context, p *oidc.Provider, tok *oauth2.Token, subject string, claims map[string]any) error {
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return timebox.Errorf(timebox.EUNAVAILABLE, "the sign-in provider's userinfo endpoint failed (the ID token has no %s claim)", o.usernameClaim())
	} else if ui.Subject != subject {
		return timebox.Errorf(timebox.EUNAUTHORIZED, "the provider's userinfo is about another subject than the ID token")
	}
	more := map[string]any{}
	if err := ui.Claims(&more); err != nil {
		return timebox.Errorf(timebox.EUNAUTHORIZED, "the provider's userinfo cannot be read")
	}
	for k, v := range more {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return nil
}

func (o *OIDC) usernameClaim() string {
	if o.UsernameClaim != "" {
		return o.UsernameClaim
	}
	return DefaultUsernameClaim
}

func (o *OIDC) groupsClaim() string {
	if o.GroupsClaim != "" {
		return o.GroupsClaim
	}
	return DefaultGroupsClaim
}

// claimsIdentity maps an ID token's claims to a Timebox identity.
func (o *OIDC) claimsIdentity(issuer, subject string, claims map[string]any) (*timebox.Identity, error) {
	raw, _ := claims[o.usernameClaim()].(string)
	if raw == "" {
		return nil, timebox.Errorf(timebox.EUNAUTHORIZED, "the ID token has no %s claim, which gives the Timebox user name (set oidc.username_claim)", o.usernameClaim())
	} else if o.usernameClaim() == "email" && claimFalse(claims["email_verified"]) {
		return nil, timebox.Errorf(timebox.EFORBIDDEN, "sign-in refused: the provider has not verified the e-mail address %q, which would give the Timebox user name", timebox.Clip(raw))
	}
	if d := o.StripEmailDomain; d != "" {
		if local, domain, ok := strings.Cut(raw, "@"); ok && strings.EqualFold(domain, strings.TrimPrefix(d, "@")) {
			raw = local
		}
	}
	name, err := timebox.NormalizeUserName(raw)
	if err != nil {
		return nil, timebox.Errorf(timebox.EFORBIDDEN, "sign-in refused: %s", timebox.ErrorMessage(err))
	}
	id := &timebox.Identity{Name: name, Issuer: issuer, Subject: subject}
	if email, _ := claims["email"].(string); email != "" && !claimFalse(claims["email_verified"]) {
		id.Email = email
	}
	id.DisplayName, _ = claims["name"].(string)
	id.DisplayName = timebox.Clip(id.DisplayName)
	id.Groups = o.mapGroups(claimStrings(claims[o.groupsClaim()]))
	return id, nil
}

// claimFalse reports whether a boolean claim says false (false or "false").
func claimFalse(v any) bool {
	switch v := v.(type) {
	case bool:
		return !v
	case string:
		return strings.EqualFold(v, "false")
	}
	return false
}

// claimStrings reads a claim that lists strings (or is one string).
func claimStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// mapGroups turns the provider's groups into Timebox groups: through GroupMap when it is
// set, else those that are valid group names (never the rules' "owners" and "admins").
func (o *OIDC) mapGroups(provider []string) []string {
	var out []string
	for _, g := range provider {
		if o.GroupMap != nil {
			out = append(out, o.GroupMap[g]...)
		} else if GroupNamePattern.MatchString(g) && g != timebox.GroupOwners && g != timebox.GroupAdmins {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// allowed refuses id when AllowedGroups is set and id (with the groups the configuration
// gives the same name) is in none of them.
func (s *Server) allowed(id *timebox.Identity) error {
	allow := s.OIDC.AllowedGroups
	if len(allow) == 0 {
		return nil
	}
	groups := slices.Clone(id.Groups)
	for _, u := range s.Service.Catalog.Users {
		if u.Name == id.Name {
			groups = append(groups, u.Groups...)
		}
	}
	if slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(allow, g) }) {
		return nil
	}
	return timebox.Errorf(timebox.EFORBIDDEN, "sign-in refused: %s is in none of the groups allowed to use Timebox (%s)", id.Name, strings.Join(allow, ", "))
}

// signInError shows the sign-in page with err, so the person can start again.
func (s *Server) signInError(w http.ResponseWriter, r *http.Request, c *call, next string, err error) error {
	status := signInStatus(err)
	if status >= 500 && timebox.ErrorCode(err) != timebox.EUNAVAILABLE {
		return err
	}
	d := &signInData{Next: next, Why: "Sign-in failed: " + strings.TrimPrefix(timebox.ErrorMessage(err), "sign-in refused: ")}
	if s.OIDC != nil {
		d.Provider = s.OIDC.DisplayName()
	}
	s.renderPre(w, r, c, status, "signin", "Sign in", d)
	return nil
}

func signInStatus(err error) int {
	var rl *rateLimited
	switch {
	case errors.As(err, &rl):
		return http.StatusTooManyRequests
	case timebox.ErrorCode(err) == timebox.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case timebox.ErrorCode(err) == timebox.EFORBIDDEN:
		return http.StatusForbidden
	case timebox.ErrorCode(err) == timebox.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case timebox.ErrorCode(err) == timebox.EINVALID:
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// rateLimited is the error of a client address over the sign-in rate limit.
type rateLimited struct{ err *timebox.Error }

func (e *rateLimited) Error() string { return e.err.Error() }
func (e *rateLimited) Unwrap() error { return e.err }

// limit counts a sign-in attempt from r's address at step (start or callback, counted
// apart, so a sign-in is one of each): over the limit it returns the error to show, and audits the first refusal of each window (so a flood is one audit event a
// minute per address, not one per request).
func (s *Server) limit(r *http.Request, step string) error {
	o := s.OIDC
	n, window := o.RateLimit, o.RateWindow
	if n <= 0 {
		n = defaultRateLimit
	}
	if window <= 0 {
		window = time.Minute
	}
	addr := hostOf(clientAddr(r))
	over, first := o.limiter.hit(step+" "+addr, n, window, time.Now())
	if !over {
		return nil
	}
	err := &rateLimited{err: timebox.Errorf(timebox.EUNAUTHORIZED, "too many sign-in attempts from %s (more than %d in %s): wait a minute and try again", addr, n, shortDuration(window))}
	if first {
		if aerr := s.Service.SignInFailed(r.Context(), "", timebox.ErrorMessage(err), clientAddr(r)); aerr != nil {
			s.Logger.Error("console: audit a rate-limited sign-in", "err", aerr)
		}
	}
	return err
}

// hostOf is the host of a host:port address (the address itself without a port).
func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 && !strings.HasSuffix(addr, "]") {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

// rateLimiter counts attempts per client address in fixed windows.
type rateLimiter struct {
	mu sync.Mutex
	m  map[string]*rateWindow
}

type rateWindow struct {
	start   time.Time
	count   int
	audited bool
}

// hit counts one attempt from addr at now; over says it is beyond n in the window, first
// that it is the first such attempt of the window.
func (l *rateLimiter) hit(addr string, n int, window time.Duration, now time.Time) (over, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*rateWindow{}
	}
	if len(l.m) > 10000 { // forget the windows that ended
		for k, w := range l.m {
			if now.Sub(w.start) >= window {
				delete(l.m, k)
			}
		}
	}
	w := l.m[addr]
	if w == nil || now.Sub(w.start) >= window {
		w = &rateWindow{start: now}
		l.m[addr] = w
	}
	w.count++
	if w.count <= n {
		return false, false
	}
	first = !w.audited
	w.audited = true
	return true, first
}
