package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/docspage"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/service/docs"
)

// Server is a service built from its settings, not yet listening: its
// whole handler and what it is built from. Close releases the database
// and the stores.
type Server struct {
	Handler http.Handler
	Deps    *Deps
	Config  *Config
	Table   *policy.Table
	Log     *slog.Logger
	logs    slog.Handler
}

// Close releases what Build opened.
func (s *Server) Close() { s.Deps.Close() }

// Build reads the settings (getenv, then the flags in args), compiles the
// document, opens the database (migrated) and the stores, seeds the
// accounts and builds the handler; logs and --help go to stdout, flag
// errors to stderr. Any configuration problem is an error naming what and
// where, and nothing is left open.
func Build(ctx context.Context, app App, args []string, getenv func(string) string, stdout, stderr io.Writer) (*Server, error) {
	return build(ctx, app, args, getenv, stdout, stderr, nil)
}

// build is Build, calling bind, when not nil, once the settings and the
// document are read and before anything is opened or written.
func build(ctx context.Context, app App, args []string, getenv func(string) string, stdout, stderr io.Writer, bind func(*Config) error) (*Server, error) {
	cfg, err := loadConfig(app.Name, args, getenv, stdout, stderr)
	if err != nil {
		return nil, err
	}
	var handler slog.Handler = slog.NewJSONHandler(stdout, nil)
	if cfg.LogFormat == "text" {
		handler = slog.NewTextHandler(stdout, nil)
	}
	log := slog.New(requestIDs{handler})

	source, spec := app.SpecSource, app.Spec
	if err := app.generatedFrom(); err != nil {
		return nil, err
	}
	if cfg.SpecFile != "" {
		if spec, err = os.ReadFile(cfg.SpecFile); err != nil {
			return nil, fmt.Errorf("SPECGUARD_SPEC_FILE: %v", err)
		}
		source = cfg.SpecFile
	}
	table, err := policy.Compile(source, spec)
	if err != nil {
		if cfg.SpecFile == "" {
			return nil, err
		}
		// One line: the first problem, and where to read them all.
		var errs policy.Errors
		if errors.As(err, &errs) && len(errs) > 1 {
			return nil, fmt.Errorf("SPECGUARD_SPEC_FILE: %v (and %d more: `specguard lint %s` lists them)", errs[0], len(errs)-1, cfg.SpecFile)
		}
		return nil, fmt.Errorf("SPECGUARD_SPEC_FILE: %w", err)
	}
	if err := docspage.Free(table); err != nil {
		return nil, err
	}
	if cfg.SpecFile != "" {
		// Before anything is opened or written: the guard would refuse
		// the routes only once the database is migrated and seeded.
		if err := sameOperations(app, table); err != nil {
			return nil, err
		}
	}
	if err := checkOIDCEnviron(table, app.environ); err != nil {
		return nil, err
	}
	if cfg.OIDC, err = OIDCSettings(table, getenv); err != nil {
		return nil, err
	}
	if bind != nil {
		if err := bind(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Tracer, err = newTracerProvider(ctx, app.Name, getenv, log); err != nil {
		return nil, err
	}
	deps, err := buildDeps(ctx, &app, cfg, table, log, appClock(getenv))
	if err != nil {
		return nil, err // its tracer shut down with the rest
	}
	if deps.Docs, err = docs.New(table, spec); err != nil {
		deps.Close()
		return nil, err
	}
	h, err := NewHandler(deps)
	if errors.Is(err, guard.ErrRoutes) && cfg.SpecFile != "" {
		err = fmt.Errorf("%w (SPECGUARD_SPEC_FILE must declare the operations the binary was generated from; to add or remove operations, edit %s and run `make generate`)", err, app.SpecSource)
	}
	if err != nil {
		deps.Close()
		return nil, err
	}
	return &Server{Handler: h, Deps: deps, Config: cfg, Table: table, Log: log, logs: handler}, nil
}

// Run serves app until ctx is done, then drains in-flight requests and
// returns nil. Any configuration problem is returned before anything
// listens. When ctx ends while it opens the stores and the database,
// migrates, seeds or builds the handler, it returns nil, having served
// nothing.
func Run(ctx context.Context, app App, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// The addresses are bound before the database or the stores are
	// opened: a start refused for an address in use has written nothing.
	var ls listeners
	s, err := build(ctx, app, args, getenv, stdout, stderr, ls.bind)
	if err != nil {
		ls.close()
		if stopped := (*stoppedError)(nil); errors.As(err, &stopped) {
			// Stopped while it started (SIGTERM, Ctrl-C).
			fmt.Fprintf(stderr, "%s: stopped while starting, before serving\n", app.Name)
			return nil
		}
		return err
	}
	defer s.Close()
	if ctx.Err() != nil {
		// Stopped while the handler was built (the guard, the routes),
		// which looks at no context.
		ls.close()
		fmt.Fprintf(stderr, "%s: stopped while starting, before serving\n", app.Name)
		return nil
	}
	return s.serve(ctx, &ls)
}

// listeners are the API's and the admin listener's, bound.
type listeners struct{ api, admin net.Listener }

func (l *listeners) bind(cfg *Config) error {
	var err error
	if l.api, err = net.Listen("tcp", cfg.Addr); err != nil {
		return fmt.Errorf("SPECGUARD_ADDR: %v", err)
	}
	l.admin, err = bindAdmin(cfg, l.api.Addr())
	return err
}

func (l *listeners) close() {
	for _, ln := range []net.Listener{l.api, l.admin} {
		if ln != nil {
			ln.Close()
		}
	}
}

// serve serves on ls until ctx is done.
func (s *Server) serve(ctx context.Context, ls *listeners) error {
	cfg, deps, log, handler, table, h := s.Config, s.Deps, s.Log, s.logs, s.Table, s.Handler
	ln := ls.api
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
		// OPTIONS * goes to the handler too: net/http answered it 200
		// itself, with no request id, log line, metric or span.
		DisableGeneralOptionsHandler: true,
	}
	adminAddr := "off"
	if ls.admin != nil {
		var admin *http.Server
		admin, adminAddr = serveAdmin(cfg, ls.admin, deps.Metrics, handler)
		defer admin.Close()
	}
	log.Info("listening", "addr", ln.Addr().String(), "store", deps.storeName, "database", deps.DB.Source().String(),
		"operations", len(table.Operations()), "admin", adminAddr)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if cfg.ShutdownDelay > 0 {
		// Serving on, unready: a load balancer that polls /readyz stops
		// sending requests before the listener closes on them.
		deps.draining.Store(true)
		log.Info("draining: /readyz answers 503 until the shutdown begins", "delay", cfg.ShutdownDelay.String())
		select {
		case err := <-errc:
			return err
		case <-time.After(cfg.ShutdownDelay):
		}
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Asked to stop, it stops: what was still in flight at the
		// timeout is cut, and said so.
		log.Warn("requests still in flight at the shutdown timeout were cut", "timeout", cfg.ShutdownTimeout.String(), "err", err)
		srv.Close()
	}
	log.Info("stopped")
	return nil
}

// sameOperations checks that table, compiled from SPECGUARD_SPEC_FILE,
// declares the app's own operations (those without x-credential, whose
// paths the file may move) at the methods and paths of the document the
// binary was generated from, no more and no fewer: the routes the binary
// has.
func sameOperations(app App, table *policy.Table) error {
	generated, err := policy.Compile(app.SpecSource, app.Spec)
	if err != nil {
		return err
	}
	shapes := func(t *policy.Table) map[string]*policy.Operation {
		out := map[string]*policy.Operation{}
		for _, op := range t.Operations() {
			if _, cred := op.Spec.Extensions[policy.ExtCredential]; !cred {
				out[op.Method+" "+pathParam.ReplaceAllString(op.Path, "{}")] = op
			}
		}
		return out
	}
	declared, routed := shapes(table), shapes(generated)
	fix := fmt.Sprintf("SPECGUARD_SPEC_FILE must declare the operations the binary was generated from; to add or remove operations, edit %s and run `make generate`", app.SpecSource)
	for _, shape := range slices.Sorted(maps.Keys(declared)) {
		if routed[shape] == nil {
			op := declared[shape]
			return fmt.Errorf("SPECGUARD_SPEC_FILE: %s %s (%s): the binary has no route for it (%s)", op.Method, op.Path, op.ID, fix)
		}
	}
	for _, shape := range slices.Sorted(maps.Keys(routed)) {
		if declared[shape] == nil {
			op := routed[shape]
			return fmt.Errorf("SPECGUARD_SPEC_FILE: %s %s (%s) is missing: the binary serves it (%s)", op.Method, op.Path, op.ID, fix)
		}
	}
	return nil
}

// pathParam is a path template's parameter: operations are the same
// route whatever their parameters are named.
var pathParam = regexp.MustCompile(`\{[^}]*\}`)
