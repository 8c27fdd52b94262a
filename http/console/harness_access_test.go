package console_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// Helpers of the access tests (My access, New request, API tokens).

// withCatalog replaces the service's catalog with the test catalog changed by edit (and
// validated, so that rules are compiled). Call it before the first request.
func (e *env) withCatalog(edit func(*timebox.Catalog)) {
	e.t.Helper()
	c := testCatalog(e.t)
	edit(c)
	if err := c.Validate(); err != nil {
		e.t.Fatal(err)
	}
	*e.Svc.Catalog = *c
}

// fixClock fixes the service's clock at now (sessions included): call it before signing in.
func (e *env) fixClock(now time.Time) { e.Svc.Now = func() time.Time { return now } }

// fileRequest files a request as user through the Service.
func (e *env) fileRequest(user string, in timebox.RequestInput) *timebox.Request {
	e.t.Helper()
	r, err := e.Svc.CreateRequest(context.Background(), user, in)
	if err != nil {
		e.t.Fatalf("request as %s: %v", user, err)
	}
	return r
}

// approveAs approves request id as user through the Service.
func (e *env) approveAs(user, id string, in timebox.ApproveInput) *timebox.Request {
	e.t.Helper()
	r, err := e.Svc.Approve(context.Background(), user, id, in)
	if err != nil {
		e.t.Fatalf("approve %s as %s: %v", id, user, err)
	}
	return r
}

// activateGrant does what the scheduler does once the database confirmed the access (as
// cmd/timebox's client tests do): request active, grant active with a sealed password, and
// its audit event. No database is touched.
func (e *env) activateGrant(id, password string) {
	e.t.Helper()
	err := e.DB.Update(context.Background(), func(tx timebox.Tx) error {
		r, err := tx.FindRequest(id)
		if err != nil {
			return err
		}
		now := e.Svc.Now().UTC().Truncate(time.Microsecond)
		g := &timebox.Grant{
			RequestID: id, Server: "pg1", Principal: "tbx_" + r.Requester + "_" + id, Method: timebox.MethodEphemeralLogin,
			Status: timebox.GrantActive, Roles: []string{"shop_reader"}, ValidUntil: r.End,
			SealedPassword: e.Svc.Sealer.Seal(password, id), Attempts: 1, CreatedAt: now, UpdatedAt: now,
		}
		if err := tx.PutGrant(g); err != nil {
			return err
		}
		r.State, r.ActivatedAt, r.UpdatedAt = timebox.StateActive, now, now
		if err := tx.UpdateRequest(r); err != nil {
			return err
		}
		return tx.AppendEvent(&timebox.Event{Time: now, Actor: "timebox", Action: "request.activated",
			RequestID: id, Database: r.Database, Details: map[string]any{"principal": g.Principal}})
	})
	if err != nil {
		e.t.Fatalf("activate %s: %v", id, err)
	}
}

// storedRequest returns request id as the store has it.
func (e *env) storedRequest(id string) *timebox.Request {
	e.t.Helper()
	var r *timebox.Request
	err := e.DB.View(context.Background(), func(tx timebox.Tx) (err error) {
		r, err = tx.FindRequest(id)
		return err
	})
	if err != nil {
		e.t.Fatalf("find %s: %v", id, err)
	}
	return r
}

// storedRequests returns every request in the store.
func (e *env) storedRequests() []*timebox.Request {
	e.t.Helper()
	var rs []*timebox.Request
	err := e.DB.View(context.Background(), func(tx timebox.Tx) (err error) {
		rs, err = tx.FindRequests(timebox.RequestFilter{})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return rs
}

// eventActions returns the actions of the audit events of request id (every event for "").
func (e *env) eventActions(id string) []string {
	e.t.Helper()
	var es []*timebox.Event
	err := e.DB.View(context.Background(), func(tx timebox.Tx) (err error) {
		es, err = tx.FindEvents(timebox.EventFilter{RequestID: id})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(es))
	for i, ev := range es {
		out[i] = ev.Action
	}
	return out
}

// inZone sets the time-zone cookie as console.js does.
func (b *browser) inZone(name string) {
	b.c.Jar.SetCookies(mustURL(b.t, b.e.URL), []*http.Cookie{{Name: "tz", Value: url.QueryEscape(name), Path: "/"}})
}

// accessFieldError returns the error shown next to the form field with id (its <p id="ID-error">),
// "" when there is none.
func accessFieldError(body, id string) string {
	m := regexp.MustCompile(`<p class="field-error" id="` + regexp.QuoteMeta(id) + `-error">([^<]*)</p>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// accessText returns body's text without tags and with entities decoded, spaces collapsed.
func accessText(body string) string {
	s := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(body, " ")
	return strings.Join(strings.Fields(html.UnescapeString(s)), " ")
}
