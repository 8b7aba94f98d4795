package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// NewApp returns the example application: the implementation of the
// generated strict server interface, without any HTTP stack around it.
func NewApp(d *Deps) (*App, error) {
	cookieName := ""
	for _, s := range d.Table.Schemes {
		if s.Type == policy.SchemeAPIKeyCookie {
			cookieName = s.Param
		}
	}
	params := d.Argon2
	if params == (Argon2{}) {
		params = DefaultArgon2
	}
	pw, err := newPasswords(params)
	if err != nil {
		return nil, err
	}
	ready := d.Ready
	if ready == nil {
		ready = func(ctx context.Context) map[string]error { return map[string]error{"store": d.Store.Ping(ctx)} }
	}
	app := &App{
		table: d.Table, repo: d.Repo, store: d.Store, accounts: d.Accounts, tokens: d.Tokens, sessions: d.Sessions,
		keys: d.Keys, cookieName: cookieName, passwords: pw, ready: ready, log: d.Log,
		passwordChecked: d.passwordChecked, failures: d.failures,
	}
	return app, nil
}

// NewHandler builds the whole HTTP stack: the generated chi routes behind
// one guard that authenticates, limits and validates every request.
func NewHandler(d *Deps) (http.Handler, error) {
	app, err := NewApp(d)
	if err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		security.WriteProblem(w, &security.Problem{Type: security.ProblemTypePrefix + "not-found", Title: "Not found", Status: http.StatusNotFound, Detail: "No operation has this path."})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		security.WriteProblem(w, &security.Problem{Type: security.ProblemTypePrefix + "method-not-allowed", Title: "Method not allowed", Status: http.StatusMethodNotAllowed, Detail: "The path exists, but not with this method."})
	})
	limOpts := []limits.Option{limits.WithClientIP(d.ClientIP), limits.WithTimeout(d.Timeout)}
	if d.IPv6Prefix != 0 {
		limOpts = append(limOpts, limits.WithIPv6Prefix(d.IPv6Prefix))
	}
	limiter := limits.New(d.Limits, append(limOpts,
		limits.WithStoreErrorLog(func(op *policy.Operation, err error) {
			d.Log.Warn("rate-limit store failed; applying on-store-error", "operation", op.ID, "err", err)
		}),
		limits.WithDecisionObserver(d.Metrics.observeLimit))...)
	strict := gen.NewStrictHandlerWithOptions(app, []gen.StrictMiddlewareFunc{noStore, withClientAddr(limiter)}, gen.StrictHTTPServerOptions{
		RequestErrorHandlerFunc: func(w http.ResponseWriter, _ *http.Request, err error) {
			security.WriteProblem(w, &security.Problem{Type: security.ProblemTypePrefix + "invalid-request", Title: "Invalid request", Status: http.StatusBadRequest, Detail: "The request body cannot be decoded."})
		},
		ResponseErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, security.ErrUnavailable) {
				// The database or a store did not answer: the request may be
				// retried, and nothing was half done (see db.UpdateUser).
				d.Log.Warn("a store is unavailable; answering 503", "operation", opID(r), "err", err)
				w.Header().Set("Retry-After", "1")
				security.WriteProblem(w, &security.Problem{Type: security.ProblemTypePrefix + "store-unavailable", Title: "Service unavailable", Status: http.StatusServiceUnavailable,
					Detail: "A store is unavailable; try again shortly."})
				return
			}
			d.Log.Error("handler failed", "operation", opID(r), "err", err)
			security.WriteProblem(w, &security.Problem{Type: security.ProblemTypePrefix + "internal", Title: "Internal error", Status: http.StatusInternalServerError})
		},
	})
	gen.HandlerWithOptions(strict, gen.ChiServerOptions{
		BaseRouter: r,
		ErrorHandlerFunc: func(w http.ResponseWriter, _ *http.Request, err error) {
			security.WriteProblem(w, &security.Problem{Type: security.ProblemTypePrefix + "invalid-request", Title: "Invalid request", Status: http.StatusBadRequest, Detail: err.Error()})
		},
	})

	bearer := security.BearerAuthenticator{Tokens: d.Tokens}
	guard, err := security.NewGuard(d.Table, r,
		security.WithAuthenticator(policy.SchemeBearer, bearer),
		security.WithAuthenticator(policy.SchemeOAuth2, bearer),
		security.WithAuthenticator(policy.SchemeAPIKeyCookie, d.Sessions),
		security.WithAuthenticator(policy.SchemeAPIKeyHeader, app.keys),
		security.WithLimiter(limiter),
		security.WithErrorLog(func(r *http.Request, err error) {
			d.Log.Warn("security store failed; answering 503", "operation", opID(r), "err", err)
		}),
		security.WithAuthObserver(d.Metrics.observeAuth),
	)
	if err != nil {
		return nil, err
	}
	var h http.Handler = guard(r)
	if d.Docs != nil {
		// Not an http.ServeMux: it would clean and redirect paths that the
		// guard must see exactly as chi routes them.
		api, docs := h, d.Docs
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/docs" || strings.HasPrefix(r.URL.Path, "/docs/") {
				docs.ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		})
	}
	var reqLog *slog.Logger
	if d.LogRequests {
		reqLog = d.Log
	}
	return recoverer(d.Log, logRequests(reqLog, d.Metrics, h)), nil
}

// credentialOps are the operations whose responses carry a credential.
var credentialOps = map[string]bool{"login": true, "oauthToken": true, "refresh": true, "createSession": true, "createApiKey": true}

// noStore forbids caching responses that carry a credential (RFC 6749
// section 5.1): no shared cache, proxy or browser may keep a token.
func noStore(next gen.StrictHandlerFunc, _ string) gen.StrictHandlerFunc {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, request any) (any, error) {
		if op := policy.FromContext(ctx); op != nil && credentialOps[op.ID] {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Pragma", "no-cache")
		}
		return next(ctx, w, r, request)
	}
}

type clientAddrKey struct{}

// withClientAddr puts the client address, as per-IP tiers count it, in
// the context of the handlers, for budgets they keep by address.
func withClientAddr(l *limits.Limiter) gen.StrictMiddlewareFunc {
	return func(next gen.StrictHandlerFunc, _ string) gen.StrictHandlerFunc {
		return func(ctx context.Context, w http.ResponseWriter, r *http.Request, request any) (any, error) {
			return next(context.WithValue(ctx, clientAddrKey{}, l.ClientAddr(r)), w, r, request)
		}
	}
}

// clientAddr is the address withClientAddr found (invalid when none).
func clientAddr(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(clientAddrKey{}).(netip.Addr)
	return a
}

func opID(r *http.Request) string {
	if op := policy.FromContext(r.Context()); op != nil {
		return op.ID
	}
	return ""
}

func recoverer(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
				security.WriteProblem(w, &security.Problem{Type: security.ProblemTypePrefix + "internal", Title: "Internal error", Status: http.StatusInternalServerError})
			}
		}()
		next.ServeHTTP(w, r)
	})
}
