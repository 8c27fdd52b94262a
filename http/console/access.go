package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// accessRoutes are the "My access" page, what its buttons do (reveal the credentials,
// extend, release, cancel), and the API tokens page (tokens.go).
func (s *Server) accessRoutes() []route {
	return append([]route{
		{Method: "GET", Path: "/{$}", h: s.handleAccess},
		{Method: "POST", Path: "/requests/{id}/credentials", h: s.handleAccessCredentials},
		{Method: "POST", Path: "/requests/{id}/extend", h: s.handleAccessExtend},
		{Method: "POST", Path: "/requests/{id}/release", h: s.handleAccessRelease},
		{Method: "POST", Path: "/requests/{id}/cancel", h: s.handleAccessCancel},
	}, s.tokenRoutes()...)
}

// accessHistoryLimit is how many of a person's requests "My access" lists.
const accessHistoryLimit = 100

// accessPage is the "My access" page.
type accessPage struct {
	// Active are the requests whose access exists now (or is being removed), ending first;
	// Waiting those pending or approved, starting first; History every request, newest
	// first (at most accessHistoryLimit; More says there were more).
	Active, Waiting, History []*accessItem
	More                     bool
	// Creds are credentials just revealed (the answer to their POST only).
	Creds *credsView
	// Extend is an extension form the Service refused, shown again with its values.
	Extend *extendForm
	// Problem is why an action on one request was refused.
	Problem *accessProblem
	// Notice says what the last action did.
	Notice string
}

// accessItem is one request as "My access" shows it.
type accessItem struct {
	*timebox.Request
	// Status is the one-line status with what the policy adds (times in RFC 3339: render
	// it with accessZoned).
	Status string
	// What is the access level, or the ad-hoc tables; Asked the tables as asked when an
	// approver narrowed them; Narrowed says the approver changed the window.
	What, Asked string
	Narrowed    bool
	// Buttons that the Service would not refuse for the request's state (it decides).
	Reveal, Extendable, Releasable, Cancellable bool
	// Events are what happened to the request, in order.
	Events []accessEvent
}

// accessEvent is one step of a request's history. What and Changes may hold RFC 3339
// times (render them with accessZoned).
type accessEvent struct {
	At                  time.Time
	What, Changes, Note string
}

// accessDecisions are the reviews' decisions in words.
var accessDecisions = map[timebox.Action]string{
	timebox.ActionApprove: "approved", timebox.ActionDeny: "denied", timebox.ActionCancel: "cancelled",
	timebox.ActionActivate: "activated", timebox.ActionExpire: "expired", timebox.ActionRevoke: "revoked",
	timebox.ActionRelease: "released", timebox.ActionReopen: "sent back to pending", timebox.ActionExtend: "extended",
}

// accessEvents lists what happened to r: asked for, every decision (what an approver
// changed, their note), an extension asked for and its reviews, activated, ended.
func accessEvents(r *timebox.Request) []accessEvent {
	decision := func(a timebox.Action) string {
		if w, ok := accessDecisions[a]; ok {
			return w
		}
		return string(a)
	}
	ev := []accessEvent{{At: r.CreatedAt, What: "asked for by " + r.Requester}}
	for _, rv := range r.Reviews {
		ev = append(ev, accessEvent{At: rv.At, What: decision(rv.Decision) + " by " + rv.Reviewer, Changes: rv.Changes, Note: rv.Note})
	}
	if x := r.Extension; x != nil {
		ev = append(ev, accessEvent{At: x.RequestedAt, What: "extension to " + x.End.UTC().Format(time.RFC3339) + " asked for", Note: x.Reason})
		for _, rv := range x.Reviews {
			ev = append(ev, accessEvent{At: rv.At, What: "extension " + decision(rv.Decision) + " by " + rv.Reviewer, Note: rv.Note})
		}
	}
	if !r.ActivatedAt.IsZero() {
		ev = append(ev, accessEvent{At: r.ActivatedAt, What: "active on the database"})
	}
	if !r.EndedAt.IsZero() && !slices.ContainsFunc(r.Reviews, func(rv timebox.Review) bool { return !rv.At.Before(r.EndedAt) }) {
		ev = append(ev, accessEvent{At: r.EndedAt, What: "ended: " + string(r.State)})
	}
	slices.SortStableFunc(ev, func(a, b accessEvent) int { return a.At.Compare(b.At) })
	return ev
}

// accessProblem is an action on request ID that the Service refused.
type accessProblem struct{ ID, Message string }

// extendForm is the extension form of request ID.
type extendForm struct {
	ID, Duration, Reason string
	Errors               map[string]string
}

// ExtendFor returns the extension form of request id: the refused one again, or a new one.
func (p *accessPage) ExtendFor(id string) *extendForm {
	if p.Extend != nil && p.Extend.ID == id {
		return p.Extend
	}
	return &extendForm{ID: id, Duration: "1h"}
}

// ProblemFor returns why an action on request id was refused, or "".
func (p *accessPage) ProblemFor(id string) string {
	if p.Problem != nil && p.Problem.ID == id {
		return p.Problem.Message
	}
	return ""
}

func newAccessItem(r *timebox.Request, now time.Time) *accessItem {
	it := &accessItem{Request: r, Status: r.PolicyStatus(r.Status()), What: r.Access, Events: accessEvents(r)}
	if len(r.Tables) > 0 {
		it.What = timebox.DescribeTables(r.Tables)
	}
	if len(r.RequestedTables) > 0 {
		if asked := timebox.DescribeTables(r.RequestedTables); asked != it.What {
			it.Asked = asked
		}
	}
	it.Narrowed = !r.RequestedStart.IsZero() && (!r.RequestedStart.Equal(r.Start) || !r.RequestedEnd.Equal(r.End))
	live := r.Ending == timebox.EndingNone && r.End.After(now)
	it.Reveal = live && r.State == timebox.StateActive && r.Grant != nil && r.Grant.Status == timebox.GrantActive
	it.Releasable = live && r.State == timebox.StateActive
	it.Cancellable = live && (r.State == timebox.StatePending || r.State == timebox.StateApproved)
	it.Extendable = live && (r.State == timebox.StateApproved || r.State == timebox.StateActive) && r.Extension == nil && !r.BreakGlass
	return it
}

// accessPage reads the signed-in person's requests.
func (s *Server) accessPage(ctx context.Context, c *call) (*accessPage, error) {
	me, now := c.User.Name, s.Service.Now()
	live, err := s.Service.FindRequests(ctx, me, timebox.RequestFilter{Requester: me,
		States: []timebox.State{timebox.StatePending, timebox.StateApproved, timebox.StateActive}})
	if err != nil {
		return nil, err
	}
	all, err := s.Service.FindRequests(ctx, me, timebox.RequestFilter{Requester: me, Limit: accessHistoryLimit + 1})
	if err != nil {
		return nil, err
	}
	p := &accessPage{}
	for _, r := range live {
		if r.State == timebox.StateActive {
			p.Active = append(p.Active, newAccessItem(r, now))
		} else {
			p.Waiting = append(p.Waiting, newAccessItem(r, now))
		}
	}
	slices.SortFunc(p.Active, func(a, b *accessItem) int { return a.End.Compare(b.End) })
	slices.SortFunc(p.Waiting, func(a, b *accessItem) int { return a.Start.Compare(b.Start) })
	if len(all) > accessHistoryLimit {
		all, p.More = all[:accessHistoryLimit], true
	}
	for _, r := range all {
		p.History = append(p.History, newAccessItem(r, now))
	}
	slices.SortStableFunc(p.History, func(a, b *accessItem) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return p, nil
}

// accessNotices say what an action did (the ?done= of the redirect after it).
var accessNotices = map[string]string{
	"extend":   "Extension of request %s asked for: it waits for an approver, as shown below.",
	"extended": "Request %s was extended.",
	"release":  "Request %s is being released: its login and sessions end now.",
	"cancel":   "Request %s was cancelled.",
}

func (s *Server) handleAccess(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := s.accessPage(r.Context(), c)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if msg, ok := accessNotices[q.Get("done")]; ok {
		if id := q.Get("id"); slices.ContainsFunc(p.History, func(it *accessItem) bool { return it.ID == id }) {
			p.Notice = strings.Replace(msg, "%s", id, 1)
		}
	}
	s.render(w, r, c, http.StatusOK, "access", "My access", p)
	return nil
}

// handleAccessCredentials reveals the credentials of the person's active request: the
// Service hands them to their owner only, while the request is active, and records it.
func (s *Server) handleAccessCredentials(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("id")
	cr, err := s.Service.Credentials(r.Context(), c.User.Name, id)
	if err != nil {
		return err
	}
	p, err := s.accessPage(r.Context(), c)
	if err != nil {
		return err
	}
	p.Creds = newCredsView(id, cr)
	s.render(w, r, c, http.StatusOK, "access", "Credentials · My access", p)
	return nil
}

func (s *Server) handleAccessExtend(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("id")
	f := &extendForm{ID: id, Duration: strings.TrimSpace(r.PostFormValue("duration")), Reason: r.PostFormValue("reason")}
	req, err := s.Service.Extend(r.Context(), c.User.Name, id, timebox.ExtendInput{Duration: f.Duration, Reason: f.Reason})
	if err != nil {
		return s.accessRefused(w, r, c, id, err, func(p *accessPage) bool {
			if timebox.ErrorCode(err) != timebox.EINVALID {
				return false
			}
			field := "duration"
			if strings.HasPrefix(timebox.ErrorMessage(err), "reason") {
				field = "reason"
			}
			f.Errors = map[string]string{field: timebox.ErrorMessage(err)}
			p.Extend = f
			return true
		})
	}
	done := "extend"
	if req.Extension == nil {
		done = "extended" // its rule approved it at once
	}
	accessDone(w, r, done, id)
	return nil
}

func (s *Server) handleAccessRelease(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.accessEnd(w, r, c, s.Service.Release, "release")
}

func (s *Server) handleAccessCancel(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.accessEnd(w, r, c, s.Service.Cancel, "cancel")
}

// accessEnd ends the person's own request with fn (release or cancel), lets the runner
// remove the access before answering when there is one, and goes back to "My access".
func (s *Server) accessEnd(w http.ResponseWriter, r *http.Request, c *call,
	fn func(ctx context.Context, actor, id, note string) (*timebox.Request, error), done string) error {
	id := r.PathValue("id")
	req, err := fn(r.Context(), c.User.Name, id, r.PostFormValue("note"))
	if err != nil {
		return s.accessRefused(w, r, c, id, err, nil)
	}
	if req.Ending != timebox.EndingNone && s.Runner != nil {
		// The change is stored: a slow database only means the page shows it on its way.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		if err := s.Runner.RunNow(ctx, req.ID); err != nil {
			s.Logger.Warn("console: database work not finished before answering", "request", req.ID, "err", err)
		}
	}
	accessDone(w, r, done, id)
	return nil
}

// accessRefused answers an action on request id that the Service refused with err: "My
// access" again, the reason next to the request (and, when form takes it, in the form that
// was sent), with err's status; an error page when the request is not the person's to act
// on (403, 404) or the failure is not theirs to fix.
func (s *Server) accessRefused(w http.ResponseWriter, r *http.Request, c *call, id string, err error, form func(*accessPage) bool) error {
	if code := timebox.ErrorCode(err); code != timebox.EINVALID && code != timebox.ECONFLICT {
		return err
	}
	p, perr := s.accessPage(r.Context(), c)
	if perr != nil {
		return perr
	}
	if form == nil || !form(p) {
		p.Problem = &accessProblem{ID: id, Message: timebox.ErrorMessage(err)}
	}
	s.render(w, r, c, tbhttp.ErrorStatus(err), "access", "My access", p)
	return nil
}

// accessDone redirects to "My access" saying what was done to request id.
func accessDone(w http.ResponseWriter, r *http.Request, done, id string) {
	q := url.Values{"done": {done}, "id": {id}}
	http.Redirect(w, r, "/?"+q.Encode()+"#req-"+url.PathEscape(id), http.StatusSeeOther)
}

// credsView is the login of an active request, as the page shows it once.
type credsView struct {
	ID string
	*timebox.Credentials
	// Client is the command that starts the database's client on the login; it asks for
	// the password (never on the command line, where ps and shell history show it).
	Client string
	// Engine is PostgreSQL or MySQL/MariaDB.
	Engine string
}

func newCredsView(id string, c *timebox.Credentials) *credsView {
	v := &credsView{ID: id, Credentials: c}
	port := strconv.Itoa(c.Port)
	if strings.HasPrefix(c.URI, "mysql") {
		v.Engine = "MySQL / MariaDB"
		v.Client = strings.Join([]string{"mariadb", "--protocol=tcp", "-h", accessQuote(c.Host), "-P", port,
			"-u", accessQuote(c.User), "-p", accessQuote(c.Database)}, " ")
	} else {
		v.Engine = "PostgreSQL"
		v.Client = strings.Join([]string{"psql", "-h", accessQuote(c.Host), "-p", port,
			"-U", accessQuote(c.User), "-d", accessQuote(c.Database)}, " ")
	}
	return v
}

// accessQuote quotes s for a POSIX shell when it holds anything but safe characters.
func accessQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// accessArgs is what the partials of "My access" get: the page's view and one item.
type accessArgs struct {
	V  *view
	It any
}

func init() {
	funcs["accessArgs"] = func(v *view, it any) accessArgs { return accessArgs{V: v, It: it} }
	// accessZoned rewrites the RFC 3339 times in s (a status line, an approver's changes)
	// in zone, as every time on a page is (localTimes).
	funcs["accessZoned"] = localTimes
	// accessAgo is how long ago t was, for the history ("5m ago").
	funcs["accessAgo"] = func(t, now time.Time) string {
		if t.IsZero() {
			return "never"
		} else if d := now.Sub(t); d >= time.Second {
			return shortDuration(d) + " ago"
		}
		return "just now"
	}
}
