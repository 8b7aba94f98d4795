package guard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/tokens"
)

// A handler set on a mounted router's own pattern is served in place of
// the mounted router's routes, whose operations the guard resolves: New
// refuses it (chi.Walk does not report it).
func TestNewRefusesAHandlerOverAMount(t *testing.T) {
	table, err := policy.Compile("mount.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
security: [{bearer: []}]
x-rate-limit: false
paths:
  /api/status:
    get:
      operationId: status
      security: []
      responses: {'200': {description: ok}}
  /api/v1/admin:
    get:
      operationId: admin
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`))
	if err != nil {
		t.Fatal(err)
	}
	ok := func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "documented") }
	undocumented := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "undocumented") })
	auth := guard.WithAuthenticator(policy.SchemeBearer, tokens.Bearer{})
	mounted := func() (chi.Router, chi.Router) {
		r := chi.NewRouter()
		var api chi.Router
		r.Route("/api", func(sub chi.Router) {
			api = sub
			sub.Get("/status", ok)
			sub.Route("/v1", func(v1 chi.Router) { v1.Get("/admin", ok) })
		})
		return r, api
	}
	r, _ := mounted()
	g, err := guard.New(table, r, auth, guard.WithoutRequestValidation())
	if err != nil {
		t.Fatalf("mounted routers alone: %v", err)
	}
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("GET", "/api/status", nil))
	if w.Code != http.StatusOK || w.Body.String() != "documented" {
		t.Fatalf("GET /api/status: %d %q", w.Code, w.Body)
	}

	for _, c := range []struct {
		name string
		over func(outer, api chi.Router)
		want string
	}{
		{"Handle on the mount", func(outer, _ chi.Router) { outer.Handle("/api/*", undocumented) }, "route GET /api/* is served by a handler of its own"},
		{"Get on the mount", func(outer, _ chi.Router) { outer.Get("/api/*", undocumented) }, "route GET /api/* is served by a handler of its own"},
		{"on a nested mount", func(_, api chi.Router) { api.Post("/v1/*", undocumented) }, "route POST /api/v1/* is served by a handler of its own"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, api := mounted()
			c.over(r, api)
			_, err := guard.New(table, r, auth, guard.WithoutRequestValidation())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v, want an error naming %q", err, c.want)
			}
		})
	}
}

// A tier that counts by API key counts a bearer token minted from a key
// (the client_credentials grant) on an operation that takes bearer
// tokens only, as it does where an API key is accepted too: the document
// default's tier is kept there, not dropped as one that never applies.
func TestKeyTierCountsTokensMintedFromAKey(t *testing.T) {
	table, err := policy.Compile("keytier.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
security: [{bearer: []}]
x-rate-limit:
  - {name: anon, limit: 100, window: 1m, key: ip, who: anonymous}
  - {name: per-key, limit: 2, window: 1m, key: apikey, who: authenticated}
paths:
  /bearer-only:
    get:
      operationId: bearerOnly
      responses: {'200': {description: ok}}
  /bearer-or-key:
    get:
      operationId: bearerOrKey
      security: [{bearer: []}, {key: []}]
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    key: {type: apiKey, in: header, name: X-API-Key}
`))
	if err != nil {
		t.Fatal(err)
	}
	store := security.NewMemoryStore(nil)
	signing, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys := apikeys.New(store, security.NewMemoryKeyRecords(nil))
	svc, err := tokens.New("https://issuer.test", "aud", signing, store, tokens.WithAPIKeys(keys))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, k, err := keys.Create(ctx, "alice", "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	r.Get("/bearer-only", ok)
	r.Get("/bearer-or-key", ok)
	g, err := guard.New(table, r,
		guard.WithAuthenticator(policy.SchemeBearer, tokens.Bearer{Tokens: svc}),
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
		guard.WithoutRequestValidation())
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/bearer-or-key", "/bearer-only"} {
		// A token of its own per path: the tiers are the operation's.
		pair, err := svc.MintForKey(ctx, k, "user", nil)
		if err != nil {
			t.Fatal(err)
		}
		var codes []int
		for range 3 {
			req := httptest.NewRequest("GET", path, nil)
			req.Header.Set("Authorization", "Bearer "+pair.Access)
			w := httptest.NewRecorder()
			g.ServeHTTP(w, req)
			codes = append(codes, w.Code)
		}
		if fmt.Sprint(codes) != "[200 200 429]" {
			t.Errorf("%s: a token minted from a key, 3 calls under a 2 per minute per-key tier: %v, want [200 200 429]", path, codes)
		}
	}
}
