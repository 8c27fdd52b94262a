package mysql

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"

	"github.com/timebox-dev/timebox"
)

// What an ephemeral login leaves behind: MySQL has no owners, but routines, views, triggers
// and events keep the account that created them as their DEFINER. Those that run with their
// definer's rights (SQL SECURITY DEFINER routines and views, every trigger and event) need
// the definer to exist: once MariaDB dropped the account, they fail at run time ("The user
// specified as a definer does not exist", error 1449) instead of running with anybody's
// privileges; MySQL 8 refuses to drop such an account, and Revoke keeps it locked without
// privileges or roles, so that they can read or do nothing. Tables and their data stay. The
// account's name never comes back: it holds the request's random id. Revoke lists these
// objects (RevokeResult.Handed) before the account goes.

// definerCreatePrivs are the mysql.db columns of the privileges that create definer objects:
// CREATE VIEW, TRIGGER, CREATE ROUTINE and EVENT.
var definerCreatePrivs = []string{"Create_view_priv", "Trigger_priv", "Create_routine_priv", "Event_priv"}

// definerCreateMask is the access mask (mysql.global_priv) of those privileges.
const definerCreateMask = 1<<21 | 1<<27 | 1<<23 | 1<<26

// definerScope returns the databases where account user@AccountHost, or a role granted to it
// directly, may create definer objects; all is true when that is not limited to named
// databases (a wildcard pattern, a global privilege). Nothing, and all false, for a login
// that can create none (the read-only case): Revoke then looks no further. One prepared
// query on the grant tables.
func (e *Engine) definerScope(ctx context.Context, db *sql.DB, f *flavor, user string) (schemas []string, all bool, err error) {
	s := f.schema()
	ys := "'Y' IN (d." + strings.Join(definerCreatePrivs, ", d.") + ")"
	roles := `(SELECT m.` + s.role + ` FROM ` + s.roles + ` m WHERE m.` + s.member + ` = ? AND m.` + s.host + ` = ?)`
	global := `SELECT '%' FROM mysql.global_priv d WHERE (d.User = ? AND d.Host = ? OR d.Host = '' AND d.User IN ` + roles + `)
		AND CAST(COALESCE(JSON_VALUE(d.Priv, '$.access'), '0') AS UNSIGNED) & ` + strconv.Itoa(definerCreateMask) + ` <> 0`
	if !f.mariadb {
		global = `SELECT '%' FROM mysql.user d WHERE (d.User = ? AND d.Host = ? OR d.Host = '%' AND d.User IN ` + roles + `) AND ` + ys
	}
	q := `SELECT d.Db FROM mysql.db d WHERE ` + ys + ` AND (d.User = ? AND d.Host = ? OR d.Host = ? AND d.User IN ` + roles + `)
		UNION ALL ` + global
	rows, err := e.queryPrepared(ctx, db, q, user, e.AccountHost, f.roleHost(), user, e.AccountHost, user, e.AccountHost, user, e.AccountHost)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var pattern string
		if err := scan(&pattern); err != nil {
			return err
		}
		name := dbFromPattern(pattern)
		if dbPattern(name) != pattern {
			all = true
		} else if !slices.Contains(schemas, name) {
			schemas = append(schemas, name)
		}
		return nil
	})
	return schemas, all, err
}

// definerObjects lists the routines, views, triggers and events whose DEFINER is account
// user@AccountHost, as the admin sees them (in the databases it holds privileges on): routines
// and events anywhere (information_schema reads them from mysql.proc and mysql.event, one
// table each), views and triggers in the databases of definerScope (each of those scans a
// database's tables). Nothing at all, and no query beyond definerScope's, for a login that
// could create none.
func (e *Engine) definerObjects(ctx context.Context, db *sql.DB, f *flavor, user string) ([]timebox.OwnedObject, error) {
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	schemas, all, err := e.definerScope(ctx, db, f, user)
	if err != nil || (len(schemas) == 0 && !all) {
		return nil, err
	}
	definer := user + "@" + e.AccountHost
	q := `SELECT ROUTINE_TYPE, ROUTINE_SCHEMA, ROUTINE_NAME, SECURITY_TYPE FROM information_schema.ROUTINES WHERE DEFINER = ?
		UNION ALL SELECT 'EVENT', EVENT_SCHEMA, EVENT_NAME, 'DEFINER' FROM information_schema.EVENTS WHERE DEFINER = ?`
	args := []any{definer, definer}
	in := ""
	if !all {
		in = " IN (?" + strings.Repeat(", ?", len(schemas)-1) + ")"
	}
	for _, part := range []string{
		"SELECT 'VIEW', TABLE_SCHEMA, TABLE_NAME, SECURITY_TYPE FROM information_schema.VIEWS WHERE DEFINER = ?",
		"SELECT 'TRIGGER', TRIGGER_SCHEMA, TRIGGER_NAME, 'DEFINER' FROM information_schema.TRIGGERS WHERE DEFINER = ?",
	} {
		args = append(args, definer)
		if !all {
			col := "TABLE_SCHEMA"
			if strings.Contains(part, "TRIGGER_SCHEMA") {
				col = "TRIGGER_SCHEMA"
			}
			part += " AND " + col + in
			for _, s := range schemas {
				args = append(args, s)
			}
		}
		q += "\n\t\tUNION ALL " + part
	}
	var out []timebox.OwnedObject
	rows, err := db.QueryContext(ctx, q+" ORDER BY 2, 1, 3", args...)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var kind, schema, name, security string
		if err := scan(&kind, &schema, &name, &security); err != nil {
			return err
		}
		o := timebox.OwnedObject{Kind: strings.ToLower(kind), Database: schema, Name: name}
		if strings.EqualFold(security, "DEFINER") {
			o.Risk = "security definer"
		}
		out = append(out, o)
		return nil
	})
	return out, err
}
