package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/http/console"
)

// OIDCConfig is the `oidc:` section: signing in to the console through an OpenID Connect
// provider (Keycloak, Entra ID, Okta, Google, Dex …). The provider's redirect URI for
// Timebox is <console.url>/auth/callback.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, exactly as its discovery document says it.
	Issuer string `yaml:"issuer"`
	// ClientID and ClientSecret are Timebox's registration with the provider; the secret is
	// a reference (env:NAME or file:PATH), never the secret itself.
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// Scopes replace the default openid, profile, email (and groups_scope).
	Scopes []string `yaml:"scopes"`
	// GroupsScope is a scope to ask for so that the provider sends the groups claim
	// ("groups" for Dex and Okta); none by default.
	GroupsScope string `yaml:"groups_scope"`
	// UsernameClaim names the claim that gives the Timebox user name (default
	// preferred_username).
	UsernameClaim string `yaml:"username_claim"`
	// StripEmailDomain: a username claim that is an e-mail address in this domain gives the
	// part before the @ as the name (alice@example.com → alice).
	StripEmailDomain string `yaml:"strip_email_domain"`
	// GroupsClaim names the claim that lists the person's groups (default groups).
	GroupsClaim string `yaml:"groups_claim"`
	// GroupMap maps a provider group to Timebox groups. Without it the claim's values are
	// the Timebox groups, those that are valid group names.
	GroupMap map[string]timebox.StringList `yaml:"group_map"`
	// AllowedGroups, when set, refuses the sign-in of anyone in none of these Timebox groups.
	AllowedGroups []string `yaml:"allowed_groups"`
	// DisplayName is the provider's name on the sign-in button ("Sign in with …").
	DisplayName string `yaml:"display_name"`
}

// enabled reports whether the section is set.
func (oc *OIDCConfig) enabled() bool { return oc != nil && oc.Issuer != "" }

// validate checks the oidc section. Errors name the field.
func (oc *OIDCConfig) validate(cc ConsoleConfig) error {
	if oc == nil {
		return nil
	}
	fail := func(field, format string, args ...any) error {
		return timebox.Errorf(timebox.EINVALID, "oidc.%s: %s", field, fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(oc.Issuer)
	switch {
	case oc.Issuer == "":
		return fail("issuer", "required: the provider's issuer URL, such as https://login.example.com/realms/acme")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fail("issuer", "%q is not an http(s) URL without query or credentials", timebox.Clip(oc.Issuer))
	case u.Scheme == "http" && !loopbackHost(oc.Issuer):
		return fail("issuer", "%q is plain HTTP: the provider must be reached over https (plain http only on loopback)", timebox.Clip(oc.Issuer))
	case oc.ClientID == "":
		return fail("client_id", "required: the client ID Timebox is registered with at the provider")
	}
	if err := timebox.CheckSecretRef(oc.ClientSecret); err != nil {
		return fail("client_secret", "%s", err.Error())
	}
	if len(oc.Scopes) > 0 && !slices.Contains(oc.Scopes, "openid") {
		return fail("scopes", "must include openid")
	}
	for i, s := range append(slices.Clone(oc.Scopes), oc.GroupsScope) {
		if strings.ContainsAny(s, " \t\r\n") {
			return fail("scopes", "%q (entry %d) contains a space: give one scope per entry", s, i)
		}
	}
	if strings.ContainsAny(oc.UsernameClaim+oc.GroupsClaim, " \t\r\n") {
		return fail("username_claim", "claim names contain no spaces")
	}
	if d := oc.StripEmailDomain; d != "" && (strings.Contains(d, "@") || !strings.Contains(d, ".")) {
		return fail("strip_email_domain", "%q is not a domain such as example.com", timebox.Clip(d))
	}
	keys := make([]string, 0, len(oc.GroupMap))
	for k := range oc.GroupMap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" {
			return fail("group_map", "a provider group name is empty")
		}
		for _, g := range oc.GroupMap[k] {
			if !console.GroupNamePattern.MatchString(g) {
				return fail("group_map."+k, "%q is not a Timebox group name (lowercase letters, digits, '.', '_', '-')", timebox.Clip(g))
			}
		}
	}
	for i, g := range oc.AllowedGroups {
		if g == "" {
			return fail(fmt.Sprintf("allowed_groups[%d]", i), "empty group name")
		}
	}
	if cc.URL == "" {
		return timebox.Errorf(timebox.EINVALID, "console.url: required with oidc: the provider sends people back to <console.url>/auth/callback, which must be registered with it")
	}
	return nil
}

// scopes returns the scopes to ask for.
func (oc *OIDCConfig) scopes() []string {
	if len(oc.Scopes) > 0 {
		return oc.Scopes
	}
	s := slices.Clone(console.DefaultScopes)
	if oc.GroupsScope != "" && !slices.Contains(s, oc.GroupsScope) {
		s = append(s, oc.GroupsScope)
	}
	return s
}

// newOIDC returns the console's sign-in through the provider, with the client secret
// resolved, and starts fetching the provider's discovery document in the background: a
// provider that cannot be reached now does not stop the server (the first sign-in tries
// again, and the sign-in page says what is wrong).
func (oc *OIDCConfig) newOIDC(logger *slog.Logger) (*console.OIDC, error) {
	secret, err := timebox.ResolveSecret(oc.ClientSecret)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "oidc.client_secret: %s", timebox.ErrorMessage(err))
	}
	o := &console.OIDC{Issuer: oc.Issuer, ClientID: oc.ClientID, ClientSecret: secret, Scopes: oc.scopes(),
		UsernameClaim: oc.UsernameClaim, StripEmailDomain: oc.StripEmailDomain, GroupsClaim: oc.GroupsClaim,
		AllowedGroups: oc.AllowedGroups, Name: oc.DisplayName}
	if oc.GroupMap != nil {
		o.GroupMap = map[string][]string{}
		for k, v := range oc.GroupMap {
			o.GroupMap[k] = v
		}
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := o.Discover(ctx); err != nil {
			logger.Warn("the sign-in provider cannot be reached now; the console tries again at the first sign-in", "issuer", oc.Issuer, "err", timebox.ErrorMessage(err))
		}
	}()
	return o, nil
}
