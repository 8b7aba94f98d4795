package server

import (
	"context"
	"log/slog"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/security"
)

// App implements the generated strict server interface: the blog's posts
// and the service's health. The credential operations (x-credential) are
// package credentials', mounted beside it. The guard has already
// authenticated, limited and validated every request App sees.
type App struct {
	repo  Repository
	ready func(ctx context.Context) map[string]error
	log   *slog.Logger
}

var _ gen.StrictServerInterface = (*App)(nil)

// caller is the verified principal; the guard guarantees one on every
// operation that does not admit anonymous callers.
func caller(ctx context.Context) *security.Principal { return security.FromContext(ctx) }

// NewApp returns the example application: the implementation of the
// generated strict server interface, without any HTTP stack around it.
func NewApp(repo Repository, ready func(ctx context.Context) map[string]error, log *slog.Logger) *App {
	return &App{repo: repo, ready: ready, log: log}
}
