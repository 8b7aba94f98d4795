package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/oidc"
	"github.com/specguard/specguard/security/tokens"
)

// fakeOP is an httptest OpenID provider whose answers a test controls.
type fakeOP struct {
	srv *httptest.Server

	rsa *rsa.PrivateKey   // kid "rsa", alg RS256
	ec  *ecdsa.PrivateKey // kid "ec", no alg (restricted by its type)
	ed  ed25519.PrivateKey

	mu         sync.Mutex
	discovery  func(w http.ResponseWriter) // nil: the normal document
	withEC     bool                        // publish the EC key too
	extraKeys  []map[string]string         // published beside the others
	jwksFail   bool                        // answer key fetches 503
	jwksBody   string                      // answer key fetches 200 with this, when set
	introspect func(token string) (int, string)
	issuer     string

	discoveries, jwksFetches, introspections atomic.Int64
}

func newFakeOP(t testing.TB) *fakeOP {
	t.Helper()
	op := &fakeOP{}
	var err error
	if op.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if op.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, op.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	op.withEC = true
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		op.discoveries.Add(1)
		op.mu.Lock()
		d := op.discovery
		op.mu.Unlock()
		if d != nil {
			d(w)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{
			"issuer": op.iss(), "jwks_uri": op.srv.URL + "/jwks", "introspection_endpoint": op.srv.URL + "/introspect",
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		op.jwksFetches.Add(1)
		op.mu.Lock()
		defer op.mu.Unlock()
		if op.jwksFail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if op.jwksBody != "" {
			fmt.Fprint(w, op.jwksBody)
			return
		}
		keys := []map[string]string{
			{"kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig", "n": b64(op.rsa.N.Bytes()), "e": b64(big.NewInt(int64(op.rsa.E)).Bytes())},
			{"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(op.ed.Public().(ed25519.PublicKey))},
		}
		if op.withEC {
			keys = append(keys, map[string]string{"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(op.ec.X.FillBytes(make([]byte, 32))), "y": b64(op.ec.Y.FillBytes(make([]byte, 32)))})
		}
		keys = append(keys, op.extraKeys...)
		json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		op.introspections.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "rs" || secret != "rs-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		op.mu.Lock()
		f := op.introspect
		op.mu.Unlock()
		status, body := f(r.PostFormValue("token"))
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	})
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	op.introspect = func(string) (int, string) { return 200, `{"active":false}` }
	return op
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (op *fakeOP) iss() string {
	if op.issuer != "" {
		return op.issuer
	}
	return op.srv.URL
}

func (op *fakeOP) set(f func()) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f()
}

// claims are a token's claims: a valid one for audience "api" unless
// changed.
func (op *fakeOP) claims(mods ...func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"iss": op.iss(), "sub": "u1", "aud": "api", "exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(), "scope": "read write", "tenant": "acme"}
	for _, m := range mods {
		m(c)
	}
	return c
}

func (op *fakeOP) sign(t testing.TB, method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	} else {
		delete(tok.Header, "kid")
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (op *fakeOP) rs256(t testing.TB, mods ...func(jwt.MapClaims)) string {
	return op.sign(t, jwt.SigningMethodRS256, "rsa", op.rsa, op.claims(mods...))
}

func oidcSpec(url, extra string) string {
	return `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{partner: [read]}]
      x-rate-limit: [{name: ip, limit: 1000000, window: 1s, key: ip}] # introspection needs a tier counting anonymous callers
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    partner:
      type: openIdConnect
      openIdConnectUrl: ` + url + `/.well-known/openid-configuration
      x-audience: [api, api2]
` + extra
}

type oidcEnv struct {
	op     *fakeOP
	auth   *oidc.Authenticator
	scheme *policy.Scheme
	status chan oidc.Status
}

func newOIDCEnv(t *testing.T, op *fakeOP, extra string, opts ...oidc.Option) *oidcEnv {
	t.Helper()
	table, err := policy.Compile("spec.yaml", []byte(oidcSpec(op.srv.URL, extra)))
	if err != nil {
		t.Fatal(err)
	}
	e := &oidcEnv{op: op, scheme: table.Schemes["partner"], status: make(chan oidc.Status, 1000)}
	opts = append([]oidc.Option{
		oidc.WithSettings("partner", oidc.Settings{ClientID: "rs", ClientSecret: "rs-secret"}),
		oidc.WithStatus(func(s oidc.Status) { e.status <- s }),
		oidc.WithHTTPClient(&http.Client{Timeout: 500 * time.Millisecond}),
	}, opts...)
	e.auth, err = oidc.New(context.Background(), table, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.auth.Close)
	return e
}

// ready waits until the provider's keys are loaded.
func (e *oidcEnv) ready(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !e.auth.Status()[0].Ready {
		if time.Now().After(deadline) {
			t.Fatalf("provider never became ready: %+v", e.auth.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *oidcEnv) check(token string) (*security.Principal, error) {
	r := httptest.NewRequest(http.MethodGet, "/things", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return e.auth.Authenticate(context.Background(), r, e.scheme)
}

func TestOIDCAcceptsProviderTokens(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	p, err := e.check(op.rs256(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "partner:u1" || p.Scheme != "partner" || p.Credential(security.KindExternal) == nil || strings.Join(p.Scopes, " ") != "read write" {
		t.Errorf("principal %+v", p)
	}
	if got := p.Claim("tenant"); got != "partner:acme" || p.Claims["tenant"] != "acme" {
		t.Errorf("claim tenant = %q (as counted), %q (as given): want partner:acme and acme", got, p.Claims["tenant"])
	}
	if got := p.Claim("sub"); got != "partner:u1" {
		t.Errorf("claim sub = %q: an outside subject must stay namespaced", got)
	}
	// The second audience of the list; scp as an array; EdDSA; PS256 with
	// the RSA key (its alg is RS256: refused); ES256 with the EC key that
	// has no alg (allowed by its type).
	cases := []struct {
		name  string
		token string
		want  string // scopes, or "" for refused
	}{
		{"audience from the list", op.rs256(t, func(c jwt.MapClaims) { c["aud"] = []string{"other", "api2"} }), "read write"},
		{"scp as an array", op.rs256(t, func(c jwt.MapClaims) { delete(c, "scope"); c["scp"] = []string{"write", "read"} }), "read write"},
		{"scp as a string", op.rs256(t, func(c jwt.MapClaims) { delete(c, "scope"); c["scp"] = "read" }), "read"},
		// Scopes are separated by spaces alone (RFC 6749 3.3): a value
		// with other white space in it is no scope.
		{"a token of many groups, past 4 KiB", op.rs256(t, func(c jwt.MapClaims) { c["groups"] = manyGroups(120) }), "read write"},
		{"scopes separated by two spaces", op.rs256(t, func(c jwt.MapClaims) { c["scope"] = "write  read" }), "read write"},
		{"a no-break space in a scope", op.rs256(t, func(c jwt.MapClaims) { c["scope"] = "read write\u00a0admin" }), "read"},
		{"a tab in a scope", op.rs256(t, func(c jwt.MapClaims) { c["scope"] = "read\tadmin write" }), "write"},
		{"a line break in a scope", op.rs256(t, func(c jwt.MapClaims) { c["scope"] = "read admin\u2028write" }), "read"},
		{"EdDSA", op.sign(t, jwt.SigningMethodEdDSA, "ed", op.ed, op.claims()), "read write"},
		{"ES256 on a key without alg", op.sign(t, jwt.SigningMethodES256, "ec", op.ec, op.claims()), "read write"},
		{"kid-less token tried against the keys", op.sign(t, jwt.SigningMethodES256, "", op.ec, op.claims()), "read write"},
		{"kid-less RS256", op.sign(t, jwt.SigningMethodRS256, "", op.rsa, op.claims()), "read write"},
		{"PS256 with an RS256 key", op.sign(t, jwt.SigningMethodPS256, "rsa", op.rsa, op.claims()), ""},
		{"ES384 on a P-256 key without alg", op.sign(t, jwt.SigningMethodES384, "ec", mustP384(t), op.claims()), ""},
		{"RS256 naming the EC key", op.sign(t, jwt.SigningMethodRS256, "ec", op.rsa, op.claims()), ""},
		{"wrong audience", op.rs256(t, func(c jwt.MapClaims) { c["aud"] = "someone-else" }), ""},
		{"no audience", op.rs256(t, func(c jwt.MapClaims) { delete(c, "aud") }), ""},
		{"no exp", op.rs256(t, func(c jwt.MapClaims) { delete(c, "exp") }), ""},
		{"expired beyond leeway", op.rs256(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), ""},
		{"expired within leeway", op.rs256(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-30 * time.Second).Unix() }), "read write"},
		{"not yet valid", op.rs256(t, func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(5 * time.Minute).Unix() }), ""},
		{"issued in the future", op.rs256(t, func(c jwt.MapClaims) { c["iat"] = time.Now().Add(5 * time.Minute).Unix() }), ""},
		{"exp as a string", op.rs256(t, func(c jwt.MapClaims) { c["exp"] = fmt.Sprint(time.Now().Add(time.Hour).Unix()) }), ""},
		{"issuer with a trailing slash", op.rs256(t, func(c jwt.MapClaims) { c["iss"] = op.iss() + "/" }), ""},
		{"another issuer", op.rs256(t, func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), ""},
		{"no subject", op.rs256(t, func(c jwt.MapClaims) { delete(c, "sub") }), ""},
		{"client_id for subject", op.rs256(t, func(c jwt.MapClaims) { delete(c, "sub"); c["client_id"] = "svc" }), "read write"},
		// A sub that is no name is not a token without one: its client
		// does not stand for it.
		{"a number for subject, and a client_id", op.rs256(t, func(c jwt.MapClaims) { c["sub"] = 42; c["client_id"] = "svc" }), ""},
		{"an empty subject, and a client_id", op.rs256(t, func(c jwt.MapClaims) { c["sub"] = ""; c["client_id"] = "svc" }), ""},
		{"alg none", noneToken(op.claims()), ""},
		{"HS256 with the public key as secret", op.sign(t, jwt.SigningMethodHS256, "rsa", publicPEM(t, &op.rsa.PublicKey), op.claims()), ""},
		{"HS256 with the modulus as secret", op.sign(t, jwt.SigningMethodHS256, "rsa", op.rsa.N.Bytes(), op.claims()), ""},
		{"crit header", critToken(t, op), ""},
		{"exp in another case, as a string", op.rs256(t, func(c jwt.MapClaims) { delete(c, "exp"); c["EXP"] = fmt.Sprint(time.Now().Add(time.Hour).Unix()) }), ""},
		{"aud in another case", op.rs256(t, func(c jwt.MapClaims) { c["Aud"] = "api"; c["aud"] = "x" }), ""},
		{"bound to a key (cnf)", op.rs256(t, func(c jwt.MapClaims) { c["cnf"] = map[string]string{"jkt": "abc"} }), ""},
		{"a Keycloak ID token", op.rs256(t, func(c jwt.MapClaims) { c["typ"] = "ID" }), ""},
		{"a Keycloak access token", op.rs256(t, func(c jwt.MapClaims) { c["typ"] = "Bearer" }), "read write"},
		{"exp out of range", op.rs256(t, func(c jwt.MapClaims) { c["exp"] = 1e300 }), ""},
		{"jku to another key set", jkuToken(t, op), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := e.check(c.token)
			if c.want == "" {
				if err == nil || !errors.Is(err, security.ErrInvalid) {
					t.Fatalf("accepted or wrong error: %+v, %v", p, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(p.Scopes, " "); got != c.want {
				t.Errorf("scopes %q, want %q", got, c.want)
			}
		})
	}
}

// manyGroups is a groups claim of n GUIDs, as Entra lists them.
func manyGroups(n int) []string {
	groups := make([]string, n)
	for i := range groups {
		groups[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
	}
	return groups
}

func mustP384(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func publicPEM(t *testing.T, k *rsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func noneToken(c jwt.MapClaims) string {
	s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	return s
}

func critToken(t *testing.T, op *fakeOP) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, op.claims())
	tok.Header["kid"] = "rsa"
	tok.Header["crit"] = []string{"exp"}
	s, err := tok.SignedString(op.rsa)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jkuToken is signed by a key of the attacker's, with a kid the provider
// does not publish and a jku pointing at a key set holding it.
func jkuToken(t *testing.T, op *fakeOP) string {
	evil, _ := rsa.GenerateKey(rand.Reader, 2048)
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, op.claims())
	tok.Header["kid"] = "evil"
	tok.Header["jku"] = "https://evil.example/jwks"
	tok.Header["jwk"] = map[string]string{"kty": "RSA", "n": b64(evil.N.Bytes()), "e": "AQAB"}
	s, err := tok.SignedString(evil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOIDCScopesClaim: x-scopes-claim reads the scopes from the claim it
// names, a string or an array.
func TestOIDCScopesClaim(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "      x-scopes-claim: roles\n")
	e.ready(t)
	p, err := e.check(op.rs256(t, func(c jwt.MapClaims) { c["roles"] = []string{"read", "admin"} }))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Scopes, " "); got != "admin read" {
		t.Errorf("scopes %q, want the roles claim's", got)
	}
}

// TestOIDCDeclaredIssuers: x-issuers replaces the discovery issuer, and a
// token of another issuer is refused before any key is looked up.
func TestOIDCDeclaredIssuers(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "      x-issuers: [https://one.example, https://two.example]\n")
	e.ready(t)
	if _, err := e.check(op.rs256(t, func(c jwt.MapClaims) { c["iss"] = "https://two.example" })); err != nil {
		t.Fatal(err)
	}
	before := op.jwksFetches.Load()
	_, err := e.check(op.rs256(t))
	if !errors.Is(err, security.ErrInvalid) || !errors.Is(err, security.ErrUnclaimed) {
		t.Fatalf("discovery issuer not declared: %v", err)
	}
	if op.jwksFetches.Load() != before {
		t.Error("a token of another issuer made a key fetch")
	}
}

// TestOIDCUnknownKidsFetchOnce: a flood of tokens with unknown kids makes
// at most one key fetch, and none of them waits for the next.
func TestOIDCUnknownKidsFetchOnce(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	before := op.jwksFetches.Load()
	start := time.Now()
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for i := range 1000 {
		tok := op.sign(t, jwt.SigningMethodRS256, fmt.Sprintf("unknown-%d", i), op.rsa, op.claims())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.check(tok); err == nil {
				accepted.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := op.jwksFetches.Load() - before; got > 1 {
		t.Errorf("%d key fetches for 1,000 unknown kids, want at most 1", got)
	}
	if accepted.Load() != 0 {
		t.Errorf("%d tokens with unknown kids accepted", accepted.Load())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("1,000 unknown kids took %v: requests queued behind the fetch", d)
	}
}

// TestOIDCKeyRotation: a token signed with a key published after start is
// accepted once the key set is fetched again for its unknown kid.
func TestOIDCKeyRotation(t *testing.T) {
	op := newFakeOP(t)
	op.withEC = false
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	tok := op.sign(t, jwt.SigningMethodES256, "ec", op.ec, op.claims())
	op.set(func() { op.withEC = true }) // the provider rotates in a new key
	if _, err := e.check(tok); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
}

// TestOIDCDiscoveryFailures: a slow, failing or garbage discovery document
// leaves the scheme's tokens undecided (ErrUnavailable), never accepted,
// and is retried until it works.
func TestOIDCDiscoveryFailures(t *testing.T) {
	cases := []struct {
		name string
		d    func(http.ResponseWriter)
	}{
		{"slow", func(w http.ResponseWriter) { time.Sleep(time.Second) }},
		{"5xx", func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) }},
		{"garbage", func(w http.ResponseWriter) { fmt.Fprint(w, "<html>sign in</html>") }},
		{"no jwks_uri", func(w http.ResponseWriter) { fmt.Fprint(w, `{"issuer":"https://x"}`) }},
		{"jwks over plain http elsewhere", func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"issuer":"https://x","jwks_uri":"http://keys.example.com/jwks"}`)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			op := newFakeOP(t)
			op.discovery = c.d
			e := newOIDCEnv(t, op, "")
			select {
			case st := <-e.status:
				if st.Err == nil || st.Ready {
					t.Fatalf("status %+v, want a failure", st)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no failure reported")
			}
			_, err := e.check(op.rs256(t))
			if !errors.Is(err, security.ErrUnavailable) {
				t.Fatalf("token while discovery fails: %v, want ErrUnavailable", err)
			}
			op.set(func() { op.discovery = nil })
			e.ready(t)
			if _, err := e.check(op.rs256(t)); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
		})
	}
}

// TestOIDCProviderDown: once keys are fetched, JWTs keep working while the
// provider is down; opaque tokens cannot be decided: ErrUnavailable.
func TestOIDCProviderDown(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "", oidc.WithRefresh(50*time.Millisecond))
	e.ready(t)
	tok := op.rs256(t)
	op.srv.Close()
	time.Sleep(200 * time.Millisecond) // refreshes fail meanwhile
	if _, err := e.check(tok); err != nil {
		t.Fatalf("JWT with fetched keys while the provider is down: %v", err)
	}
	if _, err := e.check(op.rs256(t, func(c jwt.MapClaims) { c["sub"] = "u2" })); err != nil {
		t.Fatalf("a new JWT with fetched keys while the provider is down: %v", err)
	}
	_, err := e.check("opaque-token-1")
	if !errors.Is(err, security.ErrUnavailable) {
		t.Fatalf("opaque token while the provider is down: %v, want ErrUnavailable", err)
	}
	if st := e.auth.Status()[0]; st.Err == nil || !st.Ready {
		t.Errorf("status %+v, want ready with an error", st)
	}
}

func TestOIDCIntrospection(t *testing.T) {
	op := newFakeOP(t)
	exp := time.Now().Add(time.Hour).Unix()
	var mu sync.Mutex
	active := map[string]string{
		"good":          fmt.Sprintf(`{"active":true,"sub":"u9","scope":"read","aud":"api","exp":%d,"iss":%q,"tenant":"t1"}`, exp, op.srv.URL),
		"aud-list":      fmt.Sprintf(`{"active":true,"client_id":"svc","scope":"read","aud":["x","api2"],"exp":%d}`, exp),
		"other":         fmt.Sprintf(`{"active":true,"sub":"u9","scope":"read","aud":"elsewhere","exp":%d}`, exp),
		"expired":       fmt.Sprintf(`{"active":true,"sub":"u9","scope":"read","aud":"api","exp":%d}`, time.Now().Add(-time.Hour).Unix()),
		"wrong-iss":     fmt.Sprintf(`{"active":true,"sub":"u9","scope":"read","aud":"api","exp":%d,"iss":"https://evil"}`, exp),
		"string-active": `{"active":"true","sub":"u9","aud":"api"}`,
		"refresh":       fmt.Sprintf(`{"active":true,"sub":"u9","scope":"read","aud":"api","exp":%d,"token_type":"refresh_token"}`, exp),
		"dpop":          fmt.Sprintf(`{"active":true,"sub":"u9","scope":"read","aud":"api","exp":%d,"token_type":"DPoP"}`, exp),
		"kc-refresh":    fmt.Sprintf(`{"active":true,"sub":"u9","scope":"read","aud":"api","exp":%d,"typ":"Refresh"}`, exp),
		"use-refresh":   fmt.Sprintf(`{"active":true,"sub":"u9","scope":"read","aud":"api","exp":%d,"token_use":"refresh_token"}`, exp),
		"exp-inf":       `{"active":true,"sub":"u9","aud":"api","exp":-1e400}`,
		"nbf-inf":       fmt.Sprintf(`{"active":true,"sub":"u9","aud":"api","exp":%d,"nbf":1e400}`, exp),
		"nbf-huge":      fmt.Sprintf(`{"active":true,"sub":"u9","aud":"api","exp":%d,"nbf":1e19}`, exp),
		"no-exp":        `{"active":true,"sub":"u9","aud":"api"}`,
		"cnf":           fmt.Sprintf(`{"active":true,"sub":"u9","aud":"api","exp":%d,"cnf":{"jkt":"x"}}`, exp),
		"kc-bearer":     fmt.Sprintf(`{"active":true,"sub":"u9","scope":"read","aud":"api","exp":%d,"typ":"Bearer","token_type":"Bearer"}`, exp),
		"broken":        `{"active":`,
		"sub-number":    fmt.Sprintf(`{"active":true,"sub":42,"client_id":"svc","scope":"read","aud":"api","exp":%d}`, exp),
		"sub-empty":     fmt.Sprintf(`{"active":true,"sub":"","client_id":"svc","scope":"read","aud":"api","exp":%d}`, exp),
		"slow":          fmt.Sprintf(`{"active":true,"sub":"u9","scope":"read","aud":"api","exp":%d}`, exp),
	}
	op.introspect = func(tok string) (int, string) {
		mu.Lock()
		body, ok := active[tok]
		mu.Unlock()
		switch {
		case tok == "fails":
			return 500, "oops"
		case tok == "slow":
			time.Sleep(100 * time.Millisecond)
		case !ok:
			return 200, `{"active":false}`
		}
		return 200, body
	}
	clock := time.Now()
	var clockMu sync.Mutex
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	e := newOIDCEnv(t, op, "", oidc.WithClock(now), oidc.WithIntrospectionTTL(10*time.Second))
	e.ready(t)

	p, err := e.check("good")
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "partner:u9" || strings.Join(p.Scopes, " ") != "read" || p.Claim("tenant") != "partner:t1" || p.Credential(security.KindExternal) == nil {
		t.Errorf("principal %+v", p)
	}
	if p, err := e.check("aud-list"); err != nil || p.Subject != "partner:svc" {
		t.Errorf("audience list, client_id subject: %+v, %v", p, err)
	}
	if _, err := e.check("kc-bearer"); err != nil {
		t.Errorf("a Keycloak-style access token: %v", err)
	}
	for _, tok := range []string{"unknown", "other", "expired", "wrong-iss", "refresh", "dpop", "kc-refresh", "use-refresh", "exp-inf", "nbf-inf", "nbf-huge", "no-exp", "cnf", "sub-number", "sub-empty"} {
		if _, err := e.check(tok); !errors.Is(err, security.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tok, err)
		}
	}
	for _, tok := range []string{"fails", "string-active", "broken"} {
		if _, err := e.check(tok); !errors.Is(err, security.ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable (undecided, never a pass)", tok, err)
		}
	}

	// Cached: a second check asks nobody; an error is not cached.
	calls := op.introspections.Load()
	if _, err := e.check("good"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.check("unknown"); !errors.Is(err, security.ErrInvalid) {
		t.Fatal(err)
	}
	if got := op.introspections.Load() - calls; got != 0 {
		t.Errorf("%d introspections for cached results", got)
	}
	e.check("fails")
	if got := op.introspections.Load() - calls; got != 1 {
		t.Errorf("%d introspections for a failing token checked again, want 1 (errors are not cached)", got)
	}

	// Revoked at the provider: refused once the TTL passes, not before.
	mu.Lock()
	delete(active, "good")
	mu.Unlock()
	if _, err := e.check("good"); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	clockMu.Lock()
	clock = clock.Add(11 * time.Second)
	clockMu.Unlock()
	if _, err := e.check("good"); !errors.Is(err, security.ErrInvalid) {
		t.Fatalf("revoked, after the TTL: %v", err)
	}

	// One call for many concurrent checks of one token.
	calls = op.introspections.Load()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); e.check("slow") }()
	}
	wg.Wait()
	if got := op.introspections.Load() - calls; got != 1 {
		t.Errorf("%d introspections for 50 concurrent checks of one token, want 1", got)
	}
}

// TestOIDCOpaqueWithoutCredentials: with no introspection credentials an
// opaque token is invalid, and nothing is asked.
func TestOIDCOpaqueWithoutCredentials(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "", oidc.WithSettings("partner", oidc.Settings{}))
	e.ready(t)
	if _, err := e.check("opaque"); !errors.Is(err, security.ErrInvalid) {
		t.Fatalf("opaque without credentials: %v", err)
	}
	if op.introspections.Load() != 0 {
		t.Error("introspected without credentials")
	}
}

// TestOIDCSettingsRefused: settings for a scheme that is not an
// openIdConnect one, a plain-http URL elsewhere, half the credentials.
func TestOIDCSettingsRefused(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(oidcSpec("https://id.example.com", "")))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		s    oidc.Settings
		want string
	}{
		{"partnr", oidc.Settings{URL: "https://x.example"}, `oidc.WithSettings("partnr"): no operation uses an openIdConnect scheme of that name`},
		{"partner", oidc.Settings{URL: "http://id.example.com/"}, `oidc.WithSettings("partner"): URL: "http://id.example.com/": plain http is accepted only on a loopback host; use https`},
		{"partner", oidc.Settings{ClientID: "x"}, `oidc.WithSettings("partner"): give ClientID and ClientSecret both or neither`},
	} {
		_, err := oidc.New(context.Background(), table, oidc.WithSettings(c.name, c.s))
		if err == nil || err.Error() != c.want {
			t.Errorf("%s %+v: %v, want %q", c.name, c.s, err, c.want)
		}
	}
}

// TestOwnTokensFromElsewhereAreUnclaimed: the own-token verifier marks a
// token another issuer made (or an opaque one) unclaimed, so an outside
// scheme on the same operation may take it; a forged token naming this
// issuer stays plainly invalid.
func TestOwnTokensFromElsewhereAreUnclaimed(t *testing.T) {
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := tokens.New(guardtest.Issuer, guardtest.Audience, key, security.NewMemoryStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := svc.Login(context.Background(), "alice", "reader", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	op := newFakeOP(t)
	forged := pair.Access[:len(pair.Access)-4] + "AAAA"
	if forged == pair.Access { // the signature ended in AAAA
		forged = pair.Access[:len(pair.Access)-4] + "BAAA"
	}
	for _, c := range []struct {
		name      string
		token     string
		unclaimed bool
	}{
		{"outside JWT", op.rs256(t), true},
		{"opaque", "opaque-token", true},
		{"forged own token", forged, false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+c.token)
		_, err := tokens.Bearer{Tokens: svc}.Authenticate(context.Background(), r, &policy.Scheme{Name: "bearerAuth", Type: policy.SchemeBearer})
		if !errors.Is(err, security.ErrInvalid) || errors.Is(err, security.ErrUnclaimed) != c.unclaimed {
			t.Errorf("%s: %v, want invalid and unclaimed=%v", c.name, err, c.unclaimed)
		}
	}
}

// BenchmarkAuthenticate measures a bearer request's verification, header
// to principal, of an outside provider's JWT, cached (the same token
// again) and not (an RS256 signature check), and of an introspected opaque
// token found in the cache. Package security's BenchmarkAuthenticate is the
// same for specguard's own tokens.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	request := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/things", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	t := &testing.T{}
	op := newFakeOP(t)
	defer op.srv.Close()
	for _, c := range []struct {
		name string
		size int
	}{{"outside/hit", 100_000}, {"outside/miss-rs256", 0}} {
		b.Run(c.name, func(b *testing.B) {
			e := newOIDCBenchEnv(b, op, oidc.WithCacheSize(c.size))
			r := request(op.rs256(b))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.auth.Authenticate(ctx, r, e.scheme); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("introspection/hit", func(b *testing.B) {
		op.introspect = func(string) (int, string) {
			return 200, `{"active":true,"sub":"u1","scope":"read","aud":"api","exp":` + fmt.Sprint(time.Now().Add(time.Hour).Unix()) + `}`
		}
		e := newOIDCBenchEnv(b, op)
		r := request("an-opaque-token-of-some-forty-characters-x")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.auth.Authenticate(ctx, r, e.scheme); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func newOIDCBenchEnv(b *testing.B, op *fakeOP, opts ...oidc.Option) *oidcEnv {
	b.Helper()
	table, err := policy.Compile("spec.yaml", []byte(oidcSpec(op.srv.URL, "")))
	if err != nil {
		b.Fatal(err)
	}
	e := &oidcEnv{op: op, scheme: table.Schemes["partner"]}
	opts = append([]oidc.Option{oidc.WithSettings("partner", oidc.Settings{ClientID: "rs", ClientSecret: "rs-secret"})}, opts...)
	if e.auth, err = oidc.New(context.Background(), table, opts...); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.auth.Close)
	for deadline := time.Now().Add(10 * time.Second); !e.auth.Status()[0].Ready; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("provider never became ready")
		}
	}
	return e
}

// TestOIDCIntrospectionsBounded: made-up opaque tokens do not turn into a
// flood of calls to the provider.
func TestOIDCIntrospectionsBounded(t *testing.T) {
	op := newFakeOP(t)
	var inFlight, most atomic.Int64
	op.introspect = func(string) (int, string) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(100 * time.Millisecond)
		inFlight.Add(-1)
		return 200, `{"active":false}`
	}
	e := newOIDCEnv(t, op, "", oidc.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
	e.ready(t)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); e.check(fmt.Sprintf("made-up-%d", i)) }()
	}
	wg.Wait()
	if got := most.Load(); got > 16 || got < 2 {
		t.Errorf("%d introspections in flight at once, want between 2 and 16", got)
	}
}

// TestOIDCUnknownKidNotQueued: once the unknown-kid fetch of an interval is
// spent, another unknown kid is refused at once, not held until the next.
func TestOIDCUnknownKidNotQueued(t *testing.T) {
	op := newFakeOP(t)
	// An interval of an hour: a limiter's Wait would hold the second
	// request until the next one, which the hang guard below tells apart
	// from an answer at once without timing it.
	e := newOIDCEnv(t, op, "", oidc.WithUnknownKeyInterval(time.Hour))
	e.ready(t)
	e.check(op.sign(t, jwt.SigningMethodRS256, "unknown-1", op.rsa, op.claims())) // spends the interval's fetch
	second := op.sign(t, jwt.SigningMethodRS256, "unknown-2", op.rsa, op.claims())
	done := make(chan error, 1)
	go func() { _, err := e.check(second); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, security.ErrInvalid) {
			t.Fatalf("second unknown kid: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a second unknown kid is held for the next interval's fetch")
	}
}

// TestOIDCUnknownKidProviderDown: a token whose kid is unknown while the
// keys cannot be fetched is undecided (503), not invalid: the first, which
// spends the interval's fetch, and every one after it in that interval
// (a client told invalid_token throws its token away).
func TestOIDCUnknownKidProviderDown(t *testing.T) {
	op := newFakeOP(t)
	op.withEC = false
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	op.set(func() { op.jwksFail = true })
	for _, sub := range []string{"alice", "bob", "carol"} {
		_, err := e.check(op.sign(t, jwt.SigningMethodES256, "ec", op.ec, op.claims(func(c jwt.MapClaims) { c["sub"] = sub })))
		if !errors.Is(err, security.ErrUnavailable) {
			t.Fatalf("%s: unknown kid while the keys cannot be fetched: %v, want ErrUnavailable", sub, err)
		}
	}
}

// TestOIDCStatusRecovers: a failed key refresh marks the provider down,
// and the next one that succeeds marks it up again.
func TestOIDCStatusRecovers(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "", oidc.WithRefresh(50*time.Millisecond))
	e.ready(t)
	waitStatus := func(down bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); (e.auth.Status()[0].Err != nil) != down; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("status %+v, want down=%v", e.auth.Status()[0], down)
			}
		}
	}
	op.set(func() { op.jwksFail = true })
	waitStatus(true)
	op.set(func() { op.jwksFail = false })
	waitStatus(false)
}

// TestOIDCClosed: after Close nothing is accepted, cached or not.
func TestOIDCClosed(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	tok := op.rs256(t)
	if _, err := e.check(tok); err != nil {
		t.Fatal(err)
	}
	e.auth.Close()
	for _, tok := range []string{tok, op.rs256(t, func(c jwt.MapClaims) { c["sub"] = "u2" })} {
		if _, err := e.check(tok); !errors.Is(err, security.ErrUnavailable) {
			t.Errorf("after Close: %v, want ErrUnavailable", err)
		}
	}
}

// TestOIDCDiscoveryIssuerMustMatch: without x-issuers, a discovery
// document naming an issuer other than the one it was found under is
// refused (OpenID Connect Discovery section 4.3); x-issuers accepts it.
func TestOIDCDiscoveryIssuerMustMatch(t *testing.T) {
	op := newFakeOP(t)
	op.issuer = "https://elsewhere.example"
	e := newOIDCEnv(t, op, "")
	select {
	case st := <-e.status:
		if st.Err == nil || !strings.Contains(st.Err.Error(), "declare x-issuers") {
			t.Fatalf("status %+v", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no failure reported")
	}
	e2 := newOIDCEnv(t, op, "      x-issuers: [https://elsewhere.example]\n")
	e2.ready(t)
	if _, err := e2.check(op.rs256(t)); err != nil {
		t.Fatal(err)
	}
}
