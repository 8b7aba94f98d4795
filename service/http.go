package service

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/docspage"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/sqldb"
)

// NewHandler builds the whole HTTP stack: the credential operations and
// the app's own routes behind one guard that authenticates, limits and
// validates every request. A handler's panic after its answer began cuts
// the connection by panicking http.ErrAbortHandler, which net/http's
// server recovers; serve the handler with one.
func NewHandler(d *Deps) (http.Handler, error) {
	r := chi.NewRouter()
	d.Credentials.Mount(r)
	if d.app.Routes != nil {
		if err := d.app.Routes(r, d); err != nil {
			return nil, err
		}
	}

	opts := d.Credentials.Authenticators()
	if d.OIDC != nil {
		opts = append(opts, guard.WithAuthenticator(policy.SchemeOIDC, d.OIDC))
	}
	opts = append(opts,
		guard.WithLimiter(d.Limiter),
		guard.WithRealm(realm),
		guard.WithProblems(d.problems),
		guard.WithErrorLog(func(r *http.Request, err error) {
			d.Log.WarnContext(r.Context(), "a store failed; answering 503", "operation", opID(r), "err", err)
		}),
		guard.WithObserver(d.Metrics.observeGuard),
		guard.WithResponseValidation(d.ValidateResponses, d.Metrics.reportResponse(d.Log, d.ValidateResponses)),
		guard.WithResponseSample(d.ResponseSample),
		guard.WithTracerProvider(d.tracerProvider()),
	)
	g, err := guard.New(d.Table, r, append(opts, d.app.GuardOptions...)...)
	if err != nil {
		return nil, err
	}
	var h http.Handler = g
	if d.Docs != nil {
		if err := docspage.Free(d.Table); err != nil {
			return nil, err
		}
		// Not an http.ServeMux: it would clean and redirect paths that the
		// guard must see exactly as chi routes them.
		api, docs := h, d.Docs
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if docspage.Under(r.URL.Path) {
				docs.ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		})
	}
	if d.lock != nil {
		h = whileLocked(d.problems, d.lock, h)
	}
	if d.demo {
		// The demo accounts' passwords are published: a page that
		// re-points its own name to 127.0.0.1 (DNS rebinding) must not
		// log in with them, as the same origin as the API.
		h = loopbackHostOnlyAs(&d.problems, h)
		h = notProxied(&d.problems, h)
	}
	var reqLog *slog.Logger
	if d.LogRequests {
		reqLog = d.Log
	}
	// The recoverer inside: a panic's 500 is counted and logged as any.
	return logRequests(reqLog, d.Metrics, recoverer(d.problems, d.Log, h)), nil
}

// whileLocked refuses every request (503) while this instance does not
// hold the database's instance lock: without Redis its fast state is its
// own, and another instance may be serving the same data. /healthz (the
// process lives) and /readyz (it says why) are answered all the same.
func whileLocked(p problem.Writer, lock *sqldb.InstanceLock, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !lock.Held() && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" {
			p.Unavailable(w, "This instance lost its database lock (another may be serving the same data without a shared Redis); try again shortly.")
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

// recoverer answers a handler's panic with a 500 problem and logs it with
// its stack. An answer already begun is not finished with a problem
// glued to it (a 200 with a broken body, the connection kept): the
// connection is cut, as net/http does, by panicking http.ErrAbortHandler,
// which net/http's server recovers (a caller of the handler outside it
// sees the panic). w is logRequests' *reqState, which knows whether the
// answer began.
func recoverer(p problem.Writer, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			st, _ := w.(*reqState)
			if v == http.ErrAbortHandler {
				if st != nil {
					st.status = http.StatusInternalServerError // cut, as logged
				}
				panic(v)
			}
			op := ""
			if st != nil && st.op != nil {
				op = st.op.ID
			}
			id := RequestID(r.Context())
			log.ErrorContext(r.Context(), "panic", "method", logged(r.Method, 32), "path", logged(r.URL.Path, maxLoggedPath), "operation", op, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if st != nil && st.status != 0 {
				st.status = http.StatusInternalServerError // as counted and logged
				// What was written goes out first: the client sees a
				// truncated answer, not none (which a Transport may take
				// as a reason to send the request again).
				_ = http.NewResponseController(w).Flush()
				panic(http.ErrAbortHandler)
			}
			// The handler's headers (a cookie it set) are not the 500's.
			clear(w.Header())
			if id != "" {
				w.Header()[requestIDHeader] = []string{id}
			}
			p.Internal(w)
		}()
		next.ServeHTTP(w, r)
	})
}

// respondError answers an error a handler returned (see HandlerErrors).
func respondError(p problem.Writer, log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	var ce *sqldb.ConstraintError
	switch {
	case errors.Is(err, security.ErrUnavailable):
		// The database or a store did not answer: the request may be
		// retried, and nothing was half done.
		log.WarnContext(r.Context(), "a store is unavailable; answering 503", "operation", opID(r), "err", err)
		p.Unavailable(w, "A store is unavailable; try again shortly.")
	case errors.Is(err, sqldb.ErrExists):
		// The database is fine; the record is there already.
		log.InfoContext(r.Context(), "a write found its record taken; answering 409", "operation", opID(r), "err", err)
		p.Write(w, &problem.Problem{Type: "conflict", Title: "Conflict", Status: http.StatusConflict, Detail: "The record exists already."})
	case errors.As(err, &ce):
		// The database is fine; the write contradicts what it holds: a
		// record it names is gone, or records still name it (409), or a
		// value the records cannot take (422).
		status, title := http.StatusConflict, "Conflict"
		if ce.Kind == "check" || ce.Kind == "not null" || ce.Kind == "value" {
			status, title = http.StatusUnprocessableEntity, "Unprocessable content"
		}
		log.InfoContext(r.Context(), "a write broke a constraint", "operation", opID(r), "status", status, "err", err)
		p.Write(w, &problem.Problem{Type: "constraint", Title: title, Status: status, Detail: constraintDetail(ce)})
	default:
		log.ErrorContext(r.Context(), "handler failed", "operation", opID(r), "err", err)
		p.Internal(w)
	}
}

// constraintDetail says what a broken constraint means to the caller.
func constraintDetail(ce *sqldb.ConstraintError) string {
	switch ce.Kind {
	case "foreign key":
		return "The request names a record that does not exist, or one that other records still name."
	case "check", "not null", "value":
		return "The request holds a value the records cannot take."
	}
	return "The request contradicts the records."
}

// proxyHeaders are what a reverse proxy adds to the requests it forwards
// (nginx's default proxy_pass adds none, but most others do).
var proxyHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-Ip", "Via"}

// notProxied answers 421 to a request that came through a proxy: the
// development setup's demo accounts, whose passwords are published, are
// for requests made on this machine, and a proxy in front of its loopback
// address serves them to whoever reaches the proxy.
func notProxied(p *problem.Writer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range proxyHeaders {
			if _, ok := r.Header[h]; ok {
				p.Write(w, &problem.Problem{Type: "misdirected-request", Title: "Misdirected request", Status: http.StatusMisdirectedRequest,
					Detail: "the development setup, whose demo accounts have published passwords, answers requests made on this machine only; this one came through a proxy (" + h + "): give SPECGUARD_USERS_FILE, and SPECGUARD_TRUSTED_PROXIES for the proxy"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
