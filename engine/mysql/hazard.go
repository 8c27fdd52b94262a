package mysql

import (
	"context"
	"database/sql"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/timebox-dev/timebox"
)

// The backstop events live in EventSchema and are created by the admin, so their DEFINER is
// the admin. An account that may manage events there (EVENT), change or drop the schema
// (ALTER, DROP), or create routines in it (CREATE ROUTINE, ALTER ROUTINE) could drop a
// backstop, postpone it or rewrite its body; an account holding SET USER (or SUPER) may name
// the admin as the DEFINER of its own routines, views and events, which then run as the
// admin. Grant refuses a plan that would hand out any of that, PlanStatements a plan on the
// event schema or the mysql schema, and Doctor reports the accounts that hold it.

// hazard is one privilege that lets its holder reach the backstop events or the admin.
type hazard struct {
	name string // as GRANT writes it
	bit  uint64 // its bit in MariaDB's mysql.global_priv access mask
	// column is its column in MySQL's mysql.user and in mysql.db ("" when it has none
	// there, as SET USER).
	column string
	// dbLevel is true when the privilege exists at the database level (mysql.db).
	dbLevel bool
}

// hazards are the privileges that reach the backstop events (on the event schema, or
// globally) or let the holder define objects as the admin (globally).
var hazards = []hazard{
	{"DROP", 1 << 5, "Drop_priv", true},
	{"ALTER", 1 << 13, "Alter_priv", true},
	{"SUPER", 1 << 15, "Super_priv", false},
	{"CREATE ROUTINE", 1 << 23, "Create_routine_priv", true},
	{"ALTER ROUTINE", 1 << 24, "Alter_routine_priv", true},
	{"EVENT", 1 << 26, "Event_priv", true},
	{"SET USER", 1 << 30, "", false},
}

// hazardMask is the access mask of every hazard.
func hazardMask() uint64 {
	var m uint64
	for _, h := range hazards {
		m |= h.bit
	}
	return m
}

// hazardNames returns the names of the hazards in mask.
func hazardNames(mask uint64) []string {
	var out []string
	for _, h := range hazards {
		if mask&h.bit != 0 {
			out = append(out, h.name)
		}
	}
	return out
}

// protectedDatabase reports whether name is a database no plan may hand out privileges on:
// the event schema, which holds the backstop events that run as the admin, and the mysql
// schema, which holds the accounts. Names are compared case-insensitively (servers with
// lower_case_table_names fold them).
func (e *Engine) protectedDatabase(name string) bool {
	return strings.EqualFold(name, e.EventSchema) || strings.EqualFold(name, "mysql")
}

// checkProtected refuses, with EINVALID, a plan on a protected database (protectedDatabase).
func (e *Engine) checkProtected(p timebox.GrantPlan) error {
	if p.Database == "" || !e.protectedDatabase(p.Database) {
		return nil
	}
	return timebox.Errorf(timebox.EINVALID, "server %s: database %s is Timebox's event schema or the mysql schema: "+
		"no access level or table grant may hand out privileges on it (its backstop events run as the admin)", e.name, QuoteIdent(p.Database))
}

// roleEdges returns the role grants between roles (not to users): role → the roles it was
// granted.
func (e *Engine) roleEdges(ctx context.Context, db *sql.DB, f *flavor) (map[string][]string, error) {
	q := "SELECT User, Role FROM mysql.roles_mapping WHERE Host = ''"
	if !f.mariadb {
		q = "SELECT TO_USER, FROM_USER FROM mysql.role_edges"
	}
	edges := map[string][]string{}
	rows, err := e.queryPrepared(ctx, db, q)
	return edges, scanRows(rows, err, func(scan func(...any) error) error {
		var from, to string
		err := scan(&from, &to)
		edges[from] = append(edges[from], to)
		return err
	})
}

// closure returns roles and every role granted to them, directly or through other roles,
// each with the role of roles through which it comes.
func closure(roles []string, edges map[string][]string) map[string]string {
	via := map[string]string{}
	var walk func(r, from string)
	walk = func(r, from string) {
		if _, seen := via[r]; seen {
			return
		}
		via[r] = from
		for _, n := range edges[r] {
			walk(n, from)
		}
	}
	for _, r := range roles {
		walk(r, r)
	}
	return via
}

// roleHazard returns, in words, why handing out roles (directly or through the roles they
// hold) would reach the backstop events or the admin: a privilege on a database pattern that
// covers the event schema, or a hazard held globally. "" when none does. A handful of queries
// on the grant tables, independent of the size of the schemas.
func (e *Engine) roleHazard(ctx context.Context, db *sql.DB, f *flavor, roles []string) (string, error) {
	if len(roles) == 0 {
		return "", nil
	}
	ctx, cancel := e.callContext(ctx)
	defer cancel()
	edges, err := e.roleEdges(ctx, db, f)
	if err != nil {
		return "", err
	}
	via := closure(roles, edges)
	through := func(r string) string {
		if via[r] == r {
			return "role " + QuoteString(r)
		}
		return "role " + QuoteString(via[r]) + " (through role " + QuoteString(r) + ")"
	}
	var why string
	rows, err := e.queryPrepared(ctx, db, "SELECT User, Host, Db FROM mysql.db WHERE ? LIKE Db ORDER BY User, Db", e.EventSchema)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var user, host, pattern string
		if err := scan(&user, &host, &pattern); err != nil {
			return err
		}
		if _, ok := via[user]; ok && why == "" && host == f.roleHost() {
			why = through(user) + " holds privileges on database pattern " + QuoteIdent(pattern) + ", which covers the event schema"
		}
		return nil
	})
	if err != nil || why != "" {
		return why, err
	}
	masks, err := e.globalMasks(ctx, db, f)
	if err != nil {
		return "", err
	}
	for _, r := range slices.Sorted(maps.Keys(via)) {
		if m := masks[[2]string{r, f.roleHost()}] & hazardMask(); m != 0 {
			return through(r) + " holds " + strings.Join(hazardNames(m), ", ") + " on *.*", nil
		}
	}
	return "", nil
}

// globalMasks returns the global hazards of every account and role, keyed by user and host
// (roles have the host roleHost): the access mask of
// mysql.global_priv on MariaDB; on MySQL, mysql.user's privilege columns (SET USER, a dynamic
// privilege there, is not seen).
func (e *Engine) globalMasks(ctx context.Context, db *sql.DB, f *flavor) (map[[2]string]uint64, error) {
	masks := map[[2]string]uint64{}
	q := "SELECT User, Host, CAST(COALESCE(JSON_VALUE(Priv, '$.access'), '0') AS UNSIGNED) FROM mysql.global_priv"
	if !f.mariadb {
		var cols []string
		for _, h := range hazards {
			if h.column != "" {
				cols = append(cols, "IF("+h.column+" = 'Y', "+strconv.FormatUint(h.bit, 10)+", 0)")
			}
		}
		q = "SELECT User, Host, " + strings.Join(cols, " + ") + " FROM mysql.user"
	}
	rows, err := e.queryPrepared(ctx, db, q)
	return masks, scanRows(rows, err, func(scan func(...any) error) error {
		var user, host string
		var mask uint64
		err := scan(&user, &host, &mask)
		masks[[2]string{user, host}] = mask & hazardMask()
		return err
	})
}

// roleHost is the host part of roles in the grant tables: "" on MariaDB, '%' on MySQL.
func (f *flavor) roleHost() string {
	if f.mariadb {
		return ""
	}
	return "%"
}

// doctorEventSchema reports each role an access level hands out that roleHazard refuses, and
// each account or role, other than the admin and accounts holding SUPER (the server's own
// administrators; roles holding it are reported), that holds a hazard on the event schema (through a database pattern that
// covers it) or globally.
func (e *Engine) doctorEventSchema(ctx context.Context, db *sql.DB, f *flavor, roles []string, add addFinding) error {
	err := e.eventSchemaFindings(ctx, db, f, roles, add)
	if n := errNumber(err); n == erTableAccessDenied || n == erDBAccessDenied {
		add(SeverityWarn, "", "who may change the backstop events in %s was not checked: the admin cannot read the grant tables", QuoteIdent(e.EventSchema))
		return nil
	}
	return err
}

// eventSchemaFindings does the work of doctorEventSchema.
func (e *Engine) eventSchemaFindings(ctx context.Context, db *sql.DB, f *flavor, roles []string, add addFinding) error {
	bad := 0
	for _, r := range slices.Compact(slices.Sorted(slices.Values(roles))) {
		why, err := e.roleHazard(ctx, db, f, []string{r})
		if err != nil {
			return err
		}
		if why != "" {
			bad++
			add(SeverityFail, "", "%s: Grant refuses it, since a login holding it could change or drop the backstop events, which run as the admin", why)
		}
	}
	var cols []string
	for _, h := range hazards {
		if h.dbLevel {
			cols = append(cols, "IF("+h.column+" = 'Y', "+strconv.FormatUint(h.bit, 10)+", 0)")
		}
	}
	rows, err := e.queryPrepared(ctx, db, "SELECT User, Host, Db, "+strings.Join(cols, " + ")+" FROM mysql.db WHERE ? LIKE Db ORDER BY 1, 2, 3", e.EventSchema)
	err = scanRows(rows, err, func(scan func(...any) error) error {
		var user, host, pattern string
		var mask uint64
		if err := scan(&user, &host, &pattern, &mask); err != nil || mask == 0 || (user == f.adminUser && host == f.adminHost) {
			return err
		}
		bad++
		privs := strings.Join(hazardNames(mask), ", ")
		add(SeverityFail, "REVOKE "+privs+" ON "+QuoteIdent(pattern)+".* FROM "+account(user, host)+";",
			"%s holds %s on %s, which covers the event schema: it can change or drop the backstop events", account(user, host), privs, QuoteIdent(pattern))
		return nil
	})
	if err != nil {
		return err
	}
	masks, err := e.globalMasks(ctx, db, f)
	if err != nil {
		return err
	}
	for _, k := range slices.SortedFunc(maps.Keys(masks), func(a, b [2]string) int { return strings.Compare(a[0]+"@"+a[1], b[0]+"@"+b[1]) }) {
		m := masks[k]
		if m == 0 || (m&(1<<15) != 0 && k[1] != "") || (k[0] == f.adminUser && k[1] == f.adminHost) {
			continue
		}
		bad++
		privs := strings.Join(hazardNames(m), ", ")
		add(SeverityFail, "REVOKE "+privs+" ON *.* FROM "+account(k[0], k[1])+";",
			"%s holds %s on *.*: it can change or drop the backstop events, or (SET USER) define objects that run as the admin", account(k[0], k[1]), privs)
	}
	if bad == 0 {
		add(SeverityOK, "", "event schema %s: no role handed out and no account but the admin (and SUPER holders) can change its events", QuoteIdent(e.EventSchema))
	}
	return nil
}

// doctorInitConnect reports a server-wide init_connect: the server runs it for every login
// without CONNECTION ADMIN (or SUPER), so not for the admin, which holds it.
func (e *Engine) doctorInitConnect(ctx context.Context, db *sql.DB, add addFinding) error {
	var init string
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.init_connect").Scan(&init); err != nil {
		return err
	}
	if init != "" {
		add(SeverityOK, "", "init_connect is set: the server does not run it for the admin, which holds %s", "CONNECTION ADMIN")
	}
	return nil
}
