// Package guardtest is the test harness the guard's and the security
// package's tests share: a document with one operation per security shape,
// a complete guarded server (tokens, sessions, API keys, memory store) over
// loopback, request modifiers and the checks of the guard's answers.
// Test files dot-import it.
package guardtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
)

// Spec declares one operation per security shape the guard must
// enforce. Limits are off everywhere: these tests are about authentication.
const Spec = `
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
	Issuer         = "https://issuer.test"
	Audience       = "specguard-test"
	SessionCookie  = "__Host-session"
	MaxBody        = 1024
	NoChallenge    = ""     // want: no WWW-Authenticate header at all
	BareOnly       = "bare" // want: challenges without error=
	ProblemInvalid = "invalid-token"
)

// Clock is a settable Clock shared by the token service and the store.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

func NewClock() *Clock { return &Clock{t: time.Now().Truncate(time.Second)} }

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Env is a complete guarded server: real token service, sessions, API keys
// and memory store in front of a chi router, served over loopback.
type Env struct {
	Clock    *Clock
	Store    *security.MemoryStore
	EdPriv   ed25519.PrivateKey
	Signing  *security.Key
	Tokens   *security.TokenService
	Sessions *security.SessionService
	Keys     *security.APIKeyService
	Table    *policy.Table
	Router   chi.Router
	Guard    *guard.Guard
	Srv      *httptest.Server
	Roles    sync.Map // subject -> role, for Refresh
}

func NewEnv(tb testing.TB) *Env {
	tb.Helper()
	e := &Env{Clock: NewClock()}
	e.Store = security.NewMemoryStore(e.Clock.Now)
	store := e.Store
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	e.EdPriv = priv
	if e.Signing, err = security.NewKey(priv); err != nil {
		tb.Fatal(err)
	}
	if e.Tokens, err = security.NewTokenService(Issuer, Audience, e.Signing, store, security.WithClock(e.Clock.Now)); err != nil {
		tb.Fatal(err)
	}
	if e.Table, err = policy.Compile("test.yaml", []byte(Spec)); err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	e.Sessions = security.NewSessionService(store, e.Table.RoleScopes)
	e.Keys = security.NewAPIKeyService(store, security.NewMemoryKeyRecords(e.Clock.Now), security.WithKeyClock(e.Clock.Now))

	e.Router = chi.NewRouter()
	for _, op := range e.Table.Operations() {
		e.Router.Method(op.Method, op.Pattern, http.HandlerFunc(Echo))
	}
	bearer := security.BearerAuthenticator{Tokens: e.Tokens}
	e.Guard, err = guard.New(e.Table, e.Router,
		guard.WithAuthenticator(policy.SchemeBearer, bearer),
		guard.WithAuthenticator(policy.SchemeOAuth2, bearer),
		guard.WithAuthenticator(policy.SchemeAPIKeyCookie, e.Sessions),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, e.Keys),
		guard.WithMaxBodyBytes(MaxBody),
	)
	if err != nil {
		tb.Fatalf("guard.New: %v", err)
	}
	e.Srv = httptest.NewServer(e.Guard)
	tb.Cleanup(e.Srv.Close)
	return e
}

// Seen is what the handler reports about the request it was given.
type Seen struct {
	Op        string   `json:"op"`
	Anonymous bool     `json:"anonymous"`
	Subject   string   `json:"subject"`
	Scheme    string   `json:"scheme"`
	Scopes    []string `json:"scopes"`
	Fresh     bool     `json:"fresh"`
}

// Echo answers with the compiled operation and the principal the guard put
// in the context.
func Echo(w http.ResponseWriter, r *http.Request) {
	var s Seen
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

func (e *Env) Login(tb testing.TB, subject, role string) *security.Pair {
	tb.Helper()
	e.Roles.Store(subject, role)
	p, err := e.Tokens.Login(context.Background(), subject, role, e.Table.RoleScopes(role), "test")
	if err != nil {
		tb.Fatalf("Login: %v", err)
	}
	return p
}

func (e *Env) ScopesOf(subject string) (string, []string, error) {
	role, ok := e.Roles.Load(subject)
	if !ok {
		return "", nil, fmt.Errorf("unknown subject %q", subject)
	}
	return role.(string), e.Table.RoleScopes(role.(string)), nil
}

func (e *Env) Refresh(tb testing.TB, raw string) *security.Pair {
	tb.Helper()
	p, err := e.Tokens.Refresh(context.Background(), raw, e.ScopesOf)
	if err != nil {
		tb.Fatalf("Refresh: %v", err)
	}
	return p
}

func (e *Env) Session(tb testing.TB, subject, role string) *security.NewSession {
	tb.Helper()
	ns, err := e.Sessions.Create(context.Background(), subject, role, "browser")
	if err != nil {
		tb.Fatalf("Create session: %v", err)
	}
	return ns
}

func (e *Env) APIKey(tb testing.TB, subject string, scopes ...string) (string, *security.APIKey) {
	tb.Helper()
	full, k, err := e.Keys.Create(context.Background(), subject, "ci", scopes)
	if err != nil {
		tb.Fatalf("Create API key: %v", err)
	}
	return full, k
}

// Request modifiers.
type Mod func(*http.Request)

func Bearer(tok string) Mod {
	return func(r *http.Request) { r.Header.Add("Authorization", "Bearer "+tok) }
}

func Header(k, v string) Mod { return func(r *http.Request) { r.Header.Add(k, v) } }

// Host sets the Host the request names (the connection still goes to the
// test server).
func Host(h string) Mod { return func(r *http.Request) { r.Host = h } }

func APIKeyHeader(k string) Mod { return Header("X-API-Key", k) }

func Cookie(name, value string) Mod {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: value}) }
}

func SessionCookies(ns *security.NewSession) Mod {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: SessionCookie, Value: ns.Cookie}) }
}

// CSRFProof adds the CSRF cookie and header of ns.
func CSRFProof(ns *security.NewSession) Mod {
	return func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: security.CSRFCookie, Value: ns.CSRF})
		r.Header.Set(security.CSRFHeader, ns.CSRF)
	}
}

type Response struct {
	Status  int
	Header  http.Header
	Body    []byte
	Problem problem.Problem
	Seen    Seen
}

// Do sends one request to the guarded server over loopback and checks that
// no credential the request carried is echoed anywhere in the response.
func (e *Env) Do(tb testing.TB, method, target, body string, mods ...Mod) *Response {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.Srv.URL+target, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, m := range mods {
		m(req)
	}
	res, err := e.Srv.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	out := &Response{Status: res.StatusCode, Header: res.Header, Body: b}
	if ct := res.Header.Get("Content-Type"); ct == "application/problem+json" {
		if err := json.Unmarshal(b, &out.Problem); err != nil {
			tb.Fatalf("problem body %q: %v", b, err)
		}
	} else if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &out.Seen); err != nil {
			tb.Fatalf("handler body %q: %v", b, err)
		}
	}
	AssertNoCredentialEchoed(tb, req, res.Header, b)
	return out
}

// Credentials lists every secret a request carries.
func Credentials(r *http.Request) []string {
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

func AssertNoCredentialEchoed(tb testing.TB, req *http.Request, h http.Header, body []byte) {
	tb.Helper()
	for _, secret := range Credentials(req) {
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

// Want describes an expected guard answer.
type Want struct {
	Status int
	// Problem is the Problem type after ProblemTypePrefix; "" for a 200.
	Problem string
	// AuthErr is the error= code of WWW-Authenticate; bareOnly for
	// challenges without error= (one per scheme the operation accepts);
	// noChallenge when the header must be absent.
	AuthErr string
	// Scope, when set, is the Scope= the challenge must name.
	Scope string
	// Scheme, when set, is the auth-Scheme the challenge must have.
	Scheme string
}

func (w Want) Check(tb testing.TB, got *Response) {
	tb.Helper()
	if got.Status != w.Status {
		tb.Fatalf("status = %d, want %d; body %s", got.Status, w.Status, got.Body)
	}
	if w.Problem == "" {
		if ct := got.Header.Get("Content-Type"); ct == "application/problem+json" {
			tb.Errorf("unexpected problem body %s", got.Body)
		}
	} else {
		if got.Problem.Type != problem.DefaultPrefix+w.Problem {
			tb.Errorf("problem type = %q, want %q", got.Problem.Type, problem.DefaultPrefix+w.Problem)
		}
		if got.Problem.Status != w.Status {
			tb.Errorf("problem status = %d, want %d", got.Problem.Status, w.Status)
		}
	}
	challenges := got.Header.Values("WWW-Authenticate")
	switch w.AuthErr {
	case NoChallenge:
		if len(challenges) != 0 {
			tb.Errorf("WWW-Authenticate = %q, want none", challenges)
		}
	case BareOnly:
		// One challenge per scheme the operation accepts, none with error=.
		if len(challenges) == 0 {
			tb.Errorf("WWW-Authenticate absent, want a challenge per accepted scheme")
		}
		for _, c := range challenges {
			if _, params := ParseChallenge(tb, c); params["error"] != "" || params["realm"] != "specguard" {
				tb.Errorf("WWW-Authenticate = %q, want bare challenges of realm specguard", challenges)
			}
		}
	default:
		if len(challenges) != 1 {
			tb.Fatalf("WWW-Authenticate = %q, want one challenge with error=%q", challenges, w.AuthErr)
		}
		scheme, params := ParseChallenge(tb, challenges[0])
		if w.Scheme != "" && scheme != w.Scheme {
			tb.Errorf("WWW-Authenticate scheme = %q, want %q (header %q)", scheme, w.Scheme, challenges[0])
		}
		if params["error"] != w.AuthErr {
			tb.Errorf("WWW-Authenticate error = %q, want %q (header %q)", params["error"], w.AuthErr, challenges[0])
		}
		if params["realm"] != "specguard" {
			tb.Errorf("WWW-Authenticate realm = %q, want specguard", params["realm"])
		}
		if w.Scope != "" && params["scope"] != w.Scope {
			tb.Errorf("WWW-Authenticate scope = %q, want %q", params["scope"], w.Scope)
		}
	}
}

// ParseChallenge reads `Scheme k="v", k="v"` into its scheme and a map.
func ParseChallenge(tb testing.TB, h string) (string, map[string]string) {
	tb.Helper()
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || (scheme != "Bearer" && scheme != "ApiKey" && scheme != "Cookie") {
		tb.Fatalf("challenge %q does not start with Bearer, ApiKey or Cookie", h)
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
	return scheme, out
}

func OKAs(op, subject, scheme string) func(tb testing.TB, s Seen) {
	return func(tb testing.TB, s Seen) {
		tb.Helper()
		if s.Op != op || s.Subject != subject || s.Scheme != scheme || s.Anonymous {
			tb.Errorf("handler saw %+v, want op %s, subject %q, scheme %q", s, op, subject, scheme)
		}
	}
}

func Anonymous(op string) func(tb testing.TB, s Seen) {
	return func(tb testing.TB, s Seen) {
		tb.Helper()
		if s.Op != op || !s.Anonymous {
			tb.Errorf("handler saw %+v, want anonymous on %s", s, op)
		}
	}
}

type Case struct {
	Name   string
	Method string
	Path   string
	Body   string
	Mods   []Mod
	Want   Want
	Saw    func(tb testing.TB, s Seen) // checks a 200
}

func RunCases(t *testing.T, e *Env, cases []Case) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			method := tc.Method
			if method == "" {
				method = http.MethodGet
			}
			got := e.Do(t, method, tc.Path, tc.Body, tc.Mods...)
			tc.Want.Check(t, got)
			if tc.Saw != nil {
				tc.Saw(t, got.Seen)
			}
		})
	}
}

var (
	OK200        = Want{Status: http.StatusOK}
	Unauth       = Want{Status: http.StatusUnauthorized, Problem: "unauthenticated", AuthErr: BareOnly}
	InvalidToken = Want{Status: http.StatusUnauthorized, Problem: ProblemInvalid, AuthErr: "invalid_token"}
	BadRequest   = Want{Status: http.StatusBadRequest, Problem: "invalid-request", AuthErr: "invalid_request"}
)

// Tamper flips the token's scope claim and keeps its signature.
func Tamper(tb testing.TB, tok string) string {
	tb.Helper()
	parts := strings.Split(tok, ".")
	var claims map[string]any
	if err := json.Unmarshal(MustDecode(tb, parts[1]), &claims); err != nil {
		tb.Fatal(err)
	}
	claims["scope"] = "a:read a:write"
	claims["sub"] = "admin"
	parts[1] = EncodeSegment(tb, claims)
	return strings.Join(parts, ".")
}

// JOSE helpers: tokens are assembled by hand so a test controls every byte.

// MustDecode decodes one base64url segment of a token.
func MustDecode(tb testing.TB, seg string) []byte {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		tb.Fatalf("decode segment: %v", err)
	}
	return b
}

// EncodeSegment encodes v as one base64url JSON segment of a token.
func EncodeSegment(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
