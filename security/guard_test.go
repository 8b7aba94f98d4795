package security_test

import (
	"bufio"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// testSpec declares one operation per security shape the guard must
// enforce. Limits are off everywhere: these tests are about authentication.
const testSpec = `
openapi: 3.0.3
info: {title: guard test, version: "1.0"}
x-rate-limit: false
paths:
  /:
    get:
      operationId: root
      security: [{bearerAuth: []}]
      responses: &ok {"200": {description: ok}}
  /public:
    get:
      operationId: public
      security: []
      responses: *ok
  /optional:
    get:
      operationId: optional
      security: [{}, {oauth2: ["a:read"]}]
      responses: *ok
  /things:
    get:
      operationId: bearerOnly
      security: [{bearerAuth: []}]
      responses: *ok
  /read:
    get:
      operationId: read
      security: [{oauth2: ["a:read"]}]
      responses: *ok
  /write:
    post:
      operationId: write
      security: [{oauth2: ["a:write"]}]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [title]
              additionalProperties: false
              properties:
                title: {type: string, minLength: 1, maxLength: 100}
      responses: *ok
  /either:
    get:
      operationId: either
      security: [{bearerAuth: []}, {apiKeyAuth: []}]
      responses: *ok
  /write-or-key:
    get:
      operationId: writeOrKey
      security: [{oauth2: ["a:write"]}, {apiKeyAuth: ["a:write"]}]
      responses: *ok
  /both:
    get:
      operationId: both
      security: [{apiKeyAuth: [], cookieAuth: []}]
      responses: *ok
  /fresh:
    post:
      operationId: fresh
      x-require-fresh: true
      security: [{bearerAuth: []}]
      responses: *ok
  /items/{id}:
    get:
      operationId: item
      security: [{bearerAuth: []}]
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, pattern: '^[0-9]+$'}}
      responses: *ok
  /account:
    get:
      operationId: getAccount
      security: [{cookieAuth: []}, {bearerAuth: []}]
      responses: *ok
    post:
      operationId: postAccount
      security: [{cookieAuth: []}, {bearerAuth: []}]
      responses: *ok
  /key-read:
    get:
      operationId: keyRead
      security: [{apiKeyAuth: ["a:read"]}]
      responses: *ok
  /key-write:
    get:
      operationId: keyWrite
      security: [{apiKeyAuth: ["a:write"]}]
      responses: *ok
  /any:
    get:
      operationId: any
      security: [{bearerAuth: []}, {apiKeyAuth: []}, {cookieAuth: []}]
      responses: *ok
components:
  securitySchemes:
    bearerAuth: {type: http, scheme: bearer, bearerFormat: JWT}
    oauth2:
      type: oauth2
      flows:
        password:
          tokenUrl: /token
          scopes:
            "a:read": read things
            "a:write": write things
      x-roles:
        reader: ["a:read"]
        writer: ["a:read", "a:write"]
        nobody: []
    cookieAuth: {type: apiKey, in: cookie, name: __Host-session}
    apiKeyAuth: {type: apiKey, in: header, name: X-API-Key}
`

const (
	testIssuer     = "https://issuer.test"
	testAudience   = "specguard-test"
	sessionCookie  = "__Host-session"
	testMaxBody    = 1024
	bareChallenge  = `Bearer realm="specguard"`
	noChallenge    = ""     // want: no WWW-Authenticate header at all
	bareOnly       = "bare" // want: exactly bareChallenge, no error=
	problemInvalid = "invalid-token"
)

// clock is a settable clock shared by the token service and the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a complete guarded server: real token service, sessions, API keys
// and memory store in front of a chi router, served over loopback.
type env struct {
	clock    *clock
	store    *security.MemoryStore
	edPriv   ed25519.PrivateKey
	signing  *security.Key
	tokens   *security.TokenService
	sessions *security.SessionService
	keys     *security.APIKeyService
	table    *policy.Table
	router   chi.Router
	guard    func(http.Handler) http.Handler
	handler  http.Handler
	srv      *httptest.Server
	roles    sync.Map // subject -> role, for Refresh
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	e := &env{clock: newClock()}
	e.store = security.NewMemoryStore(e.clock.Now)
	store := e.store
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	e.edPriv = priv
	if e.signing, err = security.NewKey(priv); err != nil {
		tb.Fatal(err)
	}
	if e.tokens, err = security.NewTokenService(testIssuer, testAudience, e.signing, store, security.WithClock(e.clock.Now)); err != nil {
		tb.Fatal(err)
	}
	if e.table, err = policy.Compile("test.yaml", []byte(testSpec)); err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	e.sessions = security.NewSessionService(store, e.table.RoleScopes)
	e.keys = security.NewAPIKeyService(store, security.NewMemoryKeyRecords(e.clock.Now), security.WithKeyClock(e.clock.Now))

	e.router = chi.NewRouter()
	for _, op := range e.table.Operations() {
		e.router.Method(op.Method, op.Pattern, http.HandlerFunc(echo))
	}
	bearer := security.BearerAuthenticator{Tokens: e.tokens}
	e.guard, err = security.NewGuard(e.table, e.router,
		security.WithAuthenticator(policy.SchemeBearer, bearer),
		security.WithAuthenticator(policy.SchemeOAuth2, bearer),
		security.WithAuthenticator(policy.SchemeAPIKeyCookie, e.sessions),
		security.WithAuthenticator(policy.SchemeAPIKeyHeader, e.keys),
		security.WithMaxBodyBytes(testMaxBody),
	)
	if err != nil {
		tb.Fatalf("NewGuard: %v", err)
	}
	e.handler = e.guard(e.router)
	e.srv = httptest.NewServer(e.handler)
	tb.Cleanup(e.srv.Close)
	return e
}

// seen is what the handler reports about the request it was given.
type seen struct {
	Op        string   `json:"op"`
	Anonymous bool     `json:"anonymous"`
	Subject   string   `json:"subject"`
	Scheme    string   `json:"scheme"`
	Scopes    []string `json:"scopes"`
	Fresh     bool     `json:"fresh"`
}

// echo answers with the compiled operation and the principal the guard put
// in the context.
func echo(w http.ResponseWriter, r *http.Request) {
	var s seen
	if op := policy.FromContext(r.Context()); op != nil {
		s.Op = op.ID
	}
	if p := security.FromContext(r.Context()); p != nil {
		s.Subject, s.Scheme, s.Scopes, s.Fresh = p.Subject, p.Scheme, p.Scopes, p.Fresh
	} else {
		s.Anonymous = true
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

func (e *env) login(tb testing.TB, subject, role string) *security.Pair {
	tb.Helper()
	e.roles.Store(subject, role)
	p, err := e.tokens.Login(context.Background(), subject, role, e.table.RoleScopes(role), "test")
	if err != nil {
		tb.Fatalf("Login: %v", err)
	}
	return p
}

func (e *env) scopesOf(subject string) (string, []string, error) {
	role, ok := e.roles.Load(subject)
	if !ok {
		return "", nil, fmt.Errorf("unknown subject %q", subject)
	}
	return role.(string), e.table.RoleScopes(role.(string)), nil
}

func (e *env) refresh(tb testing.TB, raw string) *security.Pair {
	tb.Helper()
	p, err := e.tokens.Refresh(context.Background(), raw, e.scopesOf)
	if err != nil {
		tb.Fatalf("Refresh: %v", err)
	}
	return p
}

func (e *env) session(tb testing.TB, subject, role string) *security.NewSession {
	tb.Helper()
	ns, err := e.sessions.Create(context.Background(), subject, role, "browser")
	if err != nil {
		tb.Fatalf("Create session: %v", err)
	}
	return ns
}

func (e *env) apiKey(tb testing.TB, subject string, scopes ...string) (string, *security.APIKey) {
	tb.Helper()
	full, k, err := e.keys.Create(context.Background(), subject, "ci", scopes)
	if err != nil {
		tb.Fatalf("Create API key: %v", err)
	}
	return full, k
}

// Request modifiers.
type mod func(*http.Request)

func bearer(tok string) mod {
	return func(r *http.Request) { r.Header.Add("Authorization", "Bearer "+tok) }
}

func header(k, v string) mod { return func(r *http.Request) { r.Header.Add(k, v) } }

// host sets the Host the request names (the connection still goes to the
// test server).
func host(h string) mod { return func(r *http.Request) { r.Host = h } }

func apiKeyHeader(k string) mod { return header("X-API-Key", k) }

func cookie(name, value string) mod {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: value}) }
}

func sessionCookies(ns *security.NewSession) mod {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: sessionCookie, Value: ns.Cookie}) }
}

// csrfProof adds the CSRF cookie and header of ns.
func csrfProof(ns *security.NewSession) mod {
	return func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: security.CSRFCookie, Value: ns.CSRF})
		r.Header.Set(security.CSRFHeader, ns.CSRF)
	}
}

type response struct {
	status  int
	header  http.Header
	body    []byte
	problem security.Problem
	seen    seen
}

// do sends one request to the guarded server over loopback and checks that
// no credential the request carried is echoed anywhere in the response.
func (e *env) do(tb testing.TB, method, target, body string, mods ...mod) *response {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+target, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, m := range mods {
		m(req)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	out := &response{status: res.StatusCode, header: res.Header, body: b}
	if ct := res.Header.Get("Content-Type"); ct == "application/problem+json" {
		if err := json.Unmarshal(b, &out.problem); err != nil {
			tb.Fatalf("problem body %q: %v", b, err)
		}
	} else if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &out.seen); err != nil {
			tb.Fatalf("handler body %q: %v", b, err)
		}
	}
	assertNoCredentialEchoed(tb, req, res.Header, b)
	return out
}

// credentials lists every secret a request carries.
func credentials(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Authorization") {
		_, tok, _ := strings.Cut(v, " ")
		out = append(out, v, tok)
	}
	out = append(out, r.Header.Values("X-API-Key")...)
	out = append(out, r.Header.Values(security.CSRFHeader)...)
	for _, c := range r.Cookies() {
		out = append(out, c.Value)
	}
	if v := r.URL.Query()["access_token"]; len(v) > 0 {
		out = append(out, v...)
	}
	return out
}

func assertNoCredentialEchoed(tb testing.TB, req *http.Request, h http.Header, body []byte) {
	tb.Helper()
	for _, secret := range credentials(req) {
		if len(secret) < 16 { // too short to be told apart from ordinary text
			continue
		}
		if strings.Contains(string(body), secret) {
			tb.Errorf("the response body echoes a credential of the request: %s", body)
		}
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, secret) {
					tb.Errorf("response header %s echoes a credential of the request", k)
				}
			}
		}
	}
}

// want describes an expected guard answer.
type want struct {
	status int
	// problem is the problem type after ProblemTypePrefix; "" for a 200.
	problem string
	// authErr is the error= code of WWW-Authenticate; bareOnly for exactly
	// `Bearer realm="specguard"`; noChallenge when the header must be absent.
	authErr string
	// scope, when set, is the scope= the challenge must name.
	scope string
}

func (w want) check(tb testing.TB, got *response) {
	tb.Helper()
	if got.status != w.status {
		tb.Fatalf("status = %d, want %d; body %s", got.status, w.status, got.body)
	}
	if w.problem == "" {
		if ct := got.header.Get("Content-Type"); ct == "application/problem+json" {
			tb.Errorf("unexpected problem body %s", got.body)
		}
	} else {
		if got.problem.Type != security.ProblemTypePrefix+w.problem {
			tb.Errorf("problem type = %q, want %q", got.problem.Type, security.ProblemTypePrefix+w.problem)
		}
		if got.problem.Status != w.status {
			tb.Errorf("problem status = %d, want %d", got.problem.Status, w.status)
		}
	}
	challenges := got.header.Values("WWW-Authenticate")
	switch w.authErr {
	case noChallenge:
		if len(challenges) != 0 {
			tb.Errorf("WWW-Authenticate = %q, want none", challenges)
		}
	case bareOnly:
		if len(challenges) != 1 || challenges[0] != bareChallenge {
			tb.Errorf("WWW-Authenticate = %q, want exactly %q", challenges, bareChallenge)
		}
	default:
		if len(challenges) != 1 {
			tb.Fatalf("WWW-Authenticate = %q, want one challenge with error=%q", challenges, w.authErr)
		}
		params := parseChallenge(tb, challenges[0])
		if params["error"] != w.authErr {
			tb.Errorf("WWW-Authenticate error = %q, want %q (header %q)", params["error"], w.authErr, challenges[0])
		}
		if params["realm"] != "specguard" {
			tb.Errorf("WWW-Authenticate realm = %q, want specguard", params["realm"])
		}
		if w.scope != "" && params["scope"] != w.scope {
			tb.Errorf("WWW-Authenticate scope = %q, want %q", params["scope"], w.scope)
		}
	}
}

// parseChallenge reads `Bearer k="v", k="v"` into a map.
func parseChallenge(tb testing.TB, h string) map[string]string {
	tb.Helper()
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tb.Fatalf("challenge %q does not start with Bearer", h)
	}
	out := map[string]string{}
	for rest != "" {
		k, v, ok := strings.Cut(rest, `="`)
		if !ok {
			tb.Fatalf("challenge %q: bad parameter at %q", h, rest)
		}
		end := strings.IndexByte(v, '"')
		if end < 0 {
			tb.Fatalf("challenge %q: unterminated value", h)
		}
		out[k] = v[:end]
		rest = strings.TrimPrefix(v[end+1:], ", ")
	}
	return out
}

func okAs(op, subject, scheme string) func(tb testing.TB, s seen) {
	return func(tb testing.TB, s seen) {
		tb.Helper()
		if s.Op != op || s.Subject != subject || s.Scheme != scheme || s.Anonymous {
			tb.Errorf("handler saw %+v, want op %s, subject %q, scheme %q", s, op, subject, scheme)
		}
	}
}

func anonymous(op string) func(tb testing.TB, s seen) {
	return func(tb testing.TB, s seen) {
		tb.Helper()
		if s.Op != op || !s.Anonymous {
			tb.Errorf("handler saw %+v, want anonymous on %s", s, op)
		}
	}
}

type guardCase struct {
	name   string
	method string
	path   string
	body   string
	mods   []mod
	want   want
	saw    func(tb testing.TB, s seen) // checks a 200
}

func runGuardCases(t *testing.T, e *env, cases []guardCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			got := e.do(t, method, tc.path, tc.body, tc.mods...)
			tc.want.check(t, got)
			if tc.saw != nil {
				tc.saw(t, got.seen)
			}
		})
	}
}

var (
	ok200        = want{status: http.StatusOK}
	unauth       = want{status: http.StatusUnauthorized, problem: "unauthenticated", authErr: bareOnly}
	invalidToken = want{status: http.StatusUnauthorized, problem: problemInvalid, authErr: "invalid_token"}
	badRequest   = want{status: http.StatusBadRequest, problem: "invalid-request", authErr: "invalid_request"}
)

func TestGuardBearerPresentation(t *testing.T) {
	e := newEnv(t)
	reader := e.login(t, "alice", "reader")
	long := strings.Repeat("a", security.MaxTokenBytes+1)
	cases := []guardCase{
		{name: "valid token", path: "/read", mods: []mod{bearer(reader.Access)}, want: ok200, saw: okAs("read", "alice", "oauth2")},
		{name: "scheme in lower case", path: "/read", mods: []mod{header("Authorization", "bearer "+reader.Access)}, want: ok200, saw: okAs("read", "alice", "oauth2")},
		{name: "scheme in upper case", path: "/read", mods: []mod{header("Authorization", "BEARER "+reader.Access)}, want: ok200, saw: okAs("read", "alice", "oauth2")},
		{name: "two Authorization headers", path: "/read", mods: []mod{bearer(reader.Access), bearer(reader.Access)}, want: badRequest},
		{name: "token in the query string", path: "/read?access_token=" + reader.Access, want: badRequest},
		{name: "token in the query string and the header", path: "/read?access_token=" + reader.Access, mods: []mod{bearer(reader.Access)}, want: badRequest},
		{name: "token in the query string, key percent-encoded", path: "/read?access%5Ftoken=" + reader.Access, want: badRequest},
		{name: "token in the query string of an optional operation", path: "/optional?access_token=" + reader.Access, want: badRequest},
		{name: "Bearer with no token", path: "/read", mods: []mod{header("Authorization", "Bearer")}, want: badRequest},
		{name: "Bearer with only a space", path: "/read", mods: []mod{header("Authorization", "Bearer ")}, want: badRequest},
		{name: "token with characters outside b64token", path: "/read", mods: []mod{header("Authorization", "Bearer abc$def")}, want: badRequest},
		{name: "Basic credentials on a bearer-only operation", path: "/things", mods: []mod{header("Authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")}, want: unauth},
		{name: "no credentials", path: "/things", want: unauth},
		{name: "no credentials on an oauth2 operation", path: "/read", want: unauth},
		{name: "garbage token", path: "/read", mods: []mod{bearer("not-a-jwt")}, want: invalidToken},
		{name: "oversized token", path: "/read", mods: []mod{bearer(long)}, want: invalidToken},
		{name: "oversized Authorization header", path: "/read", mods: []mod{bearer(strings.Repeat(reader.Access, 20))}, want: invalidToken},
		{name: "refresh token presented as access token", path: "/read", mods: []mod{bearer(reader.Refresh)}, want: invalidToken},
		{name: "insufficient scope", method: http.MethodPost, path: "/write", body: `{"title":"x"}`, mods: []mod{bearer(reader.Access)},
			want: want{status: http.StatusForbidden, problem: "insufficient-scope", authErr: "insufficient_scope", scope: "a:write"}},
		{name: "public operation ignores a bad token", path: "/public", mods: []mod{bearer("not-a-jwt")}, want: ok200, saw: anonymous("public")},
		{name: "public operation ignores two Authorization headers", path: "/public", mods: []mod{bearer("x"), bearer("y")}, want: ok200, saw: anonymous("public")},
	}
	runGuardCases(t, e, cases)
}

func TestGuardOptional(t *testing.T) {
	e := newEnv(t)
	reader := e.login(t, "alice", "reader")
	nobody := e.login(t, "nemo", "nobody")
	cases := []guardCase{
		{name: "no credentials is anonymous", path: "/optional", want: ok200, saw: anonymous("optional")},
		{name: "another scheme counts as none", path: "/optional", mods: []mod{header("Authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")}, want: ok200, saw: anonymous("optional")},
		{name: "valid token", path: "/optional", mods: []mod{bearer(reader.Access)}, want: ok200, saw: okAs("optional", "alice", "oauth2")},
		{name: "invalid token is never anonymous", path: "/optional", mods: []mod{bearer("not-a-jwt")}, want: invalidToken},
		{name: "tampered token is never anonymous", path: "/optional", mods: []mod{bearer(tamper(t, reader.Access))}, want: invalidToken},
		{name: "refresh token is never anonymous", path: "/optional", mods: []mod{bearer(reader.Refresh)}, want: invalidToken},
		{name: "malformed presentation is never anonymous", path: "/optional", mods: []mod{bearer("a"), bearer("b")}, want: badRequest},
		{name: "valid token without the scope", path: "/optional", mods: []mod{bearer(nobody.Access)},
			want: want{status: http.StatusForbidden, problem: "insufficient-scope", authErr: "insufficient_scope", scope: "a:read"}},
	}
	runGuardCases(t, e, cases)

	t.Run("revoked token is never anonymous", func(t *testing.T) {
		p := e.login(t, "carol", "reader")
		if err := e.store.RevokeFamily(context.Background(), "carol", p.AccessClaims.Family); err != nil {
			t.Fatal(err)
		}
		invalidToken.check(t, e.do(t, http.MethodGet, "/optional", "", bearer(p.Access)))
	})
}

// tamper flips the token's scope claim and keeps its signature.
func tamper(tb testing.TB, tok string) string {
	tb.Helper()
	parts := strings.Split(tok, ".")
	var claims map[string]any
	if err := json.Unmarshal(mustDecode(tb, parts[1]), &claims); err != nil {
		tb.Fatal(err)
	}
	claims["scope"] = "a:read a:write"
	claims["sub"] = "admin"
	parts[1] = encodeSegment(tb, claims)
	return strings.Join(parts, ".")
}

func TestGuardAlternatives(t *testing.T) {
	e := newEnv(t)
	reader := e.login(t, "alice", "reader")
	writer := e.login(t, "alice2", "writer")
	aliceKey, _ := e.apiKey(t, "alice")
	aliceWriteKey, _ := e.apiKey(t, "alice", "a:write")
	aliceSession := e.session(t, "alice", "reader")
	bobSession := e.session(t, "bob", "reader")
	cases := []guardCase{
		{name: "OR: first alternative", path: "/either", mods: []mod{bearer(reader.Access)}, want: ok200, saw: okAs("either", "alice", "bearerAuth")},
		{name: "OR: second alternative", path: "/either", mods: []mod{apiKeyHeader(aliceKey)}, want: ok200, saw: okAs("either", "alice", "apiKeyAuth")},
		{name: "OR: neither", path: "/either", want: unauth},
		{name: "OR: invalid first credential is not skipped", path: "/either", mods: []mod{bearer("not-a-jwt"), apiKeyHeader(aliceKey)}, want: invalidToken},
		{name: "OR: invalid second credential", path: "/either", mods: []mod{apiKeyHeader("sg_nope")}, want: invalidToken},
		{name: "OR: first lacks scope, second satisfies", path: "/write-or-key", mods: []mod{bearer(reader.Access), apiKeyHeader(aliceWriteKey)}, want: ok200, saw: okAs("writeOrKey", "alice", "apiKeyAuth")},
		{name: "OR: first satisfies with scope", path: "/write-or-key", mods: []mod{bearer(writer.Access)}, want: ok200, saw: okAs("writeOrKey", "alice2", "oauth2")},
		{name: "OR: every alternative lacks scope", path: "/write-or-key", mods: []mod{bearer(reader.Access), apiKeyHeader(aliceKey)},
			want: want{status: http.StatusForbidden, problem: "insufficient-scope", authErr: "insufficient_scope", scope: "a:write"}},
		{name: "AND: both credentials", path: "/both", mods: []mod{apiKeyHeader(aliceKey), sessionCookies(aliceSession)}, want: ok200, saw: okAs("both", "alice", "apiKeyAuth+cookieAuth")},
		{name: "AND: key alone", path: "/both", mods: []mod{apiKeyHeader(aliceKey)}, want: unauth},
		{name: "AND: session alone", path: "/both", mods: []mod{sessionCookies(aliceSession)}, want: unauth},
		{name: "AND: credentials of different users", path: "/both", mods: []mod{apiKeyHeader(aliceKey), sessionCookies(bobSession)}, want: invalidToken},
		{name: "AND: invalid session with valid key", path: "/both", mods: []mod{apiKeyHeader(aliceKey), cookie(sessionCookie, "alice.nope.nope")}, want: invalidToken},
	}
	runGuardCases(t, e, cases)
}

func TestGuardFresh(t *testing.T) {
	e := newEnv(t)
	first := e.login(t, "alice", "reader")
	if !first.AccessClaims.Fresh {
		t.Fatal("a password login did not mint a fresh token")
	}
	refreshed := e.refresh(t, first.Refresh)
	if refreshed.AccessClaims.Fresh {
		t.Fatal("a refresh minted a fresh token")
	}
	second := e.login(t, "bob", "reader")
	cases := []guardCase{
		{name: "refreshed token", method: http.MethodPost, path: "/fresh", mods: []mod{bearer(refreshed.Access)},
			want: want{status: http.StatusUnauthorized, problem: "fresh-login-required", authErr: "insufficient_user_authentication"}},
		{name: "fresh token", method: http.MethodPost, path: "/fresh", mods: []mod{bearer(second.Access)}, want: ok200, saw: okAs("fresh", "bob", "bearerAuth")},
		{name: "refreshed token elsewhere", path: "/things", mods: []mod{bearer(refreshed.Access)}, want: ok200, saw: okAs("bearerOnly", "alice", "bearerAuth")},
		{name: "no token", method: http.MethodPost, path: "/fresh", want: unauth},
	}
	runGuardCases(t, e, cases)
}

func TestGuardContext(t *testing.T) {
	e := newEnv(t)
	writer := e.login(t, "alice", "writer")
	key, _ := e.apiKey(t, "bob", "a:read")
	sess := e.session(t, "carol", "writer")
	cases := []struct {
		name string
		path string
		mods []mod
		want seen
	}{
		{name: "oauth2", path: "/read", mods: []mod{bearer(writer.Access)},
			want: seen{Op: "read", Subject: "alice", Scheme: "oauth2", Scopes: []string{"a:read", "a:write"}, Fresh: true}},
		{name: "bearer", path: "/things", mods: []mod{bearer(writer.Access)},
			want: seen{Op: "bearerOnly", Subject: "alice", Scheme: "bearerAuth", Scopes: []string{"a:read", "a:write"}, Fresh: true}},
		{name: "api key", path: "/key-read", mods: []mod{apiKeyHeader(key)},
			want: seen{Op: "keyRead", Subject: "bob", Scheme: "apiKeyAuth", Scopes: []string{"a:read"}}},
		{name: "session", path: "/account", mods: []mod{sessionCookies(sess)},
			want: seen{Op: "getAccount", Subject: "carol", Scheme: "cookieAuth", Scopes: []string{"a:read", "a:write"}}},
		{name: "public", path: "/public", want: seen{Op: "public", Anonymous: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := e.do(t, http.MethodGet, tc.path, "", tc.mods...)
			ok200.check(t, got)
			if g, w := got.seen, tc.want; g.Op != w.Op || g.Subject != w.Subject || g.Scheme != w.Scheme ||
				g.Anonymous != w.Anonymous || g.Fresh != w.Fresh || !slices.Equal(g.Scopes, w.Scopes) {
				t.Errorf("handler saw %+v, want %+v", g, w)
			}
		})
	}

	t.Run("operation is the compiled one", func(t *testing.T) {
		var got *policy.Operation
		h := e.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = policy.FromContext(r.Context()) }))
		// e.guard resolves against e.router; serving another handler shows
		// that the operation came from the guard, not from routing.
		r := httptest.NewRequest(http.MethodGet, "/public", nil)
		h.ServeHTTP(httptest.NewRecorder(), r)
		if want := e.table.Operation("public"); got != want {
			t.Errorf("policy.FromContext = %p, want the table's operation %p", got, want)
		}
	})
}

// spyBody records whether anything read it.
type spyBody struct {
	read atomic.Bool
	r    io.Reader
}

func (s *spyBody) Read(p []byte) (int, error) {
	s.read.Store(true)
	return s.r.Read(p)
}

func TestGuardRejectsBeforeReadingBodyOrBindingParameters(t *testing.T) {
	e := newEnv(t)
	reader := e.login(t, "alice", "reader")
	writer := e.login(t, "bob", "writer")
	cases := []struct {
		name   string
		method string
		path   string
		auth   string
		want   int
		read   bool
	}{
		{name: "no credentials", method: http.MethodPost, path: "/write", want: http.StatusUnauthorized},
		{name: "invalid token", method: http.MethodPost, path: "/write", auth: "Bearer not-a-jwt", want: http.StatusUnauthorized},
		{name: "insufficient scope", method: http.MethodPost, path: "/write", auth: "Bearer " + reader.Access, want: http.StatusForbidden},
		{name: "valid token reaches validation", method: http.MethodPost, path: "/write", auth: "Bearer " + writer.Access, want: http.StatusOK, read: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := &spyBody{r: strings.NewReader(`{"title":"hello"}`)}
			r, err := http.NewRequest(tc.method, "http://example.test"+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Content-Type", "application/json")
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			e.handler.ServeHTTP(w, r)
			if got := w.Code; got != tc.want {
				t.Fatalf("status = %d, want %d; body %s", got, tc.want, w.Body)
			}
			if got := body.read.Load(); got != tc.read {
				t.Errorf("body read = %v, want %v", got, tc.read)
			}
		})
	}

	params := []guardCase{
		{name: "bad path parameter without credentials", path: "/items/not-a-number", want: unauth},
		{name: "bad path parameter with a bad token", path: "/items/not-a-number", mods: []mod{bearer("not-a-jwt")}, want: invalidToken},
		{name: "bad path parameter with a valid token", path: "/items/not-a-number", mods: []mod{bearer(reader.Access)},
			want: want{status: http.StatusBadRequest, problem: "invalid-request", authErr: noChallenge}},
		{name: "good path parameter", path: "/items/42", mods: []mod{bearer(reader.Access)}, want: ok200, saw: okAs("item", "alice", "bearerAuth")},
	}
	runGuardCases(t, e, params)
}

func TestGuardRequestValidation(t *testing.T) {
	e := newEnv(t)
	writer := e.login(t, "bob", "writer")
	cases := []struct {
		name      string
		body      string
		want      int
		problem   string
		wantField string // a field errors[] must name
	}{
		{name: "valid", body: `{"title":"hello"}`, want: http.StatusOK},
		{name: "wrong type", body: `{"title":5}`, want: http.StatusBadRequest, problem: "invalid-request", wantField: "body.title"},
		{name: "too short", body: `{"title":""}`, want: http.StatusBadRequest, problem: "invalid-request", wantField: "body.title"},
		{name: "missing required field", body: `{}`, want: http.StatusBadRequest, problem: "invalid-request", wantField: "body.title"},
		{name: "unknown field", body: `{"title":"x","admin":true}`, want: http.StatusBadRequest, problem: "invalid-request", wantField: "body"},
		{name: "not JSON", body: `{"title":`, want: http.StatusBadRequest, problem: "invalid-request", wantField: "body"},
		{name: "body over the maximum", body: `{"title":"` + strings.Repeat("x", testMaxBody) + `"}`, want: http.StatusRequestEntityTooLarge, problem: "body-too-large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := e.do(t, http.MethodPost, "/write", tc.body, bearer(writer.Access))
			w := want{status: tc.want, problem: tc.problem, authErr: noChallenge}
			w.check(t, got)
			if tc.wantField == "" {
				return
			}
			var fields []string
			for _, fe := range got.problem.Errors {
				fields = append(fields, fe.Field)
				if fe.Message == "" {
					t.Errorf("errors[] entry %q has no message", fe.Field)
				}
			}
			if !slices.Contains(fields, tc.wantField) {
				t.Errorf("errors[] fields = %q, want one named %q", fields, tc.wantField)
			}
		})
	}

	t.Run("missing field is named in the message", func(t *testing.T) {
		got := e.do(t, http.MethodPost, "/write", `{}`, bearer(writer.Access))
		if !strings.Contains(string(got.body), "title") {
			t.Errorf("problem %s does not name the missing field title", got.body)
		}
	})
}

// TestGuardResolvesLikeChi checks that the guard resolves the operation from
// the path chi routes on, so no request reaches a handler unguarded.
func TestGuardResolvesLikeChi(t *testing.T) {
	e := newEnv(t)
	reader := e.login(t, "alice", "reader")

	t.Run("absolute-form request target with an empty path", func(t *testing.T) {
		// RFC 9112 3.2.2: a server must accept the absolute form. Its URL has
		// an empty path, which chi routes as "/".
		host := e.srv.Listener.Addr().String()
		for _, tc := range []struct {
			name string
			auth string
			want int
		}{
			{name: "no credentials", want: http.StatusUnauthorized},
			{name: "valid token", auth: "Authorization: Bearer " + reader.Access + "\r\n", want: http.StatusOK},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := rawRequest(t, host, "GET http://"+host+" HTTP/1.1\r\nHost: "+host+"\r\n"+tc.auth+"Connection: close\r\n\r\n")
				if res.StatusCode != tc.want {
					t.Errorf("status = %d, want %d", res.StatusCode, tc.want)
				}
			})
		}
	})

	t.Run("mounted under a prefix", func(t *testing.T) {
		outer := chi.NewRouter()
		outer.Mount("/api", e.handler)
		srv := httptest.NewServer(outer)
		t.Cleanup(srv.Close)
		for _, tc := range []struct {
			name   string
			method string
			path   string
			auth   string
			want   int
		}{
			{name: "protected without credentials", path: "/api/read", want: http.StatusUnauthorized},
			{name: "protected with a token", path: "/api/read", auth: "Bearer " + reader.Access, want: http.StatusOK},
			{name: "public", path: "/api/public", want: http.StatusOK},
			{name: "unknown", path: "/api/nope", want: http.StatusNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(cmp.Or(tc.method, http.MethodGet), srv.URL+tc.path, nil)
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				res, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != tc.want {
					t.Errorf("status = %d, want %d", res.StatusCode, tc.want)
				}
			})
		}
	})

	t.Run("HEAD routed as GET by an outer router", func(t *testing.T) {
		// GetHead leaves method GET and the path in the route context; the
		// guarded router then routes the HEAD request to the GET handler.
		outer := chi.NewRouter()
		outer.Use(middleware.GetHead)
		outer.Get("/*", e.handler.ServeHTTP)
		srv := httptest.NewServer(outer)
		t.Cleanup(srv.Close)
		for _, tc := range []struct {
			name   string
			method string
			auth   string
			want   int
		}{
			{name: "HEAD without credentials", method: http.MethodHead, want: http.StatusUnauthorized},
			{name: "HEAD with a token", method: http.MethodHead, auth: "Bearer " + reader.Access, want: http.StatusOK},
			{name: "GET without credentials", method: http.MethodGet, want: http.StatusUnauthorized},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(tc.method, srv.URL+"/read", nil)
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				res, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != tc.want {
					t.Errorf("status = %d, want %d", res.StatusCode, tc.want)
				}
			})
		}
	})

	t.Run("unknown path and method", func(t *testing.T) {
		if got := e.do(t, http.MethodGet, "/nope", "").status; got != http.StatusNotFound {
			t.Errorf("unknown path: status = %d, want 404", got)
		}
		if got := e.do(t, http.MethodDelete, "/read", "").status; got != http.StatusMethodNotAllowed {
			t.Errorf("wrong method: status = %d, want 405", got)
		}
	})
}

func rawRequest(tb testing.TB, addr, req string) *http.Response {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		tb.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func TestNewGuardChecksConfiguration(t *testing.T) {
	e := newEnv(t)
	bearer := security.BearerAuthenticator{Tokens: e.tokens}
	all := []security.Option{
		security.WithAuthenticator(policy.SchemeBearer, bearer),
		security.WithAuthenticator(policy.SchemeOAuth2, bearer),
		security.WithAuthenticator(policy.SchemeAPIKeyCookie, e.sessions),
		security.WithAuthenticator(policy.SchemeAPIKeyHeader, e.keys),
	}
	full := func() chi.Router {
		r := chi.NewRouter()
		for _, op := range e.table.Operations() {
			r.Method(op.Method, op.Pattern, http.HandlerFunc(echo))
		}
		return r
	}
	cases := []struct {
		name   string
		router func() chi.Router
		opts   []security.Option
		errHas string
	}{
		{name: "complete", router: full, opts: all},
		{name: "missing authenticator", router: full, opts: all[:3], errHas: "no authenticator"},
		{name: "route without operation", router: func() chi.Router {
			r := full()
			r.Get("/debug", echo)
			return r
		}, opts: all, errHas: "has no operation"},
		{name: "operation without route", router: func() chi.Router {
			r := chi.NewRouter()
			r.Get("/public", echo)
			return r
		}, opts: all, errHas: "operation has no route"},
		{name: "middleware inside the guarded router", router: func() chi.Router {
			r := chi.NewRouter()
			r.Use(func(next http.Handler) http.Handler { return next })
			for _, op := range e.table.Operations() {
				r.Method(op.Method, op.Pattern, http.HandlerFunc(echo))
			}
			return r
		}, opts: all, errHas: "install middleware outside the guard"},
		{name: "inline middleware on a route", router: func() chi.Router {
			r := chi.NewRouter()
			for i, op := range e.table.Operations() {
				if i == 0 {
					r.With(func(next http.Handler) http.Handler { return next }).Method(op.Method, op.Pattern, http.HandlerFunc(echo))
					continue
				}
				r.Method(op.Method, op.Pattern, http.HandlerFunc(echo))
			}
			return r
		}, opts: all, errHas: "has middleware inside the guarded router"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := security.NewGuard(e.table, tc.router(), tc.opts...)
			switch {
			case tc.errHas == "" && err != nil:
				t.Fatalf("NewGuard = %v, want nil", err)
			case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
				t.Fatalf("NewGuard = %v, want an error containing %q", err, tc.errHas)
			}
		})
	}
}
