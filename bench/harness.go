package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/postgres"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/internal/testdb"
)

func numCPU() int { return runtime.NumCPU() }

// harness is a throwaway PostgreSQL with a 1,000-table database and a Timebox server
// running as a child process against it.
type harness struct {
	pg            *testdb.Postgres
	admin         string
	adminPassword string
	server        *exec.Cmd
	serverLog     bytes.Buffer
	url           string
	requester     *tbhttp.Client
	owner         *tbhttp.Client
	// opts, when set, change the next server startServer starts (the notification benchmark).
	opts serverOptions
	// beforeExpiry, when set, is called by expiryLag once its grants are active, with the
	// first end.
	beforeExpiry func(firstEnd time.Time)
}

// serverOptions add to a benchmark server's configuration.
type serverOptions struct {
	// extra is appended to the configuration (a notify: section); env to the environment.
	extra string
	env   []string
	// store and storePassword replace the SQLite store (a postgres:// URL without password).
	store, storePassword string
}

const benchDB, benchRole = "bench", "bench_read"

func newHarness(ctx context.Context, dir, bin string, tables int) (*harness, error) {
	pg, err := testdb.StartPostgres(ctx)
	if err != nil {
		return nil, err
	}
	h := &harness{pg: pg, admin: "timebox_admin", adminPassword: timebox.RandomPassword(32)}
	if err := h.setupDatabase(ctx, tables); err != nil {
		h.close()
		return nil, err
	}
	if err := h.startServer(ctx, dir, bin); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *harness) setupDatabase(ctx context.Context, tables int) error {
	if err := h.pg.CreateDatabase(ctx, benchDB); err != nil {
		return err
	}
	if err := h.pg.Exec(ctx, "postgres", "CREATE ROLE "+benchRole+" NOLOGIN"); err != nil {
		return err
	}
	var b strings.Builder
	for i := range tables {
		fmt.Fprintf(&b, "CREATE TABLE t%04d (id bigint PRIMARY KEY, name text, amount numeric, created_at timestamptz);\n", i)
	}
	b.WriteString("GRANT SELECT ON ALL TABLES IN SCHEMA public TO " + benchRole + ";")
	if err := h.pg.Exec(ctx, benchDB, b.String()); err != nil {
		return err
	}
	for _, s := range append(postgres.SetupStatements(h.admin, h.adminPassword, []string{benchDB}, []string{benchRole}), directConnectSQL(benchDB)) {
		if err := h.pg.Exec(ctx, "postgres", s); err != nil {
			return err
		}
	}
	return nil
}

func (h *harness) startServer(ctx context.Context, dir, bin string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := writeFile(dir, "timebox.yaml", h.opts.apply(dir, benchConfig(addr, dir, fmt.Sprintf(`servers:
  - {name: pg, engine: postgres, url: "postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", password: "file:%s", max_conns: %d}
databases:
  - {name: bench, server: pg, database: %s, environment: bench, owners: [owners]}
access_levels:
  - {name: read-only, postgres: {roles: [%s]}}
`, h.admin, h.pg.Port, writeFile(dir, "admin.password", h.adminPassword), maxConns, benchDB, benchRole))))
	token := func(user string) (string, error) {
		out, err := exec.Command(bin, "admin", "token", "create", "--config", cfg, "--user", user).Output()
		return strings.TrimSpace(string(out)), err
	}
	devToken, err := token("dev")
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	ownerToken, err := token("owner")
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	h.server = exec.Command(bin, "server", "--config", cfg)
	h.server.Env = append(os.Environ(), h.opts.env...)
	h.serverLog.Reset()
	h.server.Stderr = &h.serverLog
	if err := h.server.Start(); err != nil {
		return err
	}
	h.url = "http://" + addr
	h.requester, h.owner = tbhttp.NewClient(h.url, devToken), tbhttp.NewClient(h.url, ownerToken)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := h.requester.Me(ctx); err == nil {
			return nil
		}
	}
	return fmt.Errorf("server did not start:\n%s", h.serverLog.String())
}

func (h *harness) close() {
	h.stopServer()
	h.pg.Close()
}

// stopServer stops the server (interrupt, then kill after 15 s) and waits for it.
func (h *harness) stopServer() {
	if h.server != nil && h.server.Process != nil {
		h.server.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { h.server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			h.server.Process.Kill()
			<-done
		}
	}
	h.server = nil
}

// apply returns cfg with o's store (and its password file in dir) and extra section.
func (o serverOptions) apply(dir, cfg string) string {
	if o.store != "" {
		var lines []string
		for _, l := range strings.Split(cfg, "\n") {
			if strings.HasPrefix(l, "store: ") {
				l = "store: " + o.store + "\nstore_password: file:" + writeFile(dir, "store.password", o.storePassword) +
					"\naudit_checkpoint: " + filepath.Join(dir, "audit-checkpoint.log")
			}
			lines = append(lines, l)
		}
		cfg = strings.Join(lines, "\n")
	}
	return cfg + o.extra
}

// login connects with credentials and returns the connection.
func login(ctx context.Context, c *timebox.Credentials) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("host=" + c.Host + " port=" + strconv.Itoa(c.Port) + " sslmode=disable connect_timeout=5")
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password, cfg.Database = c.User, c.Password, c.Database
	return pgx.ConnectConfig(ctx, cfg)
}

// request files and approves a request ending at end, returning the approved view.
func (h *harness) request(ctx context.Context, end time.Time) (*tbhttp.RequestView, error) {
	r, err := h.requester.CreateRequest(ctx, timebox.RequestInput{Database: "bench", Access: "read-only", End: &end, Reason: "benchmark"})
	if err != nil {
		return nil, err
	}
	return h.owner.Approve(ctx, r.ID, timebox.ApproveInput{})
}
