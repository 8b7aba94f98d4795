package guard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
)

// edgeSpec has an operation per kind of credential, so that challenges can
// be told apart, and one with a limit.
const edgeSpec = `
openapi: 3.0.3
info: {title: edges, version: "1"}
x-rate-limit: false
paths:
  /bearer:
    get:
      operationId: bearerOnly
      security: [{bearerAuth: []}]
      responses: {'200': {description: ok}}
  /key:
    get:
      operationId: keyOnly
      security: [{keyAuth: []}]
      responses: {'200': {description: ok}}
    post:
      operationId: keyWrite
      security: [{oauth2: [w]}, {keyAuth: [w]}]
      responses: {'200': {description: ok}}
  /cookie:
    get:
      operationId: cookieOnly
      security: [{cookieAuth: []}]
      responses: {'200': {description: ok}}
  /either:
    get:
      operationId: either
      security: [{bearerAuth: []}, {keyAuth: []}, {cookieAuth: []}]
      responses: {'200': {description: ok}}
  /limited:
    get:
      operationId: limited
      security: [{keyAuth: []}]
      x-rate-limit:
        - {name: per-caller, limit: 5, window: 1m, key: principal, who: authenticated}
        - {name: per-ip, limit: 5, window: 1m, key: ip}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    bearerAuth: {type: http, scheme: bearer}
    keyAuth: {type: apiKey, in: header, name: X-Key}
    cookieAuth: {type: apiKey, in: cookie, name: sid}
    oauth2:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: /token, scopes: {w: write}}}
`

// fixed is an Authenticator of fixed credentials: the bearer token, header
// or cookie value names a principal.
type fixed map[string]*security.Principal

func (f fixed) Authenticate(_ context.Context, r *http.Request, s *policy.Scheme) (*security.Principal, error) {
	var v string
	switch s.Type {
	case policy.SchemeBearer, policy.SchemeOAuth2:
		v, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	case policy.SchemeAPIKeyHeader:
		v = r.Header.Get(s.Param)
	case policy.SchemeAPIKeyCookie:
		if c, err := r.Cookie(s.Param); err == nil {
			v = c.Value
		}
	}
	if v == "" {
		return nil, nil
	}
	if p, ok := f[v]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: unknown credential", security.ErrInvalid)
}

var people = fixed{
	"alice":  {Subject: "alice"},
	"writer": {Subject: "bob", Scopes: []string{"w"}},
}

type edges struct {
	table  *policy.Table
	router chi.Router
}

func newEdges(t *testing.T, extra func(chi.Router)) *edges {
	t.Helper()
	return newEdgesOf(t, edgeSpec, extra)
}

// newEdgesFrom routes every operation of spec to a handler writing its id.
func newEdgesFrom(t *testing.T, spec string) *edges {
	t.Helper()
	return newEdgesOf(t, spec, nil)
}

func newEdgesOf(t *testing.T, spec string, extra func(chi.Router)) *edges {
	t.Helper()
	table, err := policy.Compile("edges.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	for _, op := range table.Operations() {
		r.Method(op.Method, op.Pattern, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, op.ID) }))
	}
	if extra != nil {
		extra(r)
	}
	return &edges{table: table, router: r}
}

func (e *edges) guard(t *testing.T, opts ...guard.Option) *guard.Guard {
	t.Helper()
	return e.guardBy(t, nil, opts...)
}

// guardBy is guard with the authenticators of auth in place of people
// for their types.
func (e *edges) guardBy(t *testing.T, auth map[policy.SchemeType]guard.Authenticator, opts ...guard.Option) *guard.Guard {
	t.Helper()
	all := []guard.Option{guard.WithLimiter(limits.New(limits.NewMemoryStore(nil)))}
	for _, st := range []policy.SchemeType{policy.SchemeBearer, policy.SchemeOAuth2, policy.SchemeAPIKeyHeader, policy.SchemeAPIKeyCookie} {
		if _, ok := auth[st]; !ok {
			all = append(all, guard.WithAuthenticator(st, people))
		}
	}
	for st, a := range auth {
		all = append(all, guard.WithAuthenticator(st, a))
	}
	g, err := guard.New(e.table, e.router, append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func serve(h http.Handler, method, path string, mods ...func(*http.Request)) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = "192.0.2.1:1234"
	for _, m := range mods {
		m(req)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func withHeader(k, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(k, v) } }

func decodeProblem(t *testing.T, w *httptest.ResponseRecorder) problem.Problem {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, w.Body)
	}
	var p problem.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != w.Code {
		t.Errorf("problem status %d, response %d", p.Status, w.Code)
	}
	return p
}

// A request names the scheme it must use: an operation that takes only an
// API key must not answer with a Bearer challenge.
func TestChallengeNamesTheRequiredScheme(t *testing.T) {
	g := newEdges(t, nil).guard(t)
	for _, c := range []struct {
		name, method, path string
		mods               []func(*http.Request)
		want               []string
	}{
		{"bearer, none presented", "GET", "/bearer", nil, []string{`Bearer realm="specguard"`}},
		{"API key, none presented", "GET", "/key", nil, []string{`ApiKey realm="specguard", header="X-Key"`}},
		{"cookie, none presented", "GET", "/cookie", nil, []string{`Cookie realm="specguard", cookie="sid"`}},
		{"any of three, none presented", "GET", "/either", nil,
			[]string{`Bearer realm="specguard"`, `ApiKey realm="specguard", header="X-Key"`, `Cookie realm="specguard", cookie="sid"`}},
		{"API key, unknown", "GET", "/key", []func(*http.Request){withHeader("X-Key", "mallory")},
			[]string{`ApiKey realm="specguard", header="X-Key", error="invalid_token", error_description="invalid credentials: unknown credential"`}},
		{"bearer, unknown", "GET", "/either", []func(*http.Request){withHeader("Authorization", "Bearer mallory")},
			[]string{`Bearer realm="specguard", error="invalid_token", error_description="invalid credentials: unknown credential"`}},
		{"API key without the scope", "POST", "/key", []func(*http.Request){withHeader("X-Key", "alice")},
			[]string{`ApiKey realm="specguard", header="X-Key", error="insufficient_scope", error_description="the credential lacks a required scope", scope="w"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := serve(g, c.method, c.path, c.mods...)
			if w.Code != http.StatusUnauthorized && w.Code != http.StatusForbidden {
				t.Fatalf("status %d, want 401 or 403", w.Code)
			}
			if got := w.Header().Values("WWW-Authenticate"); !slices.Equal(got, c.want) {
				t.Errorf("WWW-Authenticate = %q\nwant %q", got, c.want)
			}
			decodeProblem(t, w)
		})
	}
	if w := serve(g, "POST", "/key", withHeader("X-Key", "writer")); w.Code != http.StatusOK {
		t.Errorf("a key holding the scope: %d, want 200", w.Code)
	}
}

// A credential of a scheme the operation does not take is named (never
// its value) next to what the operation accepts.
func TestWrongKindOfCredentialIsNamed(t *testing.T) {
	g := newEdges(t, nil).guard(t)
	w := serve(g, "GET", "/bearer", withHeader("X-Key", "alice-secret-key"))
	p := decodeProblem(t, w)
	want := "this operation needs credentials: it accepts bearerAuth (an Authorization: Bearer token); the request carried keyAuth (the X-Key header), which it does not accept"
	if w.Code != http.StatusUnauthorized || p.Detail != want {
		t.Errorf("%d %q\nwant %q", w.Code, p.Detail, want)
	}
	if strings.Contains(w.Body.String(), "alice-secret-key") {
		t.Error("the answer echoes the credential")
	}
	w = serve(g, "GET", "/either")
	if p := decodeProblem(t, w); p.Detail != "this operation needs credentials: it accepts bearerAuth (an Authorization: Bearer token) or keyAuth (the X-Key header) or cookieAuth (the sid cookie)" {
		t.Errorf("nothing presented: %q", p.Detail)
	}
}

// Paths that are no operation are answered with problems, not chi's text.
func TestNotFoundAndMethodNotAllowedAreProblems(t *testing.T) {
	g := newEdges(t, nil).guard(t)
	w := serve(g, "GET", "/nowhere")
	if p := decodeProblem(t, w); w.Code != http.StatusNotFound || p.Type != problem.DefaultPrefix+"not-found" {
		t.Errorf("unknown path: %d %+v, want a 404 problem", w.Code, p)
	}
	w = serve(g, "DELETE", "/key")
	if p := decodeProblem(t, w); w.Code != http.StatusMethodNotAllowed || p.Type != problem.DefaultPrefix+"method-not-allowed" {
		t.Errorf("wrong method: %d %+v, want a 405 problem", w.Code, p)
	}
	if got := w.Header().Get("Allow"); got != "GET, HEAD, POST" {
		t.Errorf("Allow = %q, want GET, HEAD, POST (a GET operation serves HEAD)", got)
	}
}

// The type-URI prefix of every problem the guard writes is the user's.
func TestProblemPrefixIsConfigurable(t *testing.T) {
	g := newEdges(t, nil).guard(t, guard.WithProblems(problem.Writer{Prefix: "https://errors.example.com/"}))
	for path, want := range map[string]string{
		"/key":     "https://errors.example.com/unauthenticated",
		"/nowhere": "https://errors.example.com/not-found",
	} {
		w := serve(g, "GET", path)
		if p := decodeProblem(t, w); p.Type != want {
			t.Errorf("GET %s: type %q, want %q", path, p.Type, want)
		}
	}
}

// Routes outside the document are served only when named, and then
// untouched by the guard; naming them wrongly is refused at start.
func TestUnguardedRoutes(t *testing.T) {
	extra := func(r chi.Router) {
		r.Get("/metrics", func(w http.ResponseWriter, r *http.Request) {
			if security.FromContext(r.Context()) != nil || policy.FromContext(r.Context()) != nil {
				t.Error("an unguarded route saw a principal or an operation")
			}
			fmt.Fprint(w, "metrics")
		})
	}
	e := newEdges(t, extra)
	base := []guard.Option{guard.WithAuthenticator(policy.SchemeBearer, people), guard.WithAuthenticator(policy.SchemeOAuth2, people),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, people), guard.WithAuthenticator(policy.SchemeAPIKeyCookie, people),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil)))}
	for _, c := range []struct {
		name   string
		routes []string
		errHas string
	}{
		{"not named", nil, "route GET /metrics has no operation in edges.yaml (name it with WithUnguarded"},
		{"named", []string{"GET /metrics"}, ""},
		{"an operation", []string{"GET /metrics", "GET /key"}, "unguarded route GET /key is operation keyOnly of edges.yaml: it must be guarded"},
		{"not in the router", []string{"GET /metrics", "GET /status"}, "unguarded route GET /status is not in the router"},
		{"malformed", []string{"GET /metrics", "/metrics"}, `unguarded route "/metrics": want "METHOD /pattern"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := guard.New(e.table, e.router, append(base, guard.WithUnguarded(c.routes...))...)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("guard.New = %v, want an error containing %q", err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w := serve(g, "GET", "/metrics"); w.Code != 200 || w.Body.String() != "metrics" {
				t.Errorf("GET /metrics = %d %q", w.Code, w.Body)
			}
			if w := serve(g, "POST", "/metrics"); w.Code != http.StatusMethodNotAllowed {
				t.Errorf("POST /metrics = %d, want 405", w.Code)
			}
			if w := serve(g, "GET", "/key"); w.Code != http.StatusUnauthorized {
				t.Errorf("an operation beside it: %d, want 401", w.Code)
			}
		})
	}
}

// verdicts is a Limiter that answers with a set verdict, to show that the
// guard writes every refusal from the verdict alone.
type verdicts struct{ v limits.Verdict }

func (l *verdicts) Decide(*http.Request, *policy.Operation, limits.Caller) limits.Verdict {
	return l.v
}

func TestGuardWritesTheVerdict(t *testing.T) {
	e := newEdges(t, nil)
	l := &verdicts{}
	var events []guard.Event
	g := e.guard(t, guard.WithLimiter(l), guard.WithObserver(func(_ http.ResponseWriter, _ *http.Request, ev guard.Event) {
		events = append(events, ev)
	}))
	key := withHeader("X-Key", "alice")

	l.v = limits.Verdict{Allowed: true, Applied: 3, Policy: []string{`"per-caller";q=5;w=60`}, Limit: []string{`"per-caller";r=4;t=0`}}
	w := serve(g, "GET", "/limited", key)
	if w.Code != 200 || w.Header().Get("RateLimit") != `"per-caller";r=4;t=0` || w.Header().Get("RateLimit-Policy") != `"per-caller";q=5;w=60` {
		t.Errorf("allowed: %d, headers %v", w.Code, w.Header())
	}

	l.v = limits.Verdict{Allowed: false, Applied: 3, Denied: 2, RetryAfter: 12, Policy: []string{"p"}, Limit: []string{"l"}}
	w = serve(g, "GET", "/limited", key)
	p := decodeProblem(t, w)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "12" || p.Type != problem.QuotaExceeded ||
		!slices.Equal(p.ViolatedPolicies, []string{"per-ip"}) || w.Header().Get("RateLimit") != "l" {
		t.Errorf("refused by per-ip: %d %v %+v", w.Code, w.Header(), p)
	}

	l.v = limits.Verdict{Allowed: false, Applied: 3, StoreErr: errors.New("store down")}
	w = serve(g, "GET", "/limited", key)
	if p := decodeProblem(t, w); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || p.Type != problem.DefaultPrefix+"store-unavailable" {
		t.Errorf("store down, on-store-error deny: %d %+v", w.Code, p)
	}

	if len(events) != 3 {
		t.Fatalf("observer saw %d events, want 3", len(events))
	}
	if ev := events[1]; ev.Op.ID != "limited" || ev.Auth != guard.AuthOK || ev.Scheme != "keyAuth" || ev.Principal.Subject != "alice" || ev.Limits.Denied != 2 {
		t.Errorf("observer saw %+v", ev)
	}
}

// A request refused by a limit never reaches the handler, and neither does
// one whose authentication failed; the limiter counts a failed one as
// anonymous.
func TestLimitsCountFailedAuthenticationAsAnonymous(t *testing.T) {
	g := newEdges(t, nil).guard(t)
	for i := range 5 {
		if w := serve(g, "GET", "/limited", withHeader("X-Key", "mallory")); w.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i+1, w.Code)
		}
	}
	w := serve(g, "GET", "/limited", withHeader("X-Key", "alice"))
	if p := decodeProblem(t, w); w.Code != http.StatusTooManyRequests || !slices.Equal(p.ViolatedPolicies, []string{"per-ip"}) {
		t.Errorf("after five guesses from one address: %d %+v, want 429 by per-ip", w.Code, p)
	}
	if ra := w.Header().Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q", ra)
	}
}

// TestParameterNamesPerMethod: paths that differ only in their parameter
// names (GitHub's description has them) route each method to its own
// operation.
func TestParameterNamesPerMethod(t *testing.T) {
	e := newEdgesFrom(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /things/{thing_id}:
    get:
      operationId: getThing
      security: []
      parameters: [{name: thing_id, in: path, required: true, schema: {type: string, pattern: '^[a-z]+$'}}]
      responses: {'200': {description: ok}}
  /things/{name}:
    delete:
      operationId: deleteThing
      security: []
      parameters: [{name: name, in: path, required: true, schema: {type: string, pattern: '^[0-9]+$'}}]
      responses: {'204': {description: gone}}
`)
	g := e.guard(t)
	for _, c := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/things/abc", 200, "getThing"},
		{"DELETE", "/things/123", 200, "deleteThing"},
		{"GET", "/things/123", 400, ""},    // getThing's own parameter schema
		{"DELETE", "/things/abc", 400, ""}, // deleteThing's
		{"PUT", "/things/abc", 405, ""},
	} {
		rec := serve(g, c.method, c.path)
		if rec.Code != c.code || (c.body != "" && rec.Body.String() != c.body) {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, rec.Code, rec.Body, c.code, c.body)
		}
	}
}
