package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// newRequestForm is a valid new-request form for prod read-only, changed by the pairs
// (name, value) given.
func newRequestForm(pairs ...string) url.Values {
	v := url.Values{"database": {"prod"}, "access": {"read-only"}, "window": {"duration"}, "duration": {"2h"},
		"reason": {"fix the refunds of INC-42"}, "ticket": {"INC-42"}, "action": {"submit"}}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Set(pairs[i], pairs[i+1])
	}
	return v
}

func TestNewRequestPage(t *testing.T) {
	e := newEnv(t, nil)
	p := e.signIn("alice").get("/requests/new")
	if p.Status != http.StatusOK {
		t.Fatalf("GET /requests/new = %d", p.Status)
	}
	for _, want := range []string{
		`<legend>prod</legend>`, `<legend>staging</legend>`, // grouped by environment
		`id="db-prod" value="prod"`, `id="db-staging" value="staging"`,
		`data-filter="db-list"`, `<div class="db-filter" hidden>`, // the filter needs the script: hidden without it
		`<option value="read-only"`, `<option value="read-write"`, `<option value="ad-hoc"`,
		`type="datetime-local" id="start"`, `type="datetime-local" id="end"`,
		`name="action" value="check"`, `name="action" value="submit"`, `name="csrf" value="`,
		`Times are in your time zone, UTC.`,
	} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("new request page lacks %s", want)
		}
	}
	if strings.Contains(p.Body, `name="break_glass"`) {
		t.Error("break-glass offered to alice, who is in no break-glass group")
	}
	if strings.Contains(p.Body, "data-live") {
		t.Error("the form is marked live: an update in place would wipe what is being typed")
	}
}

func TestNewRequestPreview(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn("alice")
	b.get("/requests/new")
	p := b.post("/requests", newRequestForm("action", "check"))
	if p.Status != http.StatusOK {
		t.Fatalf("check = %d %s", p.Status, p.Body)
	}
	txt := accessText(p.Body)
	for _, want := range []string{
		"What the policy says", "Nothing was filed", "Rule default applies: approval takes",
		"1 of owners or admins", "Who can approve bob, carol, admin",
		"prod databases: a window of at most 8h0m0s", "Ticket optional",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("preview lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(p.Body, `class="field-error"`) {
		t.Errorf("a valid request's preview shows an error: %s", txt)
	}
	// The values are kept in the form.
	if !strings.Contains(p.Body, `value="prod" checked`) || !strings.Contains(p.Body, `fix the refunds of INC-42</textarea>`) {
		t.Error("the checked form lost its values")
	}
	// Too long for prod: said next to the duration, and nothing is stored.
	p = b.post("/requests", newRequestForm("action", "check", "duration", "10h"))
	if got := accessFieldError(p.Body, "duration"); !strings.Contains(got, "exceeds the prod limit of 8h") {
		t.Errorf("duration error = %q, want the prod limit", got)
	}
	if !strings.Contains(accessText(p.Body), "Would be refused: duration 10h0m0s exceeds the prod limit") {
		t.Error("the preview does not say it would be refused")
	}
	if rs := e.storedRequests(); len(rs) != 0 {
		t.Fatalf("a check stored %d requests", len(rs))
	}
}

func TestNewRequestPreviewRules(t *testing.T) {
	e := newEnv(t, nil)
	e.withCatalog(func(c *timebox.Catalog) {
		c.Rules = []timebox.Rule{
			{Name: "prod-change", Match: timebox.RuleMatch{Environment: timebox.StringList{"prod"}}, Ticket: `^(INC|CHG)-[0-9]+$`,
				Approvers: timebox.Approvers{{Groups: timebox.StringList{"prod-owners"}, Count: 2}}},
			{Name: "staging", Match: timebox.RuleMatch{Environment: timebox.StringList{"staging"}}},
		}
		c.Limits = map[string]timebox.Limits{"prod": {MaxDuration: timebox.Duration(4 * time.Hour), RequireTicket: true}}
	})
	b := e.signIn("alice")
	b.get("/requests/new")
	p := b.post("/requests", newRequestForm("action", "check", "ticket", "see slack"))
	txt := accessText(p.Body)
	for _, want := range []string{"Rule prod-change applies", "2 of prod-owners", "Who can approve bob, carol",
		"must match ^(INC|CHG)-[0-9]+$", `environment is "prod", not staging`, "a ticket is required"} {
		if !strings.Contains(txt, want) {
			t.Errorf("preview lacks %q:\n%s", want, txt)
		}
	}
	if got := accessFieldError(p.Body, "ticket"); !strings.Contains(got, `ticket "see slack" does not match`) {
		t.Errorf("ticket error = %q", got)
	}
	// No ticket at all: the environment requires one.
	p = b.post("/requests", newRequestForm("action", "check", "ticket", ""))
	if got := accessFieldError(p.Body, "ticket"); !strings.Contains(got, "requires a ticket") && !strings.Contains(got, "a ticket is required") {
		t.Errorf("missing ticket error = %q", got)
	}
}

func TestNewRequestBadInput(t *testing.T) {
	e := newEnv(t, nil)
	e.withCatalog(func(c *timebox.Catalog) {
		c.Rules = []timebox.Rule{{Name: "prod-change", Ticket: `^INC-[0-9]+$`}}
	})
	b := e.signIn("alice")
	b.get("/requests/new")
	for _, tc := range []struct {
		name, field, want string
		form              url.Values
	}{
		{"bad duration", "duration", `invalid duration "2 hours"`, newRequestForm("duration", "2 hours")},
		{"no duration", "duration", "an end is required", newRequestForm("duration", "")},
		{"bad ticket", "ticket", `ticket "nope" does not match ^INC-[0-9]+$`, newRequestForm("ticket", "nope")},
		{"no reason", "reason", "reason is required", newRequestForm("reason", "  ")},
		{"unknown database", "database", `unknown database "nope"`, newRequestForm("database", "nope")},
		{"unknown level", "access", `unknown access level "god"`, newRequestForm("access", "god")},
		{"bad table", "tables", "unknown operation", newRequestForm("access", "ad-hoc", "tables", "public.orders:drop")},
		{"no tables", "tables", "at least one table", newRequestForm("access", "ad-hoc")},
		{"bad start", "start", "is not a date and time", newRequestForm("start", "tomorrow")},
		{"no end", "end", "give the end of the window", newRequestForm("window", "until")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post("/requests", tc.form)
			if p.Status != http.StatusBadRequest && p.Status != http.StatusNotFound {
				t.Fatalf("submit = %d, want 400 (or 404 for an unknown name)", p.Status)
			}
			if got := accessFieldError(p.Body, tc.field); !strings.Contains(got, tc.want) {
				t.Fatalf("error next to %s = %q, want %q\n%s", tc.field, got, tc.want, accessText(p.Body))
			}
			if !strings.Contains(p.Body, `href="#`+tc.field+`"`) {
				t.Error("the error summary does not link to the field")
			}
			if !strings.Contains(p.Body, `aria-invalid="true"`) && tc.field != "database" {
				t.Error("the field is not marked invalid")
			}
			// The form keeps what was typed.
			if r := tc.form.Get("reason"); strings.TrimSpace(r) != "" && !strings.Contains(p.Body, r+"</textarea>") {
				t.Error("the reason was lost")
			}
			if rs := e.storedRequests(); len(rs) != 0 {
				t.Fatalf("bad input stored %d requests", len(rs))
			}
		})
	}
}

func TestNewRequestSubmit(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn("alice")
	b.get("/requests/new")
	p := b.post("/requests", newRequestForm("access", "ad-hoc", "tables", "public.orders:select,update:id,status\n\nrefunds"))
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/requests/") {
		t.Fatalf("submit = %d %q %s", p.Status, p.Location, accessText(p.Body))
	}
	rs := e.storedRequests()
	if len(rs) != 1 {
		t.Fatalf("%d requests stored, want 1", len(rs))
	}
	r := rs[0]
	if p.Location != "/requests/"+r.ID || r.Requester != "alice" || r.Database != "prod" || r.Access != timebox.AdHocAccess ||
		r.Reason != "fix the refunds of INC-42" || r.Ticket != "INC-42" || r.End.Sub(r.Start) != 2*time.Hour || r.State != timebox.StatePending {
		t.Fatalf("stored %+v", r)
	}
	if got := timebox.DescribeTables(r.Tables); got != "public.orders: SELECT, UPDATE (id, status); public.refunds: SELECT" {
		t.Errorf("tables = %q", got)
	}
}

// A datetime-local value is a wall-clock time in the viewer's zone: across the night
// Europe/Berlin moves from CET to CEST, 01:30 to 03:30 is one hour.
func TestNewRequestLocalTimes(t *testing.T) {
	e := newEnv(t, nil)
	// Noon UTC the day before next year's change to summer time (the session's cookie must
	// not have expired by the real clock).
	y := time.Now().Year() + 1
	night := euClockChange(y, time.March)
	e.fixClock(night.Add(-12 * time.Hour))
	b := e.signIn("alice")
	b.inZone("Europe/Berlin")
	if p := b.get("/requests/new"); !strings.Contains(p.Body, "Times are in your time zone, Europe/Berlin.") {
		t.Fatal("the form does not say which zone its times are in")
	}
	day := night.Format("2006-01-02")
	p := b.post("/requests", newRequestForm("window", "until", "duration", "", "start", day+"T01:30", "end", day+"T03:30"))
	if p.Status != http.StatusSeeOther {
		t.Fatalf("submit = %d %s", p.Status, accessText(p.Body))
	}
	r := e.storedRequests()[0]
	if want := night.Add(-30 * time.Minute); !r.Start.Equal(want) { // 01:30 CET is 00:30 UTC
		t.Errorf("start = %s, want %s", r.Start.UTC(), want)
	}
	if want := night.Add(30 * time.Minute); !r.End.Equal(want) { // 03:30 CEST is 01:30 UTC: one hour later
		t.Errorf("end = %s, want %s", r.End.UTC(), want)
	}
	// 02:30 does not exist in Berlin that night.
	p = b.post("/requests", newRequestForm("window", "until", "start", day+"T02:30", "end", day+"T04:00"))
	if got := accessFieldError(p.Body, "start"); !strings.Contains(got, "does not exist in Europe/Berlin") {
		t.Errorf("start in the skipped hour: error %q", got)
	}
	// In summer, 10:00 in Berlin is 08:00 UTC (the limit on how far ahead names it).
	july := fmt.Sprintf("%d-07-01", y)
	p = b.post("/requests", newRequestForm("window", "until", "start", july+"T10:00", "end", july+"T11:00"))
	if got := accessFieldError(p.Body, "start"); !strings.Contains(got, "start "+july+"T08:00:00Z is more than") {
		t.Errorf("start too far ahead: error %q", got)
	}
	if n := len(e.storedRequests()); n != 1 {
		t.Fatalf("%d requests stored, want 1", n)
	}
}

// euClockChange returns 01:00 UTC on the last Sunday of month in year: when the European
// Union changes to or from summer time.
func euClockChange(year int, month time.Month) time.Time {
	d := time.Date(year, month+1, 1, 1, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	for d.Weekday() != time.Sunday {
		d = d.AddDate(0, 0, -1)
	}
	return d
}

func TestNewRequestBreakGlass(t *testing.T) {
	e := newEnv(t, nil)
	e.withCatalog(func(c *timebox.Catalog) {
		c.Users[0].Groups = append(c.Users[0].Groups, "oncall")
		c.BreakGlass = &timebox.BreakGlass{Groups: timebox.StringList{"oncall"}, MaxDuration: timebox.Duration(time.Hour)}
	})
	b := e.signIn("alice")
	if p := b.get("/requests/new"); !strings.Contains(p.Body, `name="break_glass"`) {
		t.Fatal("break-glass not offered to a member of its group")
	}
	p := b.post("/requests", newRequestForm("break_glass", "1"))
	if got := accessFieldError(p.Body, "break_glass"); !strings.Contains(got, "exceeds the break-glass maximum of 1h") {
		t.Fatalf("break-glass for 2h: error %q", got)
	}
	p = b.post("/requests", newRequestForm("break_glass", "1", "duration", "30m"))
	if p.Status != http.StatusSeeOther {
		t.Fatalf("break-glass = %d %s", p.Status, accessText(p.Body))
	}
	if r := e.storedRequests()[0]; !r.BreakGlass || r.State != timebox.StateApproved {
		t.Fatalf("stored %s break-glass=%v", r.State, r.BreakGlass)
	}
	p = b.get("/")
	if !strings.Contains(p.Body, "BREAK-GLASS") || !strings.Contains(accessText(p.Body), "follow-up review open") {
		t.Errorf("My access does not mark the break-glass request:\n%s", accessText(p.Body))
	}
}

func TestNewRequestCSRF(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signIn("alice")
	b.get("/requests/new")
	form := newRequestForm()
	form.Set("csrf", "")
	if p := b.post("/requests", form); p.Status != http.StatusForbidden {
		t.Fatalf("submit without CSRF = %d, want 403", p.Status)
	}
	form.Set("csrf", "forged")
	if p := b.post("/requests", form); p.Status != http.StatusForbidden {
		t.Fatalf("submit with a wrong CSRF token = %d, want 403", p.Status)
	}
	if rs := e.storedRequests(); len(rs) != 0 {
		t.Fatalf("a refused form stored %d requests", len(rs))
	}
	// Without a session: no request either.
	anon := e.browser()
	if p := anon.post("/requests", newRequestForm()); p.Status != http.StatusUnauthorized {
		t.Fatalf("submit without a session = %d, want 401", p.Status)
	}
	if rs := e.storedRequests(); len(rs) != 0 {
		t.Fatalf("an anonymous form stored %d requests", len(rs))
	}
}
