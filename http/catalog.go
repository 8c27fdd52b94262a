package http

import (
	"net/http"

	"github.com/timebox-dev/timebox"
)

// Me is who the caller is, as the catalog says.
type Me struct {
	User    string   `json:"user"`
	Email   string   `json:"email"`
	Groups  []string `json:"groups"`
	Admin   bool     `json:"admin"`
	Auditor bool     `json:"auditor"`
}

// DatabaseView is a database as a requester sees it: what it is, who approves, which access
// levels can be requested on it, and whether the caller owns (approves for) it.
type DatabaseView struct {
	Name         string   `json:"name"`
	Environment  string   `json:"environment"`
	Server       string   `json:"server"`
	Owners       []string `json:"owners"`
	AccessLevels []string `json:"access_levels"`
	Owner        bool     `json:"owner"`
}

// databaseList is the body of GET /api/v1/databases.
type databaseList struct {
	Databases []DatabaseView `json:"databases"`
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	c := s.Service.Catalog
	me := Me{User: u.Name, Email: u.Email, Groups: nonNil(u.Groups), Admin: c.IsAdmin(u.Name), Auditor: c.IsAuditor(u.Name)}
	writeJSON(w, http.StatusOK, me)
	return nil
}

func (s *Server) handleDatabases(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	writeJSON(w, http.StatusOK, databaseList{Databases: DatabaseViews(s.Service.Catalog, u.Name)})
	return nil
}

// DatabaseViews returns the databases of c as user sees them (GET /api/v1/databases).
func DatabaseViews(c *timebox.Catalog, user string) []DatabaseView {
	out := make([]DatabaseView, 0, len(c.Databases))
	for i := range c.Databases {
		db := &c.Databases[i]
		v := DatabaseView{
			Name: db.Name, Environment: db.Environment, Server: db.Server,
			Owners: nonNil(db.Owners), AccessLevels: []string{}, Owner: c.IsOwner(user, db),
		}
		for _, l := range c.AccessLevels {
			if g, err := c.Grants(db, l.Name); err == nil && len(g.Roles)+len(g.Privileges) > 0 {
				v.AccessLevels = append(v.AccessLevels, l.Name)
			}
		}
		out = append(out, v)
	}
	return out
}

// nonNil returns s, or an empty slice when s is nil, so that JSON shows [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
