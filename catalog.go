package timebox

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Grant methods a database can use.
const (
	MethodEphemeralLogin = "ephemeral_login"
	// MethodUnlockLogin unlocks an existing, normally locked login (Database.Login) for the
	// window, with a fresh password, and locks it again after.
	MethodUnlockLogin = "unlock_login"
	// MethodRoleMembership grants the access level's roles to the person's own login
	// (User.DBUser) for the window and revokes those no other live grant still needs after.
	MethodRoleMembership = "role_membership"
)

// Engines Timebox can talk to.
const (
	EnginePostgres = "postgres"
	EngineMySQL    = "mysql" // MySQL 8 and MariaDB 10.6+
)

// User is a person known to Timebox.
type User struct {
	Name   string   `yaml:"name" json:"name"`
	Email  string   `yaml:"email" json:"email,omitempty"`
	Groups []string `yaml:"groups" json:"groups,omitempty"`
	// DBUser is the person's own database login, for method role_membership (default: Name).
	DBUser string `yaml:"db_user" json:"db_user,omitempty"`
	// Disabled users may not sign in, request or review; their live requests are ended
	// (see Service.Cascade).
	Disabled bool `yaml:"disabled" json:"disabled,omitempty"`
	// OnCallNames are other names the person has in on-call calendars (an Opsgenie feed
	// names people by display name, e.g. "Alice Example"); compared case-insensitively.
	OnCallNames []string `yaml:"on_call_names" json:"-"`
}

// Login returns the person's own database login (DBUser, or the user name).
func (u *User) Login() string {
	if u.DBUser != "" {
		return u.DBUser
	}
	return u.Name
}

// Server is one database server that Timebox administers through an admin connection.
type Server struct {
	Name   string `yaml:"name" json:"name"`
	Engine string `yaml:"engine" json:"engine"`
	// URL is the admin connection URL without a password, e.g. postgres://timebox@db:5432/postgres.
	URL string `yaml:"url" json:"-"`
	// Password is a secret reference (env:NAME or file:PATH) for the admin password.
	Password string `yaml:"password" json:"-"`
	// ConnectHost and ConnectPort are what requesters connect to, when they differ from URL's.
	ConnectHost string `yaml:"connect_host" json:"connect_host,omitempty"`
	ConnectPort int    `yaml:"connect_port" json:"connect_port,omitempty"`
	// MaxConns bounds concurrent admin connections to this server (default 8).
	MaxConns int `yaml:"max_conns" json:"-"`
	// AccountHost is the host part of the accounts Timebox creates or unlocks on a MySQL
	// server (default "%").
	AccountHost string `yaml:"account_host" json:"-"`
	// EventSchema is the schema that holds the backstop events on a MySQL server (default
	// "timebox").
	EventSchema string `yaml:"event_schema" json:"-"`
}

// Database is one database on a server that people can request access to.
type Database struct {
	Name        string   `yaml:"name" json:"name"`
	Server      string   `yaml:"server" json:"server"`
	Database    string   `yaml:"database" json:"database"`
	Environment string   `yaml:"environment" json:"environment"`
	Owners      []string `yaml:"owners" json:"owners"`
	Method      string   `yaml:"method" json:"method"`
	// Login is the existing login that method unlock_login unlocks.
	Login  string            `yaml:"login" json:"login,omitempty"`
	Labels map[string]string `yaml:"labels" json:"labels,omitempty"`
	// Roles overrides an access level's roles on this database: level name → roles.
	Roles map[string][]string `yaml:"roles" json:"-"`
	// OwnerRole (engine postgres) is the existing NOLOGIN role that receives what a removed
	// login created in this database (a migration's new table); empty: the server's
	// quarantine role, which holds no privilege. Never Timebox's admin.
	OwnerRole string `yaml:"owner_role" json:"-"`
}

// AccessLevel is a named bundle of privileges, mapped per engine to roles (and, on MySQL,
// privileges on the requested database).
type AccessLevel struct {
	Name        string      `yaml:"name" json:"name"`
	Description string      `yaml:"description" json:"description,omitempty"`
	Postgres    EngineRoles `yaml:"postgres" json:"-"`
	MySQL       EngineRoles `yaml:"mysql" json:"-"`
}

// EngineRoles lists what an access level grants on one engine: existing database roles, and
// (MySQL only) privileges on the requested database, e.g. SELECT.
type EngineRoles struct {
	Roles      []string `yaml:"roles"`
	Privileges []string `yaml:"privileges"`
}

// Limits bounds the requests for databases of one environment.
type Limits struct {
	MaxDuration   Duration `yaml:"max_duration" json:"max_duration"`
	MinDuration   Duration `yaml:"min_duration" json:"min_duration"`
	MaxLeadTime   Duration `yaml:"max_lead_time" json:"max_lead_time"`
	RequireTicket bool     `yaml:"require_ticket" json:"require_ticket"`
}

// Duration is a time.Duration written in Go syntax (90s, 45m, 8h) in configuration files.
type Duration time.Duration

// UnmarshalText parses Go duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Catalog is everything an admin declares: people, servers, databases, access levels, limits.
type Catalog struct {
	Users         []User            `yaml:"users"`
	AdminGroups   []string          `yaml:"admin_groups"`
	AuditorGroups []string          `yaml:"auditor_groups"`
	Servers       []Server          `yaml:"servers"`
	Databases     []Database        `yaml:"databases"`
	AccessLevels  []AccessLevel     `yaml:"access_levels"`
	Limits        map[string]Limits `yaml:"limits"`
	// Rules are the approval policy (see Rule); none: DefaultRule.
	Rules []Rule `yaml:"rules"`
	// BreakGlass, when set, lets its groups activate at once without approval.
	BreakGlass *BreakGlass `yaml:"break_glass"`
	// Directory, when set, holds the people who signed in through the OpenID Connect
	// provider; User and People find them too.
	Directory *Directory `yaml:"-"`
	// OpenGroups, when set, says that group names come from the provider too, so a rule
	// may name a group no configuration user is in.
	OpenGroups bool `yaml:"-"`
}

// BreakGlassRule is the rule name recorded on break-glass requests.
const BreakGlassRule = "break-glass"

// BreakGlass is the emergency path: members of Groups activate a request at once, for at
// most MaxDuration, loudly, and owners must close a follow-up review afterwards.
type BreakGlass struct {
	Groups StringList `yaml:"groups" json:"groups"`
	// MaxDuration caps a break-glass window (default 1h).
	MaxDuration Duration `yaml:"max_duration" json:"max_duration"`
	// Environments limits break-glass to these environments (empty: all).
	Environments StringList `yaml:"environments" json:"environments,omitempty"`
	// Reviewers are the groups that close the follow-up review, besides the database's
	// owners and the admins.
	Reviewers StringList `yaml:"reviewers" json:"reviewers,omitempty"`
}

// DefaultLimits apply to environments that the catalog gives no limits.
var DefaultLimits = Limits{
	MaxDuration: Duration(8 * time.Hour),
	MinDuration: Duration(time.Minute),
	MaxLeadTime: Duration(7 * 24 * time.Hour),
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// FieldError reports one invalid field of the catalog or configuration.
func fieldError(field, format string, args ...any) *Error {
	return Errorf(EINVALID, "%s: %s", field, fmt.Sprintf(format, args...))
}

// Validate checks the catalog and returns an EINVALID error naming the first bad field.
func (c *Catalog) Validate() error {
	users := map[string]bool{}
	for i, u := range c.Users {
		f := fmt.Sprintf("users[%d]", i)
		if err := checkUserName(u.Name); err != nil {
			return fieldError(f+".name", "%s", err.Error())
		} else if reservedActors[u.Name] {
			return fieldError(f+".name", "%q is reserved for Timebox's own audit events", u.Name)
		} else if users[u.Name] {
			return fieldError(f+".name", "user %q is declared twice", u.Name)
		}
		users[u.Name] = true
	}
	servers := map[string]*Server{}
	for i := range c.Servers {
		s := &c.Servers[i]
		f := fmt.Sprintf("servers[%d]", i)
		if !namePattern.MatchString(s.Name) {
			return fieldError(f+".name", "%q is not a valid server name", s.Name)
		} else if servers[s.Name] != nil {
			return fieldError(f+".name", "server %q is declared twice", s.Name)
		} else if s.Engine != EnginePostgres && s.Engine != EngineMySQL {
			return fieldError(f+".engine", "unknown engine %q (supported: %s, %s)", s.Engine, EnginePostgres, EngineMySQL)
		} else if s.Engine != EngineMySQL && (s.AccountHost != "" || s.EventSchema != "") {
			return fieldError(f+".account_host", "account_host and event_schema are only used with engine mysql")
		} else if s.URL == "" {
			return fieldError(f+".url", "required")
		} else if u, err := url.Parse(s.URL); s.Engine == EngineMySQL && err == nil && strings.TrimPrefix(u.Path, "/") != "" {
			return fieldError(f+".url", "must not name a database (end it with /): Timebox's admin connects to MySQL without a default database")
		} else if err := checkSecretRef(s.Password); err != nil {
			return fieldError(f+".password", "%s", err.Error())
		} else if s.MaxConns < 0 {
			return fieldError(f+".max_conns", "must not be negative")
		}
		servers[s.Name] = s
	}
	levels := map[string]bool{}
	for i, l := range c.AccessLevels {
		f := fmt.Sprintf("access_levels[%d]", i)
		if !namePattern.MatchString(l.Name) || l.Name == AdHocAccess {
			return fieldError(f+".name", "%q is not a valid access level name", l.Name)
		} else if levels[l.Name] {
			return fieldError(f+".name", "access level %q is declared twice", l.Name)
		}
		for eng, g := range map[string]EngineRoles{EnginePostgres: l.Postgres, EngineMySQL: l.MySQL} {
			for j, r := range g.Roles {
				if r == "" {
					return fieldError(fmt.Sprintf("%s.%s.roles[%d]", f, eng, j), "empty role name")
				}
			}
			for j, p := range g.Privileges {
				if eng != EngineMySQL {
					return fieldError(fmt.Sprintf("%s.%s.privileges", f, eng), "only engine mysql grants privileges directly; use roles")
				} else if !mysqlPrivileges[strings.ToUpper(p)] {
					return fieldError(fmt.Sprintf("%s.%s.privileges[%d]", f, eng, j), "unknown or unsupported privilege %q (supported: %s)", Clip(p), strings.Join(slices.Sorted(maps.Keys(mysqlPrivileges)), ", "))
				}
			}
		}
		levels[l.Name] = true
	}
	dbs := map[string]bool{}
	for i := range c.Databases {
		d := &c.Databases[i]
		f := fmt.Sprintf("databases[%d]", i)
		if d.Method == "" {
			d.Method = MethodEphemeralLogin
		}
		switch {
		case !namePattern.MatchString(d.Name):
			return fieldError(f+".name", "%q is not a valid database name (lowercase letters, digits, '.', '_', '-')", d.Name)
		case dbs[d.Name]:
			return fieldError(f+".name", "database %q is declared twice", d.Name)
		case servers[d.Server] == nil:
			return fieldError(f+".server", "unknown server %q", d.Server)
		case d.Database == "":
			return fieldError(f+".database", "required (the database's name on the server)")
		case d.Environment == "":
			return fieldError(f+".environment", "required (e.g. dev, test, prod)")
		case len(d.Owners) == 0:
			return fieldError(f+".owners", "must list at least one owner group")
		case d.Method != MethodEphemeralLogin && d.Method != MethodUnlockLogin && d.Method != MethodRoleMembership:
			return fieldError(f+".method", "unknown method %q (supported: %s, %s, %s)", d.Method, MethodEphemeralLogin, MethodUnlockLogin, MethodRoleMembership)
		case d.Method == MethodUnlockLogin && d.Login == "":
			return fieldError(f+".login", "required with method unlock_login: the existing login to unlock")
		case d.Method != MethodUnlockLogin && d.Login != "":
			return fieldError(f+".login", "only used with method unlock_login")
		case servers[d.Server].Engine == EngineMySQL && (strings.EqualFold(d.Database, "mysql") ||
			strings.EqualFold(d.Database, cmp.Or(servers[d.Server].EventSchema, "timebox"))):
			return fieldError(f+".database", "%q holds the server's accounts or Timebox's backstop events: no access is granted on it", d.Database)
		case d.OwnerRole != "" && servers[d.Server].Engine != EnginePostgres:
			return fieldError(f+".owner_role", "only used with engine postgres")
		case strings.HasPrefix(d.OwnerRole, "pg_"):
			return fieldError(f+".owner_role", "%q is a predefined PostgreSQL role: name a NOLOGIN role of your own", Clip(d.OwnerRole))
		}
		for lvl, roles := range d.Roles {
			if !levels[lvl] {
				return fieldError(f+".roles", "unknown access level %q", lvl)
			} else if slices.Contains(roles, "") {
				return fieldError(f+".roles."+lvl, "empty role name")
			}
		}
		dbs[d.Name] = true
	}
	if err := c.validateRules(levels); err != nil {
		return err
	}
	if b := c.BreakGlass; b != nil {
		if len(b.Groups) == 0 || slices.Contains(b.Groups, "") {
			return fieldError("break_glass.groups", "name at least one group")
		} else if b.MaxDuration < 0 {
			return fieldError("break_glass.max_duration", "must not be negative")
		} else if b.MaxDuration == 0 {
			b.MaxDuration = Duration(time.Hour)
		}
	}
	for env, l := range c.Limits {
		f := "limits." + env
		eff := c.LimitsFor(env)
		switch {
		case l.MaxDuration < 0 || l.MinDuration < 0 || l.MaxLeadTime < 0:
			return fieldError(f, "durations must not be negative")
		case eff.MinDuration > eff.MaxDuration:
			return fieldError(f+".min_duration", "%s is longer than max_duration %s", time.Duration(eff.MinDuration), time.Duration(eff.MaxDuration))
		}
	}
	return nil
}

// reservedActors are the audit actors of Timebox itself; no person may use them.
var reservedActors = map[string]bool{Actor: true, "admin-cli": true}

// checkUserName accepts any printable UTF-8 name of 1 to 64 bytes: people's names come from
// directories, so quotes, spaces and non-ASCII letters are allowed and handled downstream.
func checkUserName(name string) error {
	switch {
	case name == "" || len(name) > 64:
		return fmt.Errorf("user name must be 1 to 64 bytes long")
	case !utf8.ValidString(name):
		return fmt.Errorf("user name %q is not valid UTF-8", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("user name %q contains a control character", name)
	}
	return nil
}

// checkSecretRef accepts env:NAME and file:PATH references and refuses literal secrets.
func checkSecretRef(ref string) error {
	switch {
	case ref == "":
		return fmt.Errorf("required: a secret reference env:NAME or file:PATH")
	case strings.HasPrefix(ref, "env:") && len(ref) > 4, strings.HasPrefix(ref, "file:") && len(ref) > 5:
		return nil
	}
	return fmt.Errorf("literal secrets are refused: use env:NAME or file:PATH")
}

// CheckSecretRef reports whether ref is a valid secret reference (env:NAME or file:PATH).
func CheckSecretRef(ref string) error { return checkSecretRef(ref) }

// User returns the named user (a configuration user, an identity that signed in through the
// provider, or both merged), or ENOTFOUND. Callers must not change it.
func (c *Catalog) User(name string) (*User, error) {
	var cu *User
	for i := range c.Users {
		if c.Users[i].Name == name {
			cu = &c.Users[i]
			break
		}
	}
	if u := mergeIdentity(cu, c.Directory.Get(name)); u != nil {
		return u, nil
	}
	return nil, Errorf(ENOTFOUND, "unknown user %q", Clip(name))
}

// Database returns the named database, or ENOTFOUND.
func (c *Catalog) Database(name string) (*Database, error) {
	for i := range c.Databases {
		if c.Databases[i].Name == name {
			return &c.Databases[i], nil
		}
	}
	return nil, Errorf(ENOTFOUND, "unknown database %q", Clip(name))
}

// Server returns the named server, or ENOTFOUND.
func (c *Catalog) Server(name string) (*Server, error) {
	for i := range c.Servers {
		if c.Servers[i].Name == name {
			return &c.Servers[i], nil
		}
	}
	return nil, Errorf(ENOTFOUND, "unknown server %q", Clip(name))
}

// AccessLevel returns the named access level, or ENOTFOUND.
func (c *Catalog) AccessLevel(name string) (*AccessLevel, error) {
	for i := range c.AccessLevels {
		if c.AccessLevels[i].Name == name {
			return &c.AccessLevels[i], nil
		}
	}
	return nil, Errorf(ENOTFOUND, "unknown access level %q", Clip(name))
}

// Roles returns the database roles that access level grants on db.
func (c *Catalog) Roles(db *Database, level string) ([]string, error) {
	g, err := c.Grants(db, level)
	return g.Roles, err
}

// Grants returns what access level grants on db, for the engine of db's server: the
// database's own roles for the level when it declares them, else the level's roles for the
// engine; and the level's privileges (MySQL).
func (c *Catalog) Grants(db *Database, level string) (EngineRoles, error) {
	l, err := c.AccessLevel(level)
	if err != nil {
		return EngineRoles{}, err
	}
	g := l.Postgres
	if srv, err := c.Server(db.Server); err == nil && srv.Engine == EngineMySQL {
		g = l.MySQL
	}
	if roles, ok := db.Roles[level]; ok {
		g.Roles = roles
	}
	return g, nil
}

// mysqlPrivileges are the privileges an access level may grant on a MySQL database (ON db.*).
var mysqlPrivileges = map[string]bool{
	"SELECT": true, "INSERT": true, "UPDATE": true, "DELETE": true, "EXECUTE": true, "SHOW VIEW": true,
	"CREATE": true, "ALTER": true, "DROP": true, "INDEX": true, "CREATE VIEW": true, "CREATE ROUTINE": true,
	"ALTER ROUTINE": true, "TRIGGER": true, "REFERENCES": true, "CREATE TEMPORARY TABLES": true, "LOCK TABLES": true,
	"EVENT": true, "DELETE HISTORY": true,
}

// LimitsFor returns the limits of an environment: each duration the catalog leaves unset
// (zero) takes its value from DefaultLimits.
func (c *Catalog) LimitsFor(env string) Limits {
	l, ok := c.Limits[env]
	if !ok {
		return DefaultLimits
	}
	for _, f := range []struct{ v, def *Duration }{
		{&l.MaxDuration, &DefaultLimits.MaxDuration},
		{&l.MinDuration, &DefaultLimits.MinDuration},
		{&l.MaxLeadTime, &DefaultLimits.MaxLeadTime},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return l
}

// IsAdmin reports whether the named user is in an admin group.
func (c *Catalog) IsAdmin(user string) bool { return c.inGroups(user, c.AdminGroups) }

// IsAuditor reports whether the named user is in an auditor group.
func (c *Catalog) IsAuditor(user string) bool { return c.inGroups(user, c.AuditorGroups) }

// IsOwner reports whether the named user is in one of db's owner groups.
func (c *Catalog) IsOwner(user string, db *Database) bool { return c.inGroups(user, db.Owners) }

func (c *Catalog) inGroups(user string, groups []string) bool {
	u, err := c.User(user)
	return err == nil && u.InAny(groups)
}

// InAny reports whether u is in at least one of groups.
func (u *User) InAny(groups []string) bool {
	return slices.ContainsFunc(u.Groups, func(g string) bool { return slices.Contains(groups, g) })
}

// refusal returns why b does not let u use break-glass on db for d, and its error code; ""
// when it does.
func (b *BreakGlass) refusal(u *User, db *Database, d time.Duration) (code, why string) {
	switch {
	case b == nil:
		return EINVALID, "break-glass is not configured"
	case !u.InAny(b.Groups):
		return EFORBIDDEN, fmt.Sprintf("%s is not in a break-glass group (%s)", u.Name, strings.Join(b.Groups, ", "))
	case len(b.Environments) > 0 && !slices.Contains(b.Environments, db.Environment):
		return EINVALID, fmt.Sprintf("break-glass is not allowed on %s databases", db.Environment)
	case d > time.Duration(b.MaxDuration):
		return EINVALID, fmt.Sprintf("duration %s exceeds the break-glass maximum of %s", d.Round(time.Second), time.Duration(b.MaxDuration))
	}
	return "", ""
}

// Endpoint returns the host and port requesters connect to: ConnectHost/ConnectPort when set,
// otherwise those of the admin URL (port 5432 when the URL names none).
func (s *Server) Endpoint() (string, int) {
	host, port := s.ConnectHost, s.ConnectPort
	if u, err := url.Parse(s.URL); err == nil {
		if host == "" {
			host = u.Hostname()
		}
		if p, err := strconv.Atoi(u.Port()); err == nil && port == 0 {
			port = p
		}
	}
	if port == 0 {
		port = 5432
		if s.Engine == EngineMySQL {
			port = 3306
		}
	}
	return host, port
}

// ConnectURI returns a connection URI for a login on engine, with every part escaped.
func ConnectURI(engine, user, password, host string, port int, database string) string {
	userinfo := url.UserPassword(user, password)
	if password == "" {
		userinfo = url.User(user)
	}
	u := url.URL{
		Scheme: engine,
		User:   userinfo,
		Host:   net.JoinHostPort(host, strconv.Itoa(port)),
		Path:   "/" + database,
	}
	return u.String()
}
