package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/sqldb"
)

// NewHandler builds the whole HTTP stack: the credential operations and
// the generated chi routes of the app behind one guard that
// authenticates, limits and validates every request.
func NewHandler(d *Deps) (http.Handler, error) {
	app := NewApp(d.Repo, d.Ready, d.Log)
	r := chi.NewRouter()
	d.Credentials.Mount(r)
	strict := gen.NewStrictHandlerWithOptions(app, nil, gen.StrictHTTPServerOptions{
		RequestErrorHandlerFunc: func(w http.ResponseWriter, _ *http.Request, err error) {
			problems.InvalidRequest(w, "The request body cannot be decoded.", nil)
		},
		ResponseErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, security.ErrUnavailable) {
				// The database or a store did not answer: the request may be
				// retried, and nothing was half done.
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

	extra := d.Credentials.Authenticators()
	if d.noValidation {
		extra = append(extra, guard.WithoutRequestValidation())
	}
	if d.OIDC != nil {
		extra = append(extra, guard.WithAuthenticator(policy.SchemeOIDC, d.OIDC))
	}
	g, err := guard.New(d.Table, r, append(extra,
		guard.WithLimiter(d.Limiter),
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
func whileLocked(lock *sqldb.InstanceLock, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !lock.Held() && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			problems.Unavailable(w, "This instance lost its database lock (another may be serving the same data without a shared Redis); try again shortly.")
			return
		}
		next.ServeHTTP(w, r)
	})
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
