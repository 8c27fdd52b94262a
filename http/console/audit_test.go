package console_test

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// auditScene files requests and decisions that leave events by several actors.
func auditScene(e *env) (approved, denied *timebox.Request) {
	approved = e.ask("alice", timebox.RequestInput{Database: "prod", Access: "read-only", Reason: "orders report"})
	e.approve("bob", approved.ID)
	denied = e.ask("alice", timebox.RequestInput{Database: "staging", Access: "read-write"})
	if _, err := e.Svc.Deny(context.Background(), "carol", denied.ID, "use read-only"); err != nil {
		e.t.Fatal(err)
	}
	return approved, denied
}

func TestAuditFilters(t *testing.T) {
	e := newEnv(t, nil)
	approved, denied := auditScene(e)
	b := e.signIn("audrey")
	rows := func(query string) string {
		t.Helper()
		p := b.get("/audit?" + query)
		if p.Status != http.StatusOK {
			t.Fatalf("GET /audit?%s = %d:\n%s", query, p.Status, p.Body)
		}
		return p.Body[strings.Index(p.Body, `id="events"`):]
	}
	has := func(body string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("events lack %q", w)
			}
		}
	}
	hasNot := func(body string, unwanted ...string) {
		t.Helper()
		for _, w := range unwanted {
			if strings.Contains(body, w) {
				t.Errorf("events show %q", w)
			}
		}
	}
	all := rows("")
	has(all, "request.created", "request.approved", "request.denied", "user.signed_in")
	body := rows("action=request.created")
	has(body, approved.ID, denied.ID)
	hasNot(body, "request.approved", "request.denied")
	body = rows("action=request.*&actor=bob")
	has(body, "request.approved")
	hasNot(body, "request.created", "request.denied")
	body = rows("request=" + denied.ID)
	has(body, "request.denied", "use read-only")
	hasNot(body, "request.approved")
	body = rows("database=prod&action=request.*")
	has(body, approved.ID)
	hasNot(body, denied.ID)
	// since/until in the viewer's zone.
	b.reviewZone("America/New_York")
	ny, _ := time.LoadLocation("America/New_York")
	future := time.Now().Add(time.Hour).In(ny).Format("2006-01-02 15:04")
	hasNot(rows("since="+url.QueryEscape(future)), "request.created")
	has(rows("until="+url.QueryEscape(future)), "request.created")
	has(rows("since=1h"), "request.created")
	if p := b.get("/audit?since=yesterdayish"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Since: a time") {
		t.Errorf("a bad since = %d, without the field's error", p.Status)
	}
	if p := b.get("/audit?limit=0"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "Per page: a number") {
		t.Errorf("limit=0 = %d", p.Status)
	}

	// Paged by seq: two per page, newest first, back to the start.
	seen := map[string]bool{}
	path, pages := "/audit?limit=2", 0
	for path != "" && pages < 20 {
		p := b.get(path)
		pages++
		for _, m := range regexpAll(p.Body, `<td>(\d+)</td>\s*<td><time`) {
			if seen[m] {
				t.Fatalf("event %s shown on two pages", m)
			}
			seen[m] = true
		}
		path = ""
		if m := regexpOpt(p.Body, `<a href="([^"]*)">Older events</a>`); m != "" {
			path = htmlUnescape(m)
		}
	}
	if total := len(e.allEvents(t)); len(seen) != total || !seen["1"] {
		t.Errorf("paging showed %d events in %d pages, the log has %d", len(seen), pages, total)
	}
}

func TestAuditExport(t *testing.T) {
	e := newEnv(t, nil)
	auditScene(e)
	// A sign-in failure records the name the person typed: anyone can make it a formula.
	if err := e.Svc.SignInFailed(context.Background(), `=HYPERLINK("http://evil.example","x")`, "bad password", "@10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	b := e.signIn("admin")
	p := b.get("/audit/export?format=csv")
	if p.Status != http.StatusOK || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(p.Header.Get("Content-Disposition"), `attachment; filename="timebox-audit-`) || p.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("CSV export = %d %v", p.Status, p.Header)
	}
	recs, err := csv.NewReader(strings.NewReader(p.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(recs[0], ","); got != "seq,time,actor,action,request_id,database,details,hash" {
		t.Fatalf("CSV header %q", got)
	}
	found := false
	for _, rec := range recs[1:] {
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("CSV cell %q would run as a formula", cell)
			}
		}
		if rec[3] == "user.sign_in_failed" {
			found = true
			if rec[2] != `'=HYPERLINK("http://evil.example","x")` {
				t.Errorf("the formula actor is written %q", rec[2])
			}
		}
	}
	if !found || len(recs)-1 != len(e.allEvents(t)) {
		t.Errorf("CSV has %d events (sign-in failure found: %v), the log %d", len(recs)-1, found, len(e.allEvents(t)))
	}

	// JSON, filtered like the page.
	p = b.get("/audit/export?format=json&action=request.*&actor=bob")
	var es []*timebox.Event
	if err := json.Unmarshal([]byte(p.Body), &es); err != nil || p.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON export: %v %v\n%s", err, p.Header, p.Body)
	}
	if len(es) != 1 || es[0].Action != "request.approved" || es[0].Actor != "bob" || es[0].Hash == "" {
		t.Fatalf("JSON export of bob's request events = %+v", es)
	}
	if p := b.get("/audit/export?format=json&action=nothing.matches"); strings.TrimSpace(p.Body) != "[]" {
		t.Errorf("an empty export = %q, want []", p.Body)
	}
	if p := b.get("/audit/export?format=xml"); p.Status != http.StatusBadRequest {
		t.Errorf("format=xml = %d, want 400", p.Status)
	}
}

func TestAuditOnlyForAuditorsAndAdmins(t *testing.T) {
	e := newEnv(t, nil)
	auditScene(e)
	for _, who := range []string{"alice", "bob", "stan"} {
		b := e.signIn(who)
		for _, path := range []string{"/audit", "/audit/export?format=csv", "/audit/export?format=json"} {
			if p := b.get(path); p.Status != http.StatusForbidden || strings.Contains(p.Body, "request.created") {
				t.Errorf("%s GET %s = %d, want 403 without events", who, path, p.Status)
			}
		}
		if p := b.post("/audit/verify", nil); p.Status != http.StatusForbidden {
			t.Errorf("%s POST /audit/verify = %d, want 403", who, p.Status)
		}
	}
	for _, who := range []string{"audrey", "admin"} {
		if p := e.signIn(who).get("/audit"); p.Status != http.StatusOK {
			t.Errorf("%s GET /audit = %d", who, p.Status)
		}
	}
}

func TestAuditVerification(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timebox.db")
	e := newEnvOn(t, "sqlite:///"+path, nil)
	auditScene(e)
	b := e.signIn("audrey")
	if p := b.get("/audit"); !strings.Contains(p.Body, "Not verified since this server started") {
		t.Fatalf("the audit page claims a verification before any ran")
	}
	if p := b.post("/audit/verify", url.Values{"csrf": {""}}); p.Status != http.StatusForbidden {
		t.Fatalf("verify without CSRF = %d", p.Status)
	}
	if p := b.post("/audit/verify", nil); p.Status != http.StatusSeeOther || p.Location != "/audit#verification" {
		t.Fatalf("verify = %d %q", p.Status, p.Location)
	}
	p := b.get("/audit")
	if !strings.Contains(p.Body, "Verified: the log is intact.") || !strings.Contains(p.Body, "by audrey") {
		t.Fatalf("after verifying an intact log:\n%s", p.Body)
	}
	// Someone who can write the store edits an event: the next verification says so.
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE events SET actor = 'root' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	b.post("/audit/verify", nil)
	p = b.get("/audit")
	if !strings.Contains(p.Body, "Problems found") || !strings.Contains(p.Body, "event 2: event 2 was edited") {
		t.Fatalf("after verifying an edited log:\n%s", p.Body)
	}
}
