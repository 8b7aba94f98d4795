package tokens_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/sessions"
	"github.com/specguard/specguard/security/tokens"
)

func benchTokens(b *testing.B, opts ...tokens.Option) (*tokens.Service, string) {
	b.Helper()
	key, err := tokens.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	ts, err := tokens.New("specguard", "specguard", key, security.NewMemoryStore(nil), opts...)
	if err != nil {
		b.Fatal(err)
	}
	pair, err := ts.Login(context.Background(), "alice", "user", []string{"a:read", "a:write"}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return ts, pair.Access
}

// BenchmarkVerifyAccess measures the bearer path: a cache hit (the same
// token again) and a miss (the cache disabled: a full Ed25519 verification).
// Both check revocation in the memory store.
func BenchmarkVerifyAccess(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []tokens.Option
	}{
		{"hit", nil},
		{"miss", []tokens.Option{tokens.WithCacheSize(0)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts, tok := benchTokens(b, bc.opts...)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ts.VerifyAccess(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAuthenticate measures a bearer request's verification, header
// to principal, of specguard's own token, cached (the same token again)
// and not (an Ed25519 signature check). The revocation check is left to
// the rate-limit call, as on the guard's path. Package security/oidc's
// BenchmarkAuthenticate is the same for an outside provider's tokens.
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	request := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/things", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	own := &policy.Scheme{Name: "bearerAuth", Type: policy.SchemeBearer, Param: "Authorization"}
	for _, c := range []struct {
		name string
		opts []tokens.Option
	}{{"own/hit", nil}, {"own/miss-ed25519", []tokens.Option{tokens.WithCacheSize(0)}}} {
		b.Run(c.name, func(b *testing.B) {
			ts, tok := benchTokens(b, c.opts...)
			auth, r := tokens.Bearer{Tokens: ts}, request(tok)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := tokens.AuthenticateDeferred(auth, ctx, r, own); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	store := security.NewMemoryStore(nil)
	ss := sessions.New(store, func(string) []string { return []string{"a:read"} })
	sess, err := ss.Create(ctx, "alice", "user", "bench")
	if err != nil {
		b.Fatal(err)
	}
	keys := apikeys.New(store, security.NewMemoryKeyRecords(nil))
	key, _, err := keys.Create(ctx, "alice", "bench", []string{"a:read"})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		auth interface {
			Authenticate(context.Context, *http.Request, *policy.Scheme) (*security.Principal, error)
		}
		scheme *policy.Scheme
		header string
		value  string
	}{
		{"session/hit", ss, &policy.Scheme{Name: "cookieAuth", Type: policy.SchemeAPIKeyCookie, Param: "sid"}, "Cookie", "sid=" + sess.Cookie},
		{"api-key/hit", keys, &policy.Scheme{Name: "keyAuth", Type: policy.SchemeAPIKeyHeader, Param: "X-API-Key"}, "X-API-Key", key},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/things", nil)
			r.Header.Set(c.header, c.value)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.auth.Authenticate(ctx, r, c.scheme); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
