package guard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

const headSpec = `
openapi: 3.0.3
info: {title: head, version: "1"}
security:
  - oauth2: [a:read]
x-rate-limit: false
paths:
  /items:
    get:
      operationId: listItems
      x-rate-limit:
        - {name: reads, limit: 2, window: 1m, key: principal, who: authenticated}
        - {name: anon, limit: 100, window: 1m, key: ip, who: anonymous}
      responses: {'200': {description: ok}}
  /writes:
    post:
      operationId: write
      responses: {'200': {description: ok}}
  /both:
    get:
      operationId: getBoth
      responses: {'200': {description: ok}}
    head:
      operationId: headBoth
      security: []
      responses: {'200': {description: ok}}
  /sub/{x}:
    parameters: [{name: x, in: path, required: true, schema: {type: string}}]
    get:
      operationId: getSub
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    oauth2:
      type: oauth2
      flows:
        password:
          tokenUrl: /token
          scopes: {a:read: read}
`

// TestHeadIsServedAsGet: HEAD on a path whose GET is an operation is that
// operation, as RFC 9110 asks of every server: its security, its limits
// (HEAD charges GET's tiers) and its handler, whether the guard calls the
// handler itself, the router routes it (a subrouter), or a parent router
// mounted the guard. A HEAD operation of its own keeps its own policy.
func TestHeadIsServedAsGet(t *testing.T) {
	table, err := policy.Compile("head.yaml", []byte(headSpec))
	if err != nil {
		t.Fatal(err)
	}
	ts := memoryTokens(t, security.NewMemoryStore(nil))
	var logins atomic.Int32
	login := func() string { // a caller of its own each time, with buckets of its own
		pair, err := ts.Login(context.Background(), fmt.Sprint("user-", logins.Add(1)), "user", []string{"a:read"}, "test")
		if err != nil {
			t.Fatal(err)
		}
		return pair.Access
	}
	var ran atomic.Int32
	var methods atomic.Value
	handler := func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		methods.Store(r.Method)
		w.Write([]byte("body"))
	}
	r := chi.NewRouter()
	r.Get("/items", handler)
	r.Post("/writes", handler)
	r.Get("/both", handler)
	r.Head("/both", handler)
	r.Route("/sub", func(r chi.Router) { r.Get("/{x}", handler) })
	g, err := guard.New(table, r,
		guard.WithAuthenticator(policy.SchemeOAuth2, tokens.Bearer{Tokens: ts}),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if err != nil {
		t.Fatal(err)
	}
	outer := chi.NewRouter()
	outer.Mount("/api", g)
	direct, mounted := httptest.NewServer(g), httptest.NewServer(outer)
	t.Cleanup(direct.Close)
	t.Cleanup(mounted.Close)

	do := func(t *testing.T, base, method, path, token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for _, srv := range []struct{ name, base string }{{"direct", direct.URL}, {"mounted", mounted.URL + "/api"}} {
		t.Run(srv.name, func(t *testing.T) {
			for _, path := range []string{"/items", "/sub/1"} {
				ran.Store(0)
				if res := do(t, srv.base, "HEAD", path, ""); res.StatusCode != 401 || ran.Load() != 0 {
					t.Errorf("HEAD %s without a token: %d, handler ran %d times; want 401, not run", path, res.StatusCode, ran.Load())
				}
				res := do(t, srv.base, "HEAD", path, login())
				if res.StatusCode != 200 || ran.Load() != 1 || methods.Load() != "HEAD" {
					t.Errorf("HEAD %s with a token: %d, handler ran %d times (method %v); want 200, run once with HEAD", path, res.StatusCode, ran.Load(), methods.Load())
				}
				if path == "/items" && res.Header.Get("RateLimit") == "" {
					t.Errorf("HEAD %s: no RateLimit header: the GET operation's tiers were not applied", path)
				}
			}

			// HEAD charges GET's tiers: 2 a minute for one caller.
			token := login()
			got := []int{do(t, srv.base, "HEAD", "/items", token).StatusCode, do(t, srv.base, "GET", "/items", token).StatusCode,
				do(t, srv.base, "HEAD", "/items", token).StatusCode}
			if !slices.Equal(got, []int{200, 200, 429}) {
				t.Errorf("HEAD, GET, HEAD of one caller with a limit of 2: %v, want [200 200 429]", got)
			}

			// A HEAD operation of its own: public, while its GET is not.
			ran.Store(0)
			if res := do(t, srv.base, "HEAD", "/both", ""); res.StatusCode != 200 || ran.Load() != 1 {
				t.Errorf("HEAD /both (public operation): %d, ran %d; want 200, run once", res.StatusCode, ran.Load())
			}
			if res := do(t, srv.base, "GET", "/both", ""); res.StatusCode != 401 {
				t.Errorf("GET /both without a token: %d, want 401", res.StatusCode)
			}

			// No GET operation: 405, with the path's methods.
			if res := do(t, srv.base, "HEAD", "/writes", ""); res.StatusCode != 405 || res.Header.Get("Allow") != "POST" {
				t.Errorf("HEAD /writes: %d, Allow %q; want 405, Allow POST", res.StatusCode, res.Header.Get("Allow"))
			}
			// A GET operation's path allows HEAD.
			res := do(t, srv.base, "PUT", "/items", "")
			if allow := strings.Split(strings.ReplaceAll(res.Header.Get("Allow"), " ", ""), ","); res.StatusCode != 405 || !slices.Equal(allow, []string{"GET", "HEAD"}) {
				t.Errorf("PUT /items: %d, Allow %q; want 405, Allow GET, HEAD", res.StatusCode, res.Header.Get("Allow"))
			}
			if res := do(t, srv.base, "HEAD", "/nope", ""); res.StatusCode != 404 {
				t.Errorf("HEAD /nope: %d, want 404", res.StatusCode)
			}
		})
	}
}

// A HEAD route beside a GET operation takes the HEAD requests the guard
// serves as that operation. New told the app to name it unguarded, and
// New then took it: HEAD without a credential ran the GET operation's
// handler (helper-147). It is refused either way, with what to do.
func TestHeadRouteBesideAGetOperationRefused(t *testing.T) {
	table, err := policy.Compile("head.yaml", []byte(headSpec))
	if err != nil {
		t.Fatal(err)
	}
	ok := func(http.ResponseWriter, *http.Request) {}
	routes := func(extra func(r chi.Router)) chi.Router {
		r := chi.NewRouter()
		r.Get("/items", ok)
		r.Post("/writes", ok)
		r.Get("/both", ok)
		r.Head("/both", ok)
		r.Get("/sub/{x}", ok)
		extra(r)
		return r
	}
	auth := guard.WithAuthenticator(policy.SchemeOAuth2, oneToken{token: "t", subject: "alice"})
	limiter := guard.WithLimiter(limits.New(limits.NewMemoryStore(nil)))
	for _, c := range []struct {
		name      string
		extra     func(r chi.Router)
		unguarded []string
		want      string
	}{
		{"a HEAD route, unnamed", func(r chi.Router) { r.Head("/items", ok) }, nil,
			"route HEAD /items has no operation in head.yaml, and the guard serves HEAD as operation listItems (GET /items): remove the route (chi's Handle and HandleFunc route every method: route the document's alone), or declare head for the path in the document"},
		{"a HEAD route named unguarded", func(r chi.Router) { r.Head("/items", ok) }, []string{"HEAD /items"},
			"unguarded route HEAD /items would take the HEAD requests of operation listItems (GET /items) of head.yaml, which the guard serves as that operation: remove the route, or declare head for the path in the document"},
		{"a HEAD route of another pattern, named unguarded", func(r chi.Router) { r.Head("/sub/{name:[a-z]+}", ok) }, []string{"HEAD /sub/{name:[a-z]+}"},
			"unguarded route HEAD /sub/{name:[a-z]+} would take the HEAD requests of operation getSub (GET /sub/{x}) of head.yaml"},
		{"a HEAD route catching all, named unguarded", func(r chi.Router) { r.Head("/*", ok) }, []string{"HEAD /*"},
			"unguarded route HEAD /* would take the HEAD requests of operation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := guard.New(table, routes(c.extra), auth, limiter, guard.WithUnguarded(c.unguarded...))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: %v\nwant an error holding %q", err, c.want)
			}
		})
	}
	// A HEAD route where the document declares head is its operation's, and
	// one where no GET operation is may be named unguarded.
	g, err := guard.New(table, routes(func(r chi.Router) { r.Head("/health", ok) }), auth, limiter, guard.WithUnguarded("HEAD /health"))
	if err != nil {
		t.Fatalf("an unguarded HEAD route of a path without operations: %v", err)
	}
	if w := serve(g, "HEAD", "/items"); w.Code != http.StatusUnauthorized {
		t.Errorf("HEAD /items without a token: %d, want 401", w.Code)
	}
}

// A catch-all HEAD route at the root, beside a router mounted at /api, does
// not take the HEAD requests of the mounted operations: chi gives every
// request under /api to the mounted router first. It was refused (a static
// site beside a mounted API; helper-151).
func TestHeadCatchAllBesideAMountedRouter(t *testing.T) {
	table, err := policy.Compile("mounted.yaml", []byte(`
openapi: 3.0.3
info: {title: mounted, version: "1"}
security:
  - oauth2: [a:read]
x-rate-limit: false
paths:
  /api/items:
    get:
      operationId: listItems
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    oauth2:
      type: oauth2
      flows: {password: {tokenUrl: /token, scopes: {a:read: read}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	static := func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Static", "1") }
	router := func(inside bool) chi.Router {
		r := chi.NewRouter()
		r.Route("/api", func(api chi.Router) {
			api.Get("/items", static)
			if inside {
				api.Head("/*", static)
			}
		})
		r.Get("/*", static)
		r.Head("/*", static)
		return r
	}
	auth := guard.WithAuthenticator(policy.SchemeOAuth2, oneToken{token: "t", subject: "alice"})
	g, err := guard.New(table, router(false), auth, guard.WithUnguarded("GET /*", "HEAD /*"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if w := serve(g, "HEAD", "/api/items"); w.Code != http.StatusUnauthorized {
		t.Errorf("HEAD /api/items without a token: %d, want 401", w.Code)
	}
	if w := serve(g, "HEAD", "/index.html"); w.Code != http.StatusOK || w.Header().Get("X-Static") != "1" {
		t.Errorf("HEAD /index.html: %d, want the static handler's 200", w.Code)
	}
	// Inside the mounted router, a catch-all HEAD route does take them.
	if _, err := guard.New(table, router(true), auth, guard.WithUnguarded("GET /*", "HEAD /*", "HEAD /api/*")); err == nil || !strings.Contains(err.Error(), "unguarded route HEAD /api/* would take the HEAD requests of operation listItems") {
		t.Errorf("a catch-all HEAD route inside the mounted router: %v", err)
	}
}
