package oidc_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/oidc"
	"github.com/specguard/specguard/security/tokens"
)

// A caller that presents a made-up kid and hangs up at once gets the
// interval's key fetch, which runs to its end anyway: a real token of the
// key the provider has just rotated in passes (before, the fetch died with
// the caller and the new key stayed out until the next refresh).
func TestOIDCCancelledUnknownKidStillFetches(t *testing.T) {
	op := newFakeOP(t)
	op.withEC = false
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	op.set(func() { op.withEC = true }) // the provider rotates in a new key

	before := op.jwksFetches.Load()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the attacker's connection is gone
	r := httptest.NewRequest(http.MethodGet, "/things", nil).WithContext(ctx)
	r.Header.Set("Authorization", "Bearer "+op.sign(t, jwt.SigningMethodRS256, "made-up", op.rsa, op.claims()))
	if _, err := e.auth.Authenticate(ctx, r, e.scheme); err == nil {
		t.Fatal("a made-up kid passed")
	}
	if n := op.jwksFetches.Load() - before; n != 1 {
		t.Errorf("key fetches that reached the provider: %d, want 1", n)
	}

	legit := op.sign(t, jwt.SigningMethodES256, "ec", op.ec, op.claims())
	if _, err := e.check(legit); err != nil {
		t.Fatalf("token of the provider's new key refused: %v", err)
	}
}

// A JWT whose header says it is not an access token (a refresh token, an
// ID token, a logout token) is refused; JWT and at+jwt pass.
func TestOIDCRefusesTokensTypedOtherThanAccess(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	for typ, access := range map[string]bool{"rt+jwt": false, "id_token+jwt": false, "logout+jwt": false, "dpop+jwt": false,
		"JWT": true, "at+jwt": true, "application/at+JWT": true} {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, op.claims())
		tok.Header["kid"] = "rsa"
		tok.Header["typ"] = typ
		s, err := tok.SignedString(op.rsa)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.check(s); (err == nil) != access {
			t.Errorf("header typ %q: error %v, want an access token's answer %v", typ, err, access)
		}
	}
}

// Service B trusts service A's specguard tokens through an openIdConnect
// scheme (A's JWKS): A's access token passes, A's refresh token (header
// typ rt+jwt, 30 days, no scopes) does not.
func TestOIDCRefusesAnotherSpecguardsRefreshToken(t *testing.T) {
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/jwks"})
		case "/jwks":
			json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]any{key.JWK()}})
		}
	}))
	defer srv.Close()
	a, err := tokens.New(srv.URL, "api", key, security.NewMemoryStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := a.Login(context.Background(), "alice", "user", []string{"read"}, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	table, err := policy.Compile("spec.yaml", []byte(oidcSpec(srv.URL, "")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := oidc.New(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	e := &oidcEnv{auth: b, scheme: table.Schemes["partner"]}
	e.ready(t)
	if _, err := e.check(pair.Access); err != nil {
		t.Fatalf("control: A's access token refused: %v", err)
	}
	if p, err := e.check(pair.Refresh); err == nil {
		t.Errorf("A's refresh token accepted as an access token: subject %s", p.Subject)
	}
}

// With x-scopes-claim naming an array claim, each item is one scope: an
// item holding a space is none, not the several words in it.
func TestOIDCScopeArrayItemsAreWhole(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "      x-scopes-claim: groups\n")
	e.ready(t)
	p, err := e.check(op.rs256(t, func(c jwt.MapClaims) { c["groups"] = []string{"not admin", "editors"} }))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.Scopes) != "[editors]" {
		t.Errorf("groups [\"not admin\", \"editors\"] gives scopes %q, want [editors]", p.Scopes)
	}
}

// A specguard API key is never sent to an outside provider's
// introspection, even with a trailing '=' (still an RFC 6750 b64token,
// though no key of specguard's).
func TestOIDCNeverIntrospectsAnAPIKey(t *testing.T) {
	op := newFakeOP(t)
	var sent []string
	op.introspect = func(tok string) (int, string) { sent = append(sent, tok); return 200, `{"active":false}` }
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	key := "sg_" + "AAAAAAAAAAAAAAAAAAAAAA" + "." + b64(make([]byte, 32))
	for _, k := range []string{key, key + "=", "sg_x"} {
		if _, err := e.check(k); err == nil {
			t.Errorf("%q passed", k)
		}
	}
	if len(sent) > 0 {
		t.Errorf("sent to the provider's introspection: %q", sent)
	}
}

// A provider's URL may carry a secret (?access_token=, a password): it is
// masked in the errors and statuses that name the URL, which reach logs.
func TestOIDCErrorsMaskTheURLsSecrets(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(oidcSpec("https://id.example.com", "")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = oidc.New(context.Background(), table, oidc.WithSettings("partner", oidc.Settings{URL: "https://svc:SECRET1@id.example.com/.well-known/openid-configuration"}))
	if err == nil || strings.Contains(err.Error(), "SECRET1") {
		t.Errorf("a URL with a password: %v, want refused without the password", err)
	}
	status := make(chan oidc.Status, 100)
	a, err := oidc.New(context.Background(), table,
		oidc.WithSettings("partner", oidc.Settings{URL: "http://127.0.0.1:1/.well-known/openid-configuration?access_token=SECRET2"}),
		oidc.WithStatus(func(s oidc.Status) { status <- s }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	select {
	case s := <-status:
		if s.Err == nil || strings.Contains(s.Err.Error(), "SECRET2") || !strings.Contains(s.Err.Error(), "access_token=xxxxx") {
			t.Errorf("the unreachable provider's status: %v, want its URL with the token masked", s.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no status for an unreachable provider")
	}
}

// A token past 4 KiB is cached under '#' and its SHA-256: that value,
// presented as a bearer token, was found in the cache and admitted as the
// token's subject. A hash of a credential is not the credential.
func TestOIDCHashOfACachedTokenIsNoToken(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	long := op.rs256(t, func(c jwt.MapClaims) { c["groups"] = manyGroups(120) })
	if len(long) <= 4<<10 {
		t.Fatalf("a token of %d bytes, want one past 4 KiB", len(long))
	}
	if _, err := e.check(long); err != nil {
		t.Fatalf("the token itself: %v", err)
	}
	sum := sha256.Sum256([]byte(long))
	if p, err := e.check("#" + string(sum[:])); err == nil {
		t.Errorf("the SHA-256 of a verified token, presented as a bearer token, admitted as %s", p.Subject)
	}
}

// Keys are refreshed only while the context given to New lasts. Once it
// ended, a key the provider withdrew kept verifying for ever, the status
// said ready, and nothing was logged: tokens are undecided from then on,
// as after Close.
func TestOIDCEndedContextClosesTheAuthenticator(t *testing.T) {
	op := newFakeOP(t)
	table, err := policy.Compile("spec.yaml", []byte(oidcSpec(op.srv.URL, "")))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := oidc.New(ctx, table, oidc.WithRefresh(50*time.Millisecond),
		oidc.WithHTTPClient(&http.Client{Timeout: 500 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	e := &oidcEnv{op: op, auth: a, scheme: table.Schemes["partner"]}
	e.ready(t)
	leaked := op.sign(t, jwt.SigningMethodES256, "ec", op.ec, op.claims(func(c jwt.MapClaims) { c["sub"] = "mallory" }))
	if _, err := e.check(leaked); err != nil {
		t.Fatalf("a token of the provider's EC key: %v", err)
	}
	cancel()                             // a start-up context, say, which ends once serving begins
	op.set(func() { op.withEC = false }) // the provider withdraws its leaked EC key
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := e.check(leaked)
		if errors.Is(err, security.ErrUnavailable) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after New's context ended and the key was withdrawn: principal %v, error %v; want ErrUnavailable", p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := a.Status(); st[0].Ready || st[0].Err == nil || !strings.Contains(st[0].Err.Error(), "closed") {
		t.Errorf("status after New's context ended: %+v, want not ready, closed", st)
	}
}
