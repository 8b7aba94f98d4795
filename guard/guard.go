package guard

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/bits"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/specguard/specguard/internal/clock"
	"github.com/specguard/specguard/internal/ctxkey"
	"github.com/specguard/specguard/internal/nilcheck"
	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
)

// Authenticator verifies one kind of credential. It returns (nil, nil) when
// the request carries no credential for scheme, so that alternative is not
// satisfied; a credential that is present but bad is an error wrapping
// security.ErrMalformed, ErrInvalid, ErrCSRF, ErrNotFresh or
// ErrUnavailable. tokens.Bearer, *sessions.Service
// and *apikeys.Service are Authenticators.
//
// A principal names what was presented in Credentials
// (security.NewCredential(security.KindAPIKey, id), say): an x-rate-limit
// tier that counts by API key or by session counts a principal that names
// none by the value of the header or cookie that admitted it (requests
// carrying several values of it as one caller).
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*security.Principal, error)
}

// uncarriedClaims are the problems of tiers that count by a claim no
// credential carries: a tier an operation declares needs one of its own
// credentials to carry it; a tier of the document's default, written for
// every operation, one credential of any operation (where none is
// carried, callers are counted by client address, as any caller lacking
// the claim is).
func (g *Guard) uncarriedClaims() []string {
	carries := func(op *policy.Operation, claim string) bool {
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				a := g.authFor(sr.Scheme)
				if cc, ok := a.(ClaimCarrier); ok && cc.Carries(sr.Scheme, claim) {
					return true
				}
				if a != nil && claim == security.ClaimSubject {
					return true
				}
			}
		}
		return false
	}
	var problems []string
	defaults := map[string]bool{} // claim of a default tier: carried somewhere
	var order []string
	for _, op := range g.table.Operations() {
		for i, t := range op.Limits {
			switch {
			case t.Key != policy.KeyClaim:
			case t.Inherited:
				if _, seen := defaults[t.Claim]; !seen {
					order = append(order, t.Claim)
				}
				defaults[t.Claim] = defaults[t.Claim] || carries(op, t.Claim)
			case !carries(op, t.Claim):
				problems = append(problems, fmt.Sprintf("%s:%d: %s %s (%s): x-rate-limit[%d]: key claim:%s: no credential this operation accepts carries it (%s)",
					g.table.Source, op.Line, op.Method, op.Path, op.ID, i, t.Claim, claimCarrierNote))
			}
		}
	}
	for _, claim := range order {
		if !defaults[claim] {
			problems = append(problems, fmt.Sprintf("%s: x-rate-limit (document default): key claim:%s: no credential of any operation carries it (%s)", g.table.Source, claim, claimCarrierNote))
		}
	}
	return problems
}

const claimCarrierNote = "each authenticator says which claims it carries: guard.ClaimCarrier"

// ClaimCarrier is an Authenticator that says which claims its principals
// carry (security.Principal.Claim answers them), so that an x-rate-limit
// tier may count by them (key: claim:<name>). An Authenticator that is no
// ClaimCarrier carries security.ClaimSubject alone. New refuses a tier
// that counts by a claim no credential of its operation carries: it would
// count every caller by client address.
type ClaimCarrier interface {
	Carries(scheme *policy.Scheme, claim string) bool
}

// Outbound is an Authenticator that verifies some credentials with a call
// outside the process: an identity provider's introspection, a database
// read of an API key it has not seen. Outbound reports, cheaply and
// without that call, whether r's credential for scheme needs one. The
// guard then charges the request to the operation's tiers as an anonymous
// caller before authenticating it, so made-up credentials are throttled
// like anonymous calls before anything is sent out; a request refused
// there is answered 429 (or 503) without its credential being looked at.
// *oidc.Authenticator (package security/oidc) and *apikeys.Service
// are Outbounds.
type Outbound interface {
	Authenticator
	Outbound(r *http.Request, scheme *policy.Scheme) bool
}

// Limiter applies an operation's x-rate-limit tiers to a request and
// returns its verdict; it writes nothing. *limits.Limiter is one.
type Limiter interface {
	// Decide charges the tiers of op that apply to caller c.
	Decide(r *http.Request, op *policy.Operation, c limits.Caller) limits.Verdict
}

// ErrRoutes wraps the error of New when the router and the document
// disagree: a route that is no operation, or an operation without route
// (the code generated from another version of the document, say).
var ErrRoutes = errors.New("the router's routes are not the document's operations")

// routesError is New's error when the routes disagree with the document.
type routesError string

func (e routesError) Error() string        { return string(e) }
func (e routesError) Is(target error) bool { return target == ErrRoutes }

// Option configures a Guard.
type Option func(*Guard)

// WithAuthenticator verifies every scheme of type t with a (but those
// WithSchemeAuthenticator names). It may be given once for a type: a
// second one would silently have replaced the first.
func WithAuthenticator(t policy.SchemeType, a Authenticator) Option {
	return func(g *Guard) {
		if _, ok := g.auth[t]; ok {
			g.twice = append(g.twice, fmt.Sprintf("WithAuthenticator(%s) is given twice: one authenticator verifies every scheme of a type; "+
				"to verify one scheme of it otherwise, use WithSchemeAuthenticator", t))
		}
		g.auth[t] = a
	}
}

// WithSchemeAuthenticator verifies the document's scheme named scheme with
// a, rather than with the authenticator of its type: a partner's key in a
// header of its own beside specguard's API keys, say. New refuses a name
// the document does not declare.
func WithSchemeAuthenticator(scheme string, a Authenticator) Option {
	return func(g *Guard) {
		if _, ok := g.byScheme[scheme]; ok {
			g.twice = append(g.twice, fmt.Sprintf("WithSchemeAuthenticator(%q) is given twice", scheme))
		}
		g.byScheme[scheme] = a
	}
}

// authFor is the authenticator that verifies scheme s: its own, else its
// type's; nil when there is none.
func (g *Guard) authFor(s *policy.Scheme) Authenticator {
	if a, ok := g.byScheme[s.Name]; ok {
		return a
	}
	return g.auth[s.Type]
}

// WithLimiter applies rate limits with l. Without one, a document that
// declares any limit is refused.
func WithLimiter(l Limiter) Option { return func(g *Guard) { g.limiter = l } }

// WithRealm sets the realm of WWW-Authenticate challenges ("specguard" when absent).
func WithRealm(realm string) Option { return func(g *Guard) { g.realm = realm } }

// WithProblems sets the writer of every error the guard answers, and so
// the prefix of their type URIs (problem.DefaultPrefix when absent).
func WithProblems(w problem.Writer) Option { return func(g *Guard) { g.problems = w } }

// WithMaxBodyBytes caps request bodies (1 MiB when absent). A body whose
// Content-Length is larger is answered 413 before any handler runs; one
// sent without a length (chunked) is too when validation reads it (a
// declared JSON, form or multipart body), and is otherwise cut at the
// cap: the handler's read past it fails (*http.MaxBytesError).
func WithMaxBodyBytes(n int64) Option { return func(g *Guard) { g.maxBody = n } }

// WithoutRequestValidation skips validating requests against the
// document's schemas. Validation is on by default.
func WithoutRequestValidation() Option { return func(g *Guard) { g.validate = false } }

// WithMalformedAnswer answers the requests to operation opID that request
// validation refuses (400; 413 for a body too large) with answer instead
// of writing p, the problem it would have written, as
// application/problem+json: for an operation whose protocol fixes the
// form of its errors, as RFC 6749 section 5.2 fixes the OAuth2 token
// endpoint's (credentials.Service's Authenticators give it one). New
// refuses an opID the document does not have.
func WithMalformedAnswer(opID string, answer func(w http.ResponseWriter, r *http.Request, p *problem.Problem)) Option {
	return func(g *Guard) {
		if g.malformed == nil {
			g.malformed = map[string]func(http.ResponseWriter, *http.Request, *problem.Problem){}
		}
		g.malformed[opID] = answer
	}
}

// WithErrorLog receives the errors the guard answers with 503 (a store
// down). Nothing is logged when absent.
func WithErrorLog(f func(r *http.Request, err error)) Option {
	return func(g *Guard) { g.logErr = f }
}

// WithObserver receives what the guard decided for every request to an
// operation, for metrics and logs. w is the ResponseWriter the guard was
// given, so a middleware outside can find its own per-request state. It
// must be fast and must not keep w, r or ev.Principal's fields beyond the
// call.
func WithObserver(f func(w http.ResponseWriter, r *http.Request, ev Event)) Option {
	return func(g *Guard) { g.observe = f }
}

// WithUnguarded names routes of the router that are not operations of the
// document, such as "GET /metrics": the guard passes them to the router
// untouched (no authentication, no limits, no validation). Every other
// route must be an operation, and no operation may be named here, nor a
// route the router would give an operation's requests to: "GET
// /files/secret" or "GET /files/{name:[a-z]+}" beside the operation "GET
// /files/{name}", which chi tries first, or a HEAD route matching a path
// whose GET is an operation (the guard serves HEAD as that operation where
// the document declares no head).
func WithUnguarded(routes ...string) Option {
	return func(g *Guard) { g.unguarded = append(g.unguarded, routes...) }
}

// Guard enforces a compiled policy table in front of a chi router: it
// resolves each request to its operation, authenticates it, applies its
// rate limits, refuses it or validates it, and only then lets the router's
// handler run. Requests to no operation get problem+json 404 and 405.
type Guard struct {
	table  *policy.Table
	router chi.Router
	auth   map[policy.SchemeType]Authenticator
	// byScheme verifies the schemes it names, in place of auth's
	// authenticator of their type (WithSchemeAuthenticator).
	byScheme map[string]Authenticator
	// twice says which authenticators were given twice: a second one
	// would silently have replaced the first.
	twice   []string
	limiter Limiter
	// decideFn is the private decision of a *limits.Limiter (see
	// internal/onetrip): a precheck in its store call, and the RateLimit
	// value formatted into room the guard keeps in its request context.
	decideFn  decideFunc
	realm     string
	problems  problem.Writer
	maxBody   int64
	validate  bool
	logErr    func(*http.Request, error)
	observe   func(http.ResponseWriter, *http.Request, Event)
	unguarded []string
	// malformed answer, by operation id, the requests validation refuses
	// (WithMalformedAnswer).
	malformed map[string]func(http.ResponseWriter, *http.Request, *problem.Problem)
	defer_    bool // the limiter prechecks: defer what authenticators can
	// bearerShared: bearer and oauth2 schemes have one authenticator, so
	// one verification of the Authorization header stands for both.
	bearerShared bool
	// placeOnly has the scheme types whose authenticator decides by the
	// credential and where it travels alone, not by which scheme asks
	// (specguard's own, which register a private form: see
	// internal/onetrip): one verification stands for the schemes of its
	// type that read the same place (see sameVerifier).
	placeOnly map[policy.SchemeType]bool
	// deferFns are the authenticators' private forms, for those that
	// have one (specguard's own: see internal/onetrip): they take the
	// request's reading of the clock and, when the limiter prechecks,
	// defer their store check to it.
	deferFns map[policy.SchemeType]deferFunc
	// responses says whether the handlers' answers are checked, and
	// reportResponse gets those that break the document.
	responses      ResponseMode
	reportResponse func(*http.Request, *policy.Operation, []ResponseViolation)
	responseSample uint64        // report mode: the body of one answer in this many
	answers        atomic.Uint64 // the answers report mode saw
	tracer         trace.Tracer  // nil: no tracing (WithTracerProvider)

	free        map[string]bool // "METHOD pattern" of unguarded routes
	schemeNames []string        // the document's schemes, sorted
	// byPattern holds, per route pattern, what the guard prepared for
	// each of its operations: the route's operation in one lookup of a
	// short key rather than two (the table's by method and pattern, then
	// the operation's state).
	byPattern map[string][]*opState
	rctxs     sync.Pool
}

// opState is what the guard prepared for one operation.
type opState struct {
	op    *policy.Operation
	valid *opValidation
	// checked: by status, the headers the check of an answer reads
	// (checkedHeaders); nil when answers are not checked.
	checked map[int][]string
	// challenges answer a request that presented no credential: one per
	// scheme the operation accepts.
	challenges []string
	// handler is the route's own handler when the route is the guarded
	// router's own (not a subrouter's): the guard, having found the route,
	// calls it as the router would after finding it, rather than have the
	// router route the request a second time.
	handler http.Handler
}

// Check runs the checks of New that need no router: every scheme the
// table uses has an authenticator, a table that declares limits has a
// limiter, and every tier that counts by a claim has a credential that
// carries it (ClaimCarrier). A service that builds its router from its
// stores calls it with stand-ins of them, before it opens or writes
// anything; New checks the same again.
func Check(table *policy.Table, opts ...Option) error {
	if problems := configured(table, nil, opts).unequipped(); len(problems) > 0 {
		sort.Strings(problems)
		return errors.New("guard: " + strings.Join(slices.Compact(problems), "; "))
	}
	return nil
}

// configured is a guard of table and router with opts applied.
func configured(table *policy.Table, router chi.Router, opts []Option) *Guard {
	g := &Guard{
		table:     table,
		router:    router,
		auth:      map[policy.SchemeType]Authenticator{},
		byScheme:  map[string]Authenticator{},
		realm:     "specguard",
		maxBody:   1 << 20,
		validate:  true,
		free:      map[string]bool{},
		byPattern: map[string][]*opState{},
	}
	for _, opt := range opts {
		opt(g)
	}
	return g
}

// unequipped are the problems of a guard that lacks what the table needs:
// an authenticator, a limiter, a credential carrying a tier's claim.
func (g *Guard) unequipped() []string {
	problems := slices.Clone(g.twice)
	for name, a := range g.byScheme {
		if g.table.Schemes[name] == nil {
			problems = append(problems, fmt.Sprintf("WithSchemeAuthenticator(%q): %s declares no such scheme", name, g.table.Source))
		} else if nilcheck.Nil(a) {
			problems = append(problems, fmt.Sprintf("WithSchemeAuthenticator(%q): a nil %T", name, a))
		}
	}
	for _, op := range g.table.Operations() {
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				if a := g.authFor(sr.Scheme); a == nil {
					problems = append(problems, fmt.Sprintf("%s %s (%s): no authenticator for scheme %s (%s)", op.Method, op.Path, op.ID, sr.Scheme.Name, sr.Scheme.Type))
				} else if nilcheck.Nil(a) {
					problems = append(problems, fmt.Sprintf("%s %s (%s): the authenticator for scheme %s (%s) is a nil %T", op.Method, op.Path, op.ID, sr.Scheme.Name, sr.Scheme.Type, a))
				}
			}
		}
		if len(op.Limits) > 0 && g.limiter == nil {
			problems = append(problems, fmt.Sprintf("%s %s (%s): declares x-rate-limit but the guard has no limiter", op.Method, op.Path, op.ID))
		} else if len(op.Limits) > 0 && nilcheck.Nil(g.limiter) {
			problems = append(problems, fmt.Sprintf("%s %s (%s): declares x-rate-limit but the guard's limiter is a nil %T", op.Method, op.Path, op.ID, g.limiter))
		}
		if g.validate {
			for _, mt := range unreadableBodies(op) {
				problems = append(problems, fmt.Sprintf("%s %s (%s): request body %s: request validation reads no such body (it reads JSON, forms, multipart, YAML, CSV, "+
					"plain text and bytes), so every request sending one would be refused 400; declare a type it reads, give its schema type: string and format: binary "+
					"to take the bytes as they are, or no schema", op.Method, op.Path, op.ID, mt))
			}
		}
	}
	return append(problems, g.uncarriedClaims()...)
}

// New checks the configuration against the table and the router and
// returns the guarded router. It fails when a scheme the table uses has no
// authenticator, when the table declares limits and there is no limiter (a
// nil pointer is none), or when the router and the table disagree on any
// route: an operation the guard cannot see must not be served. The router must be bare: install
// middleware around the guard, not inside the router. Nor may it change
// after New: the guard calls the handlers of the router's own routes as it
// found them.
func New(table *policy.Table, router chi.Router, opts ...Option) (*Guard, error) {
	g := configured(table, router, opts)
	g.rctxs.New = func() any { return chi.NewRouteContext() }
	g.bearerShared = sameAuthenticator(g.auth[policy.SchemeBearer], g.auth[policy.SchemeOAuth2])
	g.placeOnly = map[policy.SchemeType]bool{}
	for t, a := range g.auth {
		g.placeOnly[t] = onetrip.Deferred(a) != nil
	}
	for name := range table.Schemes {
		g.schemeNames = append(g.schemeNames, name)
	}
	sort.Strings(g.schemeNames)
	g.resolveOneTrip()

	problems := g.unequipped()
	for _, op := range table.Operations() {
		valid := newOpValidation(table.Doc, op)
		valid.malformed = g.malformed[op.ID]
		st := &opState{op: op, valid: valid, challenges: g.missingChallenges(op)}
		if g.responses != ResponsesOff {
			st.checked = checkedHeaders(op)
		}
		g.byPattern[op.Pattern] = append(g.byPattern[op.Pattern], st)
	}
	if g.responses > ResponsesEnforce {
		problems = append(problems, fmt.Sprintf("WithResponseValidation: mode %d is none of off, report and enforce", g.responses))
	}
	for id := range g.malformed {
		if !slices.ContainsFunc(table.Operations(), func(op *policy.Operation) bool { return op.ID == id }) {
			problems = append(problems, fmt.Sprintf("WithMalformedAnswer(%q): %s has no such operation", id, table.Source))
		}
	}
	mounts := map[string]bool{}
	shadowed := walkMounts(router, "", mounts)
	stubs := map[string]bool{} // "METHOD /p" of a mounted router's unguarded root "METHOD /p/"
	for _, route := range g.unguarded {
		method, pattern, ok := strings.Cut(route, " ")
		if !ok || method == "" || !strings.HasPrefix(pattern, "/") || strings.ToUpper(method) != method {
			problems = append(problems, fmt.Sprintf("unguarded route %q: want \"METHOD /pattern\", such as \"GET /metrics\"", route))
			continue
		}
		if op := table.Lookup(method, pattern); op != nil {
			problems = append(problems, fmt.Sprintf("unguarded route %s is operation %s of %s: it must be guarded", route, op.ID, table.Source))
		} else {
			// The root of a router mounted at /p (Route("/p", ...)) is
			// walked as /p/, and takes /p's requests too.
			bare, mount := strings.CutSuffix(pattern, "/")
			if mount = mount && mounts[bare]; mount {
				stubs[method+" "+bare] = true
			}
			for _, op := range table.Operations() {
				switch {
				case op.Method == method && (takesFrom(pattern, op.Pattern) || mount && takesFrom(bare, op.Pattern)):
					problems = append(problems, fmt.Sprintf("unguarded route %s would take requests of operation %s (%s %s) of %s, as the router tries it first: give it a pattern that matches none of that operation's paths", route, op.ID, op.Method, op.Path, table.Source))
				case headOfGet(table, method, op) && !outsideItsMount(pattern, op.Pattern, mounts) &&
					(overlap(segments(pattern), segments(op.Pattern)) || mount && overlap(segments(bare), segments(op.Pattern))):
					// The guard serves HEAD as the path's GET only where no
					// route takes HEAD itself.
					problems = append(problems, fmt.Sprintf("unguarded route %s would take the HEAD requests of operation %s (%s %s) of %s, which the guard serves as that operation: remove the route, or declare head for the path in the document", route, op.ID, op.Method, op.Path, table.Source))
				}
			}
		}
		g.free[route] = true
	}
	// Middleware inside the guarded router runs after the guard's lookup
	// and may re-route the request (GetHead, StripSlashes) to a handler
	// whose operation the guard never checked: install it outside instead.
	if len(router.Middlewares()) > 0 {
		problems = append(problems, "the guarded router has middleware of its own; install middleware around the guard")
	}
	seen := map[*policy.Operation]bool{}
	found := map[string]bool{}
	routesDisagree := false
	err := chi.Walk(router, func(method, route string, _ http.Handler, mws ...func(http.Handler) http.Handler) error {
		if len(mws) > 0 {
			problems = append(problems, fmt.Sprintf("route %s %s has middleware inside the guarded router; install it around the guard", method, route))
		}
		if g.free[method+" "+route] {
			found[method+" "+route] = true
			return nil
		}
		op := table.Lookup(method, route)
		if op == nil {
			if op = renamed(table, method, route); op != nil {
				// One mistake, said once: the operation is routed, under
				// other parameter names.
				problems = append(problems, fmt.Sprintf("route %s %s writes its path parameters otherwise than %s %s (%s) of %s (another name, or a pattern): write them as the document does", method, route, op.Method, op.Path, op.ID, table.Source))
				seen[op] = true
			} else if get := table.Lookup(http.MethodGet, route); get != nil && headOfGet(table, method, get) {
				problems = append(problems, fmt.Sprintf("route %s %s has no operation in %s, and the guard serves HEAD as operation %s (GET %s): remove the route (chi's Handle and HandleFunc route every method: route the document's alone), or declare head for the path in the document", method, route, table.Source, get.ID, get.Path))
			} else {
				problems = append(problems, fmt.Sprintf("route %s %s has no operation in %s (name it with WithUnguarded to serve it unguarded)", method, route, table.Source))
			}
			routesDisagree = true
			return nil
		}
		seen[op] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("guard: walking routes: %w", err)
	}
	problems = append(problems, shadowed...)
	for _, op := range table.Operations() {
		if !seen[op] {
			problems = append(problems, fmt.Sprintf("%s %s (%s): operation has no route", op.Method, op.Path, op.ID))
			routesDisagree = true
		}
	}
	for route := range g.free {
		if !found[route] {
			problems = append(problems, fmt.Sprintf("unguarded route %s is not in the router", route))
		}
	}
	// chi routes /p to the root of the router mounted there, by a pattern
	// of its own that the walk does not report.
	for route := range stubs {
		g.free[route] = true
	}
	// The router's own routes, whose handlers the guard calls itself; a
	// subrouter's routes are left to the router, and so is every route of
	// a router other than chi's own Mux, whose ServeHTTP may do more.
	if _, mux := router.(*chi.Mux); mux {
		for _, rt := range router.Routes() {
			if rt.SubRoutes != nil {
				continue
			}
			for method, h := range rt.Handlers {
				if st := g.operation(method, rt.Pattern); st != nil {
					st.handler = h
				}
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		msg := "guard: " + strings.Join(slices.Compact(problems), "; ")
		if routesDisagree {
			return nil, routesError(msg)
		}
		return nil, errors.New(msg)
	}
	return g, nil
}

// walkMounts adds to mounts the paths routers are mounted at ("/api" of
// "/api/*"), and lists the handlers set on a mounted router's own pattern
// ("/api/*" after Route("/api", ...)), which chi.Walk does not report:
// chi resolves a request's route through the mounted router, but serves
// it with that handler, whose route the guard never checked.
func walkMounts(routes chi.Routes, prefix string, mounts map[string]bool) []string {
	var problems []string
	for _, rt := range routes.Routes() {
		if rt.SubRoutes == nil {
			continue
		}
		pattern := prefix + rt.Pattern
		for method := range rt.Handlers {
			if method != "*" { // chi keeps a mount's own handler under "*" only
				problems = append(problems, fmt.Sprintf("route %s %s is served by a handler of its own instead of the router mounted there; remove it, or route it inside that router", method, pattern))
			}
		}
		p := strings.TrimSuffix(pattern, "/*")
		mounts[p] = true
		problems = append(problems, walkMounts(rt.SubRoutes, p, mounts)...)
	}
	return problems
}

// ServeHTTP runs the pipeline: resolve, authenticate, limit, decide,
// validate, and then the router's handler.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.tracer != nil {
		g.serveTraced(w, r)
		return
	}
	g.serve(w, r, nil)
}

// serve is ServeHTTP, traced by tr when it is not nil.
func (g *Guard) serve(w http.ResponseWriter, r *http.Request, tr *reqTrace) {
	rctx := g.rctxs.Get().(*chi.Context)
	rctx.Reset()
	defer g.rctxs.Put(rctx)

	// Resolve, on the path with no unreserved character percent-encoded:
	// /users/%65xport is /users/export (RFC 3986 6.2.2.2), and routed as
	// written it reached /users/{id}, whose policy may be weaker, and
	// whose handler gets "export" all the same. The router behind gets
	// the same path.
	path, method, mounted := routePath(r)
	if strings.IndexByte(path, '%') >= 0 {
		if n := normalized(r); n != nil {
			r = n
			path, method, mounted = routePath(r)
		}
	}
	pattern := g.router.Find(rctx, method, path)
	st := g.operation(method, pattern)
	head := false // a HEAD request served as its path's GET
	if st == nil && method == http.MethodHead && !g.free[method+" "+pattern] {
		// HEAD is GET without the answer's body (RFC 9110 9.3.2), which
		// net/http drops: where no route takes HEAD itself, the path's
		// GET operation serves it, with its security and limits, as
		// chi's GetHead would route it.
		// A route the document leaves to the app (WithUnguarded) is the
		// app's to answer HEAD on.
		rctx.Reset()
		if p := g.router.Find(rctx, http.MethodGet, path); p != "" {
			if st = g.operation(http.MethodGet, p); st != nil {
				head, method, pattern = true, http.MethodGet, p
			}
		}
		if st == nil {
			rctx.Reset()
		}
	}
	if st == nil {
		if pattern != "" && g.free[method+" "+pattern] {
			if tr != nil {
				tr.allowed = true // a route the document leaves to the app
			}
			g.router.ServeHTTP(w, r)
			return
		}
		g.notFound(w, method, path)
		return
	}
	op := st.op
	tr.route(op)
	if method != r.Method && !head && !(r.Method == http.MethodHead && method == http.MethodGet) {
		// A parent router routed r as another method (a method override
		// sets chi's RouteMethod): it is served as that operation, so it
		// is authenticated, validated and handled as one. A GET routed as
		// a POST is not safe: its session cookie needs a CSRF proof. A
		// HEAD served as its path's GET (here, or by chi's GetHead above)
		// stays a HEAD: both are safe.
		n := *r
		n.Method = method
		r = &n
	}

	// One reading of the clock for specguard's own stack: its stores and
	// caches on the default clock take it rather than read it again.
	var at time.Time
	if g.decideFn != nil {
		at = clock.System()
	}

	// Authenticate. When the limiter prechecks, a credential's store check
	// is left to the rate-limit call: one round trip.
	deferred := g.defer_ && len(op.Limits) > 0
	ra, endAuth := tr.step(r, "authenticate")
	a := g.authenticate(ra, op, deferred, at, nil)
	endAuth()
	if a.err != nil {
		a.p = nil
	}
	// One allocation carries both the operation and the principal.
	rc := &requestContext{Context: r.Context(), op: op, p: a.p}
	if !mounted {
		// The router routes with this route context rather than
		// allocating one: two allocations fewer per request.
		rc.rctx = rctx
	}
	r = r.WithContext(rc)

	// Limit.
	rl, endLimit := tr.step(r, "limit")
	v := g.limit(rl, op, &a, &rc.field, at)
	endLimit()
	rc.p = a.p
	if g.observe != nil {
		g.observe(tr.observed(w), r, Event{Op: op, Auth: outcomeOf(op, &a), Scheme: a.schemeName(), Principal: a.p, Limits: v})
	}

	// Decide.
	if v.Policy != nil {
		h := w.Header()
		h["Ratelimit-Policy"] = v.Policy
		h["Ratelimit"] = v.Limit
	}
	if !v.Allowed {
		if tr != nil {
			tr.refusedBy(v.Violated(op))
		}
		g.refuseLimit(w, r, op, &v)
		return
	}
	if a.err != nil {
		g.reject(w, r, st, &a)
		return
	}
	tr.admitted(a.schemeName())
	privateAnswer(w.Header(), a.p)

	// Validate.
	if r.Body != nil && r.Body != http.NoBody {
		// A body whose length says it is too large is refused here,
		// whether or not anything would read it before the handler (an
		// operation without a requestBody, validation off).
		if r.ContentLength > g.maxBody {
			// Nothing of it is read, also by the problem's writer (the
			// token endpoint's parses a form): not a byte past the cap.
			tooLarge := &http.MaxBytesError{Limit: g.maxBody}
			r.Body = refusedBody{tooLarge}
			g.refuse(w, r, st.valid, tooLargeProblem(tooLarge))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
	}
	if g.validate {
		ctx, endValidate := tr.stepContext(r.Context(), "validate")
		ok := g.validateRequest(ctx, w, r, st.valid, rctx)
		endValidate()
		if !ok {
			return
		}
	}
	var h http.Handler // nil: the router routes the request again
	if rc.rctx != nil {
		if h = st.handler; h != nil {
			// As the router leaves its route context once it has found
			// the route the guard found.
			rctx.Routes, rctx.RouteMethod = g.router, method
		} else {
			rctx.Reset() // the router fills it again as it routes
			rctx.Routes = g.router
		}
	}
	if head && h == nil {
		routeAsGet(r, rctx, rc.rctx == nil)
	}
	if tr != nil {
		var endHandler func()
		r, endHandler = tr.handler(r)
		defer endHandler()
	}
	if g.responses != ResponsesOff {
		g.serveChecked(w, r, st, h, rctx)
		return
	}
	g.run(w, r, h, rctx)
}

// Shared header values: never modify them.
var (
	noStore = []string{"no-store"}
	nosniff = []string{"nosniff"}
)

// privateAnswer sets the headers every admitted answer starts with: its
// body is what its Content-Type says (nosniff), and an answer to an
// authenticated caller is kept by no cache (its data may be the caller's
// alone: a shared cache may store an answer to a cookie), unless the
// handler says otherwise by setting Cache-Control itself.
func privateAnswer(h http.Header, p *security.Principal) {
	h["X-Content-Type-Options"] = nosniff
	if _, set := h["Cache-Control"]; p != nil && !set {
		h["Cache-Control"] = noStore
	}
}

// run calls h, a route's own handler, as chi's router calls it once it has
// found the route in rctx: with the request's path values and pattern set.
// With h nil, it calls the router, which routes r itself.
func (g *Guard) run(w http.ResponseWriter, r *http.Request, h http.Handler, rctx *chi.Context) {
	if h == nil {
		g.router.ServeHTTP(w, r)
		return
	}
	for i, key := range rctx.URLParams.Keys {
		r.SetPathValue(key, rctx.URLParams.Values[i])
	}
	r.Pattern = rctx.RoutePattern()
	h.ServeHTTP(w, r)
}

// outsideItsMount reports whether the route free, beside a router mounted
// at a prefix of the operation's pattern op, is outside that mount: chi
// gives a request under the mount to the mounted router before free (see
// mountFirst).
func outsideItsMount(free, op string, mounts map[string]bool) bool {
	for m := range mounts {
		if strings.HasPrefix(op, m+"/") && free != m && !strings.HasPrefix(free, m+"/") && mountFirst(m, free) {
			return true
		}
	}
	return false
}

// mountFirst reports whether chi tries the mount at m before the route
// free for a request under the mount, segment by segment as chi does:
// static text before a parameter or regexp, and those before a catch-all.
// At the first segment where they differ, a static one of the mount's
// comes first (or the two are other paths), and a parameter of the
// mount's comes first only before a catch-all: beside a mount at
// /orgs/{org}, HEAD /orgs/acme/repos and /orgs/{o:[a-z]+}/repos take the
// mount's requests, HEAD /* and /{a}/{b}/repos do not.
func mountFirst(m, free string) bool {
	ms, fs := strings.Split(strings.Trim(m, "/"), "/"), strings.Split(strings.Trim(free, "/"), "/")
	for i, seg := range ms {
		switch {
		case i >= len(fs):
			return true // free ends above the mount: nothing under it is free's
		case fs[i] == seg:
			continue
		case !strings.Contains(seg, "{") && seg != "*":
			return true
		default:
			return fs[i] == "*"
		}
	}
	return true
}

// headOfGet reports whether the guard serves a request of method as
// operation op: HEAD as the GET operation of a path that declares no head.
func headOfGet(table *policy.Table, method string, op *policy.Operation) bool {
	return method == http.MethodHead && op.Method == http.MethodGet && table.Lookup(http.MethodHead, op.Pattern) == nil
}

// operation returns the state of the operation at method and pattern
// (table.Lookup's), nil when there is none.
func (g *Guard) operation(method, pattern string) *opState {
	for _, st := range g.byPattern[pattern] {
		if st.op.Method == method {
			return st
		}
	}
	return nil
}

// limit applies op's tiers to the request authenticated as a, and carries
// out a deferred check, in the same store call. A request whose
// authentication failed is limited as anonymous, so guessing credentials
// is throttled like any anonymous call; a credential refused anyway (too
// few scopes, not fresh) still has its deferred check decide whether it
// was revoked, which is refused as invalid (401) rather than as lacking
// scope or freshness. When a store needed for the credential is down
// there is nothing to count in: the request is answered 503 at once.
func (g *Guard) limit(r *http.Request, op *policy.Operation, a *authResult, f *onetrip.Field, at time.Time) limits.Verdict {
	if len(op.Limits) == 0 || unavailable(a.err) {
		return limits.Verdict{Allowed: true}
	}
	if a.chargedAnonymous() && a.gate != nil {
		// No decision is left for the deferred check to ride in: it runs
		// on its own.
		if err := a.gate.Check(r.Context(), at); err != nil {
			g.gateFailed(r, op, a, err, at)
		}
		a.gate = nil
		if unavailable(a.err) {
			return limits.Verdict{Allowed: true}
		}
	}
	if a.chargedAnonymous() {
		return a.anon
	}
	if a.gate == nil {
		v, _ := g.decide(r, op, a.p, a.chargedTiers(), nil, f, at)
		return a.withAnonymous(op, v)
	}
	// The limiter falls back to counting the request as anonymous, in the
	// same call, when the gate finds the credential gone for good: what
	// gateFailed makes of it. Not when it was counted so already.
	v, preErr, anon := g.decideFn(r, op, g.caller(r, a.p, countsByCredential(op), a.chargedTiers()), a.gate, f, at, !a.charged)
	a.gate = nil
	if preErr == nil {
		return a.withAnonymous(op, v)
	}
	if anon {
		// Found gone for good, and counted as anonymous in that call: the
		// request is refused for it.
		a.p, a.err, a.failed = nil, preErr, a.gated
		return v
	}
	// Nothing was charged: decide again, as a's failed check leaves it.
	g.gateFailed(r, op, a, preErr, at)
	switch {
	case unavailable(preErr):
		return v // allowed, with the store's error: the 503 follows
	case unavailable(a.err):
		return limits.Verdict{Allowed: true} // authenticating again could not reach a store
	case a.chargedAnonymous():
		return a.anon
	}
	v, _ = g.decide(r, op, a.p, a.chargedTiers(), nil, f, at)
	return a.withAnonymous(op, v)
}

// chargedTiers are the tiers a was charged to as anonymous before its
// credential was verified (see Outbound), none when it was not. When the
// store failed, and on-store-error let the request on, they are those a
// store decided all the same (a Redis Cluster with a node down).
func (a *authResult) chargedTiers() uint64 {
	if !a.charged {
		return 0
	}
	return a.anon.Charged
}

// withAnonymous is v, the verdict of the charge of a's verified caller,
// with the tiers for any caller charged before as anonymous that v leaves
// out (see limits.Caller.Charged) reported as that charge left them: the
// tiers of the caller, each once. (Those for anonymous callers alone were
// charged too, and are not the caller's.)
func (a *authResult) withAnonymous(op *policy.Operation, v limits.Verdict) limits.Verdict {
	extra := a.chargedTiers() &^ v.Applied
	for i := range op.Limits {
		if i < 64 && op.Limits[i].Who != policy.WhoAny {
			extra &^= 1 << i
		}
	}
	if extra == 0 || len(a.anon.Policy) != 1 || len(a.anon.Limit) != 1 {
		return v
	}
	policies, limited := strings.Split(a.anon.Policy[0], ", "), strings.Split(a.anon.Limit[0], ", ")
	if len(policies) != bits.OnesCount64(a.anon.Applied) || len(limited) != len(policies) {
		return v
	}
	var keptPolicies, keptLimits []string
	k := 0
	for i := range 64 {
		if a.anon.Applied&(1<<i) == 0 {
			continue
		}
		if extra&(1<<i) != 0 {
			keptPolicies, keptLimits = append(keptPolicies, policies[k]), append(keptLimits, limited[k])
		}
		k++
	}
	v.Applied |= extra
	// Two field lines of a list are the list of both (RFC 9110 5.3).
	v.Policy = append([]string{strings.Join(keptPolicies, ", ")}, v.Policy...)
	v.Limit = append([]string{strings.Join(keptLimits, ", ")}, v.Limit...)
	return v
}

// gateFailed applies err, the failure of a's deferred check, to a. The
// account changed, or a key lost its mark: a is authenticated again on the
// path that reads them anew (rare: once per change this instance sees).
// Otherwise the credential was revoked, or the store could not say, and
// the request is refused for it.
func (g *Guard) gateFailed(r *http.Request, op *policy.Operation, a *authResult, err error, at time.Time) {
	if errors.Is(err, onetrip.ErrRecheck) {
		var anon *limits.Verdict
		if a.charged {
			anon = &a.anon // charged as anonymous already: once
		}
		*a = g.authenticate(r, op, false, at, anon)
		if a.err != nil {
			a.p = nil
		}
		return
	}
	a.p, a.err, a.failed = nil, err, a.gated
}

// decide asks the limiter, with pre checked first when not nil, and room
// for the RateLimit value in f when the limiter takes it: one allocation
// fewer per request. at is the request's reading of the clock.
func (g *Guard) decide(r *http.Request, op *policy.Operation, p *security.Principal, charged uint64, pre onetrip.Precheck, f *onetrip.Field, at time.Time) (limits.Verdict, error) {
	if g.decideFn != nil {
		v, err, _ := g.decideFn(r, op, g.caller(r, p, countsByCredential(op), charged), pre, f, at, false)
		return v, err
	}
	if pre != nil {
		// Unreachable: the guard defers only to a limiter that prechecks.
		if err := pre.Check(r.Context(), at); err != nil {
			return limits.Verdict{Allowed: true}, err
		}
	}
	return g.limiter.Decide(r, op, g.caller(r, p, true, charged)), nil
}

// caller is p as a limiter sees it, charged to the tiers charged (see
// limits.Caller.Charged). Without ids it leaves out the session and the
// API key, which specguard's own limiter reads only for a tier that counts
// by them (their lookup showed in a cached bearer request's profile).
func (g *Guard) caller(r *http.Request, p *security.Principal, ids bool, charged uint64) limits.Caller {
	if p == nil {
		return limits.Caller{Charged: charged}
	}
	c := limits.Caller{Authenticated: true, Subject: p.Subject, Claims: p, Charged: charged}
	if ids {
		c.KeyID, c.SessionID = credentialIDs(p)
		if c.KeyID == "" || c.SessionID == "" {
			g.presentedIDs(r, p, &c)
		}
	}
	return c
}

// presentedIDs fills in the API key and the session of c that p's
// credentials do not name (an authenticator of the app's own that names
// none) from what admitted the request: the value of an API key header, or
// of a session cookie, of the schemes that admitted it, hashed. A tier
// counting by API key or by session skips a caller with neither, and
// would have let every request of such an authenticator through.
func (g *Guard) presentedIDs(r *http.Request, p *security.Principal, c *limits.Caller) {
	for rest := p.Scheme; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, "+")
		s := g.table.Schemes[name]
		switch {
		case s == nil:
		case s.Type == policy.SchemeAPIKeyHeader && c.KeyID == "":
			c.KeyID = presented(r.Header.Values(s.Param))
		case s.Type == policy.SchemeAPIKeyCookie && c.SessionID == "":
			var values []string
			for _, ck := range r.CookiesNamed(s.Param) {
				values = append(values, ck.Value)
			}
			c.SessionID = presented(values)
		}
	}
}

// presented is the id of a credential presented as values: no secret,
// the same for the same value. Which of several values the authenticator
// read is not known, and a caller could vary the others: requests with
// several share one id.
func presented(values []string) string {
	switch len(values) {
	case 0:
		return ""
	case 1:
		sum := sha256.Sum256([]byte(values[0]))
		return "presented:" + base64.RawURLEncoding.EncodeToString(sum[:16])
	}
	return "presented:several"
}

// countsByCredential reports whether a tier of op counts by session or by
// API key.
func countsByCredential(op *policy.Operation) bool {
	for i := range op.Limits {
		if k := op.Limits[i].Key; k == policy.KeyAPIKey || k == policy.KeySession {
			return true
		}
	}
	return false
}

// credentialIDs returns the API key (presented, or the one a token was
// minted from) and the session that admitted p's request, the first of
// each.
func credentialIDs(p *security.Principal) (key, session string) {
	for _, cr := range p.Credentials {
		switch cr.Kind() {
		case security.KindSession:
			if session == "" {
				session = cr.ID()
			}
		case security.KindAPIKey:
			if key == "" {
				key = cr.ID()
			}
		}
		if k, ok := cr.(interface{ APIKey() string }); ok && key == "" {
			key = k.APIKey()
		}
	}
	return key, session
}

// unavailable reports whether err is a store that could not answer.
func unavailable(err error) bool {
	return err != nil && (errors.Is(err, security.ErrUnavailable) || errors.Is(err, onetrip.ErrUndecided))
}

// requestContext is the context the guard hands on: its parent plus the
// resolved operation (policy.FromContext), the verified principal
// (security.FromContext) and, unless a parent router has one, chi's route
// context, in one allocation rather than three WithValue layers.
type requestContext struct {
	context.Context
	op   *policy.Operation
	p    *security.Principal
	rctx *chi.Context
	// field holds the RateLimit header's value, in this allocation.
	field onetrip.Field
}

func (c *requestContext) Value(key any) any {
	if key == chi.RouteCtxKey && c.rctx != nil {
		return c.rctx
	}
	switch key {
	case ctxkey.Principal:
		return c.p
	case ctxkey.Operation:
		return c.op
	}
	return c.Context.Value(key)
}

// routeAsGet has the router route r, a HEAD request, as GET, as chi's
// GetHead does: in the route context the guard hands on (rctx), or in the
// one of the router that mounted this one.
func routeAsGet(r *http.Request, rctx *chi.Context, mounted bool) {
	if mounted {
		rctx = chi.RouteContext(r.Context())
	}
	if rctx != nil {
		rctx.RouteMethod = http.MethodGet
	}
}

// normalized returns r with the path chi routes on (a parent router's
// remaining path, or the URL's RawPath) rid of percent-encoded unreserved
// characters, or nil when it has none. A parent's route context is changed
// in place (r is returned), as chi itself does; r's URL is copied.
func normalized(r *http.Request) *http.Request {
	if r.URL.RawPath == "" {
		// The path was written as Go would write it: chi (a parent
		// router too) routes on Path, whose escapes are decoded already;
		// a "%" in it is a "%25" of the request, not to decode again.
		return nil
	}
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePath != "" {
		if p, ok := decodeUnreserved(rc.RoutePath); ok {
			rc.RoutePath = p
			return r
		}
		return nil
	}
	p, ok := decodeUnreserved(r.URL.RawPath)
	if !ok {
		return nil
	}
	u := *r.URL
	u.RawPath = p
	if strings.IndexByte(p, '%') < 0 {
		u.RawPath = "" // Path says it all
	}
	n := *r
	n.URL = &u
	return &n
}

// decodeUnreserved decodes in p every percent-encoded unreserved character
// (ALPHA, DIGIT, '-', '.', '_', '~'), which RFC 3986 says is the same
// character, and reports whether there was one. Others (%2F above all)
// stay as they are.
func decodeUnreserved(p string) (string, bool) {
	if strings.IndexByte(p, '%') < 0 {
		return p, false
	}
	var b strings.Builder
	changed := false
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			if c, ok := unhex(p[i+1], p[i+2]); ok && unreserved(c) {
				if !changed {
					b.Grow(len(p))
					b.WriteString(p[:i])
					changed = true
				}
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		if changed {
			b.WriteByte(p[i])
		}
	}
	if !changed {
		return p, false
	}
	return b.String(), true
}

func unhex(h, l byte) (byte, bool) {
	v := func(c byte) (byte, bool) {
		switch {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		case 'A' <= c && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	hi, ok1 := v(h)
	lo, ok2 := v(l)
	return hi<<4 | lo, ok1 && ok2
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// routePath returns the path and method chi will route r on, and whether
// a parent router mounted this one, exactly as
// chi's Mux does: a parent chi router that mounted this one has left the
// remaining path (and possibly the method) in its route context, and an
// empty path (an absolute-form request target such as "GET http://host")
// routes as "/". Resolving any other way would let such a request reach a
// handler whose operation the guard never looked up.
func routePath(r *http.Request) (path, method string, mounted bool) {
	method = r.Method
	if rc := chi.RouteContext(r.Context()); rc != nil {
		mounted = true
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
	return path, method, mounted
}

// pathParam is a path parameter of a route or operation pattern.
var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// renamed returns the operation of method whose pattern is route's but
// for the names of its path parameters, or nil.
func renamed(table *policy.Table, method, route string) *policy.Operation {
	shape := pathParam.ReplaceAllString(route, "{}")
	for _, op := range table.Operations() {
		if op.Method == method && pathParam.ReplaceAllString(op.Pattern, "{}") == shape {
			return op
		}
	}
	return nil
}

// refusedBody stands for a body refused unread: every read fails with
// err.
type refusedBody struct{ err error }

func (b refusedBody) Read([]byte) (int, error) { return 0, b.err }
func (b refusedBody) Close() error             { return nil }
