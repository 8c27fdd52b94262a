package main

import (
	"fmt"

	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/postgres"
)

// ownerRoles returns, for the PostgreSQL server called server, each declared database's
// owner role by its name on the server.
func ownerRoles(cat *timebox.Catalog, server string) map[string]string {
	roles := map[string]string{}
	for _, d := range cat.Databases {
		if d.Server == server && d.OwnerRole != "" {
			roles[d.Database] = d.OwnerRole
		}
	}
	return roles
}

// checkOwnerRoles refuses what can be known of the databases' owner roles without
// connecting: Timebox's own roles on the server (the admin of its URL, the bookkeeping,
// connect and quarantine roles), and two databases with the same name on one server that
// name different owner roles. doctor checks the roles' attributes on the server.
func checkOwnerRoles(cat *timebox.Catalog) error {
	servers := map[string]timebox.Server{}
	for _, s := range cat.Servers {
		servers[s.Name] = s
	}
	seen := map[[2]string]string{}
	for i, d := range cat.Databases {
		s := servers[d.Server]
		if d.OwnerRole == "" || s.Engine != timebox.EnginePostgres {
			continue
		}
		f := fmt.Sprintf("databases[%d].owner_role", i)
		e, err := postgres.New(s.Name, s.URL, "", 1)
		if err != nil {
			return timebox.Errorf(timebox.EINVALID, "servers: %s", timebox.ErrorMessage(err))
		}
		if err := e.CheckOwnerRoleName(d.OwnerRole); err != nil {
			return timebox.Errorf(timebox.EINVALID, "%s: %s", f, timebox.ErrorMessage(err))
		}
		key := [2]string{d.Server, d.Database}
		if r, ok := seen[key]; ok && r != d.OwnerRole {
			return timebox.Errorf(timebox.EINVALID, "%s: database %q of server %s has owner role %q elsewhere in the file", f, d.Database, d.Server, r)
		}
		seen[key] = d.OwnerRole
	}
	return nil
}
