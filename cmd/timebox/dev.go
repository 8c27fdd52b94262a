package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/mysql"
	"github.com/timebox-dev/timebox/engine/postgres"
	"github.com/timebox-dev/timebox/internal/testdb"
)

// devUsers are the people of the local instance.
var devUsers = []timebox.User{
	{Name: "alice", Email: "alice@example.com", Groups: []string{"developers"}},
	{Name: "bob", Email: "bob@example.com", Groups: []string{"shop-owners"}},
	{Name: "carol", Email: "carol@example.com", Groups: []string{"shop-owners"}},
	{Name: "dave", Email: "dave@example.com", Groups: []string{"developers", "oncall"}},
	{Name: "admin", Email: "admin@example.com", Groups: []string{"platform"}},
}

// devInfo is what `timebox dev` writes to <data>/dev.json.
type devInfo struct {
	URL      string            `json:"url"`
	Config   string            `json:"config"`
	Tokens   map[string]string `json:"tokens"`
	Postgres devServer         `json:"postgres"`
	// MariaDB is set when its server binaries are installed.
	MariaDB *devServer `json:"mariadb,omitempty"`
}

// devServer is where one throwaway database server of `timebox dev` listens.
type devServer struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// newDevCommand returns `timebox dev`: a complete local instance in one command.
func newDevCommand() *cobra.Command {
	var data, listen string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a complete local instance: throwaway PostgreSQL (and MariaDB), demo databases and users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDev(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), data, listen)
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "data directory (default: a new temporary directory, removed on exit)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the API")
	return cmd
}

func runDev(ctx context.Context, stdout, stderr io.Writer, data, listen string) error {
	if data == "" {
		dir, err := os.MkdirTemp("", "timebox-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		data = dir
	} else if err := dataDir(data); err != nil {
		return err
	}
	data, _ = filepath.Abs(data)
	fmt.Fprintln(stdout, "starting a throwaway PostgreSQL…")
	pg, err := testdb.StartPostgres(ctx)
	if err != nil {
		return timebox.Errorf(timebox.EUNAVAILABLE, "timebox dev needs the PostgreSQL server binaries: %s", err.Error())
	}
	defer pg.Close()
	fmt.Fprintln(stdout, "starting a throwaway MariaDB…")
	maria, err := testdb.StartMariaDB(ctx)
	if err != nil {
		fmt.Fprintf(stdout, "  no MariaDB: %s\n  (continuing with PostgreSQL only)\n", err.Error())
	} else {
		defer maria.Close()
	}
	kept, err := devKey(data)
	if err != nil {
		return err
	} else if kept {
		fmt.Fprintf(stdout, "reusing the secret key and store of %s (its tokens stay valid)\n", data)
	} else {
		fmt.Fprintf(stdout, "new secret key and store in %s\n", data)
	}
	cfg, err := setupDev(ctx, pg, maria, data, listen)
	if err != nil {
		return err
	}
	cfg.devSignIn = true // the console's one-click sign-in as each demo user
	logger, err := newLogger(stderr, "info")
	if err != nil {
		return err
	}
	if cfg.devHook != nil {
		defer cfg.devHook.Close()
	}
	in, err := startInstance(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer in.Close()
	info := devInfo{URL: in.URL(), Config: cfg.path, Tokens: map[string]string{}, Postgres: devServer{pg.Host, pg.Port}}
	if maria != nil {
		info.MariaDB = &devServer{maria.Host, maria.Port}
	}
	if info.Tokens, err = devTokens(ctx, in, cfg, data); err != nil {
		return err
	} else if _, err := writeDevTokens(data, info.Tokens); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := os.WriteFile(filepath.Join(data, "dev.json"), b, 0o600); err != nil {
		return err
	}
	printWalkthrough(stdout, info, data)
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping: the server, then the database servers")
	return nil
}

// devDatabases are the server-side names of the demo databases on PostgreSQL: shop-dev's
// and shop-prod's.
var devDatabases = []string{"shop_dev", "shop"}

// setupDev creates the demo databases and roles, hardens the cluster as the docs tell an
// admin to (and prepares MariaDB the same way when maria is not nil), and writes the
// configuration of the local instance.
func setupDev(ctx context.Context, pg *testdb.Postgres, maria *testdb.MariaDB, data, listen string) (*Config, error) {
	pgPassword, err := setupDevPostgres(ctx, pg)
	if err != nil {
		return nil, err
	}
	secrets := map[string]string{"pg-admin.password": pgPassword, "webhook.secret": devWebhookSecret()}
	if _, err := os.Stat(filepath.Join(data, "secret.key")); err != nil { // devKey kept it otherwise
		secrets["secret.key"] = timebox.RandomPassword(40)
	}
	mariaPort := 0
	if maria != nil {
		if secrets["maria-admin.password"], err = setupDevMariaDB(ctx, maria); err != nil {
			return nil, err
		}
		mariaPort = maria.Port
	}
	for name, content := range secrets {
		if err := os.WriteFile(filepath.Join(data, name), []byte(content+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	hook, err := startDevHook(filepath.Join(data, "webhooks.log"), secrets["webhook.secret"])
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(data, "webhook.url"), []byte(hook.URL+"\n"), 0o600); err != nil {
		hook.Close()
		return nil, err
	}
	path := filepath.Join(data, "timebox.yaml")
	if err := os.WriteFile(path, []byte(devConfigYAML(data, listen, pg.Port, mariaPort)), 0o600); err != nil {
		hook.Close()
		return nil, err
	}
	c, err := loadConfig(path)
	if err != nil {
		hook.Close()
		return nil, err
	}
	c.devHook = hook
	return c, nil
}

// devWebhookSecret returns a new Standard Webhooks secret.
func devWebhookSecret() string {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(timebox.RandomPassword(32)))
}

// setupDevPostgres creates devDatabases with a demo table, the roles the access levels hand
// out, and the admin role timebox_admin, and hardens the cluster; it returns the admin's
// password.
func setupDevPostgres(ctx context.Context, pg *testdb.Postgres) (string, error) {
	exec := func(db string, stmts ...string) error {
		for _, stmt := range stmts {
			if err := pg.Exec(ctx, db, stmt); err != nil {
				return err
			}
		}
		return nil
	}
	if err := exec("postgres", "CREATE ROLE shop_read NOLOGIN", "CREATE ROLE shop_write NOLOGIN"); err != nil {
		return "", err
	}
	for _, name := range devDatabases {
		if err := pg.CreateDatabase(ctx, name); err != nil {
			return "", err
		}
		if err := exec(name,
			"CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric(10,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
			"INSERT INTO orders (customer, total) VALUES ('Ada', 42.00), ('Grace', 17.50), ('Linus', 99.90)",
			"GRANT USAGE ON SCHEMA public TO shop_read, shop_write",
			"GRANT SELECT ON ALL TABLES IN SCHEMA public TO shop_read",
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO shop_write",
			"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO shop_write",
		); err != nil {
			return "", err
		}
	}
	password := timebox.RandomPassword(32)
	if err := exec("postgres", postgres.SetupStatements("timebox_admin", password, devDatabases, []string{"shop_read", "shop_write"})...); err != nil {
		return "", err
	}
	for _, name := range devDatabases { // ad-hoc table grants need GRANT OPTION
		if err := exec(name, postgres.TableSetupStatements("timebox_admin", nil)...); err != nil {
			return "", err
		}
	}
	return password, nil
}

// setupDevMariaDB creates the demo database orders with a table and the admin timebox_admin,
// and turns the event scheduler on (the backstop needs it); it returns the admin's password.
func setupDevMariaDB(ctx context.Context, maria *testdb.MariaDB) (string, error) {
	password := timebox.RandomPassword(32)
	for _, stmt := range append([]string{
		"SET GLOBAL event_scheduler = ON",
		"CREATE DATABASE orders",
		"CREATE TABLE orders.orders (id int PRIMARY KEY AUTO_INCREMENT, customer varchar(100) NOT NULL, total decimal(10,2) NOT NULL)",
		"INSERT INTO orders.orders (customer, total) VALUES ('Ada', 42.00), ('Grace', 17.50), ('Linus', 99.90)",
	}, mysql.SetupStatements("timebox_admin", password, "%", []string{"orders"}, nil)...) {
		if err := maria.Exec(ctx, stmt); err != nil {
			return "", err
		}
	}
	return password, nil
}

// devConfigYAML is the configuration of the local instance: its files in data, PostgreSQL on
// port, MariaDB on mariaPort (none when 0), the people of devUsers.
func devConfigYAML(data, listen string, port, mariaPort int) string {
	var users strings.Builder
	for _, u := range devUsers {
		fmt.Fprintf(&users, "  - {name: %s, email: %s, groups: [%s]}\n", u.Name, u.Email, strings.Join(u.Groups, ", "))
	}
	var mariaServer, mariaDB string
	if mariaPort != 0 {
		mariaServer = fmt.Sprintf(`  - name: local-maria
    engine: mysql
    url: "mysql://timebox_admin@127.0.0.1:%d/"
    password: %q
`, mariaPort, "file:"+filepath.Join(data, "maria-admin.password"))
		mariaDB = "  - {name: orders-dev, server: local-maria, database: orders, environment: dev, owners: [shop-owners, developers]}\n"
	}
	return fmt.Sprintf(`# Written by timebox dev: a complete local instance. Edit a copy for your own servers.
listen: %q
store: %q
secret_key: %q
sweep_interval: 5s
admin_groups: [platform]
auditor_groups: [security]
users:
%sservers:
  - name: local-pg
    engine: postgres
    url: "postgres://timebox_admin@127.0.0.1:%d/postgres?sslmode=disable"
    password: %q
%sdatabases:
  - {name: shop-dev, server: local-pg, database: %s, environment: dev, owners: [shop-owners, developers]}
  - {name: shop-prod, server: local-pg, database: %s, environment: prod, owners: [shop-owners]}
%saccess_levels:
  - {name: read-only, description: "SELECT on the shop tables", postgres: {roles: [shop_read]}, mysql: {privileges: [SELECT]}}
  - {name: read-write, description: "SELECT, INSERT, UPDATE, DELETE on the shop tables", postgres: {roles: [shop_write]}, mysql: {privileges: [SELECT, INSERT, UPDATE, DELETE]}}
limits:
  dev: {max_duration: 8h, min_duration: 30s, max_lead_time: 168h, require_ticket: false}
  prod: {max_duration: 4h, min_duration: 30s, max_lead_time: 72h, require_ticket: true}
# The approval policy (docs/policy.md): the most specific matching rule decides.
rules:
  - name: prod
    match: {environment: prod}
    approvers: [owners]
    max_duration: 4h
    unused_after: 1h
  - name: prod-write
    match: {environment: prod, access: read-write}
    approvals: 2
    approvers: [owners]
    max_duration: 2h
    ticket: '^[A-Z]+-[0-9]+$'
  - name: prod-adhoc-read
    match: {environment: prod, operations: [SELECT]}
    approvers: [owners]
  - name: prod-adhoc-write
    match: {environment: prod, operations: [SELECT, INSERT, UPDATE, DELETE]}
    approvals: 2
    approvers: [owners]
  - name: prod-read-oncall
    match: {environment: prod, access: read-only, requester_groups: [oncall]}
    auto_approve: {on_call: primary}
    max_duration: 4h
  - name: dev
    match: {environment: dev}
    approvers: [owners]
on_call:
  - name: primary
    rotation: {users: [dave], start: 2026-01-05T09:00:00Z, shift: 168h}
break_glass: {groups: [oncall], max_duration: 30m}
# Notifications (docs/notify.md): every audit event, signed, to a local webhook consumer that
# timebox dev runs itself and that writes webhooks.log. Add slack/teams/email channels here.
notify:
  retry_max: 30s
  channels:
    - name: local-log
      webhook: {url: %q, secret: %q}
`, listen, "sqlite://"+filepath.Join(data, "timebox.db"), "file:"+filepath.Join(data, "secret.key"), users.String(),
		port, "file:"+filepath.Join(data, "pg-admin.password"), mariaServer, devDatabases[0], devDatabases[1], mariaDB,
		"file:"+filepath.Join(data, "webhook.url"), "file:"+filepath.Join(data, "webhook.secret"))
}

func printWalkthrough(w io.Writer, info devInfo, data string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nTimebox is running at %s (config %s)\n", info.URL, info.Config)
	fmt.Fprintf(&b, "The console: open %s/ in a browser and sign in with one click as any demo user (timebox dev only).\n", info.URL)
	fmt.Fprintf(&b, "PostgreSQL (throwaway) is on 127.0.0.1:%d; tokens and URL are in %s\n", info.Postgres.Port, filepath.Join(data, "dev.json"))
	if info.MariaDB != nil {
		fmt.Fprintf(&b, "MariaDB (throwaway) is on 127.0.0.1:%d: database orders-dev (try the same steps with --db orders-dev)\n", info.MariaDB.Port)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Users: alice (developer), bob and carol (owners of shop-prod), dave (on call: his read-only requests are approved at once), admin.\n")
	fmt.Fprintf(&b, "Their tokens, for your shell (ALICE, BOB, CAROL, DAVE, ADMIN): . %s\n", filepath.Join(data, "tokens.env"))
	// {name} in the walkthrough stands for that user's token.
	pairs := []string{"{url}", info.URL, "{config}", info.Config, "{data}", data}
	for _, u := range devUsers {
		fmt.Fprintf(&b, "  %-6s TIMEBOX_TOKEN=%s\n", u.Name, info.Tokens[u.Name])
		pairs = append(pairs, "{"+u.Name+"}", info.Tokens[u.Name])
	}
	strings.NewReplacer(pairs...).WriteString(&b, `
Walkthrough, in another terminal (build the CLI once: go build -o timebox ./cmd/timebox):
  export TIMEBOX_SERVER={url}
  # alice asks for two minutes of read-only access to production:
  TIMEBOX_TOKEN={alice} ./timebox request --db shop-prod --access read-only --for 2m --reason "check order 42" --ticket OPS-1
  # bob, an owner, sees it and approves it (use the ID printed above):
  TIMEBOX_TOKEN={bob} ./timebox requests --state pending
  TIMEBOX_TOKEN={bob} ./timebox approve ID --note "ok for the incident"
  # alice connects with psql; after two minutes the login and the session are gone:
  TIMEBOX_TOKEN={alice} ./timebox connect ID -- -c "SELECT * FROM orders"
  TIMEBOX_TOKEN={alice} ./timebox show ID
  # or, done early, she gives it back at once (login dropped, sessions ended):
  TIMEBOX_TOKEN={alice} ./timebox release ID
  # before deciding, bob can read the exact statements Timebox will run:
  TIMEBOX_TOKEN={bob} ./timebox show ID --plan
  # ad-hoc: two columns of one table; read-write on prod takes two owners (bob and carol):
  TIMEBOX_TOKEN={alice} ./timebox request --db shop-prod --table orders:select:id,total --for 10m --reason "totals" --ticket OPS-2
  TIMEBOX_TOKEN={alice} ./timebox policy explain --db shop-prod --access read-write --for 1h
  # dave is on call: approved at once; or break-glass, loud, with a follow-up review:
  TIMEBOX_TOKEN={dave} ./timebox request --db shop-prod --access read-only --for 30m --reason "INC-7" --ticket INC-7
  TIMEBOX_TOKEN={dave} ./timebox request --db shop-prod --access read-write --for 15m --reason "INC-7 stuck job" --break-glass
  TIMEBOX_TOKEN={bob} ./timebox requests --follow-up
  # every audit event also went, signed, to a local webhook consumer (docs/notify.md):
  tail {data}/webhooks.log
  TIMEBOX_TOKEN={admin} ./timebox notify list
  # the admin reads the audit log and checks its hash chain:
  TIMEBOX_TOKEN={admin} ./timebox audit
  TIMEBOX_TOKEN={admin} ./timebox audit --verify
  # check the server's hardening and the admin role's privileges:
  ./timebox doctor --config {config}

Press Ctrl-C to stop everything this command started.
`)
	io.WriteString(w, b.String())
}

// dataDir makes the data directory of timebox dev private (0700, whatever the umask) when it
// creates it; an existing one must not be readable by others: it holds the secret key.
func dataDir(data string) error {
	fi, err := os.Stat(data)
	switch {
	case err == nil && !fi.IsDir():
		return timebox.Errorf(timebox.EINVALID, "--data %s: not a directory", data)
	case err == nil && fi.Mode().Perm()&0o077 != 0:
		if os.Chmod(data, 0o700) != nil {
			return timebox.Errorf(timebox.EINVALID, "--data %s: others may read it, and it cannot be made private (chmod 700)", data)
		}
		return nil
	case err == nil:
		return nil
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return timebox.Errorf(timebox.EINVALID, "--data %s: cannot create the directory", data)
	} else if err := os.Chmod(data, 0o700); err != nil {
		return timebox.Errorf(timebox.EINVALID, "--data %s: cannot make the directory private (chmod 700)", data)
	}
	return nil
}
