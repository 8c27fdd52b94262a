package oidcprovider_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/timebox-dev/timebox/internal/oidcprovider"
	"golang.org/x/oauth2"
)

// TestProviderIDTokenCarriesGroups: a code flow with PKCE through the provider's login form
// gives an ID token, verified by go-oidc, whose groups claim lists the user's groups.
func TestProviderIDTokenCarriesGroups(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	codes := make(chan url.Values, 1)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		codes <- r.URL.Query()
		io.WriteString(w, "ok")
	}))
	defer rp.Close()
	p, err := oidcprovider.Start(ctx, []oidcprovider.User{{Name: "carol", Password: "pw", Email: "carol@example.com", Groups: []string{"prod-owners", "dba"}}},
		"app", "app-secret", []string{rp.URL + "/cb"})
	if err != nil {
		t.Fatal(err)
	}
	provider, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	conf := &oauth2.Config{ClientID: "app", ClientSecret: "app-secret", Endpoint: provider.Endpoint(), RedirectURL: rp.URL + "/cb",
		Scopes: []string{"openid", "profile", "email"}}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.Get(conf.AuthCodeURL("the-state", oauth2.S256ChallengeOption(verifier), oidc.Nonce("the-nonce")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no login form: %s", body)
	}
	res, err = c.PostForm(p.Issuer+"/login/username", url.Values{"id": {string(m[1])}, "username": {"carol"}, "password": {"pw"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	q := <-codes
	if q.Get("state") != "the-state" || q.Get("code") == "" {
		t.Fatalf("redirect back = %v", q)
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "app"}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var claims struct {
		Nonce  string   `json:"nonce"`
		Groups []string `json:"groups"`
	}
	idt.Claims(&claims)
	if idt.Subject != oidcprovider.Subject("carol") || claims.Nonce != "the-nonce" || !slices.Equal(claims.Groups, []string{"prod-owners", "dba"}) {
		t.Fatalf("ID token: sub %q, claims %+v", idt.Subject, claims)
	}
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Email != "carol@example.com" {
		t.Fatalf("userinfo: %+v %v", ui, err)
	}
	// A replayed code is refused by the provider itself.
	if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Error("the provider exchanged the same code twice")
	}
}
