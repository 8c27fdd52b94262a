package timebox_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/timebox-dev/timebox"
)

// validCatalog returns a catalog that passes Validate; tests break one field at a time.
func validCatalog() *timebox.Catalog {
	return &timebox.Catalog{
		Users: []timebox.User{
			{Name: "alice", Groups: []string{"developers"}},
			{Name: "bob", Groups: []string{"prod-owners"}},
		},
		AdminGroups: []string{"platform"},
		Servers: []timebox.Server{
			{Name: "pg1", Engine: timebox.EnginePostgres, URL: "postgres://timebox@db:5432/postgres", Password: "env:PG1_PASSWORD"},
			{Name: "pg2", Engine: timebox.EnginePostgres, URL: "postgres://timebox@db2/postgres", Password: "file:/run/secrets/pg2"},
		},
		Databases: []timebox.Database{
			{Name: "shop-prod", Server: "pg1", Database: "shop", Environment: "prod", Owners: []string{"prod-owners"}},
			{Name: "shop-dev", Server: "pg2", Database: "shop", Environment: "dev", Owners: []string{"developers"},
				Method: timebox.MethodEphemeralLogin, Roles: map[string][]string{"read-only": {"shop_dev_ro"}}},
		},
		AccessLevels: []timebox.AccessLevel{
			{Name: "read-only", Postgres: timebox.EngineRoles{Roles: []string{"shop_ro"}}},
			{Name: "read-write", Postgres: timebox.EngineRoles{Roles: []string{"shop_rw"}}},
		},
		Limits: map[string]timebox.Limits{
			"prod": {MaxDuration: timebox.Duration(4 * time.Hour), MinDuration: timebox.Duration(15 * time.Minute), RequireTicket: true},
		},
	}
}

func TestCatalogValidateOK(t *testing.T) {
	c := validCatalog()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Databases[0].Method != timebox.MethodEphemeralLogin {
		t.Errorf("default method = %q", c.Databases[0].Method)
	}
	// People's names come from directories: spaces, quotes and non-ASCII are fine.
	c.Users = append(c.Users, timebox.User{Name: `Zoë O'Brien "Z"`}, timebox.User{Name: strings.Repeat("n", 64)})
	if err := c.Validate(); err != nil {
		t.Fatalf("printable names refused: %v", err)
	}
	empty := &timebox.Catalog{}
	if err := empty.Validate(); err != nil {
		t.Errorf("empty catalog: %v", err)
	}
}

func TestCatalogValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(c *timebox.Catalog)
		field string
		parts []string
	}{
		{"empty user name", func(c *timebox.Catalog) { c.Users[1].Name = "" }, "users[1].name", []string{"1 to 64 bytes"}},
		{"long user name", func(c *timebox.Catalog) { c.Users[0].Name = strings.Repeat("a", 65) }, "users[0].name", []string{"1 to 64 bytes"}},
		{"invalid UTF-8 user", func(c *timebox.Catalog) { c.Users[0].Name = "al\xffce" }, "users[0].name", []string{"UTF-8"}},
		{"control char user", func(c *timebox.Catalog) { c.Users[0].Name = "al\nice" }, "users[0].name", []string{"control character"}},
		{"NUL user", func(c *timebox.Catalog) { c.Users[0].Name = "al\x00ice" }, "users[0].name", []string{"control character"}},
		{"duplicate user", func(c *timebox.Catalog) { c.Users[1].Name = "alice" }, "users[1].name", []string{`"alice"`, "twice"}},
		{"bad server name", func(c *timebox.Catalog) { c.Servers[0].Name = "PG 1" }, "servers[0].name", []string{`"PG 1"`}},
		{"duplicate server", func(c *timebox.Catalog) { c.Servers[1].Name = "pg1" }, "servers[1].name", []string{`"pg1"`, "twice"}},
		{"unknown engine", func(c *timebox.Catalog) { c.Servers[1].Engine = "oracle" }, "servers[1].engine", []string{`"oracle"`, "postgres"}},
		{"missing engine", func(c *timebox.Catalog) { c.Servers[0].Engine = "" }, "servers[0].engine", []string{"unknown engine"}},
		{"missing url", func(c *timebox.Catalog) { c.Servers[0].URL = "" }, "servers[0].url", []string{"required"}},
		{"missing password", func(c *timebox.Catalog) { c.Servers[0].Password = "" }, "servers[0].password", []string{"required", "env:NAME"}},
		{"literal password", func(c *timebox.Catalog) { c.Servers[1].Password = "hunter2" }, "servers[1].password", []string{"literal secrets are refused"}},
		{"bare env:", func(c *timebox.Catalog) { c.Servers[0].Password = "env:" }, "servers[0].password", []string{"literal secrets are refused"}},
		{"negative max_conns", func(c *timebox.Catalog) { c.Servers[0].MaxConns = -1 }, "servers[0].max_conns", []string{"negative"}},
		{"bad level name", func(c *timebox.Catalog) { c.AccessLevels[1].Name = "Read Write" }, "access_levels[1].name", []string{`"Read Write"`}},
		{"duplicate level", func(c *timebox.Catalog) { c.AccessLevels[1].Name = "read-only" }, "access_levels[1].name", []string{"twice"}},
		{"empty level role", func(c *timebox.Catalog) { c.AccessLevels[0].Postgres.Roles = []string{"a", ""} }, "access_levels[0].postgres.roles[1]", []string{"empty role"}},
		{"bad database name", func(c *timebox.Catalog) { c.Databases[0].Name = "Shop" }, "databases[0].name", []string{`"Shop"`}},
		{"long database name", func(c *timebox.Catalog) { c.Databases[0].Name = strings.Repeat("s", 64) }, "databases[0].name", []string{"not a valid database name"}},
		{"duplicate database", func(c *timebox.Catalog) { c.Databases[1].Name = "shop-prod" }, "databases[1].name", []string{"twice"}},
		{"unknown server", func(c *timebox.Catalog) { c.Databases[1].Server = "pg9" }, "databases[1].server", []string{`"pg9"`}},
		{"missing database", func(c *timebox.Catalog) { c.Databases[0].Database = "" }, "databases[0].database", []string{"required"}},
		{"missing environment", func(c *timebox.Catalog) { c.Databases[0].Environment = "" }, "databases[0].environment", []string{"required"}},
		{"no owners", func(c *timebox.Catalog) { c.Databases[0].Owners = nil }, "databases[0].owners", []string{"at least one owner"}},
		{"unknown method", func(c *timebox.Catalog) { c.Databases[1].Method = "shared_login" }, "databases[1].method", []string{`"shared_login"`, timebox.MethodEphemeralLogin}},
		{"roles for unknown level", func(c *timebox.Catalog) { c.Databases[1].Roles = map[string][]string{"admin": {"x"}} }, "databases[1].roles", []string{`"admin"`}},
		{"empty override role", func(c *timebox.Catalog) { c.Databases[1].Roles = map[string][]string{"read-only": {""}} }, "databases[1].roles.read-only", []string{"empty role"}},
		{"mysql url with a database", func(c *timebox.Catalog) {
			c.Servers[1].Engine, c.Servers[1].URL = timebox.EngineMySQL, "mysql://timebox@db2/shop"
		}, "servers[1].url", []string{"must not name a database"}},
		{"mysql event schema", func(c *timebox.Catalog) {
			c.Servers[1].Engine, c.Servers[1].URL, c.Servers[1].EventSchema = timebox.EngineMySQL, "mysql://timebox@db2/", "tbx_events"
			c.Databases[1].Database = "TBX_events"
		}, "databases[1].database", []string{`"TBX_events"`, "backstop events"}},
		{"mysql schema", func(c *timebox.Catalog) {
			c.Servers[1].Engine, c.Servers[1].URL = timebox.EngineMySQL, "mysql://timebox@db2/"
			c.Databases[1].Database = "mysql"
		}, "databases[1].database", []string{`"mysql"`}},
		{"negative limit", func(c *timebox.Catalog) {
			c.Limits["dev"] = timebox.Limits{MaxLeadTime: timebox.Duration(-time.Hour)}
		}, "limits.dev", []string{"negative"}},
		{"min over max", func(c *timebox.Catalog) {
			c.Limits["prod"] = timebox.Limits{MaxDuration: timebox.Duration(time.Hour), MinDuration: timebox.Duration(2 * time.Hour)}
		}, "limits.prod.min_duration", []string{"2h0m0s", "max_duration 1h0m0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validCatalog()
			tc.edit(c)
			err := c.Validate()
			wantErr(t, err, timebox.EINVALID, append([]string{tc.field + ": "}, tc.parts...)...)
			if !strings.HasPrefix(timebox.ErrorMessage(err), tc.field+": ") {
				t.Errorf("message %q does not start with the field path %q", timebox.ErrorMessage(err), tc.field)
			}
		})
	}
}

// The literal a person put where a secret reference belongs is never repeated back.
func TestCatalogValidateLiteralPasswordNotEchoed(t *testing.T) {
	c := validCatalog()
	c.Servers[0].Password = "hunter2-literal"
	err := c.Validate()
	wantErr(t, err, timebox.EINVALID, "servers[0].password")
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q echoes the password", err)
	}
}

func TestCatalogLookups(t *testing.T) {
	c := validCatalog()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.User("nobody"); timebox.ErrorCode(err) != timebox.ENOTFOUND {
		t.Errorf("User(nobody): %v", err)
	}
	if _, err := c.Database("nope"); timebox.ErrorCode(err) != timebox.ENOTFOUND {
		t.Errorf("Database(nope): %v", err)
	}
	if _, err := c.Server("nope"); timebox.ErrorCode(err) != timebox.ENOTFOUND {
		t.Errorf("Server(nope): %v", err)
	}
	prod, _ := c.Database("shop-prod")
	dev, _ := c.Database("shop-dev")
	if roles, err := c.Roles(prod, "read-only"); err != nil || strings.Join(roles, ",") != "shop_ro" {
		t.Errorf("Roles(prod) = %v, %v", roles, err)
	}
	if roles, err := c.Roles(dev, "read-only"); err != nil || strings.Join(roles, ",") != "shop_dev_ro" {
		t.Errorf("Roles(dev) override = %v, %v", roles, err)
	}
	if _, err := c.Roles(dev, "god"); timebox.ErrorCode(err) != timebox.ENOTFOUND {
		t.Errorf("Roles(god): %v", err)
	}
	if !c.IsOwner("bob", prod) || c.IsOwner("alice", prod) || c.IsOwner("nobody", prod) {
		t.Error("IsOwner wrong")
	}
	if c.IsAdmin("alice") || c.IsAuditor("bob") {
		t.Error("IsAdmin/IsAuditor wrong")
	}
	if l := c.LimitsFor("prod"); !l.RequireTicket || time.Duration(l.MaxDuration) != 4*time.Hour {
		t.Errorf("LimitsFor(prod) = %+v", l)
	}
	if l := c.LimitsFor("staging"); l != timebox.DefaultLimits {
		t.Errorf("LimitsFor(staging) = %+v, want defaults", l)
	}
}

func TestDurationText(t *testing.T) {
	var d timebox.Duration
	if err := d.UnmarshalText([]byte("30d")); err != nil || time.Duration(d) != 720*time.Hour {
		t.Errorf("UnmarshalText(30d) = %v, %v", time.Duration(d), err)
	}
	if err := d.UnmarshalText([]byte("soon")); timebox.ErrorCode(err) != timebox.EINVALID {
		t.Errorf("UnmarshalText(soon): %v", err)
	}
	if b, _ := timebox.Duration(90 * time.Minute).MarshalText(); string(b) != "1h30m0s" {
		t.Errorf("MarshalText = %q", b)
	}
}

func TestServerEndpoint(t *testing.T) {
	for _, tc := range []struct {
		s    timebox.Server
		host string
		port int
	}{
		{timebox.Server{URL: "postgres://timebox@db.internal:6543/postgres"}, "db.internal", 6543},
		{timebox.Server{URL: "postgres://timebox@db.internal/postgres"}, "db.internal", 5432},
		{timebox.Server{URL: "postgres://timebox@[::1]:5433/postgres"}, "::1", 5433},
		{timebox.Server{URL: "postgres://timebox@db.internal:6543/postgres", ConnectHost: "db.example.com"}, "db.example.com", 6543},
		{timebox.Server{URL: "postgres://timebox@db.internal:6543/postgres", ConnectPort: 7000}, "db.internal", 7000},
		{timebox.Server{URL: "postgres://timebox@db.internal/postgres", ConnectHost: "proxy", ConnectPort: 6432}, "proxy", 6432},
		{timebox.Server{URL: "::not a url", ConnectHost: "proxy"}, "proxy", 5432},
	} {
		host, port := tc.s.Endpoint()
		if host != tc.host || port != tc.port {
			t.Errorf("Endpoint(%+v) = %s:%d, want %s:%d", tc.s, host, port, tc.host, tc.port)
		}
	}
}

func TestConnectURIEscaping(t *testing.T) {
	for _, tc := range []struct{ user, password, host, database string }{
		{"tbx_alice_abc", "Xy12", "db.example.com", "shop"},
		{"we@ird:us/er", "p@ss:w/rd?#%& +=", "db.example.com", "my db?#%/x"},
		{"ünï", "пароль", "::1", "naïve"},
		{"u", "", "10.0.0.1", ""},
	} {
		uri := timebox.ConnectURI("postgres", tc.user, tc.password, tc.host, 6432, tc.database)
		u, err := url.Parse(uri)
		if err != nil {
			t.Errorf("ConnectURI(%+v) = %q does not parse: %v", tc, uri, err)
			continue
		}
		pw, _ := u.User.Password()
		if u.Scheme != "postgres" || u.User.Username() != tc.user || pw != tc.password ||
			u.Hostname() != tc.host || u.Port() != "6432" || strings.TrimPrefix(u.Path, "/") != tc.database ||
			u.RawQuery != "" || u.Fragment != "" {
			t.Errorf("ConnectURI(%+v) = %q parses back as user %q password %q host %q port %q path %q query %q fragment %q",
				tc, uri, u.User.Username(), pw, u.Hostname(), u.Port(), u.Path, u.RawQuery, u.Fragment)
		}
	}
}
