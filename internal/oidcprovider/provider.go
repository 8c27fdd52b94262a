// Package oidcprovider runs a real OpenID Connect provider on loopback for tests: zitadel/oidc's
// example provider (its OP, its in-memory storage and its login form, which nobody on this
// team wrote), with the users a test gives it and a groups claim in their ID tokens.
//
// It is for tests and benchmarks only: passwords are kept in memory in clear, the token
// encryption key is fixed, and the issuer is plain http on 127.0.0.1.
package oidcprovider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is one person who can sign in at the provider's login form.
type User struct {
	// Name is the login name and the preferred_username claim.
	Name     string
	Password string
	// Email is the email claim (email_verified true) when set.
	Email string
	// Groups is the groups claim.
	Groups []string
}

// Subject is the subject (sub claim) the provider gives the user named name.
func Subject(name string) string { return "sub-" + name }

// Provider is a running provider.
type Provider struct {
	// Issuer is its issuer URL (http://127.0.0.1:PORT).
	Issuer string
	srv    *http.Server
}

// Start runs a provider on 127.0.0.1 (a free port) with users and one confidential client
// (clientID, clientSecret, HTTP Basic authentication) that may redirect to redirectURIs.
// It stops when ctx ends or Close is called.
func Start(ctx context.Context, users []User, clientID, clientSecret string, redirectURIs []string) (*Provider, error) {
	if clientID == "" || clientSecret == "" || len(redirectURIs) == 0 {
		return nil, errors.New("oidcprovider: a client ID, a client secret and a redirect URI are required")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("oidcprovider: listen: %w", err)
	}
	issuer := "http://" + ln.Addr().String()
	us := &userStore{byID: map[string]*storage.User{}, groups: map[string][]string{}}
	for _, u := range users {
		if u.Name == "" || strings.ContainsAny(u.Name, " \t\n") {
			ln.Close()
			return nil, fmt.Errorf("oidcprovider: bad user name %q", u.Name)
		}
		id := Subject(u.Name)
		us.byID[id] = &storage.User{ID: id, Username: u.Name, Password: u.Password, FirstName: u.Name, LastName: "Test",
			Email: u.Email, EmailVerified: u.Email != "", PreferredLanguage: language.English}
		us.groups[id] = slices.Clone(u.Groups)
	}
	client := storage.WebClient(clientID, clientSecret, redirectURIs...)
	st := &groupStorage{Storage: storage.NewStorageWithClients(us, map[string]*storage.Client{clientID: client}), users: us}
	router := exampleop.SetupServer(issuer, st, nil, false)
	p := &Provider{Issuer: issuer, srv: &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}}
	go p.srv.Serve(ln)
	go func() {
		<-ctx.Done()
		p.Close()
	}()
	return p, nil
}

// Close stops the provider.
func (p *Provider) Close() error { return p.srv.Close() }

// userStore is the example storage's user directory, filled with the test's users.
type userStore struct {
	byID   map[string]*storage.User
	groups map[string][]string // by user ID
}

func (u *userStore) GetUserByID(id string) *storage.User { return u.byID[id] }

func (u *userStore) GetUserByUsername(name string) *storage.User {
	for _, user := range u.byID {
		if user.Username == name {
			return user
		}
	}
	return nil
}

func (u *userStore) ExampleClientID() string { return storage.ServiceUserID }

// groupStorage is the example's storage with a groups claim added to what it says of a user:
// in the ID token (SetUserinfoFromRequest) and at the userinfo endpoint
// (SetUserinfoFromToken).
type groupStorage struct {
	*storage.Storage
	users *userStore
}

var _ op.CanSetUserinfoFromRequest = (*groupStorage)(nil)

// SetUserinfoFromRequest fills the claims of an ID token.
func (s *groupStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, token, scopes); err != nil {
		return err
	}
	s.addGroups(info, token.GetSubject())
	return nil
}

// SetUserinfoFromToken fills the userinfo endpoint's answer.
func (s *groupStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	s.addGroups(info, info.Subject)
	return nil
}

func (s *groupStorage) addGroups(info *oidc.UserInfo, subject string) {
	if g, ok := s.users.groups[subject]; ok {
		info.AppendClaims("groups", slices.Clone(g))
	}
}
