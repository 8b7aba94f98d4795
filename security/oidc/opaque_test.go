package oidc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/oidc"
	"github.com/specguard/specguard/security/redisstore"
	"github.com/specguard/specguard/security/tokens"
)

// twoProvidersSpec has one operation accepting the tokens of providers a
// (x-introspect as given) and b, in that order.
func twoProvidersSpec(a, b *fakeOP, aIntrospect string) string {
	return `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{a: []}, {b: []}]
      x-rate-limit: [{name: ip, limit: 1000000, window: 1s, key: ip}] # introspection needs a tier counting anonymous callers
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    a:
      type: openIdConnect
      openIdConnectUrl: ` + a.srv.URL + `/.well-known/openid-configuration
      x-audience: api
      x-introspect: ` + aIntrospect + `
    b:
      type: openIdConnect
      openIdConnectUrl: ` + b.srv.URL + `/.well-known/openid-configuration
      x-audience: api
`
}

// Opaque tokens were introspected at every provider listed before their
// own: with two introspecting providers on one operation, provider a
// received provider b's live tokens, and a specguard API key sent as a
// bearer token by mistake was posted to a's introspection. Now a provider
// introspects only the opaque tokens that are its own (x-introspect: a
// prefix, or every one no other provider's prefix claims), and never one
// of specguard's own credentials.
func TestOpaqueTokensGoToTheirOwnerOnly(t *testing.T) {
	a, b := newFakeOP(t), newFakeOP(t)
	exp := time.Now().Add(time.Hour).Unix()
	active := func(tok string) (int, string) {
		return 200, fmt.Sprintf(`{"active":true,"sub":%q,"scope":"read","aud":"api","exp":%d}`, tok, exp)
	}
	a.introspect, b.introspect = active, active
	table, err := policy.Compile("spec.yaml", []byte(twoProvidersSpec(a, b, "{prefix: a_}")))
	if err != nil {
		t.Fatal(err)
	}
	creds := oidc.Settings{ClientID: "rs", ClientSecret: "rs-secret"}
	auth, err := oidc.New(context.Background(), table,
		oidc.WithSettings("a", creds), oidc.WithSettings("b", creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	deadline := time.Now().Add(10 * time.Second)
	for st := auth.Status(); !st[0].Ready || !st[1].Ready; st = auth.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("providers not ready: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	check := func(scheme, token string) error {
		r := httptest.NewRequest(http.MethodGet, "/things", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		_, err := auth.Authenticate(context.Background(), r, table.Schemes[scheme])
		return err
	}
	apiKey := security.APIKeyPrefix + "AAAAAAAAAAAAAAAAAAAAAA." + b64(make([]byte, 32))
	for _, c := range []struct {
		name, scheme, token string
		introspected        *fakeOP // nil: nobody
	}{
		{"b's token at a", "a", "b-live-token", nil},
		{"b's token at b", "b", "b-live-token", b},
		{"a's token at b", "b", "a_live-token", nil},
		{"a's token at a", "a", "a_live-token", a},
		{"an API key at a", "a", apiKey, nil},
		{"an API key at b", "b", apiKey, nil},
	} {
		beforeA, beforeB := a.introspections.Load(), b.introspections.Load()
		err := check(c.scheme, c.token)
		gotA, gotB := a.introspections.Load()-beforeA, b.introspections.Load()-beforeB
		switch c.introspected {
		case nil:
			if !errors.Is(err, security.ErrInvalid) || !errors.Is(err, security.ErrUnclaimed) {
				t.Errorf("%s: %v, want invalid and unclaimed (another scheme may take it)", c.name, err)
			}
			if gotA+gotB != 0 {
				t.Errorf("%s: sent to introspection (a %d, b %d times), want never", c.name, gotA, gotB)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			if want := map[bool][2]int64{true: {1, 0}, false: {0, 1}}[c.introspected == a]; gotA != want[0] || gotB != want[1] {
				t.Errorf("%s: introspected at a %d and b %d times, want %v", c.name, gotA, gotB, want)
			}
		}
	}
}

// Made-up opaque tokens filled the 16 introspection slots, and real users'
// uncached tokens then got 503; every junk request became an
// authenticated call to the provider, even from a client past its
// anonymous limit. Such a credential is charged to the client's anonymous
// budget before anything is sent out, and a token waits for a slot a
// short while only: a flood of junk from one client costs the provider a
// burst, and real users next to it are served.
func TestJunkOpaqueTokensDoNotStarveRealOnes(t *testing.T) {
	op := newFakeOP(t)
	exp := time.Now().Add(time.Hour).Unix()
	var junk, real atomic.Int64
	op.introspect = func(tok string) (int, string) {
		time.Sleep(100 * time.Millisecond) // a provider under load
		if len(tok) > 5 && tok[:5] == "real-" {
			real.Add(1)
			return 200, fmt.Sprintf(`{"active":true,"sub":%q,"scope":"read","aud":"api","exp":%d}`, tok, exp)
		}
		junk.Add(1)
		return 200, `{"active":false}`
	}
	const anonBurst = 5
	spec := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{partner: [read]}]
      x-rate-limit:
        - {name: anon, limit: ` + fmt.Sprint(anonBurst) + `, window: 1m, key: ip, who: anonymous}
        - {name: user, limit: 1000, window: 1m, key: principal, who: authenticated}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    partner:
      type: openIdConnect
      openIdConnectUrl: ` + op.srv.URL + `/.well-known/openid-configuration
      x-audience: api
`
	table, err := policy.Compile("spec.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := oidc.New(context.Background(), table,
		oidc.WithSettings("partner", oidc.Settings{ClientID: "rs", ClientSecret: "rs-secret"}),
		oidc.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	for deadline := time.Now().Add(10 * time.Second); !auth.Status()[0].Ready; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("provider not ready")
		}
	}
	r := chi.NewRouter()
	r.Get("/things", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	g, err := guard.New(table, r, guard.WithAuthenticator(policy.SchemeOIDC, auth),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if err != nil {
		t.Fatal(err)
	}
	do := func(ip, token string) int {
		req := httptest.NewRequest(http.MethodGet, "/things", nil)
		req.RemoteAddr = ip + ":1234"
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		return w.Code
	}
	const flood, users = 300, 20
	statuses := make(chan int, flood)
	usersOK := make(chan int, users)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Add(1)
		go func() { defer wg.Done(); statuses <- do("203.0.113.66", fmt.Sprintf("junk-%d", i)) }()
	}
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 10 * time.Millisecond) // in the middle of the flood
			usersOK <- do(fmt.Sprintf("198.51.100.%d", i+1), fmt.Sprintf("real-%d", i))
		}()
	}
	wg.Wait()
	close(statuses)
	close(usersOK)
	codes := map[int]int{}
	for c := range statuses {
		codes[c]++
	}
	if codes[401] > anonBurst || codes[429] < flood-anonBurst {
		t.Errorf("the flood was answered %v: want at most %d verified (401), the rest 429", codes, anonBurst)
	}
	if n := junk.Load(); n > anonBurst {
		t.Errorf("%d junk tokens reached the provider, want at most %d (the client's anonymous burst)", n, anonBurst)
	}
	for c := range usersOK {
		if c != 200 {
			t.Errorf("a real user next to the flood: %d, want 200", c)
		}
	}
	if n := real.Load(); n != users {
		t.Errorf("%d real tokens introspected, want %d", n, users)
	}
}

// slowRecords counts (and slows) the reads of API-key records.
type slowRecords struct {
	*security.MemoryKeyRecords
	delay       time.Duration
	reads, most atomic.Int64
	inFlight    atomic.Int64
}

func (s *slowRecords) APIKey(ctx context.Context, id string) (*security.APIKey, error) {
	s.reads.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	time.Sleep(s.delay)
	return s.MemoryKeyRecords.APIKey(ctx, id)
}

// API-key ids that do not exist reached the database before any rate
// limit applied, and waited without bound for one of its 4 reads. A key
// this instance has not seen is charged to the client's anonymous budget
// before its record is read, and a read waits a short while for a slot.
func TestMadeUpAPIKeysAreLimitedBeforeTheDatabase(t *testing.T) {
	spec := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{key: []}]
      x-rate-limit:
        - {name: anon, limit: 5, window: 1m, key: ip, who: anonymous}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
`
	table, err := policy.Compile("spec.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	records := &slowRecords{MemoryKeyRecords: security.NewMemoryKeyRecords(nil)}
	keys := apikeys.New(security.NewMemoryStore(nil), records)
	r := chi.NewRouter()
	r.Get("/things", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	g, err := guard.New(table, r, guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if err != nil {
		t.Fatal(err)
	}
	do := func(ip string, i int) int {
		req := httptest.NewRequest(http.MethodGet, "/things", nil)
		req.RemoteAddr = ip + ":1234"
		req.Header.Set("X-API-Key", fmt.Sprintf("%sMADEUP%016d.%s", security.APIKeyPrefix, i, b64(make([]byte, 32))))
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		return w.Code
	}
	t.Run("one client", func(t *testing.T) {
		codes := map[int]int{}
		for i := range 50 {
			codes[do("203.0.113.7", i)]++
		}
		if codes[401] != 5 || codes[429] != 45 || records.reads.Load() != 5 {
			t.Errorf("50 made-up keys from one client: %v and %d reads, want 5 refused after a read (401) and 45 limited (429) before one",
				codes, records.reads.Load())
		}
	})
	t.Run("many clients, a slow database", func(t *testing.T) {
		records.delay = 300 * time.Millisecond // longer than a read waits for a slot
		codes := make(chan int, 40)
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() { defer wg.Done(); codes <- do(fmt.Sprintf("198.51.100.%d", i+1), 100+i) }()
		}
		wg.Wait()
		close(codes)
		got := map[int]int{}
		for c := range codes {
			got[c]++
		}
		if records.most.Load() > 4 {
			t.Errorf("%d reads in flight at once, want 4 at most", records.most.Load())
		}
		if got[503] == 0 || got[401]+got[503] != 40 {
			t.Errorf("40 made-up keys from 40 clients on a slow database: %v, want the reads that could not start in time answered 503", got)
		}
	})
}

// On a Redis Cluster a request's credential check and its tiers go
// alongside, and what the tiers charged is refunded when the check fails:
// replaying a victim's revoked token drained the victim's bucket until the
// refunds landed. A credential the store once said was revoked is refused
// without asking it again: its replays charge nothing.
func TestRevokedTokenReplaysChargeNothing(t *testing.T) {
	cl := redistest.StartCluster(t)
	rdb := cl.Client(t)
	prefix := cl.Nodes[0].Prefix
	store := redisstore.New(rdb, prefix, 3*time.Second)
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tokens.New("iss", "aud", key, store)
	if err != nil {
		t.Fatal(err)
	}
	spec := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{bearer: []}]
      x-rate-limit:
        - {name: user, limit: 10, window: 1h, key: principal, who: authenticated}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`
	table, err := policy.Compile("spec.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	limiter := limits.New(redislimit.New(rdb, prefix+"rl:"), limits.WithTimeout(3*time.Second),
		limits.WithStoreObserver(func(time.Duration, error) { calls.Add(1) }))
	r := chi.NewRouter()
	r.Get("/things", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	g, err := guard.New(table, r, guard.WithAuthenticator(policy.SchemeBearer, tokens.Bearer{Tokens: ts}),
		guard.WithLimiter(limiter))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	revoked, err := ts.Login(ctx, "victim", "user", nil, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	live, err := ts.Login(ctx, "victim", "user", nil, "phone")
	if err != nil {
		t.Fatal(err)
	}
	do := func(token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/things", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		return w
	}
	if w := do(revoked.Access); w.Code != 200 {
		t.Fatalf("before the logout: %d", w.Code)
	}
	if err := store.RevokeFamily(ctx, "victim", revoked.AccessClaims.Family); err != nil {
		t.Fatal(err)
	}
	if w := do(revoked.Access); w.Code != 401 {
		t.Fatalf("the first replay: %d, want 401", w.Code)
	}
	before := calls.Load()
	for i := range 20 {
		if w := do(revoked.Access); w.Code != 401 {
			t.Fatalf("replay %d: %d, want 401", i+2, w.Code)
		}
	}
	if n := calls.Load() - before; n != 0 {
		t.Errorf("20 replays of a token known revoked made %d rate-limit store calls, want 0", n)
	}
	// The victim's bucket holds the first two requests' charges at most
	// (the first replay's is refunded).
	w := do(live.Access)
	if w.Code != 200 || !strings.Contains(w.Header().Get("RateLimit"), "r=8") && !strings.Contains(w.Header().Get("RateLimit"), "r=7") {
		t.Errorf("the victim's own request: %d, RateLimit %q; want 200 with 7 or 8 left of 10", w.Code, w.Header().Get("RateLimit"))
	}
}

// An operation whose tiers all count verified callers only (or that is
// unlimited) charged nothing before introspecting a token: 200 made-up
// opaque tokens from one client were 200 calls to the provider. Giving a
// scheme client credentials (introspection) is refused while an operation
// that accepts it has no tier counting anonymous callers.
func TestIntrospectionNeedsATierCountingAnonymousCallers(t *testing.T) {
	for _, c := range []struct {
		tiers, introspect string
		creds             bool
		refused           bool
	}{
		{"false", "", true, true},
		{"[{name: user, limit: 10, window: 1s, key: principal, who: authenticated}]", "", true, true},
		{"[{name: user, limit: 10, window: 1s, key: principal, who: authenticated}]", "{prefix: 'op_'}", true, true},
		{"[{name: ip, limit: 10, window: 1s, key: ip, who: anonymous}]", "", true, false},
		{"[{name: all, limit: 10, window: 1s, key: global}]", "", true, false},
		{"false", "false", true, false},
		{"false", "", false, false},
	} {
		spec := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{partner: []}]
      x-rate-limit: ` + c.tiers + `
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    partner:
      type: openIdConnect
      openIdConnectUrl: https://id.example.com/.well-known/openid-configuration
      x-audience: api
`
		if c.introspect != "" {
			spec += "      x-introspect: " + c.introspect + "\n"
		}
		table, err := policy.Compile("spec.yaml", []byte(spec))
		if err != nil {
			t.Fatal(err)
		}
		var set oidc.Settings
		if c.creds {
			set = oidc.Settings{ClientID: "api", ClientSecret: "s3cret"}
		}
		a, err := oidc.New(context.Background(), table, oidc.WithSettings("partner", set))
		if err == nil {
			a.Close()
		}
		const want = `oidc.WithSettings("partner"): spec.yaml:5: GET /things (listThings) accepts partner, whose opaque tokens are introspected, but no tier of its x-rate-limit counts anonymous callers`
		if c.refused && (err == nil || !strings.HasPrefix(err.Error(), want)) {
			t.Errorf("x-rate-limit %s, x-introspect %q, credentials %v: %v, want refused", c.tiers, c.introspect, c.creds, err)
		} else if !c.refused && err != nil {
			t.Errorf("x-rate-limit %s, x-introspect %q, credentials %v: %v", c.tiers, c.introspect, c.creds, err)
		}
	}
}
