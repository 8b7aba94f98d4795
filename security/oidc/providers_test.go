package oidc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/golang-jwt/jwt/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/oidc"
)

// twoSchemesSpec declares schemes a and b of one openIdConnectUrl (url),
// for audiences a-api and b-api, with the x-introspect of each, both on
// one operation.
func twoSchemesSpec(url, introA, introB string) string {
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
      openIdConnectUrl: ` + url + `/.well-known/openid-configuration
      x-audience: a-api
      x-introspect: ` + introA + `
    b:
      type: openIdConnect
      openIdConnectUrl: ` + url + `/.well-known/openid-configuration
      x-audience: b-api
      x-introspect: ` + introB + `
`
}

// Schemes of one openIdConnectUrl may each introspect every opaque token
// (or tokens of overlapping prefixes): they send a token to one provider.
// URLs given per environment must not make two providers of them, or one
// would receive the other's live tokens.
func TestOIDCGivenURLsKeepOneProviderOne(t *testing.T) {
	// Loopback addresses where nothing listens: the accepted ones are not
	// waited for.
	const doc, one, two = "http://127.0.0.1:1", "http://127.0.0.2:1/.well-known/openid-configuration", "http://127.0.0.3:1/.well-known/openid-configuration"
	for _, c := range []struct {
		name           string
		introA, introB string
		urlA, urlB     string
		refused        bool
	}{
		{"both every token, two URLs", "true", "true", one, two, true},
		{"both every token, one moved", "true", "true", one, "", true},
		{"both every token, one URL for both", "true", "true", one, one, false},
		{"both every token, as declared", "true", "true", "", "", false},
		{"overlapping prefixes, two URLs", "{prefix: at_}", "{prefix: at_b}", one, two, true},
		{"apart prefixes, two URLs", "{prefix: at_a}", "{prefix: at_b}", one, two, false},
		{"one takes none, two URLs", "true", "false", one, two, false},
		{"one takes a prefix, two URLs", "true", "{prefix: at_b}", one, two, false},
	} {
		table, err := policy.Compile("spec.yaml", []byte(twoSchemesSpec(doc, c.introA, c.introB)))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		a, err := oidc.New(context.Background(), table,
			oidc.WithSettings("a", oidc.Settings{URL: c.urlA}), oidc.WithSettings("b", oidc.Settings{URL: c.urlB}),
			oidc.WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}))
		if a != nil {
			a.Close()
		}
		if c.refused {
			if err == nil || !strings.Contains(err.Error(), "schemes a and b") || !strings.Contains(err.Error(), "one would receive the other's live tokens") {
				t.Errorf("%s: %v, want refused naming a and b", c.name, err)
			}
		} else if err != nil {
			t.Errorf("%s: %v, want accepted", c.name, err)
		}
	}
}

// The README's two audiences of one provider: schemes of one
// openIdConnectUrl, an operation listing both. A JWT for the second
// audience fails the first scheme's audience and is taken by the second;
// one for neither is refused.
func TestOIDCOneProviderTwoAudiences(t *testing.T) {
	op := newFakeOP(t)
	table, err := policy.Compile("spec.yaml", []byte(twoSchemesSpec(op.srv.URL, "true", "true")))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := oidc.New(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	for deadline := time.Now().Add(10 * time.Second); !auth.Status()[0].Ready || !auth.Status()[1].Ready; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %+v", auth.Status())
		}
	}
	r := chi.NewRouter()
	r.Get("/things", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, security.FromContext(r.Context()).Scheme)
	})
	g, err := guard.New(table, r, guard.WithAuthenticator(policy.SchemeOIDC, auth), guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if err != nil {
		t.Fatal(err)
	}
	// Passed on by a before its signature is checked: b checks it.
	forged := op.rs256(t, func(cl jwt.MapClaims) { cl["aud"] = "b-api" })
	forged = forged[:len(forged)-4] + "AAAA"
	req := httptest.NewRequest(http.MethodGet, "/things", nil)
	req.Header.Set("Authorization", "Bearer "+forged)
	if _, err := auth.Authenticate(context.Background(), req, table.Schemes["a"]); !errors.Is(err, security.ErrUnclaimed) || !strings.Contains(err.Error(), "wrong audience") {
		t.Errorf("scheme a, a forged token for b-api: %v, want unclaimed for its audience", err)
	}
	if _, err := auth.Authenticate(context.Background(), req, table.Schemes["b"]); !errors.Is(err, security.ErrInvalid) || errors.Is(err, security.ErrUnclaimed) {
		t.Errorf("scheme b, a forged token for b-api: %v, want refused", err)
	}
	for _, c := range []struct {
		aud, want string
		code      int
	}{{"a-api", "a", 200}, {"b-api", "b", 200}, {"c-api", "", 401}, {"forged", "", 401}} {
		req := httptest.NewRequest(http.MethodGet, "/things", nil)
		tok := op.rs256(t, func(cl jwt.MapClaims) { cl["aud"] = c.aud })
		if c.aud == "forged" {
			tok = forged
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code != c.code || (c.code == 200 && rec.Body.String() != c.want) {
			t.Errorf("a JWT for %s: %d %q, want %d %q", c.aud, rec.Code, rec.Body.String(), c.code, c.want)
		}
	}
}

// The key set's and the introspection endpoint's URLs come from the
// discovery document, and may carry secrets: errors, which service logs,
// mask them as they mask the discovery URL's.
func TestOIDCErrorsMaskTheDiscoveredURLsSecrets(t *testing.T) {
	op := newFakeOP(t)
	op.set(func() {
		op.discovery = func(w http.ResponseWriter) {
			fmt.Fprintf(w, `{"issuer": %q, "jwks_uri": %q, "introspection_endpoint": "http://127.0.0.1:1/introspect?access_token=SECRET4"}`,
				op.iss(), op.srv.URL+"/jwks?access_token=SECRET3")
		}
		op.jwksFail = true
	})
	e := newOIDCEnv(t, op, "", oidc.WithRefresh(50*time.Millisecond))
	select {
	case s := <-e.status:
		if s.Err == nil || strings.Contains(s.Err.Error(), "SECRET3") || !strings.Contains(s.Err.Error(), "access_token=xxxxx") {
			t.Errorf("the key set cannot be fetched: status %v, want its URL with the token masked", s.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no status for a key set that cannot be fetched")
	}
	op.set(func() { op.jwksFail = false })
	e.ready(t)
	// Refreshed, then failing: the error handler's message.
	op.set(func() { op.jwksFail = true })
	for deadline := time.Now().Add(5 * time.Second); e.auth.Status()[0].Err == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a failing refresh was never reported")
		}
	}
	if err := e.auth.Status()[0].Err; strings.Contains(err.Error(), "SECRET3") {
		t.Errorf("a failing refresh: status %v, want the token masked", err)
	}
	_, err := e.check("opaque-token")
	if !errors.Is(err, security.ErrUnavailable) || strings.Contains(err.Error(), "SECRET4") || !strings.Contains(err.Error(), "access_token=xxxxx") {
		t.Errorf("introspection unreachable: %v, want undecided with the token masked", err)
	}
}

// The provider is reported reachable when its keys were read and stored,
// not when the key set's URL answered 200 with something else: such a
// refresh reports a failure, never "reachable" then "unreachable" again.
func TestOIDCStatusWaitsForKeysStored(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "", oidc.WithRefresh(50*time.Millisecond))
	e.ready(t)
	op.set(func() { op.jwksBody = `{"keys": [` })
	for deadline := time.Now().Add(5 * time.Second); e.auth.Status()[0].Err == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a key set that does not parse was never reported")
		}
	}
	for len(e.status) > 0 {
		<-e.status
	}
	fetches := op.jwksFetches.Load()
	for deadline := time.Now().Add(5 * time.Second); op.jwksFetches.Load() < fetches+4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no more refreshes")
		}
	}
	for len(e.status) > 0 {
		if s := <-e.status; s.Err == nil {
			t.Fatalf("a refresh answered 200 with a key set that does not parse: status %+v, want a failure", s)
		}
	}
	op.set(func() { op.jwksBody = "" })
	for deadline := time.Now().Add(5 * time.Second); e.auth.Status()[0].Err != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the key set parses again, the provider is still reported down")
		}
	}
}

// A token of an unknown kid whose fetch budget is spent is undecided
// (503) while the keys cannot be fetched, else invalid (401): what the
// introspection endpoint did since has no say.
func TestOIDCUnknownKidFollowsTheKeysOnly(t *testing.T) {
	op := newFakeOP(t)
	op.withEC = false
	var failing atomic.Bool
	op.introspect = func(string) (int, string) {
		if failing.Load() {
			return 500, "down"
		}
		return 200, `{"active":false}`
	}
	e := newOIDCEnv(t, op, "", oidc.WithUnknownKeyInterval(time.Hour), oidc.WithRefresh(50*time.Millisecond))
	e.ready(t)
	unknown := func() string {
		return op.sign(t, jwt.SigningMethodES256, "ec", op.ec, op.claims())
	}
	invalid := func(err error) bool {
		return errors.Is(err, security.ErrInvalid) && !errors.Is(err, security.ErrUnavailable)
	}
	// The interval's one fetch, which succeeds: invalid.
	if _, err := e.check(unknown()); !invalid(err) {
		t.Fatalf("unknown kid, keys fetched: %v, want ErrInvalid", err)
	}
	// Introspection fails; the keys do not.
	failing.Store(true)
	if _, err := e.check("opaque"); !errors.Is(err, security.ErrUnavailable) {
		t.Fatalf("introspection failing: %v", err)
	}
	if _, err := e.check(unknown()); !invalid(err) {
		t.Errorf("unknown kid after an introspection failure: %v, want ErrInvalid (the keys are fetched)", err)
	}
	// The keys cannot be fetched; introspection answers again.
	op.set(func() { op.jwksFail = true })
	for deadline := time.Now().Add(5 * time.Second); e.auth.Status()[0].Err == nil || !strings.HasPrefix(e.auth.Status()[0].Err.Error(), "keys"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a failing key refresh was never reported: %+v", e.auth.Status()[0])
		}
	}
	failing.Store(false)
	if _, err := e.check("opaque"); !invalid(err) {
		t.Fatalf("introspection answering: %v", err)
	}
	if _, err := e.check(unknown()); !errors.Is(err, security.ErrUnavailable) {
		t.Errorf("unknown kid while the keys cannot be fetched, after an introspection answered: %v, want ErrUnavailable", err)
	}
}

// A key set answer of 200 without keys ({}, null, a JSON error object:
// RFC 7517 makes "keys" required) is a failed fetch: jwkset read it as an
// empty set, every key was dropped, every token of the provider refused
// as invalid, and the provider reported up (helper-185). The keys are
// kept and the failure reported.
func TestOIDCKeySetWithoutKeysIsAFailure(t *testing.T) {
	for _, body := range []string{`{"error":"temporarily_unavailable"}`, `null`, `{}`, `{"keys":[]}`} {
		t.Run(body, func(t *testing.T) {
			op := newFakeOP(t)
			e := newOIDCEnv(t, op, "", oidc.WithRefresh(50*time.Millisecond))
			e.ready(t)
			if _, err := e.check(op.rs256(t)); err != nil {
				t.Fatalf("before: %v", err)
			}
			fetches := op.jwksFetches.Load()
			op.set(func() { op.jwksBody = body })
			for deadline := time.Now().Add(5 * time.Second); op.jwksFetches.Load() < fetches+3; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no more refreshes")
				}
			}
			st := e.auth.Status()[0]
			_, err := e.check(op.rs256(t, func(c jwt.MapClaims) { c["jti"] = "fresh" }))
			if err != nil || st.Err == nil {
				t.Errorf("a token of a key fetched before: %v; status error %v (want it accepted, and a failure reported)", err, st.Err)
			}
		})
	}
}
