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

// driftShown is how many of the latest drift repairs the Servers page lists.
const driftShown = 20

// adminRoutes are the Servers page (admins) and the People page (admins and auditors), with
// the admins' disable and enable forms.
func (s *Server) adminRoutes() []route {
	return []route{
		{Method: "GET", Path: "/servers", h: s.handleServers},
		{Method: "GET", Path: "/users", h: s.handleUsers},
		{Method: "POST", Path: "/users/{name}/disable", h: s.handleDisableUser},
		{Method: "POST", Path: "/users/{name}/enable", h: s.handleEnableUser},
	}
}

// serverRow is one configured database server and what this process knows of its health.
type serverRow struct {
	Name, Engine, Endpoint string
	Databases              []string
	// Status is nil when no status is known (no scheduler in this process).
	Status *timebox.ServerStatus
}

// serversPage is what the Servers page shows.
type serversPage struct {
	Servers []*serverRow
	// Known says a status was read; Leader that this process does the database work (the
	// servers' health is known only there); StatusErr why no status could be read.
	Known, Leader bool
	StatusErr     string
	Tampered      []timebox.TamperedRequest
	// Events are the latest drift repairs, newest first.
	Events      []*timebox.Event
	ShowRequest bool
}

// handleServers shows each server's reachability and pending work (the scheduler's
// status, as `timebox status` prints it), the requests found edited in the store, and the
// latest drift repairs. Admins only.
func (s *Server) handleServers(w http.ResponseWriter, r *http.Request, c *call) error {
	cat := s.Service.Catalog
	if !cat.IsAdmin(c.User.Name) {
		return timebox.Errorf(timebox.EFORBIDDEN, "only admins may see the servers page")
	}
	p := &serversPage{ShowRequest: true}
	byName := map[string]*serverRow{}
	for _, srv := range cat.Servers {
		host, port := srv.Endpoint()
		row := &serverRow{Name: srv.Name, Engine: srv.Engine, Endpoint: host + ":" + strconv.Itoa(port)}
		for _, db := range cat.Databases {
			if db.Server == srv.Name {
				row.Databases = append(row.Databases, db.Name)
			}
		}
		p.Servers, byName[srv.Name] = append(p.Servers, row), row
	}
	if s.Reporter == nil {
		p.StatusErr = "this process runs no scheduler, so it knows nothing of the servers' health"
	} else if st, err := s.Reporter.Status(r.Context()); err != nil {
		p.StatusErr = timebox.ErrorMessage(err)
	} else {
		p.Known, p.Leader, p.Tampered = true, st.Leader, st.Tampered
		for i := range st.Servers {
			ss := &st.Servers[i]
			if row := byName[ss.Name]; row != nil {
				row.Status = ss
			} else {
				p.Servers = append(p.Servers, &serverRow{Name: ss.Name, Engine: ss.Engine, Status: ss})
			}
		}
	}
	es, err := s.Service.FindEvents(r.Context(), c.User.Name, timebox.EventFilter{Action: "drift.repaired", Limit: driftShown})
	if err != nil {
		return err
	}
	slices.Reverse(es)
	p.Events = es
	s.render(w, r, c, http.StatusOK, "servers", "Servers", p)
	return nil
}

// userRow is one person: a configuration user, someone who signed in through the
// provider, or both.
type userRow struct {
	Name, Email, DisplayName string
	Groups                   []string
	Config, Provider         bool
	Admin, Auditor           bool
	FirstSeen, LastSignIn    time.Time
	// ConfigDisabled: disabled in the configuration; Disabled: through the console or API.
	ConfigDisabled bool
	Disabled       *timebox.DisabledUser
}

// usersPage is what the People page shows.
type usersPage struct {
	Users []*userRow
	// Failed names the user whose form was refused, Error says why, Note is what was typed.
	Failed, Error, Note string
}

func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.showUsers(w, r, c, http.StatusOK, "", nil)
}

// showUsers renders the People page: every configuration user and everyone who signed in
// through the provider, with their groups, first and last sign-in, and who disabled them
// and why. Admins and auditors (Service.Identities refuses others).
func (s *Server) showUsers(w http.ResponseWriter, r *http.Request, c *call, status int, failed string, ferr error) error {
	ctx, me := r.Context(), c.User.Name
	ids, err := s.Service.Identities(ctx, me)
	if err != nil {
		return err
	}
	disabled, err := s.Service.DisabledUsers(ctx, me)
	if err != nil {
		return err
	}
	cat := s.Service.Catalog
	rows := map[string]*userRow{}
	for i := range cat.Users {
		u := &cat.Users[i]
		rows[u.Name] = &userRow{Name: u.Name, Email: u.Email, Config: true, ConfigDisabled: u.Disabled}
	}
	for _, id := range ids {
		row := rows[id.Name]
		if row == nil {
			row = &userRow{Name: id.Name, Email: id.Email}
			rows[id.Name] = row
		}
		row.Provider, row.DisplayName, row.FirstSeen, row.LastSignIn = true, id.DisplayName, id.FirstSeen, id.LastSignIn
		if row.Email == "" {
			row.Email = id.Email
		}
	}
	for _, d := range disabled {
		if row := rows[d.Name]; row != nil {
			row.Disabled = d
		}
	}
	p := &usersPage{}
	for _, row := range rows {
		if u, err := cat.User(row.Name); err == nil {
			row.Groups = u.Groups // the configuration's and the provider's, merged
		}
		row.Admin, row.Auditor = cat.IsAdmin(row.Name), cat.IsAuditor(row.Name)
		if !row.Provider {
			if row.LastSignIn, err = s.lastSignIn(ctx, me, row.Name); err != nil {
				return err
			}
		}
		p.Users = append(p.Users, row)
	}
	slices.SortFunc(p.Users, func(a, b *userRow) int { return strings.Compare(a.Name, b.Name) })
	if ferr != nil {
		p.Failed, p.Error, p.Note = failed, localTimes(timebox.ErrorMessage(ferr), c.Zone), r.PostFormValue("note")
	}
	s.render(w, r, c, status, "users", "People", p)
	return nil
}

// lastSignIn returns when a configuration user last signed in (timebox dev's sign-in, or
// before the provider recorded them): their latest user.signed_in event, by the index on
// the events' actor.
func (s *Server) lastSignIn(ctx context.Context, actor, name string) (time.Time, error) {
	es, err := s.Service.FindEvents(ctx, actor, timebox.EventFilter{Actor: name, Action: "user.signed_in", Limit: 1})
	if err != nil || len(es) == 0 {
		return time.Time{}, err
	}
	return es[0].Time, nil
}

func (s *Server) handleDisableUser(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PathValue("name")
	_, err := s.Service.DisableUser(r.Context(), c.User.Name, name, r.PostFormValue("note"))
	return s.userDecided(w, r, c, name, err)
}

func (s *Server) handleEnableUser(w http.ResponseWriter, r *http.Request, c *call) error {
	name := r.PathValue("name")
	return s.userDecided(w, r, c, name, s.Service.EnableUser(r.Context(), c.User.Name, name))
}

// userDecided answers a disable or enable: back to the People page, or the page with the
// error next to the user's form.
func (s *Server) userDecided(w http.ResponseWriter, r *http.Request, c *call, name string, err error) error {
	if err == nil {
		http.Redirect(w, r, "/users#user-"+url.PathEscape(name), http.StatusSeeOther)
		return nil
	}
	if _, known := s.Service.Catalog.User(name); known != nil || timebox.ErrorCode(err) == timebox.EINTERNAL {
		return err // nobody of that name: nowhere on the page to say it
	}
	return s.showUsers(w, r, c, tbhttp.ErrorStatus(err), name, err)
}
