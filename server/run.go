// Package server is the example blogging service: it implements the
// interface generated from api/openapi.yaml and wires specguard's guard,
// token service, sessions, API keys and rate limits in front of it.
package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/server/docs"
)

// SpecSource names the embedded document in error messages.
const SpecSource = "api/openapi.yaml"

// generatedFrom refuses a binary whose api/gen was generated from another
// document than the one it embeds: api/openapi.yaml was edited and `make
// generate` not run, so the routes and types are stale.
func generatedFrom(spec []byte) error {
	if sum := fmt.Sprintf("%x", sha256.Sum256(spec)); sum != gen.SpecSHA256 {
		return fmt.Errorf("%s changed since api/gen was generated from it: run `make generate`, implement the new methods of gen.StrictServerInterface, and build again", SpecSource)
	}
	return nil
}

// Run serves until ctx is done, then drains in-flight requests and returns
// nil. Any configuration problem is returned before anything listens.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := LoadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	var handler slog.Handler = slog.NewJSONHandler(stdout, nil)
	if cfg.LogFormat == "text" {
		handler = slog.NewTextHandler(stdout, nil)
	}
	log := slog.New(handler)

	source, spec := SpecSource, api.Spec
	if err := generatedFrom(api.Spec); err != nil {
		return err
	}
	if cfg.SpecFile != "" {
		if spec, err = os.ReadFile(cfg.SpecFile); err != nil {
			return fmt.Errorf("SPECGUARD_SPEC_FILE: %v", err)
		}
		source = cfg.SpecFile
	}
	table, err := policy.Compile(source, spec)
	if err != nil {
		return err
	}
	if cfg.OIDC, err = OIDCSettings(table, getenv); err != nil {
		return err
	}
	deps, err := buildDeps(ctx, cfg, table, log, appClock(getenv))
	if err != nil {
		return err
	}
	defer deps.Close()
	if deps.Docs, err = docs.New(table, spec); err != nil {
		return err
	}
	h, err := NewHandler(deps)
	if errors.Is(err, guard.ErrRoutes) && cfg.SpecFile != "" {
		return fmt.Errorf("%w (SPECGUARD_SPEC_FILE must declare the operations the binary was generated from; to add or remove operations, edit %s and run `make generate`)", err, SpecSource)
	}
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("SPECGUARD_ADDR: %v", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	admin, adminAddr, err := listenAdmin(cfg, deps.Metrics, handler, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	if admin != nil {
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
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
