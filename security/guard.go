package security

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/policy"
)

// Authenticator verifies one kind of credential. It returns (nil, nil) when
// the request carries no credential for scheme, so that alternative is not
// satisfied; a credential that is present but bad is an error wrapping
// ErrMalformed, ErrInvalid, ErrCSRF or ErrUnavailable.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*Principal, error)
}

// Limiter applies an operation's rate-limit tiers. It returns false after
// writing the response (429, 503) when the request must not proceed.
// p is nil for anonymous callers and for callers whose authentication failed.
type Limiter interface {
	Limit(w http.ResponseWriter, r *http.Request, op *policy.Operation, p *Principal) bool
}

// Option configures a guard.
type Option func(*Guard)

// WithAuthenticator registers a for every scheme of type t.
func WithAuthenticator(t policy.SchemeType, a Authenticator) Option {
	return func(g *Guard) { g.auth[t] = a }
}

// WithLimiter makes the guard apply rate limits with l. Without one, a table
// that declares any limit is refused.
func WithLimiter(l Limiter) Option { return func(g *Guard) { g.limiter = l } }

// WithRealm sets the realm of WWW-Authenticate challenges ("specguard" when absent).
func WithRealm(realm string) Option { return func(g *Guard) { g.realm = realm } }

// WithMaxBodyBytes caps request bodies (1 MiB when absent); a larger body is
// answered 413 before any handler runs.
func WithMaxBodyBytes(n int64) Option { return func(g *Guard) { g.maxBody = n } }

// WithoutRequestValidation skips validating requests against the spec's
// schemas. Validation is on by default.
func WithoutRequestValidation() Option { return func(g *Guard) { g.validate = false } }

// WithErrorLog receives errors the guard answers with 503 (a store down).
// Nothing is logged when absent.
func WithErrorLog(f func(r *http.Request, err error)) Option {
	return func(g *Guard) { g.logErr = f }
}

// AuthOutcome is how authentication of one request ended.
type AuthOutcome string

const (
	AuthPublic      AuthOutcome = "public"             // security: [] (nothing looked at)
	AuthOK          AuthOutcome = "ok"                 // an alternative was satisfied
	AuthAnonymous   AuthOutcome = "anonymous"          // no credential, and {} admits that
	AuthMissing     AuthOutcome = "missing"            // no credential; 401
	AuthInvalid     AuthOutcome = "invalid"            // a bad, expired or revoked credential; 401
	AuthMalformed   AuthOutcome = "malformed"          // an unreadable or duplicated credential; 400
	AuthScope       AuthOutcome = "insufficient_scope" // valid, but too few scopes; 403
	AuthNotFresh    AuthOutcome = "not_fresh"          // a refreshed token where a fresh one is required; 401
	AuthCSRF        AuthOutcome = "csrf"               // a cookie write that failed the CSRF check; 403
	AuthUnavailable AuthOutcome = "unavailable"        // a store needed to decide is down; 503
)

// AuthEvent describes the authentication of one request to an operation.
type AuthEvent struct {
	Outcome AuthOutcome
	// Scheme is the scheme that decided: the satisfied alternative's
	// schemes joined by "+" on success, the scheme whose credential failed
	// otherwise; empty when no scheme decided (public, missing, anonymous).
	Scheme    string
	Principal *Principal // the verified caller, on AuthOK only
}

// WithAuthObserver receives the outcome of every guarded request's
// authentication, for metrics and logs. w is the ResponseWriter the guard
// was given, so a middleware outside can find its own per-request state.
// It must be fast and must not keep w or r.
func WithAuthObserver(f func(w http.ResponseWriter, r *http.Request, op *policy.Operation, ev AuthEvent)) Option {
	return func(g *Guard) { g.observe = f }
}

// Guard enforces a compiled policy table in front of a chi router.
type Guard struct {
	table    *policy.Table
	routes   chi.Routes
	auth     map[policy.SchemeType]Authenticator
	limiter  Limiter
	realm    string
	maxBody  int64
	validate bool
	logErr   func(*http.Request, error)
	observe  func(http.ResponseWriter, *http.Request, *policy.Operation, AuthEvent)
	gated    GatedLimiter // the limiter, when it carries gates

	byOp map[*policy.Operation]*opValidation
	pool sync.Pool
}

// NewGuard checks the configuration against the table and the router and
// returns the guard middleware. It fails when a scheme the table uses has no
// authenticator, when the table declares limits and no limiter is given, or
// when the router and the table disagree on any route: an operation the
// guard cannot see must not be served.
func NewGuard(table *policy.Table, routes chi.Routes, opts ...Option) (func(http.Handler) http.Handler, error) {
	g := &Guard{
		table:    table,
		routes:   routes,
		auth:     map[policy.SchemeType]Authenticator{},
		realm:    "specguard",
		maxBody:  1 << 20,
		validate: true,
		byOp:     map[*policy.Operation]*opValidation{},
	}
	for _, opt := range opts {
		opt(g)
	}
	g.pool.New = func() any { return chi.NewRouteContext() }
	if gl, ok := g.limiter.(GatedLimiter); ok && gl.CanGate() {
		g.gated = gl
	}

	var problems []string
	for _, op := range table.Operations() {
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				if g.auth[sr.Scheme.Type] == nil {
					problems = append(problems, fmt.Sprintf("%s %s (%s): no authenticator for scheme %s (%s)", op.Method, op.Path, op.ID, sr.Scheme.Name, sr.Scheme.Type))
				}
			}
		}
		if len(op.Limits) > 0 && g.limiter == nil {
			problems = append(problems, fmt.Sprintf("%s %s (%s): declares x-rate-limit but the guard has no limiter", op.Method, op.Path, op.ID))
		}
		g.byOp[op] = newOpValidation(table.Doc, op)
	}
	// Middleware inside the guarded router runs after the guard's lookup
	// and may re-route the request (GetHead, StripSlashes) to a handler
	// whose operation the guard never checked: install it outside instead.
	if len(routes.Middlewares()) > 0 {
		problems = append(problems, "the guarded router has middleware of its own; install middleware outside the guard")
	}
	seen := map[*policy.Operation]bool{}
	err := chi.Walk(routes, func(method, route string, _ http.Handler, mws ...func(http.Handler) http.Handler) error {
		if len(mws) > 0 {
			problems = append(problems, fmt.Sprintf("route %s %s has middleware inside the guarded router; install it outside the guard", method, route))
		}
		op := table.Lookup(method, route)
		if op == nil {
			problems = append(problems, fmt.Sprintf("route %s %s has no operation in %s", method, route, table.Source))
			return nil
		}
		seen[op] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("guard: walking routes: %w", err)
	}
	for _, op := range table.Operations() {
		if !seen[op] {
			problems = append(problems, fmt.Sprintf("%s %s (%s): operation has no route", op.Method, op.Path, op.ID))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("guard: %s", strings.Join(dedupe(problems), "; "))
	}
	return g.middleware, nil
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func (g *Guard) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rctx := g.pool.Get().(*chi.Context)
		rctx.Reset()
		defer g.pool.Put(rctx)

		path, method := routePath(r)
		op := g.table.Lookup(method, g.routes.Find(rctx, method, path))
		if op == nil {
			// Not an operation: chi answers 404 or 405. NewGuard verified
			// that every route the router has belongs to an operation.
			next.ServeHTTP(w, r)
			return
		}
		// With a limiter that carries gates, a bearer token's revocation
		// check is left to the rate-limit store call: one round trip.
		gated := g.gated != nil && len(op.Limits) > 0
		p, scheme, gate, fail := g.authenticate(r, op, gated)
		if gate != nil && fail != nil {
			// The request is refused anyway; a revoked token is refused as
			// invalid (401) rather than as lacking scope or freshness.
			if err := gate.Check(r.Context()); errors.Is(err, errRecheck) {
				p, scheme, _, fail = g.authenticate(r, op, false)
			} else if err != nil {
				fail = err
			}
			gate = nil
		}
		if fail != nil {
			p = nil
		}
		// One allocation carries both the operation and the principal.
		rc := &requestContext{Context: r.Context(), op: op, p: p}
		r = r.WithContext(rc)
		ok := true
		switch {
		case gate != nil:
			var gateErr error
			ok, gateErr = g.gated.LimitGated(w, r, op, p, gate)
			if errors.Is(gateErr, errRecheck) {
				// The account changed, or a key lost its mark: nothing was
				// charged; decide again on the path that reads them anew.
				p, scheme, _, fail = g.authenticate(r, op, false)
				if fail != nil {
					p = nil
				}
				rc.p, gateErr = p, nil
				if !errors.Is(fail, ErrUnavailable) {
					ok = g.limiter.Limit(w, r, op, p)
				}
			}
			if gateErr != nil {
				// Revoked (or the store is down): nothing was charged.
				p, rc.p, fail = nil, nil, gateErr
				if !errors.Is(fail, ErrUnavailable) {
					ok = g.limiter.Limit(w, r, op, nil)
				}
			}
		case len(op.Limits) > 0 && !errors.Is(fail, ErrUnavailable):
			// A request whose authentication failed is limited as anonymous,
			// so guessing credentials is throttled like any anonymous call.
			// When the store itself is down there is nothing to count in:
			// answer 503 at once rather than wait on it a second time.
			ok = g.limiter.Limit(w, r, op, p)
		}
		if g.observe != nil {
			g.observe(w, r, op, authEvent(op, p, scheme, fail))
		}
		if !ok {
			return
		}
		if fail != nil {
			g.reject(w, r, fail)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
		}
		if g.validate && !g.validateRequest(w, r, op, rctx) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requestContext is the context the guard hands on: its parent plus the
// resolved operation (policy.FromContext) and the verified principal
// (FromContext), in one allocation rather than two WithValue layers.
type requestContext struct {
	context.Context
	op *policy.Operation
	p  *Principal
}

func (c *requestContext) Value(key any) any {
	if _, ok := key.(principalKey); ok {
		return c.p
	}
	if policy.IsContextKey(key) {
		return c.op
	}
	return c.Context.Value(key)
}

// routePath returns the path and method chi will route r on, exactly as
// chi's Mux does: a parent chi router that mounted this one has left the
// remaining path (and possibly the method) in its route context, and an
// empty path (an absolute-form request target such as "GET http://host")
// routes as "/". Resolving any other way would let such a request reach a
// handler whose operation the guard never looked up.
func routePath(r *http.Request) (path, method string) {
	method = r.Method
	if rc := chi.RouteContext(r.Context()); rc != nil {
		path = rc.RoutePath
		if rc.RouteMethod != "" {
			method = rc.RouteMethod
		}
	}
	if path == "" {
		path = r.URL.RawPath
		if path == "" {
			path = r.URL.Path
		}
		if path == "" {
			path = "/"
		}
	}
	return path, method
}

// outcome of one scheme for one request, memoised so schemes shared by
// several alternatives are verified once.
type outcome struct {
	param string
	typ   policy.SchemeType
	p     *Principal
	err   error
}

// errNoCredentials and errScope are the failures that are not an
// Authenticator's error: nothing presented, or too little scope.
var errNoCredentials = errors.New("this operation needs credentials")

type scopeError struct{ scopes []string }

func (e *scopeError) Error() string {
	return "this operation needs the scopes: " + strings.Join(e.scopes, " ")
}

// authenticate evaluates the operation's alternatives in order (OR); inside
// one, every scheme must pass (AND) and hold its scopes. A non-nil error
// means the request must be refused with it (see reject).
func (g *Guard) authenticate(r *http.Request, op *policy.Operation, gated bool) (p *Principal, scheme string, gate *Gate, err error) {
	sec := &op.Security
	if sec.Public {
		return nil, "", nil, nil
	}
	var memo [4]outcome
	seen := memo[:0]
	verify := func(s *policy.Scheme) outcome {
		for _, o := range seen {
			if o.param == s.Param && sameKind(o.typ, s.Type) {
				return o
			}
		}
		var o outcome
		// One check rides in the rate-limit call; a second credential (an
		// AND alternative) is checked on its own.
		if ga, ok := g.auth[s.Type].(gatingAuthenticator); ok && gated && gate == nil {
			var gt *Gate
			o.p, gt, o.err = ga.authenticateGated(r.Context(), r, s)
			if gt != nil {
				gate = gt
			}
		} else {
			o.p, o.err = g.auth[s.Type].Authenticate(r.Context(), r, s)
		}
		o.param, o.typ = s.Param, s.Type
		seen = append(seen, o)
		return o
	}

	var scopeMiss []string // scopes of the first alternative a valid credential lacked
	var scopeScheme string
	for _, alt := range sec.Alternatives {
		var got *Principal
		satisfied := true
		for _, sr := range alt {
			o := verify(sr.Scheme)
			if o.err != nil {
				return nil, sr.Scheme.Name, gate, o.err
			}
			if o.p == nil {
				satisfied = false
				break
			}
			if !o.p.HasScopes(sr.Scopes) {
				if scopeMiss == nil {
					scopeMiss, scopeScheme = sr.Scopes, sr.Scheme.Name
				}
				satisfied = false
				break
			}
			if got != nil && got.Subject != o.p.Subject {
				return nil, sr.Scheme.Name, gate, fmt.Errorf("%w: the credentials name different users", ErrInvalid)
			}
			got = combine(got, o.p, sr.Scheme.Name)
		}
		if satisfied {
			if op.RequireFresh && !got.Fresh {
				return nil, got.Scheme, gate, ErrNotFresh
			}
			return got, got.Scheme, gate, nil
		}
	}
	if scopeMiss != nil {
		return nil, scopeScheme, gate, &scopeError{scopes: scopeMiss}
	}
	if sec.Anonymous {
		// A token was presented and verified but satisfied nothing
		// (unreachable today: a bearer alternative without scopes always
		// passes); a pending gate still decides whether it was revoked.
		return nil, "", gate, nil
	}
	return nil, "", gate, errNoCredentials
}

// isScopeError is errors.As for *scopeError, kept out of authEvent so that
// its target is allocated only on this error path.
func isScopeError(err error) bool {
	var scopeErr *scopeError
	return errors.As(err, &scopeErr)
}

// authEvent classifies the result of authenticate.
func authEvent(op *policy.Operation, p *Principal, scheme string, err error) AuthEvent {
	ev := AuthEvent{Scheme: scheme}
	switch {
	case err == nil && op.Security.Public:
		ev.Outcome = AuthPublic
	case err == nil && p == nil:
		ev.Outcome = AuthAnonymous
	case err == nil:
		ev.Outcome, ev.Principal = AuthOK, p
	case errors.Is(err, errNoCredentials):
		ev.Outcome = AuthMissing
	case isScopeError(err):
		ev.Outcome = AuthScope
	case errors.Is(err, ErrMalformed):
		ev.Outcome = AuthMalformed
	case errors.Is(err, ErrNotFresh):
		ev.Outcome = AuthNotFresh
	case errors.Is(err, ErrInvalid):
		ev.Outcome = AuthInvalid
	case errors.Is(err, ErrCSRF):
		ev.Outcome = AuthCSRF
	default:
		ev.Outcome = AuthUnavailable
	}
	return ev
}

// sameKind reports whether two scheme types read a credential the same way,
// so a result for one stands for the other (bearer and oauth2 both verify
// the Authorization header's token).
func sameKind(a, b policy.SchemeType) bool {
	bearer := func(t policy.SchemeType) bool { return t == policy.SchemeBearer || t == policy.SchemeOAuth2 }
	return a == b || (bearer(a) && bearer(b))
}

// combine merges the principals of an AND alternative: the result holds only
// the scopes every credential holds.
func combine(acc, p *Principal, scheme string) *Principal {
	if acc == nil && p.Scheme == scheme {
		return p // already made for this scheme (a cached token's principal)
	}
	if acc == nil {
		c := *p
		c.Scheme = scheme
		return &c
	}
	c := *acc
	c.Scheme += "+" + scheme
	scopes := make([]string, 0, len(acc.Scopes))
	for _, s := range acc.Scopes {
		if p.HasScope(s) {
			scopes = append(scopes, s)
		}
	}
	c.Scopes = scopes
	c.Fresh = acc.Fresh && p.Fresh
	if c.TokenID == "" {
		c.TokenID, c.FamilyID = p.TokenID, p.FamilyID
	}
	if c.SessionID == "" {
		c.SessionID = p.SessionID
	}
	if c.KeyID == "" {
		c.KeyID = p.KeyID
	}
	return &c
}

// reject answers an authentication error. The detail names what was wrong
// with the credential, never the credential itself.
func (g *Guard) reject(w http.ResponseWriter, r *http.Request, err error) {
	detail := err.Error()
	var scopeErr *scopeError
	switch {
	case errors.Is(err, errNoCredentials):
		w.Header().Set("WWW-Authenticate", challenge(g.realm, "", "", ""))
		WriteProblem(w, &Problem{Type: ProblemTypePrefix + "unauthenticated", Title: "Authentication required", Status: http.StatusUnauthorized, Detail: detail})
	case errors.As(err, &scopeErr):
		scope := strings.Join(scopeErr.scopes, " ")
		w.Header().Set("WWW-Authenticate", challenge(g.realm, "insufficient_scope", "the credential lacks a required scope", scope))
		WriteProblem(w, &Problem{Type: ProblemTypePrefix + "insufficient-scope", Title: "Insufficient scope", Status: http.StatusForbidden, Detail: detail})
	case errors.Is(err, ErrMalformed):
		w.Header().Set("WWW-Authenticate", challenge(g.realm, "invalid_request", detail, ""))
		WriteProblem(w, &Problem{Type: ProblemTypePrefix + "invalid-request", Title: "Malformed credentials", Status: http.StatusBadRequest, Detail: detail})
	case errors.Is(err, ErrNotFresh):
		w.Header().Set("WWW-Authenticate", challenge(g.realm, "insufficient_user_authentication", detail, ""))
		WriteProblem(w, &Problem{Type: ProblemTypePrefix + "fresh-login-required", Title: "Fresh login required", Status: http.StatusUnauthorized, Detail: detail})
	case errors.Is(err, ErrInvalid):
		w.Header().Set("WWW-Authenticate", challenge(g.realm, "invalid_token", detail, ""))
		WriteProblem(w, &Problem{Type: ProblemTypePrefix + "invalid-token", Title: "Invalid credentials", Status: http.StatusUnauthorized, Detail: detail})
	case errors.Is(err, ErrCSRF):
		WriteProblem(w, &Problem{Type: ProblemTypePrefix + "csrf", Title: "CSRF check failed", Status: http.StatusForbidden, Detail: detail})
	default: // ErrUnavailable or anything unexpected: fail closed.
		if g.logErr != nil {
			g.logErr(r, err)
		}
		w.Header().Set("Retry-After", "1")
		WriteProblem(w, &Problem{Type: ProblemTypePrefix + "store-unavailable", Title: "Service unavailable", Status: http.StatusServiceUnavailable,
			Detail: "A store needed to check credentials is unavailable; try again shortly."})
	}
}

func (g *Guard) validateRequest(w http.ResponseWriter, r *http.Request, op *policy.Operation, rctx *chi.Context) bool {
	v := g.byOp[op]
	err, done := v.validatePath(r, rctx)
	if !done {
		params := make(map[string]string, len(rctx.URLParams.Keys))
		for i, k := range rctx.URLParams.Keys {
			params[k] = rctx.URLParams.Values[i]
		}
		err = openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
			Request:    r,
			PathParams: params,
			Route:      v.route,
			Options:    validationOptions,
		})
	}
	if err == nil {
		return true
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		WriteProblem(w, &Problem{Type: ProblemTypePrefix + "body-too-large", Title: "Request body too large", Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("The body exceeds %d bytes.", tooLarge.Limit)})
		return false
	}
	WriteProblem(w, &Problem{Type: ProblemTypePrefix + "invalid-request", Title: "Invalid request", Status: http.StatusBadRequest,
		Detail: "The request does not match the API description.", Errors: fieldErrors(err)})
	return false
}

// fieldErrors flattens openapi3filter's errors into one entry per field,
// named like "body.title" or "query.limit".
func fieldErrors(err error) []FieldError {
	var out []FieldError
	var walk func(err error, field string)
	walk = func(err error, field string) {
		switch e := err.(type) {
		case *openapi3filter.RequestError:
			if e.Parameter != nil {
				field = e.Parameter.In + "." + e.Parameter.Name
			} else if e.RequestBody != nil {
				field = "body"
			}
			if e.Err == nil {
				out = append(out, FieldError{Field: field, Message: oneLine(e.Reason)})
				return
			}
			walk(e.Err, field)
		case openapi3.MultiError:
			for _, inner := range e {
				walk(inner, field)
			}
		case *openapi3.SchemaError:
			if ptr := e.JSONPointer(); len(ptr) > 0 {
				field += "." + strings.Join(ptr, ".")
			}
			out = append(out, FieldError{Field: field, Message: oneLine(e.Reason)})
		default:
			if inner := errors.Unwrap(err); inner != nil {
				walk(inner, field)
				return
			}
			out = append(out, FieldError{Field: field, Message: oneLine(err.Error())})
		}
	}
	walk(err, "request")
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
