package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// maxMessage bounds an error message: a refusal says what is wrong in a line or two, it
// does not echo a megabyte of the input back.
const maxMessage = 1 << 10

// storeState is what must not change when the API refuses input: the number of requests
// in each state and the head of the audit chain (every change appends an event).
type storeState struct {
	counts map[timebox.State]int
	seq    int64
	hash   string
}

func snapshot(tb testing.TB, db timebox.Store) storeState {
	tb.Helper()
	var s storeState
	err := db.View(context.Background(), func(tx timebox.Tx) (err error) {
		if s.counts, err = tx.CountRequests(); err != nil {
			return err
		}
		s.seq, s.hash, err = tx.AuditHead()
		return err
	})
	if err != nil {
		tb.Fatalf("snapshot of the store: %v", err)
	}
	return s
}

func (s storeState) equal(o storeState) bool {
	return maps.Equal(s.counts, o.counts) && s.seq == o.seq && s.hash == o.hash
}

func (s storeState) String() string {
	return fmt.Sprintf("requests %v, audit head %d %.12s", s.counts, s.seq, s.hash)
}

// call is one raw HTTP request.
type call struct {
	method string
	path   string // as on the wire: escaped, with the query string if any
	user   string // whose token goes in the Authorization header; "" for none
	auth   string // the whole Authorization header instead, when set
	ctype  string // Content-Type of a body; "" for application/json, "-" for none
	body   string
}

// serve sends c straight to handler h, without a transport whose own limits (header size,
// control characters in the request line) would hide what the handler does.
func serve(tb testing.TB, h http.Handler, tokens map[string]string, c call) response {
	tb.Helper()
	p, q, _ := strings.Cut(c.path, "?")
	path, err := url.PathUnescape(p)
	if err != nil {
		tb.Fatalf("bad test path %q: %v", p, err)
	}
	req := httptest.NewRequest(c.method, "/", strings.NewReader(c.body))
	req.URL.Path, req.URL.RawPath, req.URL.RawQuery, req.RequestURI = path, p, q, c.path
	switch {
	case c.auth != "":
		req.Header.Set("Authorization", c.auth)
	case c.user != "":
		req.Header.Set("Authorization", "Bearer "+tokens[c.user])
	}
	switch {
	case c.body == "" || c.ctype == "-":
	case c.ctype == "":
		req.Header.Set("Content-Type", "application/json")
	default:
		req.Header.Set("Content-Type", c.ctype)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return response{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// checkRefused fails the test unless r is a clear refusal: a 4xx status with a JSON body of
// exactly {code, message}, whose code matches the status and whose message is short,
// printable and contains want.
func checkRefused(t testing.TB, r response, want string) {
	t.Helper()
	if r.status < 400 || r.status > 499 {
		t.Errorf("status %d, want 4xx; body %s", r.status, clip(string(r.body)))
		return
	}
	code, msg := r.apiError(t)
	var fields map[string]any
	if err := json.Unmarshal(r.body, &fields); err != nil || len(fields) != 2 {
		t.Errorf("error body has fields %v, want only code and message", slices.Collect(maps.Keys(fields)))
	}
	if tbhttp.CodeStatus(code) != r.status && (r.status != 405 || code != timebox.EINVALID) {
		t.Errorf("status %d with code %s", r.status, code)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("message %q does not contain %q", clip(msg), want)
	}
	if len(msg) > maxMessage {
		t.Errorf("message is %d bytes long (at most %d): %q", len(msg), maxMessage, clip(msg))
	}
	if i := strings.IndexFunc(msg, unicode.IsControl); i >= 0 || !utf8.ValidString(msg) {
		t.Errorf("message is not printable UTF-8: %q", clip(msg))
	}
}

// short names a value in a test name: itself when short, its start and length otherwise.
func short(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%.16s…%d_bytes", s, len(s))
	}
	return s
}

// clip shortens s for a test log.
func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// fields is a JSON object written member by member, raw values included, so that a test
// can put any bytes anywhere.
type fields [][2]string

func (fs fields) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + f[0] + `":` + f[1])
	}
	b.WriteByte('}')
	return b.String()
}

// with returns fs with member name set to raw (added when missing).
func (fs fields) with(name, raw string) fields {
	out := slices.Clone(fs)
	for i := range out {
		if out[i][0] == name {
			out[i][1] = raw
			return out
		}
	}
	return append(out, [2]string{name, raw})
}

// without returns fs without member name.
func (fs fields) without(name string) fields {
	return slices.DeleteFunc(slices.Clone(fs), func(f [2]string) bool { return f[0] == name })
}

// renamed returns fs with member name written as to.
func (fs fields) renamed(name, to string) fields {
	out := slices.Clone(fs)
	for i := range out {
		if out[i][0] == name {
			out[i][0] = to
		}
	}
	return out
}

// quoted returns s as the raw bytes of a JSON string: the quotes around s and nothing
// escaped, so invalid UTF-8 and the like go through as they are.
func quoted(s string) string { return `"` + s + `"` }

// hostileCase is one input the API must refuse without changing anything.
type hostileCase struct {
	name string
	call
	want string // part of the message
}

// bodyRoute is a route that takes a JSON body, with a body it accepts.
type bodyRoute struct {
	name, path, user string
	base             fields
	text             []string // its free-text fields
	required         string   // the message part when its required text is missing ("" when none is)
}

// hostileCases returns the refused inputs of every route that takes input. pending is a
// pending request of alice's that bob may review; approved is one bob approved.
func hostileCases(pending, approved *tbhttp.RequestView) []hostileCase {
	p, a := pending.ID, approved.ID
	createBase := fields{{"database", `"prod"`}, {"access", `"read-only"`}, {"duration", `"1h"`}, {"reason", `"investigate"`}, {"ticket", `"T-1"`}}
	note := func(s string) fields { return fields{{"note", quoted(s)}} }
	routes := []bodyRoute{
		{"create", "/api/v1/requests", "alice", createBase, []string{"reason", "ticket"}, "reason is required"},
		{"approve", "/api/v1/requests/" + p + "/approve", "bob", note("go ahead"), []string{"note"}, ""},
		{"deny", "/api/v1/requests/" + p + "/deny", "bob", note("use the replica"), []string{"note"}, "needs a note"},
		{"revoke", "/api/v1/requests/" + a + "/revoke", "bob", note("incident over"), []string{"note"}, "needs a note"},
		{"cancel", "/api/v1/requests/" + p + "/cancel", "alice", note("not needed"), []string{"note"}, ""},
		{"extend", "/api/v1/requests/" + a + "/extend", "alice", fields{{"reason", `"not done"`}, {"duration", `"30m"`}}, []string{"reason"}, "reason is required"},
		{"follow-up", "/api/v1/requests/" + p + "/follow-up", "bob", note("reviewed"), []string{"note"}, "note is required"},
		{"explain", "/api/v1/policy/explain", "alice", fields{{"database", `"prod"`}, {"access", `"read-only"`}, {"duration", `"1h"`}}, nil, ""},
		{"disable", "/api/v1/users/alice/disable", "admin", note("left"), []string{"note"}, "note is required"},
	}
	var cases []hostileCase
	for _, rt := range routes {
		add := func(name, ctype, body, want string) {
			cases = append(cases, hostileCase{rt.name + "/" + name, call{"POST", rt.path, rt.user, "", ctype, body}, want})
		}
		base := rt.base.String()
		first := rt.base[0][0]
		for _, b := range []struct{ name, body, want string }{
			{"empty body", "", "empty"},
			{"blank body", " \r\n\t ", "empty"},
			{"null", "null", "JSON object"},
			{"empty array", "[]", "JSON object"},
			{"array of the object", "[" + base + "]", "JSON object"},
			{"string", `"` + first + `"`, "JSON object"},
			{"number", "42", "JSON object"},
			{"huge number", "-1e999", "JSON object"},
			{"bool", "true", "JSON object"},
			{"open brace", "{", "truncated"},
			{"cut short", base[:len(base)-1], "truncated"},
			{"trailing garbage", base + "garbage", "not valid JSON"},
			{"trailing brace", base + "}", "not valid JSON"},
			{"two objects", base + base, "after its JSON value"},
			{"trailing NUL", base + "\x00", "not valid JSON"},
			{"leading NUL", "\x00" + base, "not valid JSON"},
			{"byte order mark", "\ufeff" + base, "not valid JSON"},
			{"single quotes", strings.ReplaceAll(base, `"`, `'`), "not valid JSON"},
			{"trailing comma", base[:len(base)-1] + ",}", "not valid JSON"},
			{"unquoted name", strings.Replace(base, `"`+first+`"`, first, 1), "not valid JSON"},
			{"deep arrays", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "not valid JSON"},
			{"deep array in a field", rt.base.with(first, strings.Repeat("[", 5000)+strings.Repeat("]", 5000)).String(), `field "` + first + `" must be a string`},
			{"deep objects", strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000), `unknown field "a"`},
			{"70 KB body", rt.base.with(first, quoted(strings.Repeat("x", 70<<10))).String(), "larger than 64 KiB"},
			{"1 MB body", rt.base.with(first, quoted(strings.Repeat("x", 1<<20))).String(), "larger than 64 KiB"},
			{"unknown field", rt.base.with("bogus", "1").String(), `unknown field "bogus"`},
			{"unknown null field", rt.base.with("bogus", "null").String(), `unknown field "bogus"`},
			{"unknown field with a quote", rt.base.with(`no\"te`, "1").String(), `unknown field "no\"te"`},
			{"unknown field NUL", rt.base.with(`\u0000`, "1").String(), "unknown field"},
			{"unknown field 60 KB", rt.base.with(strings.Repeat("k", 60<<10), "1").String(), "unknown field"},
			{"duplicate field", rt.base.with(first+`":"x","`+first, rt.base[0][1]).String(), `"` + first + `"`},
			{"duplicate field with a null", rt.base.with(first+`":null,"`+first, rt.base[0][1]).String(), `"` + first + `"`},
			{"field in upper case", rt.base.renamed(first, strings.ToUpper(first)).String(), `unknown field "` + strings.ToUpper(first) + `"`},
			{"field in title case", rt.base.renamed(first, strings.ToUpper(first[:1])+first[1:]).String(), "unknown field"},
		} {
			add(b.name, "", b.body, b.want)
		}
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/json; charset=", "application/jsonx", "multipart/form-data; boundary=x"} {
			add("content type "+ct, ct, base, "must be JSON")
		}
		add("query parameter", "", base, `unknown query parameter "force"`)
		cases[len(cases)-1].path += "?force=1"

		for _, f := range rt.text {
			for _, v := range []struct{ name, raw, want string }{
				{"escaped NUL", quoted(`a\u0000b`), f + " contains a control character"},
				{"escape sequence", quoted(`\u001b[2J\u001b[31mAPPROVED`), f + " contains a control character"},
				{"bell", quoted(`\u0007`), f + " contains a control character"},
				{"carriage return", quoted(`ok\rforged`), f + " contains a control character"},
				{"DEL", quoted(`a\u007f`), f + " contains a control character"},
				{"NEL", quoted(`a\u0085b`), f + " contains a control character"},
				{"raw NUL", quoted("a\x00b"), "not valid JSON"},
				{"raw newline", quoted("a\nb"), "not valid JSON"},
				{"invalid UTF-8", quoted("a\xff\xfeb"), "UTF-8"},
				{"overlong UTF-8", quoted("\xc0\xaf"), "UTF-8"},
				{"UTF-8 surrogate", quoted("\xed\xa0\x80"), "UTF-8"},
				{"truncated UTF-8", quoted("caf\xc3"), "UTF-8"},
				{"lone high surrogate", quoted(`a\ud800b`), "surrogate"},
				{"lone low surrogate", quoted(`\udc00`), "surrogate"},
				{"reversed surrogates", quoted(`\udc00\ud800`), "surrogate"},
				{"2001 bytes", quoted(strings.Repeat("x", 2001)), f + " is longer than 2000 bytes"},
				{"2002 bytes of é", quoted(strings.Repeat("é", 1001)), f + " is longer than 2000 bytes"},
				{"60 KB", quoted(strings.Repeat(`'\"\\`, 12<<10)), f + " is longer than 2000 bytes"},
				{"number", "42", `field "` + f + `" must be a string`},
				{"bool", "false", `field "` + f + `" must be a string`},
				{"array", `["x"]`, `field "` + f + `" must be a string`},
				{"object", `{"x":1}`, `field "` + f + `" must be a string`},
				{"invalid escape", quoted(`\x41`), "not valid JSON"},
			} {
				add(f+" "+v.name, "", rt.base.with(f, v.raw).String(), v.want)
			}
		}
		if rt.required != "" {
			f := rt.text[0]
			for _, v := range []struct{ name, body string }{
				{"missing", rt.base.without(f).String()},
				{"empty", rt.base.with(f, `""`).String()},
				{"blank", rt.base.with(f, `" \n\t "`).String()},
				{"null", rt.base.with(f, "null").String()},
				{"no-break spaces", rt.base.with(f, `"\u00a0\u3000"`).String()},
			} {
				add(f+" "+v.name, "", v.body, rt.required)
			}
		}
	}
	cases = append(cases, createCases(createBase)...)
	cases = append(cases, approveCases(pending)...)
	cases = append(cases, idCases(p, a)...)
	return append(cases, queryCases()...)
}

// createCases are the refused values of the fields of a new request.
func createCases(base fields) []hostileCase {
	var cases []hostileCase
	add := func(name string, f fields, want string) {
		cases = append(cases, hostileCase{"create/" + name, call{"POST", "/api/v1/requests", "alice", "", "", f.String()}, want})
	}
	long := strings.Repeat("x", 60<<10)
	for _, v := range []struct{ field, raw, want string }{
		{"database", "42", `field "database" must be a string`},
		{"database", `["prod"]`, `field "database" must be a string`},
		{"database", `{"name":"prod"}`, `field "database" must be a string`},
		{"database", "null", "unknown database"},
		{"database", `""`, "unknown database"},
		{"database", `"PROD"`, "unknown database"},
		{"database", `" prod"`, "unknown database"},
		{"database", `"prod\u0000"`, "unknown database"},
		{"database", `"../prod"`, "unknown database"},
		{"database", `"prod' OR '1'='1"`, "unknown database"},
		{"database", `"\"prod\"; DROP TABLE requests; --"`, "unknown database"},
		{"database", "\"`prod`\\\\\"", "unknown database"},
		{"database", `"\u001b[31mprod"`, "unknown database"},
		{"database", quoted("prod\xff"), "UTF-8"},
		{"database", quoted(long), "unknown database"},
		{"access", "42", `field "access" must be a string`},
		{"access", `""`, "access level"},
		{"access", `"READ-ONLY"`, "access level"},
		{"access", `"read-only\u0000"`, "access level"},
		{"access", `"ddl"`, "grants nothing"},
		{"access", quoted(long), "access level"},
		{"duration", "3600", `field "duration" must be a string`},
		{"duration", `"yesterday"`, "invalid duration"},
		{"duration", `"-1h"`, "invalid duration"},
		{"duration", `"0s"`, "invalid duration"},
		{"duration", `"3651d"`, "invalid duration"},
		{"duration", `"-1d"`, "invalid duration"},
		{"duration", `"99999999999999999999h"`, "invalid duration"},
		{"duration", `"1e3h"`, "invalid duration"},
		{"duration", `"1 h"`, "invalid duration"},
		{"duration", `"1h\u0000"`, "invalid duration"},
		{"duration", `"30s"`, "below the prod minimum"},
		{"duration", `"9h"`, "exceeds the prod limit"},
		{"duration", `"3650d"`, "exceeds the prod limit"},
		{"duration", quoted(long), "invalid duration"},
		{"start", `"2026-13-45T00:00:00Z"`, `"start"`},
		{"start", `"2026-13-45"`, `"start"`},
		{"start", `"yesterday"`, `"start"`},
		{"start", `""`, `"start"`},
		{"start", `"2026-01-01T00:00:00"`, `"start"`},
		{"start", `"2026-01-01 00:00:00Z"`, `"start"`},
		{"start", `"2026-01-01T00:00:00+99:00"`, `"start"`},
		{"start", `"+02:00"`, `"start"`},
		{"start", `"\u0032026-01-01T00:00:00Z"`, `"start"`},
		{"start", "1767225600", `"start"`},
		{"start", "true", `"start"`},
		{"start", "[]", `"start"`},
		{"start", "{}", `"start"`},
		{"start", `"0000-01-01T00:00:00Z"`, "start 0000-01-01T00:00:00Z is in the past"},
		{"start", `"9999-12-31T23:59:59Z"`, "ahead"},
		{"end", `"2026-13-45"`, `"end"`},
		{"end", "0", `"end"`},
		{"end", `"now"`, `"end"`},
	} {
		add(v.field+" "+short(v.raw), base.with(v.field, v.raw), v.want)
	}
	noDuration := base.without("duration")
	add("end in 1970", noDuration.with("end", `"1970-01-01T00:00:00Z"`), "not after start")
	add("end and duration", base.with("end", `"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"`), "either an end time or a duration")
	add("end far ahead", noDuration.with("end", `"9999-12-31T23:59:59Z"`), "exceeds the prod limit")
	add("no end", noDuration, "an end is required")
	add("empty duration", base.with("duration", `""`), "an end is required")
	add("end before start", noDuration.with("start", `"`+time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339)+`"`).
		with("end", `"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"`), "not after start")
	add("everything wrong", fields{{"database", "1"}, {"access", "2"}, {"duration", "3"}, {"reason", "4"}}, "must be a string")
	return cases
}

// approveCases are the refused windows of an approval of r.
func approveCases(r *tbhttp.RequestView) []hostileCase {
	path := "/api/v1/requests/" + r.ID + "/approve"
	at := func(t time.Time) string { return `"` + t.UTC().Format(time.RFC3339Nano) + `"` }
	var cases []hostileCase
	for _, v := range []struct{ name, body, want string }{
		{"start with a bad month", `{"start":"2026-13-45T00:00:00Z"}`, `"start"`},
		{"end yesterday", `{"end":"yesterday"}`, `"end"`},
		{"end a number", `{"end":1767225600}`, `"end"`},
		{"start empty", `{"start":""}`, `"start"`},
		{"start before the request's", `{"start":` + at(r.Start.Add(-time.Hour)) + `}`, "start"},
		{"end after the request's", `{"end":` + at(r.End.Add(time.Second)) + `}`, "end"},
		{"end in year 9999", `{"end":"9999-12-31T23:59:59Z"}`, "end"},
		{"empty window", `{"start":` + at(r.Start.Add(30*time.Minute)) + `,"end":` + at(r.Start.Add(30*time.Minute)) + `}`, "not after start"},
		{"inverted window", `{"start":` + at(r.Start.Add(40*time.Minute)) + `,"end":` + at(r.Start.Add(30*time.Minute)) + `}`, "not after start"},
		{"window already over", `{"end":` + at(r.Start.Add(time.Microsecond)) + `}`, "already ended"},
	} {
		cases = append(cases, hostileCase{"approve/" + v.name, call{"POST", path, "bob", "", "", v.body}, v.want})
	}
	return cases
}

// hostileIDs are path ids that name no request: printable ones are simply not found,
// the others cannot be ids at all.
var hostileIDs = []struct {
	id      string
	invalid bool
}{
	{"../x", false}, {"..%2Fx", false}, {"%2e%2e", false}, {"a/b", false}, {"a?b", false}, {"a#b", false},
	{"'", false}, {`"`, false}, {"`", false}, {`\`, false}, {`O'Brien"; DROP TABLE requests; --`, false},
	{" ", false}, {"é", false}, {"%00", false}, {strings.Repeat("x", 300), true},
	{strings.Repeat("x", 1<<20), true}, {"\x00", true}, {"a\x00b", true}, {"\xff", true},
	{"caf\xc3", true}, {"\x1b[31m", true}, {"a\nb", true}, {"\x7f", true},
}

// idCases sends hostileIDs, and paths with dot segments, to every route that takes an id.
func idCases(p, a string) []hostileCase {
	routes := []struct{ method, suffix, user, body string }{
		{"GET", "", "alice", ""},
		{"GET", "/credentials", "alice", ""},
		{"POST", "/approve", "bob", `{}`},
		{"POST", "/deny", "bob", `{"note":"no"}`},
		{"POST", "/revoke", "bob", `{"note":"stop"}`},
		{"POST", "/cancel", "alice", `{}`},
	}
	var cases []hostileCase
	for _, rt := range routes {
		name := rt.method + " " + strings.TrimPrefix(rt.suffix, "/")
		for _, h := range hostileIDs {
			want := "not found"
			if h.invalid {
				want = "request id"
			}
			path := "/api/v1/requests/" + url.PathEscape(h.id) + rt.suffix
			cases = append(cases, hostileCase{"id/" + name + "/" + short(h.id), call{rt.method, path, rt.user, "", "", rt.body}, want})
		}
		// The id and path as they would be without escaping: dot segments, which a ServeMux
		// answers with a redirect to another route.
		for _, path := range []string{
			"/api/v1/requests/." + rt.suffix,
			"/api/v1/requests/.." + rt.suffix,
			"/api/v1/requests/../x" + rt.suffix,
			"/api/v1/requests/" + p + "/../" + a + rt.suffix,
			"/api/v1/requests/./" + p + rt.suffix,
			"/api/v1/requests//" + p + rt.suffix,
			"//api/v1/requests/" + p + rt.suffix,
		} {
			cases = append(cases, hostileCase{"path/" + name + "/" + path, call{rt.method, path, rt.user, "", "", rt.body}, "no such route"})
		}
	}
	return cases
}

// queryCases are refused query strings of the routes that take parameters.
func queryCases() []hostileCase {
	mb := strings.Repeat("x", 1<<20)
	var cases []hostileCase
	add := func(route, user, query, want string) {
		cases = append(cases, hostileCase{"query/" + route + "?" + short(query), call{"GET", route + "?" + query, user, "", "", ""}, want})
	}
	const requests, audit, report = "/api/v1/requests", "/api/v1/audit", "/api/v1/reports/access"
	for _, q := range []struct{ query, want string }{
		{"state=sleeping", `unknown state "sleeping"`},
		{"state=", `unknown state ""`},
		{"state=PENDING", `unknown state "PENDING"`},
		{"state=pending,approved", "unknown state"},
		{"state=pending%00", "state"},
		{"state=%ff", "state"},
		{"state=" + mb, "state"},
		{"state=pending&state=" + mb, "state"},
		{"mine=perhaps", "mine"},
		{"mine=2", "mine"},
		{"mine=%00", "mine"},
		{"mine=true&mine=false", "mine"},
		{"database=%00", "database"},
		{"database=prod%00", "database"},
		{"database=%ff", "database"},
		{"database=%1b%5b2J", "database"},
		{"database=" + mb, "database"},
		{"database=a&database=b", "database"},
		{"limit=-1", "limit"},
		{"limit=0", "limit"},
		{"limit=abc", "limit"},
		{"limit=1e3", "limit"},
		{"limit=0x10", "limit"},
		{"limit=%201", "limit"},
		{"limit=1.5", "limit"},
		{"limit=99999999999999999999", "limit"},
		{"limit=-9223372036854775808", "limit"},
		{"limit=%00", "limit"},
		{"limit=" + strings.Repeat("9", 1<<20), "limit"},
		{"limit=1&limit=2", "limit"},
	} {
		add(requests, "alice", q.query, q.want)
	}
	for _, name := range []string{"user", "actor", "database", "request"} {
		for _, v := range []string{"%00", "a%00b", "%ff", "caf%c3", "%1b%5b31m", "%0a", mb} {
			add(audit, "audrey", name+"="+v, name)
		}
		add(audit, "audrey", name+"=a&"+name+"=b", name)
	}
	for _, route := range []string{audit, report} {
		for _, name := range []string{"since", "until"} {
			for _, v := range []string{"2026-13-45", "2026-13-45T00:00:00Z", "yesterday", "2026-01-01", "2026-01-01T00:00:00",
				"1767225600", "now", "%00", "%ff", "2026-01-01T00:00:00%2B99:00", mb} {
				add(route, "audrey", name+"="+v, name)
			}
		}
	}
	add(audit, "audrey", "limit=-5", "limit")
	add(audit, "audrey", "limit="+mb, "limit")
	add(report, "audrey", "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "not before")
	add(report, "audrey", "since=2026-01-01T00:00:00Z&until=2026-01-01T00:00:00Z", "not before")
	add(report, "audrey", "since=2026-01-01T01:00:00%2B01:00&until=2026-01-01T00:00:00Z", "not before")
	add(report, "audrey", "limit=5", `unknown query parameter "limit"`)
	for _, route := range []string{requests, audit, report} {
		add(route, "audrey", "bogus=1", `unknown query parameter "bogus"`)
		add(route, "audrey", "State=pending", "unknown query parameter")
		add(route, "audrey", "%00=1", "unknown query parameter")
		add(route, "audrey", mb+"=1", "unknown query parameter")
		add(route, "audrey", "a;b=1", "malformed")
		add(route, "audrey", "a=%zz", "malformed")
		add(route, "audrey", "a=%", "malformed")
	}
	for _, route := range []string{"/api/v1/me", "/api/v1/databases", "/api/v1/audit/verify", "/api/v1/requests/x", "/api/v1/requests/x/credentials"} {
		add(route, "audrey", "x=%00", `unknown query parameter "x"`)
	}
	// Tokens: refused before anything else.
	for _, auth := range []string{"Bearer", "Bearer ", "Basic YWxpY2U6eA==", "Bearer ' OR '1'='1", "Bearer " + mb, "Bearer \x00", "bearer\tx"} {
		cases = append(cases, hostileCase{"auth/" + short(auth), call{"POST", "/api/v1/requests", "", auth, "", `{"database":"prod","access":"read-only","duration":"1h","reason":"x"}`}, ""})
	}
	return cases
}

// TestHostileInput feeds every route that takes input hostile values and checks that each
// is refused clearly and leaves the store as it was.
func TestHostileInput(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		e := newEnvOn(t, nil, dsn)
		pending, approved := e.create("alice"), e.create("alice")
		if _, err := e.client("bob").Approve(context.Background(), approved.ID, timebox.ApproveInput{}); err != nil {
			t.Fatal(err)
		}
		h := e.api.Handler()
		seen := map[string]bool{}
		for _, tc := range hostileCases(pending, approved) {
			if seen[tc.name] {
				t.Fatalf("two cases are named %q", tc.name)
			}
			seen[tc.name] = true
			t.Run(tc.name, func(t *testing.T) {
				before := snapshot(t, e.db)
				checkRefused(t, serve(t, h, e.tokens, tc.call), tc.want)
				if after := snapshot(t, e.db); !after.equal(before) {
					t.Errorf("the store changed: before %s, after %s", before, after)
				}
			})
		}
	})
}

// TestOddButValidQueries checks that queries which look odd but are valid are answered,
// on both stores, rather than refused or failed.
func TestOddButValidQueries(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		e := newEnvOn(t, nil, dsn)
		e.create("alice")
		h := e.api.Handler()
		for _, path := range []string{
			"/api/v1/requests?database=O%27Brien%22%60%5C",
			"/api/v1/requests?database=%27%3B+DROP+TABLE+requests%3B+--",
			"/api/v1/requests?database=caf%C3%A9+%E6%9D%B1%E4%BA%AC+%F0%9F%9A%80",
			"/api/v1/requests?database=%25&state=pending&state=pending",
			"/api/v1/requests?database=&mine=&limit=",
			"/api/v1/requests?limit=9223372036854775807",
			"/api/v1/requests?mine=TRUE&limit=1",
			"/api/v1/audit?user=%25&actor=_&database=%5C&request=%27",
			"/api/v1/audit?since=0000-01-01T00:00:00Z&until=9999-12-31T23:59:59.999999999Z",
			"/api/v1/audit?since=2026-01-01T00:00:00+01:00",
			"/api/v1/audit?limit=9223372036854775807",
			"/api/v1/reports/access?since=0000-01-01T00:00:00Z&until=9999-12-31T23:59:59Z",
			"/api/v1/reports/access?since=2026-01-01T00:00:00-23:59",
		} {
			before := snapshot(t, e.db)
			r := serve(t, h, e.tokens, call{method: "GET", path: path, user: "audrey"})
			if r.status != 200 {
				t.Errorf("GET %s = %d %s, want 200", path, r.status, clip(string(r.body)))
			}
			if after := snapshot(t, e.db); !after.equal(before) {
				t.Errorf("GET %s changed the store: before %s, after %s", path, before, after)
			}
		}
	})
}

// hostileText is text that is valid but that a careless layer would mangle: quotes and
// backslashes of every kind, markup, format verbs, SQL, non-ASCII letters and emoji.
var hostileText = []string{
	`O'Brien said "hi" and ` + "`rm -rf /`" + ` \ \\ \" \n`,
	`'; DROP TABLE requests; --`,
	`<script>alert("x")</script> &amp; &lt;`,
	`%s %d %v %!x {{.Secret}} ${HOME} $(id)`,
	"naïve café — 東京 🚀 👩‍👩‍👧 Ω≈ç√ Ελληνικά עברית\u200f العربية",
	"line one\nline two\ttabbed",
	"\u00a0no-break space inside\u00a0the text",
	"literal \ufffd replacement character and \U0010fffd private use",
	strings.Repeat("é", 1000), // exactly 2000 bytes
}

// TestHostileTextRoundTrip checks that valid but unusual text comes back exactly as sent
// (reason and ticket without surrounding white space), from the API and from the store.
func TestHostileTextRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn string) {
		e := newEnvOn(t, nil, dsn)
		ctx := context.Background()
		alice, bob := e.client("alice"), e.client("bob")
		for i, text := range hostileText {
			// Reason and ticket, padded with white space that the service trims.
			in := timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "1h", Reason: " \n\t" + text + " \n", Ticket: "\t" + text + "  "}
			if len(in.Reason) > 2000 {
				in.Reason, in.Ticket = text, text
			}
			created, err := alice.CreateRequest(ctx, in)
			if err != nil {
				t.Fatalf("text %d: create: %v", i, err)
			}
			trimmed := strings.TrimSpace(text)
			checkStoredText(t, e, created.ID, created.Request, func(r *timebox.Request) []string { return []string{r.Reason, r.Ticket} }, trimmed, trimmed)

			// Notes are kept as they are, white space included.
			note := " " + text + "\n"
			if len(note) > 2000 {
				note = text
			}
			approved, err := bob.Approve(ctx, created.ID, timebox.ApproveInput{Note: note})
			if err != nil {
				t.Fatalf("text %d: approve: %v", i, err)
			}
			notes := func(r *timebox.Request) []string {
				var out []string
				for _, rv := range r.Reviews {
					out = append(out, rv.Note)
				}
				return out
			}
			checkStoredText(t, e, created.ID, approved.Request, notes, note)
			revoked, err := bob.Revoke(ctx, created.ID, note)
			if err != nil {
				t.Fatalf("text %d: revoke: %v", i, err)
			}
			checkStoredText(t, e, created.ID, revoked.Request, notes, note, note)

			other, err := alice.CreateRequest(ctx, timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "1h", Reason: text})
			if err != nil {
				t.Fatalf("text %d: create: %v", i, err)
			}
			denied, err := bob.Deny(ctx, other.ID, note)
			if err != nil {
				t.Fatalf("text %d: deny: %v", i, err)
			}
			checkStoredText(t, e, other.ID, denied.Request, notes, note)
			third := e.create("alice")
			cancelled, err := alice.Cancel(ctx, third.ID, note)
			if err != nil {
				t.Fatalf("text %d: cancel: %v", i, err)
			}
			checkStoredText(t, e, third.ID, cancelled.Request, notes, note)
		}
	})
}

// checkStoredText checks that get returns want from the answer r, from a new GET of request id,
// and from the store itself.
func checkStoredText(t *testing.T, e *testEnv, id string, answer *timebox.Request, get func(*timebox.Request) []string, want ...string) {
	t.Helper()
	fresh, err := e.client("alice").Request(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var stored *timebox.Request
	err = e.db.View(context.Background(), func(tx timebox.Tx) (err error) {
		stored, err = tx.FindRequest(id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for where, r := range map[string]*timebox.Request{"answer": answer, "GET": fresh.Request, "store": stored} {
		if got := get(r); !slices.Equal(got, want) {
			t.Errorf("%s of request %s: got %q, want %q", where, id, got, want)
		}
	}
}

// TestBidiControlsRefused checks that free text cannot carry the Unicode controls that
// reorder how text is shown (the "Trojan Source" characters): an approver reading a reason
// in the console or the CLI must see the characters that were stored, in their order.
// checkText (root package) documents free text as "printable" but refuses only the C0 and
// C1 controls, so these pass today.
func TestBidiControlsRefused(t *testing.T) {
	e := newEnv(t, nil)
	h := e.api.Handler()
	for _, c := range []string{`\u202a`, `\u202b`, `\u202c`, `\u202d`, `\u202e`, `\u2066`, `\u2067`, `\u2068`, `\u2069`} {
		pending := e.create("alice") // still pending should the denial below go through
		for _, tc := range []struct {
			field string
			call
		}{
			{"reason", call{"POST", "/api/v1/requests", "alice", "", "", `{"database":"prod","access":"read-only","duration":"1h","reason":"read-only check ` + c + `gnissecca etirw"}`}},
			{"ticket", call{"POST", "/api/v1/requests", "alice", "", "", `{"database":"prod","access":"read-only","duration":"1h","reason":"x","ticket":"T-1` + c + `"}`}},
			{"note", call{"POST", "/api/v1/requests/" + pending.ID + "/deny", "bob", "", "", `{"note":"fine ` + c + `"}`}},
		} {
			before := snapshot(t, e.db)
			r := serve(t, h, e.tokens, tc.call)
			if r.status != 400 {
				t.Errorf("%s with %s: status %d, want 400 naming the field", tc.field, c, r.status)
				continue
			}
			checkRefused(t, r, tc.field)
			if after := snapshot(t, e.db); !after.equal(before) {
				t.Errorf("the store changed: before %s, after %s", before, after)
			}
		}
	}
}

// TestOversizedRequests sends, through the real server and client, what the HTTP server
// refuses before any handler runs (a URL or a header over its 64 KiB limit) and bodies over
// the API's limit: each is a 4xx that the client reports as EINVALID, and nothing changes.
func TestOversizedRequests(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	s := tbhttp.NewServer(e.svc)
	s.Logger = e.api.Logger
	ln, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Close(ctx)
	pending := e.create("alice")
	alice, bob := tbhttp.NewClient(s.URL(), e.tokens["alice"]), tbhttp.NewClient(s.URL(), e.tokens["bob"])
	mb := strings.Repeat("x", 1<<20)
	before := snapshot(t, e.db)
	for name, call := range map[string]func() error{
		"1 MB query parameter": func() error {
			_, err := alice.Requests(ctx, tbhttp.RequestQuery{Database: mb})
			return err
		},
		"1 MB id": func() error {
			_, err := alice.Request(ctx, mb)
			return err
		},
		"70 KB note": func() error {
			_, err := bob.Deny(ctx, pending.ID, strings.Repeat("x", 70<<10))
			return err
		},
		"1 MB reason": func() error {
			_, err := alice.CreateRequest(ctx, timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "1h", Reason: mb})
			return err
		},
		"60 KB reason": func() error {
			_, err := alice.CreateRequest(ctx, timebox.RequestInput{Database: "prod", Access: "read-only", Duration: "1h", Reason: mb[:60<<10]})
			return err
		},
	} {
		te := wantCode(t, call(), timebox.EINVALID)
		if len(te.Message) > maxMessage {
			t.Errorf("%s: message is %d bytes long", name, len(te.Message))
		}
	}
	req, err := http.NewRequest("GET", s.URL()+"/api/v1/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens["alice"])
	req.Header.Set("X-Padding", mb)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 1 MB header: status %d, want 431", resp.StatusCode)
	}
	if after := snapshot(t, e.db); !after.equal(before) {
		t.Errorf("the store changed: before %s, after %s", before, after)
	}
}

// TestEscapedTextRoundTrip sends text written with JSON escapes, surrogate pairs and
// escaped backslashes included, and checks that it is stored decoded and exact.
func TestEscapedTextRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	h := e.api.Handler()
	for _, tt := range []struct{ raw, want string }{
		{`rocket \ud83d\ude80 and \uD83D\uDE80`, "rocket 🚀 and 🚀"},
		{`not an escape: \\ud800 \\\"`, `not an escape: \ud800 \"`},
		{`\u00e9\u6771\/`, "é東/"},
		{`quote \" backslash \\ tab \t newline \n`, "quote \" backslash \\ tab \t newline"},
	} {
		r := serve(t, h, e.tokens, call{method: "POST", path: "/api/v1/requests", user: "alice",
			body: `{"database":"prod","access":"read-only","duration":"1h","reason":"x","ticket":"` + tt.raw + `"}`})
		if r.status != 201 {
			t.Errorf("%s: status %d %s", tt.raw, r.status, r.body)
			continue
		}
		var got tbhttp.RequestView
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		checkStoredText(t, e, got.ID, got.Request, func(r *timebox.Request) []string { return []string{r.Ticket} }, tt.want)
	}
}

// TestFarEndMessage checks that a window ending in year 9999 is refused with its real
// length. checkWindow (root package) computes end.Sub(start), which saturates at about 292
// years, so the message today names a duration of 2562047h47m16.854775807s.
func TestFarEndMessage(t *testing.T) {
	e := newEnv(t, nil)
	r := serve(t, e.api.Handler(), e.tokens, call{method: "POST", path: "/api/v1/requests", user: "alice",
		body: `{"database":"prod","access":"read-only","end":"9999-12-31T23:59:59Z","reason":"x"}`})
	checkRefused(t, r, "exceeds the prod limit")
	if _, msg := r.apiError(t); strings.Contains(msg, "2562047h47m16.854775807s") {
		t.Errorf("message names the saturated time.Duration, not the window asked for: %q", msg)
	}
}
