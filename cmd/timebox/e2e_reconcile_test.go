package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox/engine/postgres"
)

// TestE2EReconcile changes the database by hand behind Timebox's back — widening a live
// grant, dropping one, leaving an orphan — and checks that one reconciler pass puts each back
// with a drift.repaired event, and leaves alone what is not Timebox's.
func TestE2EReconcile(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	ctx := context.Background()
	super, exec := e.super()
	drifts := func() int { return countActions(e.eventsAll(), "drift.repaired") }

	id := e.request("alice", "--db", "shop", "--access", "read-only", "--for", "10m", "--reason", "drift", "--ticket", "T")
	e.ok("bob", "approve", id)
	r := e.waitState("alice", id, "active", 5*time.Second)
	c := e.creds("alice", id)
	p := postgres.QuoteIdent(r.Grant.Principal)
	e.in.Scheduler.Reconcile(ctx)
	if n := drifts(); n != 0 {
		t.Fatalf("%d repairs with nothing changed", n)
	}

	// Widened by hand: no expiry and an extra role.
	extra := "extra_" + e.admin
	exec("CREATE ROLE " + postgres.QuoteIdent(extra) + " NOLOGIN")
	exec("ALTER ROLE " + p + " VALID UNTIL 'infinity'")
	exec("GRANT " + postgres.QuoteIdent(extra) + " TO " + p)
	e.in.Scheduler.Reconcile(ctx)
	var until time.Time
	var roles []string
	if err := super.QueryRow(ctx, `SELECT rolvaliduntil, ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid AND g.rolname <> $2 AND strpos(g.rolname, '_connect_') = 0)
		FROM pg_roles r WHERE rolname = $1`, r.Grant.Principal, postgres.ManagedRoleName(e.admin)).Scan(&until, &roles); err != nil {
		t.Fatal(err)
	}
	if !until.Equal(r.End) || slices.Contains(roles, extra) || len(roles) != 1 {
		t.Fatalf("after repair: valid until %v (want %v), roles %v", until, r.End, roles)
	}
	if n := drifts(); n != 1 {
		t.Fatalf("%d drift events after one widened grant", n)
	}

	// Dropped by hand: recreated with the same credentials.
	// CONNECT was granted by the admin role: revoke it as that role, then drop.
	exec("SET ROLE " + postgres.QuoteIdent(e.admin))
	exec("REVOKE CONNECT ON DATABASE " + postgres.QuoteIdent(e.db) + " FROM " + p)
	exec("RESET ROLE")
	exec("DROP ROLE " + p)
	e.in.Scheduler.Reconcile(ctx)
	conn, err := c.connect(ctx, "")
	if err != nil {
		t.Fatalf("the dropped grant was not recreated: %v", err)
	}
	conn.Close(ctx)

	// A new password set by hand: found by a login with the planned one, and put back.
	exec("ALTER ROLE " + p + " PASSWORD 'Changed-by-hand-1'")
	if _, err := c.connect(ctx, ""); err == nil {
		t.Fatal("the old password still works after the change by hand")
	}
	e.in.Scheduler.Reconcile(ctx)
	if conn, err = c.connect(ctx, ""); err != nil {
		t.Fatalf("the password changed by hand was not put back: %v", err)
	}
	conn.Close(ctx)
	if n := drifts(); n != 3 {
		t.Fatalf("%d drift events, want 3 (widened, dropped, password)", n)
	}

	// An orphan (a Timebox login the store does not know, with a session) is removed; a
	// look-alike without Timebox's mark is left alone.
	// (made the way the engine makes logins, as the admin role, as if the store lost track)
	exec("SET ROLE " + postgres.QuoteIdent(e.admin))
	exec("CREATE ROLE tbx_ghost_" + e.admin + " LOGIN PASSWORD 'Ghost-password-1'")
	exec("COMMENT ON ROLE tbx_ghost_" + e.admin + " IS 'timebox ephemeral login'")
	exec("GRANT " + postgres.QuoteIdent(postgres.ManagedRoleName(e.admin)) + " TO tbx_ghost_" + e.admin)
	exec("GRANT CONNECT ON DATABASE " + postgres.QuoteIdent(e.db) + " TO tbx_ghost_" + e.admin)
	exec("RESET ROLE")
	exec("CREATE ROLE tbx_lookalike_" + e.admin + " NOLOGIN")
	ghost, err := pgx.Connect(ctx, e.pg.URL("tbx_ghost_"+e.admin, "Ghost-password-1", e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Close(ctx)
	e.in.Scheduler.Reconcile(ctx)
	if exists, _ := e.roleExists("tbx_ghost_" + e.admin); exists {
		t.Fatal("the orphan survived the reconciler")
	}
	if _, err := ghost.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("the orphan's session survived")
	}
	if exists, _ := e.roleExists("tbx_lookalike_" + e.admin); !exists {
		t.Fatal("the reconciler dropped a role Timebox did not create")
	}
	if n := drifts(); n != 4 {
		t.Fatalf("%d drift events, want 4 (widened, dropped, password, orphan)", n)
	}
	// A login with Timebox's comment that is not in this installation's bookkeeping role
	// (another installation's, here one made by a superuser) is not an orphan of ours.
	exec("CREATE ROLE tbx_foreign_" + e.admin + " LOGIN PASSWORD 'Foreign-password-1'")
	exec("COMMENT ON ROLE tbx_foreign_" + e.admin + " IS 'timebox ephemeral login'")
	e.in.Scheduler.Reconcile(ctx)
	if exists, canLogin := e.roleExists("tbx_foreign_" + e.admin); !exists || !canLogin {
		t.Fatal("the reconciler touched a login another installation made")
	}
	if n := drifts(); n != 4 {
		t.Fatalf("%d drift events, want still 4", n)
	}
	if out := e.ok("audrey", "audit", "--verify"); !strings.Contains(out, "OK") {
		t.Fatalf("verify: %s", out)
	}
}
