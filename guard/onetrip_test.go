package guard

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/redisstore"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/security/tokens"
)

// threeKindsSpec is one operation, GET /things, that a bearer token, an
// API key or a session cookie admits, limited by tier.
func threeKindsSpec(tier string) []byte {
	return []byte(`
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{bearer: []}, {key: []}, {cookie: []}]
      x-rate-limit:
        - ` + tier + `
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    key: {type: apiKey, in: header, name: X-API-Key}
    cookie: {type: apiKey, in: cookie, name: sid}
`)
}

// The private one-round-trip path is found by type assertions on hooks
// that limits and security fill in: when a signature changes on one side
// only, the guard would silently lose it. This test says so instead.
func TestOneTripIsResolved(t *testing.T) {
	table, err := policy.Compile("t.yaml", threeKindsSpec("{name: per-ip, limit: 10, window: 1m, key: ip}"))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/things", func(http.ResponseWriter, *http.Request) {})
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// No connection is made until a command is sent.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	store := redisstore.New(rdb, "t:", 0)
	ts, err := tokens.New("i", "a", key, store)
	if err != nil {
		t.Fatal(err)
	}
	auths := []Option{
		WithAuthenticator(policy.SchemeBearer, tokens.Bearer{Tokens: ts}),
		WithAuthenticator(policy.SchemeAPIKeyHeader, apikeys.New(store, security.NewMemoryKeyRecords(nil))),
		WithAuthenticator(policy.SchemeAPIKeyCookie, sessions.New(store, table.RoleScopes)),
	}
	if d, ok := onetrip.Deferred(&tokens.Bearer{Tokens: ts}).(deferFunc); !ok || d == nil {
		t.Error("a *tokens.Bearer has no deferred form: given by pointer, it would lose the one round trip")
	}
	for _, c := range []struct {
		name   string
		store  limits.Store
		defers bool
	}{
		{"redis", redislimit.New(rdb, "t:rl:"), true},
		// The memory stack defers nothing, but its authenticators still
		// take the guard's reading of the clock through their private forms.
		{"memory", limits.NewMemoryStore(nil), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := New(table, r, append(auths, WithLimiter(limits.New(c.store)))...)
			if err != nil {
				t.Fatal(err)
			}
			if g.decideFn == nil {
				t.Error("the limiter's private decision was not found (onetrip.Decider's type and decideFunc differ)")
			}
			if g.defer_ != c.defers {
				t.Errorf("defers = %v, want %v", g.defer_, c.defers)
			}
			if len(g.deferFns) != len(auths) {
				t.Errorf("%d authenticators have a private form, want %d (a kind's onetrip.RegisterDeferrer and deferFunc differ?)", len(g.deferFns), len(auths))
			}
		})
	}
}

// With only the rate-limit store down, a signed-in caller whose token the
// credential store (here in memory) held is decided by the tier's
// on-store-error, as an anonymous caller is: allow lets both in. It was
// answered 503, as though its credential could not be checked.
func TestLimitStoreDownLeavesACheckedCallerToTheTier(t *testing.T) {
	table, err := policy.Compile("t.yaml", []byte(`
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{bearer: []}, {}]
      x-rate-limit:
        - {name: per-ip, limit: 10, window: 1m, key: ip, on-store-error: allow}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/things", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tokens.New("iss", "aud", key, security.NewMemoryStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	g, err := New(table, r, WithAuthenticator(policy.SchemeBearer, tokens.Bearer{Tokens: ts}),
		WithLimiter(limits.New(redislimit.New(dead, "rl:"))))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ts.Login(t.Context(), "alice", "user", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	for name, auth := range map[string]string{"anonymous": "", "signed in": "Bearer " + pair.Access} {
		req := httptest.NewRequest("GET", "/things", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Errorf("%s: %d %s, want 200 (on-store-error: allow)", name, w.Code, w.Body)
		}
	}
}
