package timebox_test

import (
	"testing"

	"github.com/timebox-dev/timebox"
)

// TestSessionOnAnotherReplica: a person only the provider knows signs in through one
// replica; the session and the person's groups work on another replica sharing the store,
// which had not seen the sign-in; an identity edited in the store (groups widened) is not
// taken up.
func TestSessionOnAnotherReplica(t *testing.T) {
	a := newSvcEnv(t)
	a.svc.Catalog.Directory = timebox.NewDirectory()
	catB := *a.svc.Catalog
	catB.Directory = timebox.NewDirectory()
	b := timebox.NewService(a.db, &catB, a.svc.Keys)
	b.Now = a.svc.Now

	secret, _, err := a.svc.SignIn(a.ctx, &timebox.Identity{Name: "erin", Issuer: "https://idp", Subject: "s-erin",
		Groups: []string{"developers"}}, timebox.ViaOIDC, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catB.User("erin"); err == nil {
		t.Fatal("replica B knew erin before she used it (the test proves nothing)")
	}
	_, u, err := b.WebSession(a.ctx, secret)
	if err != nil {
		t.Fatalf("erin's session on replica B: %v", err)
	}
	if u.Name != "erin" || len(u.Groups) != 1 || u.Groups[0] != "developers" {
		t.Fatalf("erin on replica B = %+v", u)
	}

	// A store writer widens frank's groups after his sign-in: replica C does not take it up.
	if _, _, err := a.svc.SignIn(a.ctx, &timebox.Identity{Name: "frank", Issuer: "https://idp", Subject: "s-frank"},
		timebox.ViaOIDC, "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	a.intrude(`UPDATE identities SET groups = '["platform"]' WHERE name = 'frank'`)
	catC := *a.svc.Catalog
	catC.Directory = timebox.NewDirectory()
	c := timebox.NewService(a.db, &catC, a.svc.Keys)
	secretF, _, err := a.svc.SignIn(a.ctx, &timebox.Identity{Name: "frank", Issuer: "https://idp", Subject: "s-frank"},
		timebox.ViaOIDC, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	a.intrude(`UPDATE identities SET groups = '["platform"]' WHERE name = 'frank'`)
	if _, u, err := c.WebSession(a.ctx, secretF); err == nil {
		t.Fatalf("replica C took up an identity edited in the store: %+v", u)
	}
	if rejected, err := c.LoadDirectory(a.ctx); err != nil || len(rejected) != 1 || rejected[0] != "frank" {
		t.Fatalf("LoadDirectory rejected %v, %v; want frank", rejected, err)
	}
	if c.Catalog.IsAdmin("frank") {
		t.Fatal("frank became an admin through an edited identity")
	}
}
