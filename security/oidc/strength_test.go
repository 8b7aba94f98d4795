package oidc_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security/oidc"
)

// An ID token is not an access token, though it is signed by the same
// provider and its aud may be a client id that is also an audience of
// the API: one carrying nonce, at_hash, c_hash or s_hash is refused
// whether its header says typ JWT or nothing, and so is one whose
// token_use (Amazon Cognito's) is not access. A Keycloak access token
// (claim typ Bearer) may carry the login's nonce and passes.
func TestOIDCRefusesIDTokens(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	sign := func(typ string, mod func(jwt.MapClaims)) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, op.claims(func(c jwt.MapClaims) {
			delete(c, "scope")
			c["azp"] = "api"
			c["auth_time"] = time.Now().Unix()
			mod(c)
		}))
		tok.Header["kid"] = "rsa"
		if typ == "" {
			delete(tok.Header, "typ")
		} else {
			tok.Header["typ"] = typ
		}
		s, err := tok.SignedString(op.rsa)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, c := range []struct {
		name   string
		typ    string
		mod    func(jwt.MapClaims)
		access bool
	}{
		{"nonce, typ JWT", "JWT", func(c jwt.MapClaims) { c["nonce"] = "n-0S6_WzA2Mj" }, false},
		{"at_hash, no typ", "", func(c jwt.MapClaims) { c["at_hash"] = "77QmUPtjPfzWtF2AnpK9RQ" }, false},
		{"c_hash", "JWT", func(c jwt.MapClaims) { c["c_hash"] = "LDktKdoQak3Pk0cnXxCltA" }, false},
		{"s_hash", "JWT", func(c jwt.MapClaims) { c["s_hash"] = "LDktKdoQak3Pk0cnXxCltA" }, false},
		{"Keycloak access token with the login's nonce", "JWT", func(c jwt.MapClaims) { c["typ"] = "Bearer"; c["nonce"] = "n-0S6_WzA2Mj" }, true},
		{"access token with azp and auth_time", "at+jwt", func(jwt.MapClaims) {}, true},
		{"Cognito ID token (token_use id)", "", func(c jwt.MapClaims) { c["token_use"] = "id" }, false},
		{"token_use refresh", "JWT", func(c jwt.MapClaims) { c["token_use"] = "refresh" }, false},
		{"Cognito access token (token_use access)", "", func(c jwt.MapClaims) { c["token_use"] = "access" }, true},
	} {
		p, err := e.check(sign(c.typ, c.mod))
		if got := err == nil; got != c.access {
			t.Errorf("%s: accepted %v (%v, %v), want %v", c.name, got, p, err, c.access)
		}
	}
}

// A token verified and cached before its provider withdrew the key that
// signed it is refused once the keys are fetched again, whatever exp it
// names: rotating out a leaked key ends the tokens forged with it.
func TestOIDCWithdrawnKeyEndsCachedTokens(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "", oidc.WithRefresh(50*time.Millisecond))
	e.ready(t)
	cached := op.sign(t, jwt.SigningMethodES256, "ec", op.ec, op.claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(24 * 365 * time.Hour).Unix() }))
	kept := op.rs256(t)
	for _, tok := range []string{cached, kept} {
		if _, err := e.check(tok); err != nil {
			t.Fatal(err)
		}
	}
	op.set(func() { op.withEC = false }) // the provider withdraws the EC key
	waitFetches(t, op, 2)
	if p, err := e.check(cached); err == nil {
		t.Errorf("a token of the withdrawn key still accepted from the cache: %s", p.Subject)
	}
	if _, err := e.check(kept); err != nil {
		t.Errorf("a token of a key still published: %v", err)
	}
	// Publishing a key more takes nothing away.
	op.set(func() { op.withEC = true })
	waitFetches(t, op, 2)
	if _, err := e.check(kept); err != nil {
		t.Errorf("a token of a key still published, after a key was added: %v", err)
	}
}

// waitFetches waits until the provider has answered n more key fetches.
func waitFetches(t *testing.T, op *fakeOP, n int64) {
	t.Helper()
	before := op.jwksFetches.Load()
	deadline := time.Now().Add(10 * time.Second)
	for op.jwksFetches.Load() < before+n {
		if time.Now().After(deadline) {
			t.Fatal("the keys were not fetched again")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A provider's RSA key shorter than 2048 bits, which specguard refuses
// for its own tokens, verifies nothing.
func TestOIDCRefusesShortRSAKeys(t *testing.T) {
	op := newFakeOP(t)
	short, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	op.extraKeys = []map[string]string{{"kty": "RSA", "kid": "short", "alg": "RS256", "use": "sig", "n": b64(short.N.Bytes()), "e": b64(big.NewInt(int64(short.E)).Bytes())}}
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	if _, err := e.check(op.sign(t, jwt.SigningMethodRS256, "short", short, op.claims())); err == nil {
		t.Error("a token signed with a 1024-bit RSA key was accepted")
	}
	if _, err := e.check(op.rs256(t)); err != nil {
		t.Errorf("a token of the 2048-bit key: %v", err)
	}
}

// A token re-encoded with other unused bits in its base64 (the same bytes,
// another string) is refused: strict decoding, as for specguard's own.
func TestOIDCRefusesNonCanonicalEncoding(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	tok := op.rs256(t)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	// A 2048-bit signature is 256 bytes: 342 characters whose last
	// carries 2 bits and 4 unused ones.
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	variant := tok[:len(tok)-1] + string(alphabet[last^1])
	if _, err := e.check(variant); err == nil {
		t.Error("a non-canonical re-encoding of a token was accepted")
	}
	if _, err := e.check(tok); err != nil {
		t.Errorf("the token itself: %v", err)
	}
}

// Settings that would turn a protection off, or crash the key refresh
// when the provider answers, are refused by New with one line naming
// the option.
func TestOIDCRefusesBadOptions(t *testing.T) {
	op := newFakeOP(t)
	table, err := policy.Compile("spec.yaml", []byte(oidcSpec(op.srv.URL, "")))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		opt  oidc.Option
		want string
	}{
		{oidc.WithRefresh(-time.Minute), "oidc.WithRefresh(-1m0s): want a positive interval"},
		{oidc.WithRefresh(0), "oidc.WithRefresh(0s): want a positive interval"},
		{oidc.WithUnknownKeyInterval(0), "oidc.WithUnknownKeyInterval(0s): want a positive interval"},
		{oidc.WithLeeway(-time.Second), "oidc.WithLeeway(-1s): want 0 to 5m0s"},
		{oidc.WithLeeway(time.Hour), "oidc.WithLeeway(1h0m0s): want 0 to 5m0s"},
		{oidc.WithIntrospectionTTL(-time.Second), "oidc.WithIntrospectionTTL(-1s): want 0 or more"},
		{oidc.WithCacheSize(-1), "oidc.WithCacheSize(-1): want 0 or more"},
	} {
		a, err := oidc.New(context.Background(), table, c.opt)
		if err == nil {
			a.Close()
			t.Errorf("accepted; want %q", c.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("error %q, want it to start %q", err, c.want)
		}
	}
}

// A refusal names what was wrong, never what the token said: a made-up
// kid, a header or claim typ, a claim name in another case are the
// caller's words, and the error's text goes into 401 bodies and
// WWW-Authenticate.
func TestOIDCRefusalsQuoteNothingOfTheToken(t *testing.T) {
	op := newFakeOP(t)
	e := newOIDCEnv(t, op, "")
	e.ready(t)
	const marker = "ECHO-me_x"
	headerTyp := jwt.NewWithClaims(jwt.SigningMethodRS256, op.claims())
	headerTyp.Header["kid"], headerTyp.Header["typ"] = "rsa", marker
	signedTyp, err := headerTyp.SignedString(op.rsa)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"kid":                   op.sign(t, jwt.SigningMethodRS256, marker, op.rsa, op.claims()),
		"header typ":            signedTyp,
		"claim typ":             op.rs256(t, func(c jwt.MapClaims) { c["typ"] = marker }),
		"claim in another case": op.rs256(t, func(c jwt.MapClaims) { c["Sub"] = marker }),
	} {
		_, err := e.check(tok)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), marker) || strings.Contains(err.Error(), "Sub") {
			t.Errorf("%s: the refusal quotes the token: %v", name, err)
		}
	}
}

// RFC 7517 4.5 lets keys of another type or use share a kid: keyfunc read
// the first key of a kid only, and every token of the other was refused
// (helper-185). Each of them verifies its own tokens; a key of use enc,
// or of another alg, under the same kid still verifies none.
func TestOIDCKeysSharingAKid(t *testing.T) {
	t.Run("RSA and EC", func(t *testing.T) {
		op := newFakeOP(t)
		op.withEC = false
		op.extraKeys = []map[string]string{
			{"kty": "EC", "kid": "rsa", "crv": "P-256", "use": "sig", "alg": "ES256", "x": b64(op.ec.X.FillBytes(make([]byte, 32))), "y": b64(op.ec.Y.FillBytes(make([]byte, 32)))},
		}
		e := newOIDCEnv(t, op, "")
		e.ready(t)
		if _, err := e.check(op.rs256(t)); err != nil {
			t.Errorf("RS256 under the kid the EC key shares: %v", err)
		}
		if _, err := e.check(op.sign(t, jwt.SigningMethodES256, "rsa", op.ec, op.claims())); err != nil {
			t.Errorf("ES256 under the kid the RSA key shares: %v", err)
		}
	})
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := func(k *rsa.PublicKey, use, alg string) string {
		return `{"kty":"RSA","kid":"rsa","use":"` + use + `","alg":"` + alg + `","n":"` + b64(k.N.Bytes()) + `","e":"` + b64(big.NewInt(int64(k.E)).Bytes()) + `"}`
	}
	t.Run("enc then sig", func(t *testing.T) {
		op := newFakeOP(t)
		op.jwksBody = `{"keys":[` + jwk(&other.PublicKey, "enc", "RSA-OAEP") + `,` + jwk(&op.rsa.PublicKey, "sig", "RS256") + `]}`
		e := newOIDCEnv(t, op, "")
		e.ready(t)
		if _, err := e.check(op.rs256(t)); err != nil {
			t.Errorf("a token of the signing key that shares its kid with an encryption key: %v", err)
		}
		if _, err := e.check(op.sign(t, jwt.SigningMethodRS256, "rsa", other, op.claims())); err == nil {
			t.Error("a token signed with the encryption key (use enc) accepted")
		}
	})
	t.Run("another alg", func(t *testing.T) {
		op := newFakeOP(t)
		op.jwksBody = `{"keys":[` + jwk(&other.PublicKey, "sig", "PS256") + `,` + jwk(&op.rsa.PublicKey, "sig", "RS256") + `]}`
		e := newOIDCEnv(t, op, "")
		e.ready(t)
		if _, err := e.check(op.rs256(t)); err != nil {
			t.Errorf("RS256 of the RS256 key sharing its kid with a PS256 key: %v", err)
		}
		if _, err := e.check(op.sign(t, jwt.SigningMethodRS256, "rsa", other, op.claims())); err == nil {
			t.Error("RS256 signed with the key published for PS256 accepted")
		}
	})
}
