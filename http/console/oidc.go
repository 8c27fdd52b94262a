package console

// OIDC signs people in through an OpenID Connect provider (the authorization code flow with
// PKCE, state and nonce).
type OIDC struct {
	Name string
}

// DisplayName is the provider's name on the sign-in button.
func (o *OIDC) DisplayName() string { return o.Name }

func (s *Server) oidcRoutes() []route { return nil }
