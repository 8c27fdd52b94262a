package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// aliceProdRead is alice's usual request: prod read-only for 2h.
var aliceProdRead = timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "2h", Reason: "fix the refunds of INC-42", Ticket: "INC-42"}

func TestAccessEmpty(t *testing.T) {
	e := newEnv(t, nil)
	p := e.signIn("alice").get("/")
	txt := accessText(p.Body)
	if p.Status != http.StatusOK || !strings.Contains(txt, "No access yet.") || !strings.Contains(p.Body, `href="/requests/new">New request</a>`) ||
		!strings.Contains(txt, "You have not asked for access yet.") {
		t.Fatalf("empty My access = %d:\n%s", p.Status, txt)
	}
	if !strings.Contains(p.Body, "data-live") {
		t.Error("My access is not marked to update in place")
	}
}

// The workflow as alice sees it: she asks in the form, bob narrows and approves it (through
// the Service, as the CLI would), the scheduler activates it; her page follows each step.
func TestAccessWorkflow(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn("alice")
	b.get("/requests/new")
	p := b.post("/requests", newRequestForm())
	if p.Status != http.StatusSeeOther {
		t.Fatalf("submit = %d %s", p.Status, accessText(p.Body))
	}
	id := strings.TrimPrefix(p.Location, "/requests/")
	txt := accessText(b.get("/").Body)
	for _, want := range []string{"Nothing is active right now", "Waiting", "prod · read-only pending", "awaiting 1 of owners or admins",
		"asked for by alice", "Cancel request…"} {
		if !strings.Contains(txt, want) {
			t.Errorf("pending: My access lacks %q:\n%s", want, txt)
		}
	}
	if !strings.Contains(b.get("/").Body, `<a href="/requests/`+id+`">`+id+`</a>`) {
		t.Error("the history does not link to the request's page")
	}

	asked := e.storedRequest(id)
	end := asked.End.Add(-time.Hour)
	e.approveAs("bob", id, timebox.ApproveInput{Note: "one hour is enough", End: &end})
	txt = accessText(b.get("/").Body)
	for _, want := range []string{"prod · read-only approved", "approved by bob; changed end", `: “one hour is enough”`,
		"Asked for", "(an approver narrowed it)", "Extend…"} {
		if !strings.Contains(txt, want) {
			t.Errorf("approved: My access lacks %q:\n%s", want, txt)
		}
	}

	e.activateGrant(id, "s3cret-pass")
	p = b.get("/")
	txt = accessText(p.Body)
	if !regexp.MustCompile(`Time left (1h 0m|59m \d+s)`).MatchString(txt) {
		t.Errorf("active: no time left:\n%s", txt)
	}
	for _, want := range []string{"Active now", "Rule default", "Release…", "Extend…", "active on the database"} {
		if !strings.Contains(txt, want) {
			t.Errorf("active: My access lacks %q:\n%s", want, txt)
		}
	}
	if !strings.Contains(p.Body, `action="/requests/`+id+`/credentials"`) {
		t.Error("no Reveal credentials button on the active grant")
	}
	if strings.Contains(p.Body, "s3cret-pass") {
		t.Error("the password is on the page before it was asked for")
	}

	// An approver who narrows the tables of an ad-hoc request: both are shown.
	adhoc := e.fileRequest("alice", timebox.RequestInput{Database: "staging", Duration: "1h", Reason: "refunds",
		Tables: []timebox.TableGrant{{Table: "orders", Operations: []string{"SELECT", "UPDATE"}}, {Table: "refunds", Operations: []string{"SELECT"}}}})
	e.approveAs("carol", adhoc.ID, timebox.ApproveInput{Tables: []timebox.TableGrant{{Schema: "public", Table: "orders", Operations: []string{"SELECT"}}}})
	txt = accessText(b.get("/").Body)
	for _, want := range []string{"staging · public.orders: SELECT approved", "Tables asked for public.orders: SELECT, UPDATE; public.refunds: SELECT",
		"approved by carol; changed public.orders: removed UPDATE; removed table public.refunds"} {
		if !strings.Contains(txt, want) {
			t.Errorf("narrowed tables: My access lacks %q:\n%s", want, txt)
		}
	}
}

func TestAccessCredentials(t *testing.T) {
	e := newEnv(t, nil)
	id := e.fileRequest("alice", aliceProdRead).ID
	e.approveAs("bob", id, timebox.ApproveInput{})
	e.activateGrant(id, "s3cret-pass")

	// Others cannot fetch them by crafting the POST: bob owns prod (he sees the request),
	// stan does not (he is told it does not exist).
	for _, who := range []struct {
		user   string
		status int
	}{{"bob", http.StatusForbidden}, {"stan", http.StatusNotFound}, {"admin", http.StatusForbidden}} {
		o := e.signIn(who.user)
		o.get("/")
		p := o.post("/requests/"+id+"/credentials", nil)
		if p.Status != who.status || strings.Contains(p.Body, "s3cret-pass") || strings.Contains(p.Body, "tbx_alice_") {
			t.Errorf("%s reveals alice's credentials: %d, want %d", who.user, p.Status, who.status)
		}
	}
	b := e.signIn("alice")
	b.get("/")
	// Without the CSRF token: refused, nothing revealed or recorded.
	if p := b.post("/requests/"+id+"/credentials", url.Values{"csrf": {""}}); p.Status != http.StatusForbidden || strings.Contains(p.Body, "s3cret-pass") {
		t.Fatalf("reveal without CSRF = %d", p.Status)
	}
	if slices.Contains(e.eventActions(id), "credentials.viewed") || !e.storedRequest(id).UsedAt.IsZero() {
		t.Fatal("refused reveals were recorded as views")
	}

	p := b.post("/requests/"+id+"/credentials", nil)
	if p.Status != http.StatusOK || p.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("reveal = %d, Cache-Control %q", p.Status, p.Header.Get("Cache-Control"))
	}
	principal := "tbx_alice_" + id
	for _, want := range []string{
		`<code id="cred-password">s3cret-pass</code>`, `<code id="cred-user">` + principal + `</code>`,
		"psql -h 127.0.0.1 -p 1 -U " + principal + " -d shop", "timebox connect " + id,
		"postgres://" + principal + ":s3cret-pass@127.0.0.1:1/shop", `data-copy="cred-uri" hidden`,
	} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("revealed credentials lack %s", want)
		}
	}
	if strings.Contains(p.Body, "data-live") {
		t.Error("the credentials page would reload itself (a POST's answer has no URL to reload)")
	}
	if !slices.Contains(e.eventActions(id), "credentials.viewed") || e.storedRequest(id).UsedAt.IsZero() {
		t.Error("the reveal was not recorded")
	}
	// They are shown once: the page itself never carries them.
	if p := b.get("/"); strings.Contains(p.Body, "s3cret-pass") {
		t.Error("GET / shows the password")
	}
	// Once the request has ended, not even its owner gets them.
	if _, err := e.Svc.Release(context.Background(), "alice", id, ""); err != nil {
		t.Fatal(err)
	}
	if p := b.post("/requests/"+id+"/credentials", nil); p.Status != http.StatusConflict || strings.Contains(p.Body, "s3cret-pass") {
		t.Errorf("reveal while being released = %d", p.Status)
	}
}

func TestAccessExtend(t *testing.T) {
	e := newEnv(t, nil)
	id := e.fileRequest("alice", aliceProdRead).ID
	e.approveAs("bob", id, timebox.ApproveInput{})
	e.activateGrant(id, "pw")
	b := e.signIn("alice")
	b.get("/")
	p := b.post("/requests/"+id+"/extend", url.Values{"duration": {"a while"}, "reason": {"the migration is slow"}})
	if p.Status != http.StatusBadRequest {
		t.Fatalf("extend by 'a while' = %d", p.Status)
	}
	if got := accessFieldError(p.Body, "extend-duration-"+id); !strings.Contains(got, `invalid duration "a while"`) {
		t.Errorf("extend error = %q", got)
	}
	if !strings.Contains(p.Body, "the migration is slow</textarea>") || !strings.Contains(p.Body, `<details class="action" open>`) {
		t.Error("the refused extension form is not shown again, open, with its values")
	}
	if r := e.storedRequest(id); r.Extension != nil {
		t.Fatal("a refused extension was stored")
	}
	p = b.post("/requests/"+id+"/extend", url.Values{"duration": {"7h"}, "reason": {"more"}})
	if got := accessFieldError(p.Body, "extend-duration-"+id); !strings.Contains(got, "exceeds the prod limit") {
		t.Errorf("extend past the limit: error %q", got)
	}
	p = b.post("/requests/"+id+"/extend", url.Values{"duration": {"1h"}, "reason": {"the migration is slow"}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/?done=extend&id="+id) {
		t.Fatalf("extend = %d %q", p.Status, p.Location)
	}
	r := e.storedRequest(id)
	if r.Extension == nil || !r.Extension.End.Equal(r.End.Add(time.Hour)) {
		t.Fatalf("extension stored: %+v", r.Extension)
	}
	txt := accessText(b.get(p.Location).Body)
	for _, want := range []string{"Extension of request " + id + " asked for", "Extension to", "pending: awaiting 1 of owners or admins"} {
		if !strings.Contains(txt, want) {
			t.Errorf("after extend, My access lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(txt, "Extend…") {
		t.Error("Extend offered again while an extension is pending")
	}
	// bob cannot extend alice's request by crafting the POST.
	o := e.signIn("bob")
	o.get("/")
	if p := o.post("/requests/"+id+"/extend", url.Values{"duration": {"1h"}, "reason": {"x"}}); p.Status != http.StatusForbidden {
		t.Errorf("bob extends alice's request: %d", p.Status)
	}
}

// runs records the requests a Runner was asked to do the database work of now.
type runs struct {
	mu  sync.Mutex
	ids []string
}

func (r *runs) RunNow(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	return nil
}

func TestAccessReleaseAndCancel(t *testing.T) {
	ran := &runs{}
	e := newEnv(t, func(s *consoleServer) { s.Runner = ran })
	active := e.fileRequest("alice", aliceProdRead).ID
	e.approveAs("bob", active, timebox.ApproveInput{})
	e.activateGrant(active, "pw")
	pending := e.fileRequest("alice", timebox.RequestInput{Database: "staging", Access: "read-write", Duration: "1h", Reason: "load test"}).ID

	// Not by someone else, and not without the CSRF token.
	o := e.signIn("bob")
	o.get("/")
	if p := o.post("/requests/"+active+"/release", nil); p.Status != http.StatusForbidden {
		t.Errorf("bob releases alice's request: %d", p.Status)
	}
	if p := o.post("/requests/"+pending+"/cancel", nil); p.Status != http.StatusForbidden {
		t.Errorf("bob cancels alice's request: %d", p.Status)
	}
	b := e.signIn("alice")
	b.get("/")
	if p := b.post("/requests/"+active+"/release", url.Values{"csrf": {"stale"}}); p.Status != http.StatusForbidden {
		t.Errorf("release without a valid CSRF token = %d", p.Status)
	}
	if r := e.storedRequest(active); r.Ending != timebox.EndingNone {
		t.Fatal("a refused release changed the request")
	}
	// Release is for active requests: a pending one says to cancel instead, on the page.
	p := b.post("/requests/"+pending+"/release", nil)
	if p.Status != http.StatusConflict || !strings.Contains(accessText(p.Body), "not active: cancel it instead") {
		t.Errorf("release of a pending request = %d", p.Status)
	}

	p = b.post("/requests/"+active+"/release", url.Values{"note": {"done early"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("release = %d %s", p.Status, accessText(p.Body))
	}
	if r := e.storedRequest(active); r.Ending != timebox.EndingRelease {
		t.Fatalf("after release: ending %q", r.Ending)
	}
	if !slices.Equal(ran.ids, []string{active}) {
		t.Errorf("the runner was asked to remove %v, want [%s] (the page answers once the database had its chance)", ran.ids, active)
	}
	txt := accessText(b.get(p.Location).Body)
	if !strings.Contains(txt, "is being released") || !strings.Contains(txt, "release pending since") || !strings.Contains(txt, `released by alice: “done early”`) {
		t.Errorf("after release, My access:\n%s", txt)
	}
	p = b.post("/requests/"+pending+"/cancel", nil)
	if p.Status != http.StatusSeeOther {
		t.Fatalf("cancel = %d %s", p.Status, accessText(p.Body))
	}
	if r := e.storedRequest(pending); r.State != timebox.StateCancelled {
		t.Fatalf("after cancel: %s", r.State)
	}
}

// A viewer in Berlin sees every time in Berlin's zone, with the zone named.
func TestAccessTimeZone(t *testing.T) {
	e := newEnv(t, nil)
	id := e.fileRequest("alice", aliceProdRead).ID
	e.approveAs("bob", id, timebox.ApproveInput{})
	e.activateGrant(id, "pw")
	r := e.storedRequest(id)
	b := e.signIn("alice")
	b.inZone("Europe/Berlin")
	p := b.get("/")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	want := r.End.In(berlin).Format("2006-01-02 15:04 MST")
	if !strings.Contains(p.Body, want) || !regexp.MustCompile(`\d\d:\d\d CES?T`).MatchString(p.Body) {
		t.Errorf("My access in Berlin lacks %s", want)
	}
	if strings.Contains(p.Body, " UTC<") || strings.Contains(p.Body, r.End.UTC().Format("15:04 UTC")) {
		t.Error("My access in Berlin shows UTC times")
	}
	if !strings.Contains(p.Body, `Times are shown in <span class="zone">Europe/Berlin</span>`) {
		t.Error("the footer does not name the zone")
	}
	// An approver's changes are written by the Service in RFC 3339: shown in Berlin too.
	r2 := e.fileRequest("alice", aliceProdRead)
	end := r2.End.Add(-30 * time.Minute)
	e.approveAs("carol", r2.ID, timebox.ApproveInput{End: &end})
	txt := accessText(b.get("/").Body)
	if !strings.Contains(txt, "changed end "+r2.End.In(berlin).Format("2006-01-02 15:04:05 MST")+" → "+end.In(berlin).Format("2006-01-02 15:04:05 MST")) {
		t.Errorf("the approver's change is not in Berlin time:\n%s", txt)
	}
}
