package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// reporter answers a fixed status, as the scheduler's Status would.
type reporter struct{ st *timebox.Status }

func (r reporter) Status(context.Context) (*timebox.Status, error) { return r.st, nil }

func TestServersPage(t *testing.T) {
	down := false
	st := &timebox.Status{Leader: true, Servers: []timebox.ServerStatus{{
		Name: "pg1", Engine: timebox.EnginePostgres, Reachable: &down, LastError: "connection refused",
		LastErrorAt: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Active: 2, Removing: 1, Retrying: 1, NoBackstop: 1,
		Problems: []string{"request abc (tbx_abc): removal retrying: connection refused"},
	}}, Tampered: []timebox.TamperedRequest{{ID: "tamp1", Requester: "alice", Database: "prod", State: timebox.StateRevoked, Fields: "decision"}}}
	e := newEnv(t, func(s *consoleServer) { s.Reporter = reporter{st} })
	err := e.DB.Update(context.Background(), func(tx timebox.Tx) error {
		return tx.AppendEvent(&timebox.Event{Time: time.Now(), Actor: timebox.Actor, Action: "drift.repaired",
			Details: map[string]any{"kind": "login_locked", "principal": "tbx_stray", "server": "pg1"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"alice", "bob", "audrey", "stan"} {
		if p := e.signIn(who).get("/servers"); p.Status != http.StatusForbidden || strings.Contains(p.Body, "connection refused") {
			t.Errorf("%s GET /servers = %d, want 403", who, p.Status)
		}
	}
	b := e.signIn("admin")
	b.reviewZone("Asia/Tokyo")
	p := b.get("/servers")
	if p.Status != http.StatusOK {
		t.Fatalf("admin GET /servers = %d:\n%s", p.Status, p.Body)
	}
	for _, want := range []string{`<strong class="error">NO</strong>`, "connection refused", "2026-01-02 12:04 JST", "prod, staging",
		"127.0.0.1:1", "removal retrying", "TAMPERED: 1 request", `href="/requests/tamp1"`, "drift.repaired", "tbx_stray", "timebox doctor --config FILE"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("the servers page lacks %q", want)
		}
	}

	// Without a scheduler, the page says that nothing is known rather than failing.
	e2 := newEnv(t, nil)
	if p := e2.signIn("admin").get("/servers"); p.Status != http.StatusOK || !strings.Contains(p.Body, "runs no scheduler") || !strings.Contains(p.Body, "pg1") {
		t.Fatalf("servers page without a reporter = %d:\n%s", p.Status, p.Body)
	}
}

func TestUsersPage(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	// olga signs in through the provider; the configuration does not list her. (The
	// directory is told first: on main a first sign-in is refused, fixed on the oidc branch.)
	olgaID := &timebox.Identity{Name: "olga", Issuer: "https://idp.example", Subject: "sub-olga",
		Email: "olga@example.com", DisplayName: "Olga K", Groups: []string{"prod-owners"}}
	e.Svc.Catalog.Directory.Put(olgaID)
	_, ws, err := e.Svc.SignIn(ctx, olgaID, timebox.ViaOIDC, "10.0.0.9")
	if err != nil {
		t.Fatal(err)
	}
	e.signIn("alice") // a configuration user's dev sign-in, known from the audit log

	for _, who := range []string{"alice", "bob", "stan"} {
		if p := e.signIn(who).get("/users"); p.Status != http.StatusForbidden || strings.Contains(p.Body, "olga") {
			t.Errorf("%s GET /users = %d, want 403", who, p.Status)
		}
	}
	audrey := e.signIn("audrey")
	if p := audrey.get("/users"); p.Status != http.StatusOK || !strings.Contains(p.Body, "olga") || strings.Contains(p.Body, "/disable\"") {
		t.Errorf("the auditor's People page = %d, lacks olga or offers to disable", p.Status)
	}

	admin := e.signIn("admin")
	admin.reviewZone("Europe/Berlin")
	p := admin.get("/users")
	olga := rowOf(t, p.Body, "olga")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, want := range []string{"olga@example.com", "Olga K", "prod-owners", "provider", ws.CreatedAt.In(berlin).Format("2006-01-02 15:04 MST")} {
		if !strings.Contains(olga, want) {
			t.Errorf("olga's row lacks %q:\n%s", want, olga)
		}
	}
	if alice := rowOf(t, p.Body, "alice"); !strings.Contains(alice, "configuration") || strings.Contains(alice, "never") {
		t.Errorf("alice's row does not show her last sign-in:\n%s", alice)
	}
	if carol := rowOf(t, p.Body, "carol"); !strings.Contains(carol, "never") {
		t.Errorf("carol never signed in:\n%s", carol)
	}
	if own := rowOf(t, p.Body, "admin"); strings.Contains(own, "/disable\"") {
		t.Errorf("the admin is offered to disable themselves")
	}

	// Disable needs a note: the refusal is next to stan's form.
	p = admin.post("/users/stan/disable", url.Values{"note": {""}})
	if p.Status != http.StatusBadRequest || !strings.Contains(rowOf(t, p.Body, "stan"), "note is required") {
		t.Fatalf("disable without a note = %d:\n%s", p.Status, p.Body)
	}
	// alice crafts the POST: refused by the Service.
	if p := e.signIn("alice").post("/users/stan/disable", url.Values{"note": {"x"}}); p.Status != http.StatusForbidden {
		t.Fatalf("alice disabling stan = %d, want 403", p.Status)
	}
	if p := admin.post("/users/stan/disable", url.Values{"note": {"left the company"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("disable stan = %d:\n%s", p.Status, p.Body)
	}
	list, err := e.Svc.DisabledUsers(ctx, "admin")
	if err != nil || len(list) != 1 || list[0].Name != "stan" || list[0].By != "admin" {
		t.Fatalf("disabled users = %+v, %v", list, err)
	}
	if stan := rowOf(t, admin.get("/users").Body, "stan"); !strings.Contains(stan, "by admin") || !strings.Contains(stan, "left the company") || !strings.Contains(stan, "/users/stan/enable") {
		t.Errorf("stan's row after disabling:\n%s", stan)
	}
	if p := admin.post("/users/stan/enable", nil); p.Status != http.StatusSeeOther {
		t.Fatalf("enable stan = %d", p.Status)
	}
	if list, _ := e.Svc.DisabledUsers(ctx, "admin"); len(list) != 0 {
		t.Fatalf("still disabled after enabling: %+v", list)
	}
	if p := admin.post("/users/nobody/disable", url.Values{"note": {"x"}}); p.Status != http.StatusNotFound {
		t.Errorf("disable an unknown user = %d, want 404", p.Status)
	}
}

// rowOf returns the table row of user on a People page.
func rowOf(t testing.TB, body, user string) string {
	t.Helper()
	i := strings.Index(body, `<tr id="user-`+user+`">`)
	if i < 0 {
		t.Fatalf("no row for %s", user)
	}
	j := strings.Index(body[i:], "</tr>")
	return body[i : i+j]
}
