package console_test

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// tlNow is the tests' clock: Tuesday 10 March 2026, noon UTC (New York changed to summer time
// on Sunday 8 March).
var tlNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func tlDay(day, hour int) time.Time { return time.Date(2026, 3, day, hour, 0, 0, 0, time.UTC) }

var (
	tlBar      = regexp.MustCompile(`<g class="tl-bar[^"]*" data-request="([^"]+)"`)
	tlRow      = regexp.MustCompile(`<tr data-request="([^"]+)">`)
	tlTick     = regexp.MustCompile(`<g class="tl-tick" data-at="([^"]+)"><line[^>]*/><text[^>]*>([^<]*)</text>`)
	tlRowCells = regexp.MustCompile(`(?s)<tr data-request="([^"]+)">(.*?)</tr>`)
)

// newTimelineEnv is a console whose clock stands at tlNow, with alice's prod grants: one that
// expired (read-only), one still active (read-write), one pending request, one denied; bob's
// on staging; carol's break-glass on prod.
func newTimelineEnv(t *testing.T) *env {
	e := newEnv(t, nil)
	e.Svc.Now = func() time.Time { return tlNow }
	e.grant("alice-ro", "alice", "prod", "read-only", tlDay(5, 9), tlDay(5, 11), timebox.StateExpired)
	e.grant("alice-rw", "alice", "prod", "read-write", tlDay(10, 10), time.Time{}, timebox.StateActive)
	e.grant("bob-stg", "bob", "staging", "read-write", tlDay(6, 14), tlDay(6, 15), timebox.StateRevoked)
	bg := e.grant("carol-bg", "carol", "prod", "read-write", tlDay(7, 2), tlDay(7, 3), timebox.StateReleased)
	_ = bg
	pending := &timebox.Request{ID: "alice-pending", Requester: "alice", Database: "prod", Access: "read-only",
		Start: tlDay(10, 13), End: tlDay(10, 14), Reason: "later", State: timebox.StatePending,
		CreatedAt: tlDay(10, 11), UpdatedAt: tlDay(10, 11), Version: 1}
	e.put(pending)
	denied := &timebox.Request{ID: "alice-denied", Requester: "alice", Database: "prod", Access: "read-write",
		Start: tlDay(8, 9), End: tlDay(8, 10), Reason: "no", State: timebox.StateDenied,
		CreatedAt: tlDay(8, 8), UpdatedAt: tlDay(8, 8), EndedAt: tlDay(8, 8), Version: 1}
	e.put(denied)
	return e
}

func ids(re *regexp.Regexp, body string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// tlRowOf returns the table row of request id ("" when the page has none).
func tlRowOf(body, id string) string {
	for _, m := range tlRowCells.FindAllStringSubmatch(body, -1) {
		if m[1] == id {
			return m[2]
		}
	}
	return ""
}

func TestTimelineShowsGrants(t *testing.T) {
	e := newTimelineEnv(t)
	res := e.signInThen("audrey").get("/timeline?database=prod&from=2026-03-04&to=2026-03-10")
	if res.Status != http.StatusOK {
		t.Fatalf("GET /timeline = %d:\n%s", res.Status, res.Body)
	}
	got := ids(tlRow, res.Body)
	if want := []string{"alice-ro", "alice-rw", "carol-bg"}; !slices.Equal(got, want) {
		t.Fatalf("table rows %v, want %v (confirmed access on prod only, by person then activation)", got, want)
	}
	for id, want := range map[string][]string{
		"alice-ro": {"<th scope=\"row\">alice</th>", "lvl-0", "read-only", "2026-03-05 09:00 UTC", "2026-03-05 11:00 UTC", "(expired)", "2h 0m", `href="/requests/alice-ro"`},
		"alice-rw": {"lvl-1", "read-write", "2026-03-10 10:00 UTC", "now — active until", "2026-03-10 14:00 UTC", "2h 0m", "so far"},
		"carol-bg": {"<th scope=\"row\">carol</th>", "(released)"},
	} {
		row := tlRowOf(res.Body, id)
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("row %s lacks %q:\n%s", id, w, row)
			}
		}
	}
	for _, bad := range []string{"alice-pending", "alice-denied", "bob-stg"} {
		if strings.Contains(res.Body, bad) {
			t.Errorf("the page shows %s, which is not access to prod that existed", bad)
		}
	}
	// The chart: colours by level, the live grant's part still to come, now marked.
	for _, w := range []string{`class="tl-span lvl-0"`, `class="tl-span lvl-1"`, `class="tl-planned lvl-1"`, `class="tl-now"`,
		`role="img"`, `aria-labelledby="tl-0-title tl-0-desc"`, `<title id="tl-0-title">Access to prod from 2026-03-04 00:00 UTC until 2026-03-11 00:00 UTC</title>`,
		"3 grants by 2 people"} {
		if !strings.Contains(res.Body, w) {
			t.Errorf("the chart lacks %s", w)
		}
	}
	// alice sees her own grants too.
	if got := ids(tlRow, e.signInThen("alice").get("/timeline?from=2026-03-04&to=2026-03-10").Body); !slices.Equal(got, []string{"alice-ro", "alice-rw"}) {
		t.Errorf("alice sees %v, want her two grants", got)
	}
}

func TestTimelineBreakGlassMarked(t *testing.T) {
	e := newEnv(t, nil)
	e.Svc.Now = func() time.Time { return tlNow }
	r := &timebox.Request{ID: "bg1", Requester: "carol", Database: "prod", Access: "read-write",
		Start: tlDay(7, 2), End: tlDay(7, 3), Reason: "outage", State: timebox.StateExpired,
		ActivatedAt: tlDay(7, 2), EndedAt: tlDay(7, 3), CreatedAt: tlDay(7, 2), UpdatedAt: tlDay(7, 3), Version: 1}
	r.BreakGlass = true
	e.put(r)
	body := e.signInThen("audrey").get("/timeline?from=2026-03-04&to=2026-03-10").Body
	if !strings.Contains(body, `<g class="tl-bar tl-bg" data-request="bg1"`) || !strings.Contains(body, `class="tl-bg-mark"`) {
		t.Errorf("the break-glass bar is not marked:\n%s", body)
	}
	if row := tlRowOf(body, "bg1"); !strings.Contains(row, "break-glass") {
		t.Errorf("the break-glass row does not say so: %s", row)
	}
	if !strings.Contains(body, "1 of them break-glass") {
		t.Error("the chart's description does not count the break-glass grant")
	}
}

func TestTimelineVisibility(t *testing.T) {
	e := newTimelineEnv(t)
	e.grant("stan-own", "stan", "staging", "read-only", tlDay(9, 9), tlDay(9, 10), timebox.StateExpired)
	for _, path := range []string{"/timeline?from=2026-03-04&to=2026-03-10", "/timeline?user=alice&from=2026-03-04&to=2026-03-10",
		"/timeline?database=prod&from=2026-03-04&to=2026-03-10"} {
		res := e.signInThen("stan").get(path)
		if res.Status != http.StatusOK {
			t.Fatalf("stan: GET %s = %d", path, res.Status)
		}
		got := ids(tlRow, res.Body)
		want := []string{"stan-own"}
		if strings.Contains(path, "user=alice") || strings.Contains(path, "prod") {
			want = nil
			if !strings.Contains(res.Body, "Nobody had access") || strings.Contains(res.Body, "<svg class=\"tl-chart\"") {
				t.Errorf("stan: GET %s does not say that there is nothing to show", path)
			}
		}
		if !slices.Equal(got, want) || !slices.Equal(ids(tlBar, res.Body), want) {
			t.Errorf("stan: GET %s shows %v, want %v", path, got, want)
		}
		for _, other := range []string{"alice-ro", "alice-rw", "carol", "bob-stg"} {
			if strings.Contains(res.Body, other) {
				t.Errorf("stan: GET %s mentions %s", path, other)
			}
		}
	}
	// bob owns prod and staging: he sees everyone's there, but stan's is on staging too.
	if got := ids(tlRow, e.signInThen("bob").get("/timeline?from=2026-03-04&to=2026-03-10").Body); !slices.Equal(got, []string{"alice-ro", "alice-rw", "carol-bg", "bob-stg", "stan-own"}) {
		t.Errorf("bob sees %v", got)
	}
	// alice, a developer, sees only her own.
	if got := ids(tlRow, e.signInThen("alice").get("/timeline?database=prod&from=2026-03-04&to=2026-03-10").Body); !slices.Equal(got, []string{"alice-ro", "alice-rw"}) {
		t.Errorf("alice sees %v, want only her own", got)
	}
}

// TestTimelineTableMatchesChart: the table (what a screen reader reads) has exactly the
// chart's bars, in the same order, overlapping grants included.
func TestTimelineTableMatchesChart(t *testing.T) {
	e := newTimelineEnv(t)
	e.grant("alice-overlap", "alice", "prod", "read-only", tlDay(5, 10), tlDay(5, 12), timebox.StateRevoked)
	e.grant("alice-stg", "alice", "staging", "read-only", tlDay(8, 10), tlDay(8, 12), timebox.StateExpired)
	body := e.signInThen("admin").get("/timeline?from=2026-03-04&to=2026-03-10").Body
	rows, bars := ids(tlRow, body), ids(tlBar, body)
	if len(rows) != 6 || !slices.Equal(rows, bars) {
		t.Fatalf("table rows %v, chart bars %v: want the same 6", rows, bars)
	}
	// The overlapping grant gets a lane of its own: a different y from alice-ro's.
	y := func(id string) string {
		m := regexp.MustCompile(`data-request="` + id + `"[^>]*><title>[^<]*</title><rect class="tl-span [^"]*" x="[^"]*" y="([^"]*)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no bar for %s", id)
		}
		return m[1]
	}
	if y("alice-ro") == y("alice-overlap") {
		t.Error("two overlapping grants of alice share a lane")
	}
	if n := strings.Count(body, `<table class="tl-table">`); n != 2 {
		t.Errorf("%d tables, want one per database (prod, staging)", n)
	}
}

func TestTimelineZone(t *testing.T) {
	e := newTimelineEnv(t)
	b := e.signInThen("audrey")
	b.setZone("America/New_York")
	body := b.get("/timeline?database=prod&from=2026-03-05&to=2026-03-05").Body
	ticks := tlTick.FindAllStringSubmatch(body, -1)
	if len(ticks) == 0 || ticks[0][1] != "2026-03-05T05:00:00Z" || ticks[0][2] != "Mar 5" {
		t.Fatalf("first tick %v, want New York's midnight of 5 March (05:00 UTC) labelled Mar 5", ticks)
	}
	if ticks[1][2] != "03:00" || ticks[1][1] != "2026-03-05T08:00:00Z" {
		t.Errorf("second tick %v, want 03:00 New York time", ticks[1])
	}
	row := tlRowOf(body, "alice-ro")
	if !strings.Contains(row, "2026-03-05 04:00 EST") || !strings.Contains(row, "2026-03-05 06:00 EST") {
		t.Errorf("alice's row is not in New York time: %s", row)
	}
	if !strings.Contains(body, "Time axis in America/New_York") {
		t.Error("the chart does not name the zone of its axis")
	}
	// Across the change to summer time: midnights at 05:00 UTC (EST), then 04:00 UTC (EDT).
	body = b.get("/timeline?database=prod&from=2026-03-06&to=2026-03-09").Body
	var at []string
	for _, m := range tlTick.FindAllStringSubmatch(body, -1) {
		if strings.HasPrefix(m[2], "Mar") {
			at = append(at, m[1]+" "+m[2])
		}
	}
	want := []string{"2026-03-06T05:00:00Z Mar 6", "2026-03-07T05:00:00Z Mar 7", "2026-03-08T05:00:00Z Mar 8", "2026-03-09T04:00:00Z Mar 9"}
	if !slices.Equal(at, want) {
		t.Errorf("midnight ticks %v, want %v", at, want)
	}
	if row := tlRowOf(body, "carol-bg"); !strings.Contains(row, "2026-03-06 21:00 EST") || !strings.Contains(row, "2026-03-06 22:00 EST") {
		t.Errorf("carol's row (02:00 UTC on the 7th) is not in New York time: %s", row)
	}
	if row := tlRowOf(body, "alice-rw"); row != "" {
		t.Errorf("alice's grant of the 10th is shown in a range ending on the 9th: %s", row)
	}
	// Without the cookie: UTC.
	if row := tlRowOf(e.signInThen("audrey").get("/timeline?database=prod&from=2026-03-05&to=2026-03-05").Body, "alice-ro"); !strings.Contains(row, "2026-03-05 09:00 UTC") {
		t.Errorf("without a zone the row is not in UTC: %s", row)
	}
}

func TestTimelineRangeBound(t *testing.T) {
	e := newTimelineEnv(t)
	b := e.signInThen("audrey")
	for _, tc := range []struct{ query, field, msg string }{
		{"from=2026-01-01&to=2026-06-30", "to", "The range is 181 days; the timeline shows at most 92."},
		{"from=2026-03-09&to=2026-03-01", "to", "The last day (2026-03-01) is before the first (2026-03-09)."},
		{"from=yesterday", "from", `&#34;yesterday&#34; is not a date: use YYYY-MM-DD.`},
		{"database=nope", "database", `There is no database named &#34;nope&#34;.`},
	} {
		res := b.get("/timeline?" + tc.query)
		if res.Status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", tc.query, res.Status)
		}
		if want := `<p class="field-error" id="tl-` + tc.field + `-error">` + tc.msg; !strings.Contains(res.Body, want) {
			t.Errorf("%s: the page lacks %s", tc.query, want)
		}
		if strings.Contains(res.Body, "<svg class=\"tl-chart\"") || strings.Contains(res.Body, "<table") {
			t.Errorf("%s: a chart was shown with an invalid range", tc.query)
		}
	}
	// 92 days exactly is allowed.
	if res := b.get("/timeline?from=2025-12-09&to=2026-03-10"); res.Status != http.StatusOK || !strings.Contains(res.Body, "(92 days)") {
		t.Errorf("92 days: status %d", res.Status)
	}
}

func TestTimelineDefaultRange(t *testing.T) {
	e := newTimelineEnv(t)
	body := e.signInThen("audrey").get("/timeline").Body
	for _, w := range []string{`name="from" type="date" value="2026-03-04"`, `name="to" type="date" value="2026-03-10"`, "(7 days)"} {
		if !strings.Contains(body, w) {
			t.Errorf("the default range lacks %s", w)
		}
	}
	if got := ids(tlRow, body); !slices.Equal(got, []string{"alice-ro", "alice-rw", "carol-bg", "bob-stg"}) {
		t.Errorf("default range shows %v", got)
	}
}

// TestTimelineClipsToRange: a grant that began before the first day is drawn from the
// range's start, not dropped, and its row keeps its real start.
func TestTimelineClipsToRange(t *testing.T) {
	e := newTimelineEnv(t)
	e.grant("long", "alice", "staging", "read-only", tlDay(1, 8), tlDay(6, 8), timebox.StateExpired)
	body := e.signInThen("audrey").get("/timeline?database=staging&from=2026-03-04&to=2026-03-10").Body
	m := regexp.MustCompile(`data-request="long" data-clipped="start"><title>[^<]*</title><rect class="tl-span lvl-0" x="([^"]*)" y="[^"]*" width="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no clipped bar for the grant that began before the range:\n%s", body)
	}
	if m[1] != "170.0" {
		t.Errorf("the clipped bar starts at x=%s, want the plot's left edge 170.0", m[1])
	}
	// 4 March 00:00 → 6 March 08:00 is 56h of the range's 168h: 815 × 56/168 ≈ 271.7.
	if m[2] != "271.7" {
		t.Errorf("the clipped bar is %s wide, want 271.7", m[2])
	}
	row := tlRowOf(body, "long")
	if !strings.Contains(row, "2026-03-01 08:00 UTC") || !strings.Contains(row, "(before the range)") || !strings.Contains(row, "5d 0h") {
		t.Errorf("the row does not keep the grant's real start and duration: %s", row)
	}
}

// TestTimelineEscapes: the bars and rows the console writes itself (not through the
// templates) escape what the store holds, such as a requester's name written by a store
// writer.
func TestTimelineEscapes(t *testing.T) {
	e := newEnv(t, nil)
	e.Svc.Now = func() time.Time { return tlNow }
	evil := `x"><script>alert(1)</script>`
	e.grant(`id"><img src=x onerror=alert(2)>`, evil, "prod", `lvl"><b>`, tlDay(5, 9), tlDay(5, 11), timebox.StateExpired)
	body := e.signInThen("audrey").get("/timeline?from=2026-03-04&to=2026-03-10").Body
	for _, bad := range []string{"<script>alert(1)", "<img src=x", "<b>"} {
		if strings.Contains(body, bad) {
			t.Errorf("the page carries %s unescaped", bad)
		}
	}
	for _, w := range []string{`<th scope="row">x&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</th>`, `data-request="id&#34;&gt;&lt;img src=x onerror=alert(2)&gt;"`,
		`href="/requests/id%22%3E%3Cimg%20src=x%20onerror=alert%282%29%3E"`} {
		if !strings.Contains(body, w) {
			t.Errorf("the page lacks the escaped %s", w)
		}
	}
}

// TestTimelineTruncated: past the page's bound, the most recently activated grants are shown
// with a note saying so.
func TestTimelineTruncated(t *testing.T) {
	e := newEnv(t, nil)
	e.Svc.Now = func() time.Time { return tlNow }
	err := e.DB.Update(t.Context(), func(tx timebox.Tx) error {
		for i := range 1001 {
			at := tlDay(4, 0).Add(time.Duration(i) * 9 * time.Minute)
			r := &timebox.Request{ID: fmt.Sprintf("g%04d", i), Requester: "alice", Database: "prod", Access: "read-only",
				Start: at, End: at.Add(5 * time.Minute), Reason: "many", State: timebox.StateExpired,
				ActivatedAt: at, EndedAt: at.Add(5 * time.Minute), CreatedAt: at, UpdatedAt: at, Version: 1}
			if err := tx.CreateRequest(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	body := e.signInThen("audrey").get("/timeline?from=2026-03-04&to=2026-03-10").Body
	rows := ids(tlRow, body)
	if len(rows) != 1000 || slices.Contains(rows, "g0000") || !slices.Contains(rows, "g1000") {
		t.Errorf("%d rows (oldest kept: %v), want the 1000 most recent", len(rows), slices.Contains(rows, "g0000"))
	}
	if !strings.Contains(body, "Only the 1000 most recently activated grants are shown") {
		t.Error("the page does not say it left grants out")
	}
}
