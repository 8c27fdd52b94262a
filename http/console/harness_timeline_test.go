package console_test

import (
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/timebox-dev/timebox"
)

// grant stores a request of who on database at level that the database confirmed at
// activated and, unless ended is zero, removed at ended (in state, which is active when
// ended is zero). It goes into the store directly, as the scheduler would leave it: the
// console's tests have no database to activate on.
func (e *env) grant(id, who, database, level string, activated, ended time.Time, state timebox.State) *timebox.Request {
	e.t.Helper()
	r := &timebox.Request{
		ID: id, Requester: who, Database: database, Access: level,
		Start: activated, End: activated.Add(4 * time.Hour), RequestedStart: activated, RequestedEnd: activated.Add(4 * time.Hour),
		Reason: "timeline test", State: state, Reviews: []timebox.Review{{Reviewer: "bob", Decision: timebox.ActionApprove, At: activated}},
		ActivatedAt: activated, EndedAt: ended, CreatedAt: activated.Add(-time.Minute), UpdatedAt: activated, Version: 1,
	}
	if !ended.IsZero() {
		r.End = ended
	}
	e.put(r)
	return r
}

// put stores r as it is.
func (e *env) put(r *timebox.Request) {
	e.t.Helper()
	if err := e.DB.Update(e.t.Context(), func(tx timebox.Tx) error { return tx.CreateRequest(r) }); err != nil {
		e.t.Fatal(err)
	}
}

// setZone gives b the time-zone cookie the console's script sets.
func (b *browser) setZone(name string) {
	u, _ := url.Parse(b.e.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "tz", Value: name, Path: "/"}})
}

// plainJar keeps every cookie by name whatever its expiry: the timeline's tests run the
// console on a clock in the past, whose session cookie a real jar would drop as expired.
type plainJar struct {
	mu sync.Mutex
	c  map[string]*http.Cookie
}

func (j *plainJar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.c == nil {
		j.c = map[string]*http.Cookie{}
	}
	for _, c := range cs {
		if c.MaxAge < 0 {
			delete(j.c, c.Name)
		} else {
			j.c[c.Name] = &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
}

func (j *plainJar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*http.Cookie
	for _, c := range j.c {
		out = append(out, c)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// signInThen signs in as user, like signIn, in a browser whose jar keeps cookies that the
// real clock says expired (see plainJar).
func (e *env) signInThen(user string) *browser {
	e.t.Helper()
	b := &browser{t: e.t, e: e, c: &http.Client{Jar: &plainJar{}, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
	b.get("/sign-in")
	res := b.post("/sign-in/dev", url.Values{"user": {user}, "next": {"/"}})
	if res.Status != http.StatusSeeOther {
		e.t.Fatalf("sign in as %s: %d %s", user, res.Status, res.Body)
	}
	if res := b.get("/"); res.Status != http.StatusOK {
		e.t.Fatalf("after sign-in as %s: GET / = %d", user, res.Status)
	}
	return b
}
