package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/mysql"
	"github.com/timebox-dev/timebox/engine/postgres"
	tbhttp "github.com/timebox-dev/timebox/http"
	"github.com/timebox-dev/timebox/http/console"
	"github.com/timebox-dev/timebox/notify"
	"github.com/timebox-dev/timebox/oncall"
	"github.com/timebox-dev/timebox/scheduler"
	"github.com/timebox-dev/timebox/store"
)

// newServerCommand returns `timebox server --config FILE`.
func newServerCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "server --config FILE",
		Short: "Run the Timebox server: the API, the scheduler and the reconciler",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if path == "" {
				return usagef("server: --config is required")
			}
			c, err := loadConfig(path)
			if err != nil {
				return err
			}
			logger, err := newLogger(cmd.ErrOrStderr(), c.LogLevel)
			if err != nil {
				return err
			}
			in, err := startInstance(cmd.Context(), c, logger)
			if err != nil {
				return err
			}
			logger.Info("timebox server listening", "url", in.URL(), "store", redactURL(c.Store))
			<-cmd.Context().Done()
			logger.Info("timebox server stopping")
			return in.Close()
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "configuration file (YAML)")
	return cmd
}

func logLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, timebox.Errorf(timebox.EINVALID, "log_level: %q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

func newLogger(w interface{ Write([]byte) (int, error) }, level string) (*slog.Logger, error) {
	l, err := logLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// instance is one running Timebox: store, engines, service, scheduler and HTTP server.
type instance struct {
	Store      *store.DB
	Checkpoint *timebox.CheckpointFile
	Service    *timebox.Service
	Scheduler  *scheduler.Scheduler
	HTTP       *tbhttp.Server
	Console    *console.Server
	Outbox     *notify.Outbox
	engines    map[string]timebox.Engine
	listener   net.Listener
	cancel     context.CancelFunc
	done       chan struct{}
}

// startInstance opens everything c declares and starts serving. Close stops it.
// On an error, what it opened is closed again (the returned instance is nil then, so the
// cleanup holds its own reference).
func startInstance(ctx context.Context, c *Config, logger *slog.Logger) (_ *instance, err error) {
	keys, err := c.keyring()
	if err != nil {
		return nil, err
	}
	in := &instance{engines: map[string]timebox.Engine{}, done: make(chan struct{})}
	defer func() {
		if err != nil {
			in.closeResources()
		}
	}()
	if in.Store, err = openStore(ctx, c); err != nil {
		return nil, err
	}
	if err := timebox.CheckStoreKey(ctx, in.Store, keys); err != nil {
		return nil, err
	}
	if err := in.openCheckpoint(ctx, c, keys, logger); err != nil {
		return nil, err
	}
	for _, s := range c.Servers {
		if in.engines[s.Name], err = openEngine(s, &c.Catalog); err != nil {
			return nil, err
		}
	}
	c.Catalog.Directory = timebox.NewDirectory()
	in.Service = timebox.NewService(in.Store, &c.Catalog, keys)
	in.Service.Tokens = c.Tokens.policy()
	in.Service.Sessions = c.Console.policy()
	if err := in.loadDirectory(ctx, logger); err != nil {
		return nil, err
	}
	in.Service.Checkpoint = in.Checkpoint
	in.Scheduler = scheduler.New(in.Store, &c.Catalog, keys, in.engines)
	in.Scheduler.Logger = logger
	in.Scheduler.Leader = in.Store
	in.Scheduler.Hook = faultHook()
	if c.SweepInterval > 0 {
		in.Scheduler.Sweep = time.Duration(c.SweepInterval)
	}
	if c.ReconcileInterval > 0 {
		in.Scheduler.ReconcileInterval = time.Duration(c.ReconcileInterval)
	}
	in.Service.Wake = in.Scheduler.Wake
	in.Service.Plan = in.Scheduler.PlanStatements
	in.Service.CheckTables = in.Scheduler.CheckTables
	if len(c.OnCall) > 0 {
		r := oncall.NewResolver(c.OnCall)
		r.Logger = logger // not slog's default: the server's level and output
		in.Service.OnCall = r
	}
	// An upgraded store's live requests are authenticated before anything serves them
	// (docs/store-integrity.md); Run tries again if this fails.
	if err := in.Scheduler.Adopt(ctx); err != nil {
		logger.Error("could not authenticate the live requests of an upgraded store", "err", err)
	}
	startupChecks(ctx, in.Service, logger)
	in.HTTP = tbhttp.NewServer(in.Service)
	in.HTTP.Runner = in.Scheduler
	in.HTTP.Reporter = in.Scheduler
	in.HTTP.Logger = logger
	if err := configureTransport(in.HTTP, c, logger); err != nil {
		return nil, err
	}
	in.Scheduler.Metrics = scheduler.NewMetrics(in.HTTP.Registry)
	if err := in.startConsole(c, logger); err != nil {
		return nil, err
	}
	if in.listener, err = in.HTTP.Listen(c.Listen); err != nil {
		return nil, err // "cannot listen on ADDR: address already in use"
	}
	if in.Outbox, err = in.startNotify(c, logger); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	in.cancel = cancel
	go func() {
		defer close(in.done)
		notified := make(chan struct{})
		go func() {
			defer close(notified)
			in.runNotify(runCtx)
		}()
		in.Scheduler.Run(runCtx)
		<-notified
	}()
	go in.followDirectory(runCtx, logger)
	go func() {
		if err := in.HTTP.Serve(in.listener); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			logger.Error("http server stopped", "err", err)
		}
	}()
	return in, nil
}

// openCheckpoint keys the store's audit chain and opens its checkpoint file, which starts
// from the store's head; a head below what the file recorded is logged at once.
func (in *instance) openCheckpoint(ctx context.Context, c *Config, keys *timebox.Keyring, logger *slog.Logger) error {
	in.Store.Keys = keys
	cp, err := timebox.OpenCheckpointFile(c.checkpointPath(), keys, 0)
	if err != nil {
		return err
	}
	cp.Logger = logger
	in.Checkpoint, in.Store.Checkpoint = cp, cp
	if seq := cp.Noted(); seq > 0 {
		var head int64
		if err := in.Store.View(ctx, func(tx timebox.Tx) (err error) { head, _, err = tx.AuditHead(); return err }); err != nil {
			return err
		}
		if head < seq {
			logger.Error("the audit log ends before the checkpoint: events were deleted or the store was restored; run timebox audit --verify",
				"store_head", head, "checkpoint", seq, "path", cp.Path)
		}
	}
	return in.Store.NoteHead(ctx)
}

// startupChecks brings the store in line before the API serves: the tokens of a store made
// before tokens were authenticated are trusted once (without it they are refused), and what
// the configuration no longer allows ends. Failures are logged; both run again at the next
// start.
func startupChecks(ctx context.Context, svc *timebox.Service, logger *slog.Logger) {
	// The tokens of a store made before tokens were authenticated are trusted once, now,
	// before the API serves; without it they are refused.
	if n, err := svc.AdoptTokens(ctx); err != nil {
		logger.Error("could not authenticate the API tokens made before this version; they are refused until the next start", "err", err)
	} else if n > 0 {
		logger.Warn("API tokens made before this version are now authenticated (trust on first use)", "tokens", n)
	}
	// What the configuration no longer allows ends now: removed or disabled users, removed
	// databases and access levels (each with an audit event naming the cause).
	// Several servers sharing a store must run the same configuration: one started with an
	// older file would end what the newer one allows (docs/policy.md).
	if n, err := svc.Cascade(ctx); err != nil {
		logger.Error("could not end the requests the configuration no longer allows; they end at the next start", "err", err)
	} else if n > 0 {
		logger.Warn("configuration changes ended live requests", "requests", n)
	}
}

// openEngine connects (lazily) to one declared server of cat.
func openEngine(s timebox.Server, cat *timebox.Catalog) (timebox.Engine, error) {
	password, err := timebox.ResolveSecret(s.Password)
	if err != nil {
		return nil, timebox.Errorf(timebox.EINVALID, "server %s: password: %s", s.Name, timebox.ErrorMessage(err))
	}
	switch s.Engine {
	case timebox.EnginePostgres:
		e, err := postgres.New(s.Name, s.URL, password, s.MaxConns)
		if err != nil {
			return nil, err
		}
		e.OwnerRoles = ownerRoles(cat, s.Name)
		return e, nil
	case timebox.EngineMySQL:
		e, err := mysql.New(s.Name, s.URL, password, s.MaxConns)
		if err != nil {
			return nil, err
		}
		if s.AccountHost != "" {
			e.AccountHost = s.AccountHost
		}
		if s.EventSchema != "" {
			e.EventSchema = s.EventSchema
		}
		return e, nil
	}
	return nil, timebox.Errorf(timebox.EINVALID, "server %s: unknown engine %q", s.Name, s.Engine)
}

// URL returns the base URL the instance serves on.
func (in *instance) URL() string {
	if in.HTTP.TLS != nil {
		return "https://" + in.listener.Addr().String()
	}
	return "http://" + in.listener.Addr().String()
}

// Close stops serving, lets work in flight finish, and closes engines and store.
func (in *instance) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if in.Console != nil {
		in.Console.Shutdown() // the console's event streams would hold the HTTP shutdown up
	}
	err := in.HTTP.Close(ctx)
	in.cancel()
	<-in.done
	in.closeResources()
	return err
}

func (in *instance) closeResources() {
	if in.listener != nil && in.cancel == nil { // it failed before serving
		in.listener.Close()
	}
	for _, e := range in.engines {
		e.Close()
	}
	if in.Store != nil {
		in.Store.Close()
	}
	if in.Checkpoint != nil { // after the store: no commit notes a head any more
		in.Checkpoint.Close()
	}
}

// faultHook returns the fault-injection seam: when TIMEBOX_FAULT_KILL_AT names a scheduler
// step (e.g. activate.database-done), the process kills itself with SIGKILL at that step, as a
// crash would. Tests use it; it is inert when the variable is unset.
func faultHook() func(string) {
	at := os.Getenv("TIMEBOX_FAULT_KILL_AT")
	if at == "" {
		return nil
	}
	steps := strings.Split(at, ",")
	return func(step string) {
		for _, s := range steps {
			if s == step {
				fmt.Fprintf(os.Stderr, "fault injection: killing the server at %s\n", step)
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
}
