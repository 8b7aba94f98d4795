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
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server/db"
)

// NewHandler builds the whole HTTP stack: the generated chi routes behind
// one guard that authenticates, limits and validates every request.
func NewHandler(d *Deps) (http.Handler, error) {
	app, err := NewApp(d)
	if err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	limOpts := []limits.Option{limits.WithClientIP(d.ClientIP), limits.WithTimeout(d.Timeout)}
	if d.IPv6Prefix != 0 {
		limOpts = append(limOpts, limits.WithIPv6Prefix(d.IPv6Prefix))
	}
	if d.storeName != "" && d.storeName != "memory" {
		limOpts = append(limOpts, limits.WithStoreObserver(d.Metrics.rateLimitObserver(d.storeName)))
	}
	limiter := limits.New(d.Limits, append(limOpts,
		limits.WithStoreErrorLog(func(op *policy.Operation, err error) {
			d.Log.Warn("rate-limit store failed; applying on-store-error", "operation", op.ID, "err", err)
		}))...)
	strict := gen.NewStrictHandlerWithOptions(app, []gen.StrictMiddlewareFunc{noStore, withClientAddr(limiter)}, gen.StrictHTTPServerOptions{
		RequestErrorHandlerFunc: func(w http.ResponseWriter, _ *http.Request, err error) {
			problems.InvalidRequest(w, "The request body cannot be decoded.", nil)
		},
		ResponseErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, security.ErrUnavailable) {
				// The database or a store did not answer: the request may be
				// retried, and nothing was half done (see db.UpdateUser).
				d.Log.Warn("a store is unavailable; answering 503", "operation", opID(r), "err", err)
				problems.Unavailable(w, "A store is unavailable; try again shortly.")
				return
			}
			d.Log.Error("handler failed", "operation", opID(r), "err", err)
			problems.Internal(w)
		},
	})
	gen.HandlerWithOptions(strict, gen.ChiServerOptions{
		BaseRouter: r,
		ErrorHandlerFunc: func(w http.ResponseWriter, _ *http.Request, err error) {
			problems.InvalidRequest(w, err.Error(), nil)
		},
	})

	bearer := security.BearerAuthenticator{Tokens: d.Tokens}
	var extra []guard.Option
	if d.noValidation {
		extra = append(extra, guard.WithoutRequestValidation())
	}
	if d.OIDC != nil {
		extra = append(extra, guard.WithAuthenticator(policy.SchemeOIDC, d.OIDC))
	}
	g, err := guard.New(d.Table, r, append(extra,
		guard.WithAuthenticator(policy.SchemeBearer, bearer),
		guard.WithAuthenticator(policy.SchemeOAuth2, bearer),
		guard.WithAuthenticator(policy.SchemeAPIKeyCookie, d.Sessions),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, app.keys),
		guard.WithLimiter(limiter),
		guard.WithRealm(realm),
		guard.WithProblems(problems),
		guard.WithErrorLog(func(r *http.Request, err error) {
			d.Log.Warn("a store failed; answering 503", "operation", opID(r), "err", err)
		}),
		guard.WithObserver(d.Metrics.observeGuard),
	)...)
	if err != nil {
		return nil, err
	}
	var h http.Handler = g
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
	if d.lock != nil {
		h = whileLocked(d.lock, h)
	}
	var reqLog *slog.Logger
	if d.LogRequests {
		reqLog = d.Log
	}
	return recoverer(d.Log, logRequests(reqLog, d.Metrics, h)), nil
}

// whileLocked refuses every request (503) while this instance does not
// hold the database's instance lock: without Redis its fast state is its
// own, and another instance may be serving the same data. /healthz (the
// process lives) and /readyz (it says why) are answered all the same.
func whileLocked(lock *db.InstanceLock, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !lock.Held() && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			problems.Unavailable(w, "This instance lost its database lock (another may be serving the same data without a shared Redis); try again shortly.")
			return
		}
		next.ServeHTTP(w, r)
	})
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
				problems.Internal(w)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
