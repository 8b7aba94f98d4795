package guardtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
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
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/security/tokens"
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
	Signing  *tokens.Key
	Tokens   *tokens.Service
	Sessions *sessions.Service
	Keys     *apikeys.Service
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
	if e.Signing, err = tokens.NewKey(priv); err != nil {
		tb.Fatal(err)
	}
	if e.Tokens, err = tokens.New(Issuer, Audience, e.Signing, store, tokens.WithClock(e.Clock.Now)); err != nil {
		tb.Fatal(err)
	}
	if e.Table, err = policy.Compile("test.yaml", []byte(Spec)); err != nil {
		tb.Fatalf("Compile: %v", err)
	}
	e.Sessions = sessions.New(store, e.Table.RoleScopes)
	e.Keys = apikeys.New(store, security.NewMemoryKeyRecords(e.Clock.Now), apikeys.WithClock(e.Clock.Now))

	e.Router = chi.NewRouter()
	for _, op := range e.Table.Operations() {
		e.Router.Method(op.Method, op.Pattern, http.HandlerFunc(Echo))
	}
	bearer := tokens.Bearer{Tokens: e.Tokens}
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
		s.Subject, s.Scheme, s.Scopes, s.Fresh = p.Subject, p.Scheme, p.Scopes, p.Fresh()
	} else {
		s.Anonymous = true
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s)
}

func (e *Env) Login(tb testing.TB, subject, role string) *tokens.Pair {
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

func (e *Env) Refresh(tb testing.TB, raw string) *tokens.Pair {
	tb.Helper()
	p, err := e.Tokens.Refresh(context.Background(), raw, e.ScopesOf)
	if err != nil {
		tb.Fatalf("Refresh: %v", err)
	}
	return p
}

func (e *Env) Session(tb testing.TB, subject, role string) *sessions.Issued {
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

func SessionCookies(ns *sessions.Issued) Mod {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: SessionCookie, Value: ns.Cookie}) }
}

// CSRFProof adds the CSRF cookie and header of ns.
func CSRFProof(ns *sessions.Issued) Mod {
	return func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: sessions.CSRFCookie, Value: ns.CSRF})
		r.Header.Set(sessions.CSRFHeader, ns.CSRF)
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
