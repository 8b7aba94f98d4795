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
	"github.com/specguard/specguard/security/oidc"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/security/tokens"
)

// tenantKeys is a service's own Authenticator whose principals carry a
// claim of its own, tenant, and say so.
type tenantKeys map[string]*security.Principal

func (k tenantKeys) Authenticate(_ context.Context, r *http.Request, s *policy.Scheme) (*security.Principal, error) {
	v := r.Header.Get(s.Param)
	if v == "" {
		return nil, nil
	}
	if p, ok := k[v]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: unknown key", security.ErrInvalid)
}

func (tenantKeys) Carries(_ *policy.Scheme, claim string) bool {
	return claim == security.ClaimSubject || claim == "tenant"
}

// plainKeys is the same Authenticator without Carries: its principals
// carry their subject alone, as far as the guard knows.
type plainKeys struct{ tenantKeys }

func (plainKeys) Carries() {} // not guard.ClaimCarrier's method

const tenantSpec = `openapi: 3.0.3
info: {title: tenants, version: "1"}
security: [{key: []}]
paths:
  /reports:
    get:
      operationId: listReports
      x-rate-limit: {name: per-tenant, limit: 2, window: 1m, key: 'claim:tenant', who: authenticated}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
`

// A claim: tier counts by what the service's own Authenticator puts in
// Principal.Claims, once that Authenticator says it carries the claim:
// the policy compiler no longer decides which credentials carry which
// claims. Without the declaration the guard refuses the tier, naming the
// operation and the field, instead of counting every caller by address.
func TestClaimTiersOfYourOwnAuthenticator(t *testing.T) {
	table, err := policy.Compile("tenants.yaml", []byte(tenantSpec))
	if err != nil {
		t.Fatal(err)
	}
	keys := tenantKeys{
		"k-ann": {Subject: "ann", Claims: map[string]string{"tenant": "acme"}},
		"k-bob": {Subject: "bob", Claims: map[string]string{"tenant": "acme"}},
		"k-cy":  {Subject: "cy", Claims: map[string]string{"tenant": "globex"}},
	}
	router := func() chi.Router {
		r := chi.NewRouter()
		r.Get("/reports", func(w http.ResponseWriter, _ *http.Request) {})
		return r
	}
	_, err = guard.New(table, router(), guard.WithAuthenticator(policy.SchemeAPIKeyHeader, plainKeys{keys}),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	want := "tenants.yaml:6: GET /reports (listReports): x-rate-limit[0]: key claim:tenant: no credential this operation accepts carries it (each authenticator says which claims it carries: guard.ClaimCarrier)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("an authenticator that does not say it carries tenant: %v, want %q", err, want)
	}
	// Check says the same without a router, as a service does before it
	// opens its stores; and what else no router is needed to see.
	if err := guard.Check(table, guard.WithAuthenticator(policy.SchemeAPIKeyHeader, plainKeys{keys})); err == nil ||
		!strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "GET /reports (listReports): declares x-rate-limit but the guard has no limiter") {
		t.Errorf("Check without a limiter, of an authenticator that does not say it carries tenant: %v", err)
	}
	if err := guard.Check(table, guard.WithLimiter(limits.New(limits.NewMemoryStore(nil)))); err == nil || !strings.Contains(err.Error(), "GET /reports (listReports): no authenticator for scheme key (apiKey in header)") {
		t.Errorf("Check without an authenticator: %v", err)
	}
	if err := guard.Check(table, guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys), guard.WithLimiter(limits.New(limits.NewMemoryStore(nil)))); err != nil {
		t.Errorf("Check of an authenticator that carries tenant: %v", err)
	}

	g, err := guard.New(table, router(), guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if err != nil {
		t.Fatal(err)
	}
	get := func(key, ip string) int {
		req := httptest.NewRequest("GET", "/reports", nil)
		req.Header.Set("X-Key", key)
		req.RemoteAddr = ip + ":1234"
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		return w.Code
	}
	// Two people of one tenant, from two addresses, share its budget of 2.
	if a, b, c := get("k-ann", "192.0.2.1"), get("k-bob", "192.0.2.2"), get("k-ann", "192.0.2.3"); a != 200 || b != 200 || c != 429 {
		t.Errorf("acme's three calls: %d %d %d, want 200 200 429", a, b, c)
	}
	if got := get("k-cy", "192.0.2.1"); got != 200 {
		t.Errorf("another tenant: %d, want 200", got)
	}
}

// A tier of the document's default is written for every operation: it is
// refused only when no credential of any operation carries its claim.
func TestDefaultClaimTierNeedsOneCarrier(t *testing.T) {
	spec := strings.Replace(tenantSpec, "security: [{key: []}]\n", "security: [{key: []}]\nx-rate-limit: {name: d, limit: 5, window: 1m, key: 'claim:tenant', who: authenticated}\n", 1)
	spec = strings.Replace(spec, "      x-rate-limit: {name: per-tenant, limit: 2, window: 1m, key: 'claim:tenant', who: authenticated}\n", "", 1)
	table, err := policy.Compile("tenants.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/reports", func(w http.ResponseWriter, _ *http.Request) {})
	_, err = guard.New(table, r, guard.WithAuthenticator(policy.SchemeAPIKeyHeader, plainKeys{}), guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if want := "tenants.yaml: x-rate-limit (document default): key claim:tenant: no credential of any operation carries it"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%v, want %q", err, want)
	}
	if _, err := guard.New(table, r, guard.WithAuthenticator(policy.SchemeAPIKeyHeader, tenantKeys{}), guard.WithLimiter(limits.New(limits.NewMemoryStore(nil)))); err != nil {
		t.Fatalf("an authenticator that carries tenant: %v", err)
	}
}

// specguard's own credentials say what they carry: tokens sub, role and
// fam; API keys and sessions sub and role; outside tokens any claim.
func TestOwnCredentialsSayWhichClaimsTheyCarry(t *testing.T) {
	for _, c := range []struct {
		name  string
		a     guard.ClaimCarrier
		carry map[string]bool
	}{
		{"tokens", tokens.Bearer{}, map[string]bool{"sub": true, "role": true, "fam": true, "tenant": false}},
		{"API keys", &apikeys.Service{}, map[string]bool{"sub": true, "role": true, "fam": false, "tenant": false}},
		{"sessions", &sessions.Service{}, map[string]bool{"sub": true, "role": true, "fam": false, "tenant": false}},
		{"outside tokens", &oidc.Authenticator{}, map[string]bool{"sub": true, "fam": true, "tenant": true}},
	} {
		for claim, want := range c.carry {
			if got := c.a.Carries(nil, claim); got != want {
				t.Errorf("%s carry %s: %v, want %v", c.name, claim, got, want)
			}
		}
	}
	// What they carry is what Principal.Claim answers.
	p := &security.Principal{Subject: "u1", Role: "admin", Claims: map[string]string{"fam": "f1", "tenant": "acme", "role": "forged"}}
	for claim, want := range map[string]string{"sub": "u1", "role": "admin", "fam": "f1", "tenant": "acme", "plan": ""} {
		if got := p.Claim(claim); got != want {
			t.Errorf("Claim(%s) = %q, want %q", claim, got, want)
		}
	}
	// An outside token's claims are its own, its role included, namespaced
	// by its scheme as its subject is: never another provider's bucket, nor
	// one of specguard's own accounts'.
	out := &security.Principal{Subject: "partner:u1", Scheme: "partner", Claims: map[string]string{"tenant": "acme", "role": "admin"},
		Credentials: []security.Credential{security.NewCredential(security.KindExternal, "")}}
	for claim, want := range map[string]string{"sub": "partner:u1", "role": "partner:admin", "tenant": "partner:acme", "plan": ""} {
		if got := out.Claim(claim); got != want {
			t.Errorf("outside token: Claim(%s) = %q, want %q", claim, got, want)
		}
	}
}

const credentialTiersSpec = `openapi: 3.0.3
info: {title: tiers, version: "1"}
paths:
  /by-key:
    get:
      operationId: byKey
      security: [{key: []}, {bearer: []}]
      x-rate-limit: {name: per-key, limit: 1, window: 1m, key: apikey, who: authenticated}
      responses: {'200': {description: ok}}
  /by-session:
    get:
      operationId: bySession
      security: [{cookie: []}]
      x-rate-limit: {name: per-session, limit: 1, window: 1m, key: session, who: authenticated}
      responses: {'200': {description: ok}}
  /both:
    get:
      operationId: both
      security: [{key: [], cookie: []}]
      x-rate-limit:
        - {name: both-key, limit: 1, window: 1m, key: apikey, who: authenticated}
        - {name: both-session, limit: 1, window: 1m, key: session, who: authenticated}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
    cookie: {type: apiKey, in: cookie, name: sid}
    bearer: {type: http, scheme: bearer}
`

// Tiers keyed by apikey and by session count each credential on its own,
// by the id the principal's credential carries: two keys (or two
// sessions) of one account have a budget each, and a token minted from a
// key spends that key's; a token of a login has no key and is not counted
// by the key's tier. Credentials required together spend each its own
// tier's budget.
func TestCredentialTiersCountByTheCredential(t *testing.T) {
	table, err := policy.Compile("tiers.yaml", []byte(credentialTiersSpec))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store := security.NewMemoryStore(nil)
	keys := apikeys.New(store, security.NewMemoryKeyRecords(nil))
	ss := sessions.New(store, func(string) []string { return nil })
	signing, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tokens.New("iss", "aud", signing, store, tokens.WithAPIKeys(keys))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/by-key", func(http.ResponseWriter, *http.Request) {})
	r.Get("/by-session", func(http.ResponseWriter, *http.Request) {})
	r.Get("/both", func(http.ResponseWriter, *http.Request) {})
	g, err := guard.New(table, r, guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys),
		guard.WithAuthenticator(policy.SchemeBearer, tokens.Bearer{Tokens: ts}),
		guard.WithAuthenticator(policy.SchemeAPIKeyCookie, ss),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if err != nil {
		t.Fatal(err)
	}
	k1, rec1, err := keys.Create(ctx, "alice", "one", nil)
	if err != nil {
		t.Fatal(err)
	}
	k2, _, err := keys.Create(ctx, "alice", "two", nil)
	if err != nil {
		t.Fatal(err)
	}
	minted, err := ts.MintForKey(ctx, rec1, "user", nil)
	if err != nil {
		t.Fatal(err)
	}
	login, err := ts.Login(ctx, "alice", "user", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	s1, err := ss.Create(ctx, "alice", "user", "one")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := ss.Create(ctx, "alice", "user", "two")
	if err != nil {
		t.Fatal(err)
	}
	k3, _, err := keys.Create(ctx, "alice", "three", nil)
	if err != nil {
		t.Fatal(err)
	}
	s3, err := ss.Create(ctx, "alice", "user", "three")
	if err != nil {
		t.Fatal(err)
	}
	do := func(path, header, value string) int {
		req := httptest.NewRequest("GET", path, nil)
		switch path {
		case "/both":
			req.Header.Set("X-Key", k3)
			req.Header.Set("Cookie", "sid="+s3.Cookie)
		default:
			req.Header.Set(header, value)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if path == "/both" && w.Code == 200 {
			// Both tiers applied: each names itself in the RateLimit field.
			if rl := w.Header().Get("RateLimit"); !strings.Contains(rl, `"both-key";r=0`) || !strings.Contains(rl, `"both-session";r=0`) {
				t.Errorf("key and session together: RateLimit %q, want both tiers spent", rl)
			}
		}
		return w.Code
	}
	for _, c := range []struct {
		name, path, header, value string
		want                      int
	}{
		{"key one", "/by-key", "X-Key", k1, 200},
		{"key one again", "/by-key", "X-Key", k1, 429},
		{"a token minted from key one", "/by-key", "Authorization", "Bearer " + minted.Access, 429},
		{"key two", "/by-key", "X-Key", k2, 200},
		{"key two again", "/by-key", "X-Key", k2, 429},
		{"a login's token (no key)", "/by-key", "Authorization", "Bearer " + login.Access, 200},
		{"a login's token again", "/by-key", "Authorization", "Bearer " + login.Access, 200},
		{"session one", "/by-session", "Cookie", "sid=" + s1.Cookie, 200},
		{"session one again", "/by-session", "Cookie", "sid=" + s1.Cookie, 429},
		{"session two", "/by-session", "Cookie", "sid=" + s2.Cookie, 200},
		{"session two again", "/by-session", "Cookie", "sid=" + s2.Cookie, 429},
		// Required together: the key's budget and the session's are spent.
		{"key three with session three", "/both", "", "", 200},
		{"key three with session three again", "/both", "", "", 429},
	} {
		if got := do(c.path, c.header, c.value); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// A nil pointer given as the authenticator or the limiter is none: New
// refuses it, as it refuses none (it panicked at the first request that
// presented a credential). A tokens.Bearer without its Tokens refuses
// every token it is given as unavailable (503), without panicking.
func TestNilAuthenticatorOrLimiterRefused(t *testing.T) {
	table, err := policy.Compile("t.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
security: [{b: []}]
x-rate-limit:
  - {name: all, limit: 10, window: 1m, key: ip}
paths:
  /q:
    get:
      operationId: q
      responses: {"200": {description: ok}, "401": {description: no}, "503": {description: down}}
components:
  securitySchemes:
    b: {type: http, scheme: bearer}
`))
	if err != nil {
		t.Fatal(err)
	}
	router := func() chi.Router {
		r := chi.NewRouter()
		r.Get("/q", func(http.ResponseWriter, *http.Request) {})
		return r
	}
	limiter := guard.WithLimiter(limits.New(limits.NewMemoryStore(nil)))
	for _, c := range []struct {
		opts []guard.Option
		want string
	}{
		{[]guard.Option{guard.WithAuthenticator(policy.SchemeBearer, (*tokens.Bearer)(nil)), limiter},
			"GET /q (q): the authenticator for scheme b (http bearer) is a nil *tokens.Bearer"},
		{[]guard.Option{guard.WithAuthenticator(policy.SchemeBearer, (*apikeys.Service)(nil)), limiter},
			"GET /q (q): the authenticator for scheme b (http bearer) is a nil *apikeys.Service"},
		{[]guard.Option{guard.WithAuthenticator(policy.SchemeBearer, tokens.Bearer{}), guard.WithLimiter((*limits.Limiter)(nil))},
			"GET /q (q): declares x-rate-limit but the guard's limiter is a nil *limits.Limiter"},
	} {
		if _, err := guard.New(table, router(), c.opts...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New: %v, want %q", err, c.want)
		}
		if err := guard.Check(table, c.opts...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check: %v, want %q", err, c.want)
		}
	}
	g, err := guard.New(table, router(), guard.WithAuthenticator(policy.SchemeBearer, tokens.Bearer{}), limiter)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/q", nil)
	req.Header.Set("Authorization", "Bearer a.b.c")
	w := httptest.NewRecorder()
	g.ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("a token given to tokens.Bearer{}: %d, want 503", w.Code)
	}
}
