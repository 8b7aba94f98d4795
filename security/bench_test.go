package security_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

func benchTokens(b *testing.B, opts ...security.TokenOption) (*security.TokenService, string) {
	b.Helper()
	key, err := security.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	ts, err := security.NewTokenService("specguard", "specguard", key, security.NewMemoryStore(nil), opts...)
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
		opts []security.TokenOption
	}{
		{"hit", nil},
		{"miss", []security.TokenOption{security.WithCacheSize(0)}},
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

const benchSpec = `
openapi: 3.0.3
info: {title: bench, version: "1"}
paths:
  /items/{id}:
    get:
      operationId: getItem
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_-]+$"}}
      security:
        - oauth2: [a:read]
      x-rate-limit:
        - {name: anon, limit: 1000000, window: 1s, key: ip, who: anonymous}
        - {name: user, limit: 1000000, window: 1s, key: principal, who: authenticated}
        - {name: all, limit: 1000000, window: 1s, key: global}
      responses:
        '200': {description: ok}
components:
  securitySchemes:
    oauth2:
      type: oauth2
      flows:
        password:
          tokenUrl: /token
          scopes: {a:read: read}
`

// BenchmarkGuard is the whole guard path for an authenticated request with
// a cached token and every tier in the memory store.
func BenchmarkGuard(b *testing.B) {
	table, err := policy.Compile("bench.yaml", []byte(benchSpec))
	if err != nil {
		b.Fatal(err)
	}
	ts, tok := benchTokens(b)
	r := chi.NewRouter()
	r.Get("/items/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	newGuard := func(opts ...security.Option) func(http.Handler) http.Handler {
		opts = append(opts,
			security.WithAuthenticator(policy.SchemeOAuth2, security.BearerAuthenticator{Tokens: ts}),
			security.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
		guard, err := security.NewGuard(table, r, opts...)
		if err != nil {
			b.Fatal(err)
		}
		return guard
	}
	guard := newGuard(security.WithoutRequestValidation())
	validating := newGuard()
	// As specguard serve wires it: every token also holds for its
	// account's current state (a cached copy, asserted in the store).
	store := security.NewMemoryStore(nil)
	accounts := security.NewAccounts(store, benchAccounts{}, func(string) []string { return []string{"a:read", "a:write"} })
	key, err := security.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	ats, err := security.NewTokenService("specguard", "specguard", key, store, security.WithAccounts(accounts))
	if err != nil {
		b.Fatal(err)
	}
	pair, err := ats.Login(context.Background(), "alice", "user", []string{"a:read", "a:write"}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	withAccounts, err := security.NewGuard(table, r, security.WithoutRequestValidation(),
		security.WithAuthenticator(policy.SchemeOAuth2, security.BearerAuthenticator{Tokens: ats}),
		security.WithLimiter(limits.New(limits.NewMemoryStore(nil))))
	if err != nil {
		b.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	for _, bc := range []struct {
		name  string
		h     http.Handler
		token string
	}{
		// The guard alone in front of a handler: route lookup, bearer
		// verification (cached), scopes, three tiers, headers, context.
		{"guard", guard(ok), tok},
		// The same with account state.
		{"guard+accounts", withAccounts(ok), pair.Access},
		// The same with chi routing to the handler afterwards, as served.
		{"guard+chi", guard(r), tok},
		// As served: request validation against the spec on.
		{"guard+validation+chi", validating(r), tok},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/items/42", nil)
			req.Header.Set("Authorization", "Bearer "+bc.token)
			w := &codeWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.code = 0
				bc.h.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// benchAccounts knows one account, alice.
type benchAccounts struct{}

func (benchAccounts) AccountState(context.Context, string) (security.Account, error) {
	return security.Account{Version: 1, Role: "user"}, nil
}

// codeWriter is a reusable ResponseWriter that keeps only the status.
type codeWriter struct {
	h    http.Header
	code int
}

func (w *codeWriter) Header() http.Header         { return w.h }
func (w *codeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *codeWriter) WriteHeader(code int)        { w.code = code }
