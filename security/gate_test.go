package security_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/redistest"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/limits/redislimit"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/redisstore"
	"github.com/specguard/specguard/security/tokens"
)

const gateSpec = `
openapi: 3.0.3
info: {title: gate, version: "1"}
paths:
  /items:
    get:
      operationId: listItems
      security:
        - oauth2: [a:read]
      x-rate-limit:
        - {name: anon, limit: 2, window: 1h, key: ip, who: anonymous}
        - {name: user, limit: 3, window: 1h, key: principal, who: authenticated}
      responses:
        '200': {description: ok}
    post:
      operationId: addItem
      security:
        - oauth2: [a:write]
      x-rate-limit:
        - {name: anon, limit: 100, window: 1h, key: ip, who: anonymous}
      responses:
        '200': {description: ok}
components:
  securitySchemes:
    oauth2:
      type: oauth2
      flows:
        password:
          tokenUrl: /token
          scopes: {a:read: read, a:write: write}
`

type gateEnv struct {
	srv    *redistest.Server
	trips  *redistest.RoundTrips
	tokens *tokens.Service
	store  *redisstore.Store
	h      http.Handler
}

// newGateEnv is a guard whose token store and rate limits share one Redis
// client, as package service wires them.
func newGateEnv(t *testing.T) *gateEnv {
	t.Helper()
	return newWrappedGateEnv(t, nil)
}

// newWrappedGateEnv is newGateEnv with the token store wrapped by wrap
// (a user's metrics, say) when wrap is not nil.
func newWrappedGateEnv(t *testing.T, wrap func(security.Store) security.Store) *gateEnv {
	t.Helper()
	srv := redistest.StartOwn(t) // TestGateStoreDown stops it
	rdb := srv.Client(t)
	trips := &redistest.RoundTrips{}
	rdb.AddHook(trips)
	table, err := policy.Compile("gate.yaml", []byte(gateSpec))
	if err != nil {
		t.Fatal(err)
	}
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	store := redisstore.New(rdb, srv.Prefix, time.Second)
	var held security.Store = store
	if wrap != nil {
		held = wrap(store)
	}
	ts, err := tokens.New("specguard", "specguard", key, held)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }
	r.Get("/items", ok)
	r.Post("/items", ok)
	limiter := limits.New(redislimit.New(rdb, srv.Prefix+"rl:"), limits.WithTimeout(time.Second))
	g, err := guard.New(table, r,
		guard.WithAuthenticator(policy.SchemeOAuth2, tokens.Bearer{Tokens: ts}),
		guard.WithLimiter(limiter), guard.WithoutRequestValidation())
	if err != nil {
		t.Fatal(err)
	}
	return &gateEnv{srv: srv, trips: trips, tokens: ts, store: store, h: g}
}

func (e *gateEnv) do(method, token, ip string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/items", nil)
	req.RemoteAddr = net.JoinHostPort(ip, "1234")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

// A guarded bearer request on Redis costs one round trip: the revocation
// check rides in the rate-limit script.
func TestGateOneRoundTrip(t *testing.T) {
	e := newGateEnv(t)
	pair, err := e.tokens.Login(context.Background(), "alice", "user", []string{"a:read"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if w := e.do("GET", pair.Access, "192.0.2.1"); w.Code != 200 { // loads the script (EVALSHA, then EVAL)
		t.Fatalf("first request: %d %s", w.Code, w.Body)
	}
	before := e.trips.N.Load()
	w := e.do("GET", pair.Access, "192.0.2.1")
	if w.Code != 200 {
		t.Fatalf("second request: %d %s", w.Code, w.Body)
	}
	if n := e.trips.N.Load() - before; n != 1 {
		t.Fatalf("a guarded bearer request made %d Redis round trips, want 1", n)
	}
	if got := w.Header().Get("RateLimit"); got != `"user";r=1;t=2400` {
		t.Errorf("RateLimit %q: the principal's tier should have been charged twice", got)
	}
}

// countingStore is a user's wrapper of a store: it counts the checks that
// reach it.
type countingStore struct {
	security.Store
	checks atomic.Int64
}

func (c *countingStore) Check(ctx context.Context, ch security.Check) error {
	c.checks.Add(1)
	return c.Store.Check(ctx, ch)
}

// unwrappingStore is countingStore with Unwrap.
type unwrappingStore struct{ *countingStore }

func (u unwrappingStore) Unwrap() security.Store { return u.Store }

// A wrapper of the Redis store keeps the one round trip when it has
// Unwrap, and knows nothing of scripts; without Unwrap the check is a
// call of its own, through the wrapper, and the request is still decided.
func TestGateOneRoundTripThroughAWrapper(t *testing.T) {
	for _, tc := range []struct {
		name          string
		unwrap        bool
		trips, checks int64
	}{
		{"with Unwrap", true, 1, 0},
		{"without Unwrap", false, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counting := &countingStore{}
			e := newWrappedGateEnv(t, func(s security.Store) security.Store {
				counting.Store = s
				if tc.unwrap {
					return unwrappingStore{counting}
				}
				return counting
			})
			pair, err := e.tokens.Login(context.Background(), "alice", "user", []string{"a:read"}, "test")
			if err != nil {
				t.Fatal(err)
			}
			if w := e.do("GET", pair.Access, "192.0.2.1"); w.Code != 200 { // loads the scripts
				t.Fatalf("first request: %d %s", w.Code, w.Body)
			}
			trips, checks := e.trips.N.Load(), counting.checks.Load()
			if w := e.do("GET", pair.Access, "192.0.2.1"); w.Code != 200 {
				t.Fatalf("second request: %d %s", w.Code, w.Body)
			}
			if n := e.trips.N.Load() - trips; n != tc.trips {
				t.Errorf("a guarded bearer request made %d Redis round trips, want %d", n, tc.trips)
			}
			if n := counting.checks.Load() - checks; n != tc.checks {
				t.Errorf("the wrapper's Check was called %d times, want %d", n, tc.checks)
			}
			if err := e.tokens.Revoke(context.Background(), "alice", pair.AccessClaims.Family); err != nil {
				t.Fatal(err)
			}
			if w := e.do("GET", pair.Access, "192.0.2.1"); w.Code != 401 {
				t.Errorf("after its login was revoked: %d, want 401", w.Code)
			}
		})
	}
}

// A revoked token is refused as invalid, its subject's bucket is not
// charged, and the request counts against the anonymous tier of its IP.
func TestGateRevokedTokenChargesOnlyTheIP(t *testing.T) {
	e := newGateEnv(t)
	ctx := context.Background()
	victim, err := e.tokens.Login(ctx, "victim", "user", []string{"a:read"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if w := e.do("GET", victim.Access, "192.0.2.9"); w.Code != 200 {
		t.Fatalf("before revocation: %d", w.Code)
	}
	if err := e.store.RevokeFamily(ctx, "victim", victim.AccessClaims.Family); err != nil {
		t.Fatal(err)
	}
	// The first attempt finds the token revoked in the rate-limit script,
	// which then charges the anonymous tiers instead: one round trip. The
	// instance remembers the revocation: a replay is refused without
	// asking the store, its one round trip the anonymous decision.
	if w := e.do("GET", "", "203.0.113.1"); w.Code != 401 { // loads the anonymous decision's script
		t.Fatalf("anonymous: %d", w.Code)
	}
	for i, want := range []int{401, 401, 429} { // anon: 2 per hour per IP
		before := e.trips.N.Load()
		w := e.do("GET", victim.Access, "198.51.100.7")
		if w.Code != want {
			t.Fatalf("revoked token, attempt %d: %d, want %d (%s)", i+1, w.Code, want, w.Body)
		}
		if n := e.trips.N.Load() - before; n != 1 {
			t.Errorf("revoked token, attempt %d: %d Redis round trips, want 1", i+1, n)
		}
		if want == 401 && !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("attempt %d: WWW-Authenticate %q", i+1, w.Header().Get("WWW-Authenticate"))
		}
	}
	// The victim logs in again: their bucket still holds 2 of 3.
	again, err := e.tokens.Login(ctx, "victim", "user", []string{"a:read"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	w := e.do("GET", again.Access, "192.0.2.9")
	if w.Code != 200 || w.Header().Get("RateLimit") != `"user";r=1;t=2400` {
		t.Fatalf("victim after the attack: %d RateLimit %q, want 200 with 1 left", w.Code, w.Header().Get("RateLimit"))
	}
}

// A revoked token lacking the operation's scope is invalid (401), not
// merely short of scope (403), as when the check was not deferred; the
// request is counted as anonymous in the same script that found it
// revoked.
func TestGateRevokedBeatsScope(t *testing.T) {
	e := newGateEnv(t)
	ctx := context.Background()
	pair, err := e.tokens.Login(ctx, "bob", "user", []string{"a:read"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if w := e.do("POST", pair.Access, "192.0.2.3"); w.Code != 403 {
		t.Fatalf("valid token without a:write: %d, want 403", w.Code)
	}
	if err := e.store.RevokeFamily(ctx, "bob", pair.AccessClaims.Family); err != nil {
		t.Fatal(err)
	}
	before := e.trips.N.Load()
	w := e.do("POST", pair.Access, "192.0.2.3")
	if w.Code != 401 {
		t.Fatalf("revoked token without a:write: %d, want 401", w.Code)
	}
	// Found revoked and charged as anonymous in one script.
	if n := e.trips.N.Load() - before; n != 1 {
		t.Errorf("revoked token without a:write: %d Redis round trips, want 1", n)
	}
	if got := w.Header().Get("RateLimit"); !strings.HasPrefix(got, `"anon";`) {
		t.Errorf("revoked token without a:write: RateLimit %q, want the anonymous tier", got)
	}
}

// A valid token refused for too few scopes is charged as anonymous with
// its revocation check in the same script: one round trip, not a check and
// then a decision.
func TestGateRefusedOneRoundTrip(t *testing.T) {
	e := newGateEnv(t)
	pair, err := e.tokens.Login(context.Background(), "dave", "user", []string{"a:read"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if w := e.do("POST", pair.Access, "192.0.2.5"); w.Code != 403 { // loads the script
		t.Fatalf("first request: %d %s", w.Code, w.Body)
	}
	before := e.trips.N.Load()
	w := e.do("POST", pair.Access, "192.0.2.5")
	if w.Code != 403 {
		t.Fatalf("valid token without a:write: %d, want 403", w.Code)
	}
	if n := e.trips.N.Load() - before; n != 1 {
		t.Errorf("a request refused for its scopes made %d Redis round trips, want 1", n)
	}
	if got := w.Header().Get("RateLimit"); got != `"anon";r=98;t=72` {
		t.Errorf("RateLimit %q, want the anonymous tier charged twice", got)
	}
}

// With Redis down the gated path fails closed: 503, whatever the tiers'
// on-store-error says.
func TestGateStoreDown(t *testing.T) {
	e := newGateEnv(t)
	pair, err := e.tokens.Login(context.Background(), "carol", "user", []string{"a:read"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Stop()
	w := e.do("GET", pair.Access, "192.0.2.4")
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("Redis down: %d %q, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
}
