package tokens_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/guardtest"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

type signer func(input []byte) []byte

func edSigner(priv ed25519.PrivateKey) signer {
	return func(in []byte) []byte { return ed25519.Sign(priv, in) }
}

func hmacSigner(secret []byte) signer {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	}
}

func noSignature([]byte) []byte { return nil }

// forge assembles header.claims.signature.
func forge(tb testing.TB, header, claims map[string]any, sign signer) string {
	tb.Helper()
	input := guardtest.EncodeSegment(tb, header) + "." + guardtest.EncodeSegment(tb, claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

// claimsOf turns typed claims into the map a forger edits.
func claimsOf(tb testing.TB, c *tokens.Claims) map[string]any {
	tb.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// set returns a copy of m with k set to v, or deleted when v is nil.
func set(m map[string]any, kv ...any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func headerOf(tb testing.TB, tok string) map[string]any {
	tb.Helper()
	var h map[string]any
	if err := json.Unmarshal(guardtest.MustDecode(tb, strings.Split(tok, ".")[0]), &h); err != nil {
		tb.Fatal(err)
	}
	return h
}

type forgery struct {
	name  string
	token string
	// malformed: the token has characters RFC 6750's b64token does not
	// allow, so the guard answers 400 before verifying it.
	malformed bool
}

// countingServer counts the requests it receives: a verifier that followed
// jku or x5u would show up here.
func countingServer(tb testing.TB) (*httptest.Server, *atomic.Int64) {
	tb.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	tb.Cleanup(srv.Close)
	return srv, &n
}

// forgeries returns a correctly signed copy of pair's access token
// (control) and tokens that each differ from it in one hostile way. Every
// one names pair's live family and jti, so only the forgery itself can be
// the reason it is refused.
func forgeries(tb testing.TB, e *guardtest.Env, pair *tokens.Pair, attackerURL string) (control string, bad []forgery) {
	tb.Helper()
	now := e.Clock.Now()
	claims := claimsOf(tb, pair.AccessClaims)
	hdr := map[string]any{"alg": "EdDSA", "typ": tokens.TypeAccess, "kid": e.Signing.ID}
	real := edSigner(e.EdPriv)
	control = forge(tb, hdr, claims, real)

	pub := e.EdPriv.Public().(ed25519.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	attackerKey, err := tokens.NewKey(attacker)
	if err != nil {
		tb.Fatal(err)
	}
	attackerJWK := attackerKey.JWK()
	randomSecret := make([]byte, 32)
	_, _ = rand.Read(randomSecret)

	sig := strings.Split(control, ".")
	nonCanonical := sig[2][:len(sig[2])-1] + string(guardtest.NonCanonicalLast(tb, sig[2]))
	oversized := forge(tb, hdr, set(claims, "pad", strings.Repeat("x", security.MaxTokenBytes)), real)

	bad = []forgery{
		{name: "alg none", token: forge(tb, set(hdr, "alg", "none"), claims, noSignature)},
		{name: "alg None", token: forge(tb, set(hdr, "alg", "None"), claims, noSignature)},
		{name: "alg NONE", token: forge(tb, set(hdr, "alg", "NONE"), claims, noSignature)},
		{name: "alg nOnE", token: forge(tb, set(hdr, "alg", "nOnE"), claims, noSignature)},
		{name: "alg none with a real signature", token: forge(tb, set(hdr, "alg", "none"), claims, real)},
		{name: "alg none without kid", token: forge(tb, set(hdr, "alg", "none", "kid", nil), claims, noSignature)},
		{name: "empty signature", token: forge(tb, hdr, claims, noSignature)},
		{name: "HS256 keyed with the Ed25519 public key bytes", token: forge(tb, set(hdr, "alg", "HS256"), claims, hmacSigner(pub))},
		{name: "HS256 keyed with the Ed25519 public key PEM", token: forge(tb, set(hdr, "alg", "HS256"), claims, hmacSigner(pubPEM))},
		{name: "HS256 keyed with a random secret", token: forge(tb, set(hdr, "alg", "HS256"), claims, hmacSigner(randomSecret))},
		{name: "HS256 keyed with the kid", token: forge(tb, set(hdr, "alg", "HS256"), claims, hmacSigner([]byte(e.Signing.ID)))},
		{name: "tampered payload", token: guardtest.Tamper(tb, pair.Access)},
		{name: "expired", token: forge(tb, hdr, set(claims, "exp", now.Add(-time.Hour).Unix(), "iat", now.Add(-2*time.Hour).Unix()), real)},
		{name: "exp missing", token: forge(tb, hdr, set(claims, "exp", nil), real)},
		{name: "exp 0", token: forge(tb, hdr, set(claims, "exp", 0), real)},
		// RFC 7519 section 2: NumericDate is a JSON number; golang-jwt
		// alone accepts strings.
		{name: "exp as a string", token: forge(tb, hdr, set(claims, "exp", strconv.FormatInt(now.Add(time.Hour).Unix(), 10)), real)},
		{name: "iat as a string", token: forge(tb, hdr, set(claims, "iat", strconv.FormatInt(now.Unix(), 10)), real)},
		{name: "nbf as a string", token: forge(tb, hdr, set(claims, "nbf", strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)), real)},
		{name: "exp as null", token: forge(tb, hdr, set(claims, "exp", json.RawMessage("null")), real)},
		{name: "nbf in the future", token: forge(tb, hdr, set(claims, "nbf", now.Add(time.Hour).Unix()), real)},
		{name: "iat in the future", token: forge(tb, hdr, set(claims, "iat", now.Add(time.Hour).Unix()), real)},
		// golang-jwt checks iat only when present: required here.
		{name: "iat missing", token: forge(tb, hdr, set(claims, "iat", nil), real)},
		{name: "wrong issuer", token: forge(tb, hdr, set(claims, "iss", "https://evil.test"), real)},
		{name: "issuer missing", token: forge(tb, hdr, set(claims, "iss", nil), real)},
		{name: "wrong audience", token: forge(tb, hdr, set(claims, "aud", []string{"other-api"}), real)},
		{name: "audience missing", token: forge(tb, hdr, set(claims, "aud", nil), real)},
		{name: "subject missing", token: forge(tb, hdr, set(claims, "sub", nil), real)},
		{name: "jti missing", token: forge(tb, hdr, set(claims, "jti", nil), real)},
		{name: "family missing", token: forge(tb, hdr, set(claims, "fam", nil), real)},
		{name: "unknown kid", token: forge(tb, set(hdr, "kid", "not-a-key"), claims, real)},
		{name: "missing kid", token: forge(tb, set(hdr, "kid", nil), claims, real)},
		{name: "kid not a string", token: forge(tb, set(hdr, "kid", 1), claims, real)},
		{name: "crit header", token: forge(tb, set(hdr, "crit", []string{"exp"}, "exp", now.Add(time.Hour).Unix()), claims, real)},
		{name: "embedded jwk with its own kid", token: forge(tb, set(hdr, "jwk", attackerJWK, "kid", attackerKey.ID), claims, edSigner(attacker))},
		{name: "embedded jwk with the trusted kid", token: forge(tb, set(hdr, "jwk", attackerJWK), claims, edSigner(attacker))},
		{name: "jku naming an attacker key set", token: forge(tb, set(hdr, "jku", attackerURL+"/jwks.json", "kid", attackerKey.ID), claims, edSigner(attacker))},
		{name: "jku with the trusted kid", token: forge(tb, set(hdr, "jku", attackerURL+"/jwks.json"), claims, edSigner(attacker))},
		{name: "x5u naming an attacker certificate", token: forge(tb, set(hdr, "x5u", attackerURL+"/cert.pem", "kid", attackerKey.ID), claims, edSigner(attacker))},
		{name: "x5u with the trusted kid", token: forge(tb, set(hdr, "x5u", attackerURL+"/cert.pem"), claims, edSigner(attacker))},
		{name: "attacker key with the trusted kid", token: forge(tb, hdr, claims, edSigner(attacker))},
		{name: "refresh token", token: pair.Refresh},
		{name: "access claims typed as refresh", token: forge(tb, set(hdr, "typ", tokens.TypeRefresh), claims, real)},
		{name: "typ missing", token: forge(tb, set(hdr, "typ", nil), claims, real)},
		{name: "typ JWT", token: forge(tb, set(hdr, "typ", "JWT"), claims, real)},
		{name: "signature with non-canonical trailing bits", token: sig[0] + "." + sig[1] + "." + nonCanonical},
		{name: "padded signature", token: control + "=="},
		{name: "padded payload", token: sig[0] + "." + sig[1] + "=." + sig[2], malformed: true},
		{name: "four segments", token: control + ".e30"},
		{name: "oversized, correctly signed", token: oversized},
	}
	return control, bad
}

func TestVerifyAccessRejectsForgeries(t *testing.T) {
	e := guardtest.NewEnv(t)
	pair := e.Login(t, "alice", "reader")
	srv, hits := countingServer(t)
	control, bad := forgeries(t, e, pair, srv.URL)
	ctx := context.Background()

	t.Run("control", func(t *testing.T) {
		c, err := e.Tokens.VerifyAccess(ctx, control)
		if err != nil {
			t.Fatalf("a correctly signed copy was refused: %v", err)
		}
		if c.ID != pair.AccessClaims.ID {
			t.Errorf("jti = %q, want %q", c.ID, pair.AccessClaims.ID)
		}
	})
	for _, f := range bad {
		t.Run(f.name, func(t *testing.T) {
			c, err := e.Tokens.VerifyAccess(ctx, f.token)
			if !errors.Is(err, security.ErrInvalid) {
				t.Fatalf("VerifyAccess = %+v, %v; want an error wrapping ErrInvalid", c, err)
			}
			if strings.Contains(err.Error(), f.token) {
				t.Error("the error echoes the token")
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the verifier made %d requests to URLs named in token headers, want 0", n)
	}
}

func TestGuardRejectsForgedTokens(t *testing.T) {
	e := guardtest.NewEnv(t)
	pair := e.Login(t, "alice", "reader")
	srv, hits := countingServer(t)
	control, bad := forgeries(t, e, pair, srv.URL)
	cases := []guardtest.Case{{Name: "control", Path: "/read", Mods: []guardtest.Mod{guardtest.Bearer(control)}, Want: guardtest.OK200, Saw: guardtest.OKAs("read", "alice", "oauth2")}}
	for _, f := range bad {
		w := guardtest.InvalidToken
		if f.malformed {
			w = guardtest.BadRequest
		}
		cases = append(cases, guardtest.Case{Name: f.name, Path: "/read", Mods: []guardtest.Mod{guardtest.Bearer(f.token)}, Want: w})
	}
	guardtest.RunCases(t, e, cases)
	if n := hits.Load(); n != 0 {
		t.Errorf("the guard made %d requests to URLs named in token headers, want 0", n)
	}
}

func TestStrictDecodingRejectsNonCanonicalSignature(t *testing.T) {
	e := guardtest.NewEnv(t)
	pair := e.Login(t, "alice", "reader")
	parts := strings.Split(pair.Access, ".")
	alt := parts[2][:len(parts[2])-1] + string(guardtest.NonCanonicalLast(t, parts[2]))
	if alt == parts[2] {
		t.Fatal("the re-encoded signature equals the original")
	}
	lax, err := base64.RawURLEncoding.DecodeString(alt)
	if err != nil {
		t.Fatal(err)
	}
	if orig := guardtest.MustDecode(t, parts[2]); string(lax) != string(orig) {
		t.Fatal("lax decoding of the re-encoded signature differs; the test would prove nothing")
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(alt); err == nil {
		t.Fatal("strict decoding accepts the re-encoded signature; the test would prove nothing")
	}
	tok := parts[0] + "." + parts[1] + "." + alt
	if _, err := e.Tokens.VerifyAccess(context.Background(), tok); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("VerifyAccess(non-canonical signature) = %v, want ErrInvalid", err)
	}
}

// TestAlgorithmPinnedPerKey: with an HMAC and an Ed25519 key both trusted,
// HS256 is an allowed algorithm, yet it must not verify under the Ed25519
// key's kid even when keyed with that key's public bytes.
func TestAlgorithmPinnedPerKey(t *testing.T) {
	e := guardtest.NewEnv(t)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	hs, err := tokens.NewKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	mixed, err := tokens.New(guardtest.Issuer, guardtest.Audience, e.Signing, e.Store,
		tokens.WithVerifyKeys(hs), tokens.WithClock(e.Clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	pair := e.Login(t, "alice", "reader")
	claims := claimsOf(t, pair.AccessClaims)
	pub := e.EdPriv.Public().(ed25519.PublicKey)
	hdr := map[string]any{"typ": tokens.TypeAccess}
	cases := []struct {
		name   string
		token  string
		wantOK bool
	}{
		{name: "HS256 with the HMAC key and its kid", token: forge(t, set(hdr, "alg", "HS256", "kid", hs.ID), claims, hmacSigner(secret)), wantOK: true},
		{name: "EdDSA with the Ed25519 key and its kid", token: forge(t, set(hdr, "alg", "EdDSA", "kid", e.Signing.ID), claims, edSigner(e.EdPriv)), wantOK: true},
		{name: "HS256 under the Ed25519 kid keyed with its public key", token: forge(t, set(hdr, "alg", "HS256", "kid", e.Signing.ID), claims, hmacSigner(pub))},
		{name: "HS256 under the Ed25519 kid keyed with the HMAC secret", token: forge(t, set(hdr, "alg", "HS256", "kid", e.Signing.ID), claims, hmacSigner(secret))},
		{name: "EdDSA under the HMAC kid", token: forge(t, set(hdr, "alg", "EdDSA", "kid", hs.ID), claims, edSigner(e.EdPriv))},
		{name: "HS384 under the HMAC kid", token: forge(t, set(hdr, "alg", "HS384", "kid", hs.ID), claims, hmacSigner(secret))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mixed.VerifyAccess(context.Background(), tc.token)
			if tc.wantOK && err != nil {
				t.Fatalf("VerifyAccess = %v, want nil", err)
			}
			if !tc.wantOK && !errors.Is(err, security.ErrInvalid) {
				t.Fatalf("VerifyAccess = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestTokenTypesDoNotStandInForEachOther(t *testing.T) {
	e := guardtest.NewEnv(t)
	pair := e.Login(t, "alice", "reader")
	ctx := context.Background()
	if _, err := e.Tokens.VerifyAccess(ctx, pair.Refresh); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("VerifyAccess(refresh token) = %v, want ErrInvalid", err)
	}
	if _, err := e.Tokens.RefreshClaims(pair.Access); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("RefreshClaims(access token) = %v, want ErrInvalid", err)
	}
	if _, err := e.Tokens.Refresh(ctx, pair.Access, e.ScopesOf); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("Refresh(access token) = %v, want ErrInvalid", err)
	}
	if _, err := e.Tokens.Refresh(ctx, strings.Repeat("a", security.MaxTokenBytes+1), e.ScopesOf); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("Refresh(oversized) = %v, want ErrInvalid", err)
	}
	// The refresh token still works: the failed attempts did not spend it.
	if _, err := e.Tokens.Refresh(ctx, pair.Refresh, e.ScopesOf); err != nil {
		t.Errorf("Refresh(refresh token) = %v, want nil", err)
	}
}

// TestRevocationIsByIdentifier: two different strings carrying one jti
// (re-encoded JSON for Ed25519, a malleated signature for ES256) are both
// accepted while the login lives and both refused after logout.
func TestRevocationIsByIdentifier(t *testing.T) {
	ctx := context.Background()

	t.Run("Ed25519 re-encoded claims", func(t *testing.T) {
		e := guardtest.NewEnv(t)
		pair := e.Login(t, "alice", "reader")
		claims := claimsOf(t, pair.AccessClaims)
		hdr := headerOf(t, pair.Access)
		body, _ := json.MarshalIndent(claims, "", "   ")
		input := guardtest.EncodeSegment(t, hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
		twin := input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(e.EdPriv, []byte(input)))
		checkTwins(t, e.Tokens, e.Store, pair, twin)
	})

	t.Run("ES256 malleated signature", func(t *testing.T) {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key, err := tokens.NewKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		store := security.NewMemoryStore(nil)
		svc, err := tokens.New(guardtest.Issuer, guardtest.Audience, key, store)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := svc.Login(ctx, "alice", "reader", []string{"a:read"}, "test")
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(pair.Access, ".")
		sig := guardtest.MustDecode(t, parts[2])
		n := elliptic.P256().Params().N
		s := new(big.Int).SetBytes(sig[32:])
		malleated := append(append([]byte{}, sig[:32]...), new(big.Int).Sub(n, s).FillBytes(make([]byte, 32))...)
		twin := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(malleated)
		checkTwins(t, svc, store, pair, twin)
	})
}

func checkTwins(t *testing.T, svc *tokens.Service, store security.Store, pair *tokens.Pair, twin string) {
	t.Helper()
	ctx := context.Background()
	if twin == pair.Access {
		t.Fatal("the twin equals the original token")
	}
	for name, tok := range map[string]string{"original": pair.Access, "twin": twin} {
		c, err := svc.VerifyAccess(ctx, tok)
		if err != nil {
			t.Fatalf("before logout, %s: VerifyAccess = %v", name, err)
		}
		if c.ID != pair.AccessClaims.ID {
			t.Fatalf("%s: jti %q, want %q", name, c.ID, pair.AccessClaims.ID)
		}
	}
	if err := store.RevokeFamily(ctx, pair.AccessClaims.Subject, pair.AccessClaims.Family); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"original": pair.Access, "twin": twin} {
		if _, err := svc.VerifyAccess(ctx, tok); !errors.Is(err, security.ErrInvalid) {
			t.Errorf("after logout, %s: VerifyAccess = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := svc.Refresh(ctx, pair.Refresh, func(string) (string, []string, error) { return "reader", nil, nil }); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("after logout, Refresh = %v, want ErrInvalid", err)
	}
}

func TestRefreshRotation(t *testing.T) {
	e := guardtest.NewEnv(t)
	ctx := context.Background()
	first := e.Login(t, "alice", "reader")
	second := e.Refresh(t, first.Refresh)

	if second.AccessClaims.Family != first.AccessClaims.Family {
		t.Errorf("successor family %q, want %q", second.AccessClaims.Family, first.AccessClaims.Family)
	}
	if !second.RefreshClaims.ExpiresAt.Equal(first.RefreshClaims.ExpiresAt.Time) {
		t.Errorf("rotation moved the refresh expiry from %v to %v", first.RefreshClaims.ExpiresAt, second.RefreshClaims.ExpiresAt)
	}
	if _, err := e.Tokens.VerifyAccess(ctx, second.Access); err != nil {
		t.Fatalf("successor access token: %v", err)
	}
	if _, err := e.Tokens.VerifyAccess(ctx, first.Access); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("replaced access token: VerifyAccess = %v, want ErrInvalid", err)
	}
	third := e.Refresh(t, second.Refresh)

	// Reuse of a spent refresh token revokes the whole family.
	_, err := e.Tokens.Refresh(ctx, first.Refresh, e.ScopesOf)
	if !errors.Is(err, security.ErrInvalid) || !errors.Is(err, security.ErrReused) {
		t.Fatalf("reused refresh token: Refresh = %v, want an error wrapping ErrInvalid and ErrReused", err)
	}
	if _, err := e.Tokens.VerifyAccess(ctx, third.Access); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("after reuse, newest access token: VerifyAccess = %v, want ErrInvalid", err)
	}
	if _, err := e.Tokens.Refresh(ctx, third.Refresh, e.ScopesOf); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("after reuse, newest refresh token: Refresh = %v, want ErrInvalid", err)
	}
	guardtest.InvalidToken.Check(t, e.Do(t, http.MethodGet, "/things", "", guardtest.Bearer(third.Access)))

	// Other logins of the same subject are untouched.
	other := e.Login(t, "alice", "reader")
	if _, err := e.Tokens.VerifyAccess(ctx, other.Access); err != nil {
		t.Errorf("another login of the subject: %v", err)
	}
}

func TestRefreshScopesFollowRole(t *testing.T) {
	e := guardtest.NewEnv(t)
	first := e.Login(t, "alice", "writer")
	e.Roles.Store("alice", "reader") // demoted
	second := e.Refresh(t, first.Refresh)
	if got := second.AccessClaims.Scope; got != "a:read" {
		t.Errorf("scope after demotion = %q, want a:read", got)
	}
	e.Roles.Delete("alice") // account gone: the scopes callback fails
	if _, err := e.Tokens.Refresh(context.Background(), second.Refresh, e.ScopesOf); err == nil {
		t.Error("Refresh succeeded although the scopes callback failed")
	}
}

// A refresh token minted before refresh tokens recorded their grant (no
// grant claim) was refreshed into the role's every scope for up to 30
// days. It is refused now: what its login was granted is unknown.
func TestRefreshWithoutGrantIsRefused(t *testing.T) {
	e := guardtest.NewEnv(t)
	pair := e.Login(t, "alice", "writer")
	old := forge(t, headerOf(t, pair.Refresh), set(claimsOf(t, pair.RefreshClaims), "grant", nil), edSigner(e.EdPriv))
	// The forgery is otherwise a good refresh token: with its grant back
	// it would be accepted.
	if _, err := e.Tokens.RefreshClaims(old); err != nil {
		t.Fatalf("the token without grant is not a valid refresh token: %v", err)
	}
	_, err := e.Tokens.Refresh(context.Background(), old, e.ScopesOf)
	if !errors.Is(err, security.ErrInvalid) {
		t.Fatalf("Refresh of a token without grant = %v, want ErrInvalid", err)
	}
	// The login itself is untouched: its real refresh token still works.
	if next := e.Refresh(t, pair.Refresh); next.AccessClaims.Scope != pair.AccessClaims.Scope {
		t.Errorf("refreshed scope %q, want %q", next.AccessClaims.Scope, pair.AccessClaims.Scope)
	}
}

func TestConcurrentRefreshHasOneWinner(t *testing.T) {
	e := guardtest.NewEnv(t)
	pair := e.Login(t, "alice", "reader")
	const n = 50
	var (
		wins  atomic.Int64
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make(chan error, n)
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := e.Tokens.Refresh(context.Background(), pair.Refresh, e.ScopesOf); err == nil {
				wins.Add(1)
			} else {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	if got := wins.Load(); got != 1 {
		t.Errorf("%d of %d concurrent refreshes succeeded, want exactly 1", got, n)
	}
	for err := range errs {
		if !errors.Is(err, security.ErrInvalid) {
			t.Errorf("losing refresh: %v, want ErrInvalid", err)
		}
	}
}

func TestRevokeSubject(t *testing.T) {
	e := guardtest.NewEnv(t)
	ctx := context.Background()
	type cred struct {
		name string
		mods []guardtest.Mod
	}
	issue := func(subject string) []cred {
		first := e.Login(t, subject, "reader")
		second := e.Login(t, subject, "reader")
		refreshed := e.Refresh(t, second.Refresh)
		key, _ := e.APIKey(t, subject, "a:read")
		sess := e.Session(t, subject, "reader")
		return []cred{
			{"first login", []guardtest.Mod{guardtest.Bearer(first.Access)}},
			{"refreshed login", []guardtest.Mod{guardtest.Bearer(refreshed.Access)}},
			{"api key", []guardtest.Mod{guardtest.APIKeyHeader(key)}},
			{"session", []guardtest.Mod{guardtest.SessionCookies(sess)}},
		}
	}
	alice, bob := issue("alice"), issue("bob")
	aliceRefresh := e.Login(t, "alice", "reader").Refresh
	// Warm the verified-token cache: revocation must still win.
	for _, c := range append(alice, bob...) {
		guardtest.OK200.Check(t, e.Do(t, http.MethodGet, "/any", "", c.mods...))
	}

	// Without account state, ending everything is the store's revocation
	// plus the keys' records (which would restore a dropped mark otherwise).
	if err := e.Store.RevokeSubject(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := e.Keys.RevokeAll(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, c := range alice {
		t.Run("alice "+c.name, func(t *testing.T) {
			guardtest.InvalidToken.Check(t, e.Do(t, http.MethodGet, "/any", "", c.mods...))
		})
	}
	for _, c := range bob {
		t.Run("bob "+c.name, func(t *testing.T) {
			got := e.Do(t, http.MethodGet, "/any", "", c.mods...)
			guardtest.OK200.Check(t, got)
			if got.Seen.Subject != "bob" {
				t.Errorf("subject = %q, want bob", got.Seen.Subject)
			}
		})
	}
	t.Run("alice refresh", func(t *testing.T) {
		if _, err := e.Tokens.Refresh(ctx, aliceRefresh, e.ScopesOf); !errors.Is(err, security.ErrInvalid) {
			t.Errorf("Refresh = %v, want ErrInvalid", err)
		}
	})
	t.Run("alice logs in again", func(t *testing.T) {
		guardtest.OK200.Check(t, e.Do(t, http.MethodGet, "/any", "", guardtest.Bearer(e.Login(t, "alice", "reader").Access)))
	})
}

func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	_, oldPriv, _ := ed25519.GenerateKey(rand.Reader)
	oldKey, err := tokens.NewKey(oldPriv)
	if err != nil {
		t.Fatal(err)
	}
	oldVerify, err := tokens.NewVerifyKey(oldPriv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if oldVerify.ID != oldKey.ID || oldVerify.CanSign() {
		t.Fatalf("verify key: kid %q can sign %v; want kid %q, verify only", oldVerify.ID, oldVerify.CanSign(), oldKey.ID)
	}
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	newKey, err := tokens.NewKey(ecPriv)
	if err != nil {
		t.Fatal(err)
	}
	store := security.NewMemoryStore(nil)
	before, err := tokens.New(guardtest.Issuer, guardtest.Audience, oldKey, store)
	if err != nil {
		t.Fatal(err)
	}
	after, err := tokens.New(guardtest.Issuer, guardtest.Audience, newKey, store, tokens.WithVerifyKeys(oldVerify))
	if err != nil {
		t.Fatal(err)
	}
	forgotten, err := tokens.New(guardtest.Issuer, guardtest.Audience, newKey, store)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := before.Login(ctx, "alice", "reader", []string{"a:read"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := after.VerifyAccess(ctx, pair.Access); err != nil {
		t.Errorf("a token of the previous key: VerifyAccess = %v, want nil", err)
	}
	if _, err := forgotten.VerifyAccess(ctx, pair.Access); !errors.Is(err, security.ErrInvalid) {
		t.Errorf("a token of a key no longer trusted: VerifyAccess = %v, want ErrInvalid", err)
	}
	next, err := after.Refresh(ctx, pair.Refresh, func(string) (string, []string, error) { return "reader", []string{"a:read"}, nil })
	if err != nil {
		t.Fatalf("refreshing a token of the previous key: %v", err)
	}
	if h := headerOf(t, next.Access); h["kid"] != newKey.ID || h["alg"] != "ES256" {
		t.Errorf("successor header %v, want kid %s alg ES256", h, newKey.ID)
	}

	jwks := after.JWKS()
	kids := map[string]string{}
	for _, k := range jwks {
		kids[k["kid"].(string)] = k["alg"].(string)
		for _, private := range []string{"d", "k", "p", "q"} {
			if _, ok := k[private]; ok {
				t.Errorf("JWK %s publishes private member %q", k["kid"], private)
			}
		}
	}
	if want := map[string]string{oldKey.ID: "EdDSA", newKey.ID: "ES256"}; len(kids) != 2 || kids[oldKey.ID] != want[oldKey.ID] || kids[newKey.ID] != want[newKey.ID] {
		t.Errorf("JWKS kids = %v, want %v", kids, want)
	}
}

// A fleet rotates in two rolling restarts, as the README says: the new key
// verifies everywhere before any instance signs with it. Swapped in one,
// an instance not yet restarted refused what a restarted one issued, the
// client's only refresh token included (helper-148).
func TestRotationInTwoRestarts(t *testing.T) {
	ctx := context.Background()
	_, oldPriv, _ := ed25519.GenerateKey(rand.Reader)
	_, newPriv, _ := ed25519.GenerateKey(rand.Reader)
	oldKey, _ := tokens.NewKey(oldPriv)
	newKey, _ := tokens.NewKey(newPriv)
	store := security.NewMemoryStore(nil) // shared, as Redis is in a fleet
	instance := func(signing *tokens.Key, verify ...*tokens.Key) *tokens.Service {
		ts, err := tokens.New(guardtest.Issuer, guardtest.Audience, signing, store, tokens.WithVerifyKeys(verify...))
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	roles := func(string) (string, []string, error) { return "reader", []string{"a:read"}, nil }
	for _, c := range []struct {
		name              string
		notYet, restarted *tokens.Service
		works             bool
	}{
		{"in one restart", instance(oldKey), instance(newKey, oldKey), false},
		{"first restart: the new key verifies", instance(oldKey), instance(oldKey, newKey), true},
		{"second restart: the new key signs", instance(oldKey, newKey), instance(newKey, oldKey), true},
	} {
		pair, err := c.notYet.Login(ctx, "alice", "reader", []string{"a:read"}, "d")
		if err != nil {
			t.Fatal(err)
		}
		next, err := c.restarted.Refresh(ctx, pair.Refresh, roles)
		if err != nil {
			t.Fatalf("%s: the restarted instance refreshes: %v", c.name, err)
		}
		_, accessErr := c.notYet.VerifyAccess(ctx, next.Access)
		_, refreshErr := c.notYet.Refresh(ctx, next.Refresh, roles)
		if works := accessErr == nil && refreshErr == nil; works != c.works {
			t.Errorf("%s: the instance not yet restarted takes the restarted one's tokens: %v (%v, %v), want %v", c.name, works, accessErr, refreshErr, c.works)
		}
	}
}

func TestJWKSNeverPublishesHMACSecrets(t *testing.T) {
	secret := make([]byte, 48)
	_, _ = rand.Read(secret)
	hs, err := tokens.NewKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ed, _ := tokens.NewKey(edPriv)
	store := security.NewMemoryStore(nil)
	cases := []struct {
		name    string
		signing *tokens.Key
		extra   []*tokens.Key
		want    int
	}{
		{name: "HMAC signing key", signing: hs, want: 0},
		{name: "HMAC verify key beside Ed25519", signing: ed, extra: []*tokens.Key{hs}, want: 1},
		// A kid appears once in a set (RFC 7517 section 5).
		{name: "the signing key given again to verify", signing: ed, extra: []*tokens.Key{ed, hs, ed}, want: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc, err := tokens.New(guardtest.Issuer, guardtest.Audience, tc.signing, store, tokens.WithVerifyKeys(tc.extra...))
			if err != nil {
				t.Fatal(err)
			}
			jwks := svc.JWKS()
			if len(jwks) != tc.want {
				t.Errorf("JWKS has %d keys, want %d", len(jwks), tc.want)
			}
			b, _ := json.Marshal(jwks)
			for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
				if strings.Contains(string(b), enc.EncodeToString(secret)[:20]) {
					t.Errorf("JWKS %s contains the HMAC secret", b)
				}
			}
			if strings.Contains(string(b), `"oct"`) {
				t.Errorf("JWKS %s lists a symmetric key", b)
			}
		})
	}
	if hs.JWK() != nil {
		t.Error("Key.JWK of an HMAC key is not nil")
	}
}

var (
	rsa2048 = sync.OnceValue(func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k })
	rsa1024 = sync.OnceValue(func() *rsa.PrivateKey { k, _ := rsa.GenerateKey(rand.Reader, 1024); return k })
)

// offCurve is a P-256 public key whose point is not on the curve: only
// the deprecated raw coordinates can make one, as a caller may have.
func offCurve() *ecdsa.PublicKey {
	//lint:ignore SA1019 a key built by hand is what NewVerifyKey must refuse
	return &ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)}
}

// An HMAC key keeps its own copy of the secret: a caller that wipes its
// buffer (as it should) changed the key the service signs and verifies
// with, under the same kid.
func TestHMACKeyKeepsItsOwnSecret(t *testing.T) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for name, buf := range map[string][]byte{"HMAC": secret, "Ed25519": ed} {
		k, err := tokens.NewKey(map[string]any{"HMAC": buf, "Ed25519": ed25519.PrivateKey(buf)}[name])
		if err != nil {
			t.Fatal(err)
		}
		before, _ := k.MarshalPEM()
		clear(buf)
		if after, _ := k.MarshalPEM(); string(before) != string(after) {
			t.Errorf("%s: the key changed with the caller's buffer:\n%s\n%s", name, before, after)
		}
	}
}

func TestNewKeyRefusesWeakKeys(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name    string
		key     func() (*tokens.Key, error)
		wantErr bool
		alg     string
	}{
		{name: "RSA 1024", key: func() (*tokens.Key, error) { return tokens.NewKey(rsa1024()) }, wantErr: true},
		{name: "RSA 1024 public", key: func() (*tokens.Key, error) { return tokens.NewVerifyKey(&rsa1024().PublicKey) }, wantErr: true},
		{name: "EC P-384", key: func() (*tokens.Key, error) { return tokens.NewKey(p384) }, wantErr: true},
		{name: "EC P-224", key: func() (*tokens.Key, error) { return tokens.NewKey(p224) }, wantErr: true},
		{name: "EC P-384 public", key: func() (*tokens.Key, error) { return tokens.NewVerifyKey(&p384.PublicKey) }, wantErr: true},
		{name: "HMAC 31 bytes", key: func() (*tokens.Key, error) { return tokens.NewKey(make([]byte, 31)) }, wantErr: true},
		{name: "HMAC empty", key: func() (*tokens.Key, error) { return tokens.NewKey([]byte{}) }, wantErr: true},
		{name: "HMAC as a verify key", key: func() (*tokens.Key, error) { return tokens.NewVerifyKey(make([]byte, 32)) }, wantErr: true},
		{name: "string", key: func() (*tokens.Key, error) { return tokens.NewKey("secret") }, wantErr: true},
		{name: "nil", key: func() (*tokens.Key, error) { return tokens.NewKey(nil) }, wantErr: true},
		// Keys built by hand (x509 checks those it parses): a point not on
		// P-256 panicked, a seed for an Ed25519 key started a service
		// whose every signature failed.
		{name: "EC point off P-256", key: func() (*tokens.Key, error) { return tokens.NewVerifyKey(offCurve()) }, wantErr: true},
		{name: "EC private key off P-256", key: func() (*tokens.Key, error) {
			//lint:ignore SA1019 a key built by hand is what NewKey must refuse
			return tokens.NewKey(&ecdsa.PrivateKey{PublicKey: *offCurve(), D: big.NewInt(1)})
		}, wantErr: true},
		{name: "Ed25519 seed", key: func() (*tokens.Key, error) { return tokens.NewKey(ed25519.PrivateKey(ed.Seed())) }, wantErr: true},
		{name: "Ed25519 seed with another key's public half", key: func() (*tokens.Key, error) {
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			return tokens.NewKey(ed25519.PrivateKey(append(slices.Clone(ed.Seed()), other.Public().(ed25519.PublicKey)...)))
		}, wantErr: true},
		{name: "EC private key of another key's public half", key: func() (*tokens.Key, error) {
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			//lint:ignore SA1019 a key built by hand is what NewKey must refuse
			return tokens.NewKey(&ecdsa.PrivateKey{PublicKey: other.PublicKey, D: p256.D})
		}, wantErr: true},
		{name: "RSA private key of another's modulus", key: func() (*tokens.Key, error) {
			bad := *rsa2048()
			other, _ := rsa.GenerateKey(rand.Reader, 2048)
			bad.PublicKey = other.PublicKey
			return tokens.NewKey(&bad)
		}, wantErr: true},
		{name: "Ed25519 public of 31 bytes", key: func() (*tokens.Key, error) { return tokens.NewVerifyKey(ed25519.PublicKey(make([]byte, 31))) }, wantErr: true},
		{name: "RSA 2048", key: func() (*tokens.Key, error) { return tokens.NewKey(rsa2048()) }, alg: "RS256"},
		{name: "EC P-256", key: func() (*tokens.Key, error) { return tokens.NewKey(p256) }, alg: "ES256"},
		{name: "Ed25519", key: func() (*tokens.Key, error) { return tokens.NewKey(ed) }, alg: "EdDSA"},
		{name: "HMAC 32 bytes", key: func() (*tokens.Key, error) { return tokens.NewKey(make([]byte, 32)) }, alg: "HS256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := tc.key()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("accepted a weak or unsupported key (%s)", k.Algorithm())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := k.Algorithm(); got != tc.alg {
				t.Errorf("Algorithm = %s, want %s", got, tc.alg)
			}
		})
	}
}

func TestParseKeyPEM(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	for _, tc := range []struct {
		name string
		priv any
		alg  string
	}{
		{"ed25519", ed, "EdDSA"},
		{"es256", ec, "ES256"},
		{"rs256", rsa2048(), "RS256"},
		{"hs256", secret, "HS256"},
	} {
		t.Run("round trip "+tc.name, func(t *testing.T) {
			k, err := tokens.NewKey(tc.priv)
			if err != nil {
				t.Fatal(err)
			}
			data, err := k.MarshalPEM()
			if err != nil {
				t.Fatal(err)
			}
			got, err := tokens.ParseKeyPEM(data)
			if err != nil {
				t.Fatalf("ParseKeyPEM(MarshalPEM) = %v", err)
			}
			if got.ID != k.ID || got.Algorithm() != tc.alg || !got.CanSign() {
				t.Errorf("round trip gave kid %s alg %s can sign %v, want kid %s alg %s can sign", got.ID, got.Algorithm(), got.CanSign(), k.ID, tc.alg)
			}
			// Tokens signed by either verify with the other: the private
			// part came back too.
			store := security.NewMemoryStore(nil)
			s1, _ := tokens.New(guardtest.Issuer, guardtest.Audience, k, store)
			s2, _ := tokens.New(guardtest.Issuer, guardtest.Audience, got, store)
			for _, c := range []struct {
				name         string
				sign, verify *tokens.Service
			}{{"the original's token", s1, s2}, {"its own token", s2, s1}} {
				pair, err := c.sign.Login(context.Background(), "alice", "reader", nil, "test")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.verify.VerifyAccess(context.Background(), pair.Access); err != nil {
					t.Errorf("the round-tripped key and %s: %v", c.name, err)
				}
			}
		})
	}

	t.Run("public key is verify only", func(t *testing.T) {
		der, _ := x509.MarshalPKIXPublicKey(ed.Public())
		k, err := tokens.ParseKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		if err != nil {
			t.Fatal(err)
		}
		if k.CanSign() {
			t.Error("a public key can sign")
		}
		if _, err := k.MarshalPEM(); err == nil {
			t.Error("MarshalPEM of a verify-only key succeeded")
		}
	})

	block := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	weakRSA, _ := x509.MarshalPKCS8PrivateKey(rsa1024())
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	weakEC, _ := x509.MarshalPKCS8PrivateKey(p384)
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("garbage")},
		{"truncated PEM", block("PRIVATE KEY", edDER)[:40]},
		{"PKCS#1 RSA block", block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048()))},
		{"junk in PRIVATE KEY", block("PRIVATE KEY", []byte("junk"))},
		{"junk in PUBLIC KEY", block("PUBLIC KEY", []byte("junk"))},
		{"short HMAC KEY", block("HMAC KEY", make([]byte, 16))},
		{"RSA 1024", block("PRIVATE KEY", weakRSA)},
		{"EC P-384", block("PRIVATE KEY", weakEC)},
		{"two blocks", append(block("PRIVATE KEY", edDER), block("PRIVATE KEY", edDER)...)},
		{"certificate", block("CERTIFICATE", []byte("junk"))},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			if k, err := tokens.ParseKeyPEM(tc.data); err == nil {
				t.Errorf("ParseKeyPEM accepted it (kid %s)", k.ID)
			}
		})
	}
}

func TestNewTokenServiceChecks(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	k, _ := tokens.NewKey(ed)
	verifyOnly, _ := tokens.NewVerifyKey(ed.Public())
	store := security.NewMemoryStore(nil)
	cases := []struct {
		name     string
		iss, aud string
		key      *tokens.Key
		opts     []tokens.Option
	}{
		{name: "no issuer", aud: guardtest.Audience, key: k},
		{name: "no audience", iss: guardtest.Issuer, key: k},
		{name: "no key", iss: guardtest.Issuer, aud: guardtest.Audience},
		{name: "verify-only key", iss: guardtest.Issuer, aud: guardtest.Audience, key: verifyOnly},
		{name: "zero access TTL", iss: guardtest.Issuer, aud: guardtest.Audience, key: k, opts: []tokens.Option{tokens.WithTTL(0, time.Hour)}},
		// Its times are whole seconds: it would expire as it is issued.
		{name: "access TTL under a second", iss: guardtest.Issuer, aud: guardtest.Audience, key: k, opts: []tokens.Option{tokens.WithTTL(999*time.Millisecond, time.Hour)}},
		{name: "refresh shorter than access", iss: guardtest.Issuer, aud: guardtest.Audience, key: k, opts: []tokens.Option{tokens.WithTTL(time.Hour, time.Minute)}},
		// A day's leeway would keep a 15-minute token good for a day.
		{name: "leeway above the most", iss: guardtest.Issuer, aud: guardtest.Audience, key: k, opts: []tokens.Option{tokens.WithLeeway(24 * time.Hour)}},
		{name: "negative leeway", iss: guardtest.Issuer, aud: guardtest.Audience, key: k, opts: []tokens.Option{tokens.WithLeeway(-time.Second)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tokens.New(tc.iss, tc.aud, tc.key, store, tc.opts...); err == nil {
				t.Error("NewTokenService accepted it")
			}
		})
	}
	if _, err := tokens.New(guardtest.Issuer, guardtest.Audience, k, store, tokens.WithLeeway(tokens.MaxLeeway)); err != nil {
		t.Errorf("the most leeway: %v", err)
	}
	// A missing store fails at start, not with a panic on the first request.
	for name, store := range map[string]security.FamilyStore{"no store": nil, "a nil *MemoryStore": (*security.MemoryStore)(nil)} {
		if _, err := tokens.New(guardtest.Issuer, guardtest.Audience, k, store); err == nil || !strings.Contains(err.Error(), "a store is required") {
			t.Errorf("%s: %v, want a store is required", name, err)
		}
	}
}

// countingStore counts revocation checks.
type countingStore struct {
	*security.MemoryStore
	checks atomic.Int64
}

func (c *countingStore) Check(ctx context.Context, ch security.Check) error {
	c.checks.Add(1)
	return c.MemoryStore.Check(ctx, ch)
}

func newCachedService(tb testing.TB, clk *guardtest.Clock, opts ...tokens.Option) (*tokens.Service, *countingStore) {
	tb.Helper()
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	k, err := tokens.NewKey(ed)
	if err != nil {
		tb.Fatal(err)
	}
	store := &countingStore{MemoryStore: security.NewMemoryStore(clk.Now)}
	opts = append([]tokens.Option{tokens.WithClock(clk.Now), tokens.WithTTL(time.Minute, time.Hour)}, opts...)
	svc, err := tokens.New(guardtest.Issuer, guardtest.Audience, k, store, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return svc, store
}

func TestTokenCache(t *testing.T) {
	ctx := context.Background()

	t.Run("a hit still checks revocation", func(t *testing.T) {
		clk := guardtest.NewClock()
		svc, store := newCachedService(t, clk)
		pair, err := svc.Login(ctx, "alice", "reader", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := svc.VerifyAccess(ctx, pair.Access); err != nil {
				t.Fatalf("verification %d: %v", i, err)
			}
		}
		if got := store.checks.Load(); got != 3 {
			t.Errorf("Check calls = %d, want 3 (one per verification, hits included)", got)
		}
		if err := store.RevokeFamily(ctx, "alice", pair.AccessClaims.Family); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.VerifyAccess(ctx, pair.Access); !errors.Is(err, security.ErrInvalid) {
			t.Errorf("cached but revoked: VerifyAccess = %v, want ErrInvalid", err)
		}
	})

	// The cache hashes a token's signature alone: a token with another
	// payload and the same signature lands on the cached entry and must
	// be verified, and refused, as if nothing were cached.
	t.Run("a token ending as a cached one is verified whole", func(t *testing.T) {
		svc, _ := newCachedService(t, guardtest.NewClock())
		pair, err := svc.Login(ctx, "alice", "reader", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.VerifyAccess(ctx, pair.Access); err != nil {
			t.Fatal(err)
		}
		tampered := guardtest.Tamper(t, pair.Access)
		if tampered[len(tampered)-32:] != pair.Access[len(pair.Access)-32:] {
			t.Fatal("the tampered token does not end as the cached one; the test would prove nothing")
		}
		for i := range 2 {
			if c, err := svc.VerifyAccess(ctx, tampered); !errors.Is(err, security.ErrInvalid) {
				t.Fatalf("tampered payload, same signature, try %d: VerifyAccess = %+v, %v; want ErrInvalid", i, c, err)
			}
		}
		if c, err := svc.VerifyAccess(ctx, pair.Access); err != nil || c.Subject != "alice" {
			t.Errorf("the cached token after the tampered one: %+v, %v", c, err)
		}
	})

	t.Run("a hit skips parsing", func(t *testing.T) {
		allocs := func(opts ...tokens.Option) float64 {
			svc, _ := newCachedService(t, guardtest.NewClock(), opts...)
			pair, err := svc.Login(ctx, "alice", "reader", nil, "test")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.VerifyAccess(ctx, pair.Access); err != nil {
				t.Fatal(err)
			}
			return testing.AllocsPerRun(50, func() { _, _ = svc.VerifyAccess(ctx, pair.Access) })
		}
		cached, uncached := allocs(), allocs(tokens.WithCacheSize(0))
		if cached*4 > uncached {
			t.Errorf("allocations per verification: cached %.0f, uncached %.0f; a hit does not skip parsing", cached, uncached)
		}
	})

	for _, tc := range []struct {
		name   string
		leeway time.Duration
		after  time.Duration // past the access token's exp
	}{
		{name: "never used at exp", leeway: 0, after: 0},
		{name: "never used after exp plus leeway", leeway: 5 * time.Second, after: 5 * time.Second},
		{name: "never used long after exp", leeway: 5 * time.Second, after: 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := guardtest.NewClock()
			svc, _ := newCachedService(t, clk, tokens.WithLeeway(tc.leeway))
			pair, err := svc.Login(ctx, "alice", "reader", nil, "test")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.VerifyAccess(ctx, pair.Access); err != nil {
				t.Fatal(err)
			}
			clk.Advance(pair.AccessClaims.ExpiresAt.Sub(clk.Now()) - time.Second)
			if _, err := svc.VerifyAccess(ctx, pair.Access); err != nil {
				t.Fatalf("one second before exp: %v", err)
			}
			clk.Advance(time.Second + tc.after)
			if _, err := svc.VerifyAccess(ctx, pair.Access); !errors.Is(err, security.ErrInvalid) {
				t.Errorf("%s after exp: VerifyAccess = %v, want ErrInvalid", tc.after, err)
			}
		})
	}
}

// A refusal names what was wrong, never what the token said: its type or
// key id go into 401 bodies and WWW-Authenticate otherwise.
func TestRefusalsQuoteNothingOfTheToken(t *testing.T) {
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := tokens.New(guardtest.Issuer, guardtest.Audience, key, security.NewMemoryStore(nil))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "ECHO-me"
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	claims := b64(`{"iss":"` + guardtest.Issuer + `","sub":"alice","exp":9999999999}`)
	sig := base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	for name, header := range map[string]string{
		"typ": `{"alg":"EdDSA","kid":"` + key.ID + `","typ":"` + marker + `"}`,
		"kid": `{"alg":"EdDSA","kid":"` + marker + `","typ":"at+jwt"}`,
	} {
		_, err := svc.VerifyAccess(context.Background(), b64(header)+"."+claims+"."+sig)
		if err == nil || strings.Contains(err.Error(), marker) {
			t.Errorf("%s: %v, want a refusal quoting nothing of the token", name, err)
		}
	}
}

// accountsTable is account state kept in a map, as a database would.
type accountsTable struct {
	mu sync.Mutex
	m  map[string]security.Account
}

func (d *accountsTable) AccountState(_ context.Context, subject string) (security.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.m[subject]
	if !ok {
		return a, security.ErrNotFound
	}
	return a, nil
}

// VerifyAccess says the account may still use the token; after a
// demotion it handed back the role and scopes as minted, which code that
// authorises outside the guard (a websocket's handshake, a worker) would
// grant until the token expired (helper-189). They are the account's now.
func TestVerifyAccessAfterADemotion(t *testing.T) {
	ctx := context.Background()
	roles := map[string][]string{"admin": {"a:admin", "a:read"}, "reader": {"a:read"}}
	store := security.NewMemoryStore(nil)
	db := &accountsTable{m: map[string]security.Account{"alice": {Version: 1, Role: "admin"}}}
	accounts := security.NewAccounts(store, db, func(r string) []string { return roles[r] })
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tokens.New("https://iss", "aud", key, store, tokens.WithAccounts(accounts))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ts.Login(ctx, "alice", "admin", roles["admin"], "d")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ts.VerifyAccess(ctx, pair.Access); err != nil || c.Scope != "a:admin a:read" || c.Role != "admin" {
		t.Fatalf("before: %+v, %v", c, err)
	}
	demoted := security.Account{Version: 2, Role: "reader"}
	if err := accounts.Publish(ctx, "alice", demoted); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	db.m["alice"] = demoted
	db.mu.Unlock()
	c, err := ts.VerifyAccess(ctx, pair.Access)
	if err != nil || c.Scope != "a:read" || c.Role != "reader" {
		t.Errorf("after a demotion to reader: %+v, %v; want scope a:read and role reader", c, err)
	}
	// The cached claims the guard reads are not changed by it.
	if c, err := ts.VerifyAccess(ctx, pair.Access); err != nil || c.Subject != "alice" || c.Family == "" {
		t.Errorf("again: %+v, %v", c, err)
	}
}
