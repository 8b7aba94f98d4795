package guard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/apikeys"
	"github.com/specguard/specguard/security/tokens"
)

const benchSpec = `
openapi: 3.0.3
info: {title: bench, version: "1"}
security:
  - oauth2: [a:read]
x-rate-limit:
  - {name: anon, limit: 1000000, window: 1s, key: ip, who: anonymous}
  - {name: user, limit: 1000000, window: 1s, key: principal, who: authenticated}
  - {name: all, limit: 1000000, window: 1s, key: global}
paths:
  /items/{id}:
    get:
      operationId: getItem
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9_-]+$"}}
      responses:
        '200': {description: ok}
  /items:
    get:
      operationId: listItems
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}
        - {name: q, in: query, schema: {type: string, maxLength: 64}}
      responses:
        '200': {description: ok}
  /keyed:
    get:
      operationId: listKeyed
      security:
        - key: [a:read]
      responses:
        '200': {description: ok}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
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
	// newGuard returns a guard whose tokens are minted for alice, with
	// account state when accounts is true (as package service wires it:
	// every token also holds for its account's current state, a cached
	// copy asserted in the store), a token and an API key of alice's.
	newGuard := func(accounts bool, opts ...guard.Option) (g *guard.Guard, token, apiKey string) {
		store := security.NewMemoryStore(nil)
		var tokOpts []tokens.Option
		if accounts {
			acc := security.NewAccounts(store, benchAccounts{}, func(string) []string { return []string{"a:read", "a:write"} })
			tokOpts = append(tokOpts, tokens.WithAccounts(acc))
		}
		ts := memoryTokens(b, store, tokOpts...)
		pair, err := ts.Login(context.Background(), "alice", "user", []string{"a:read", "a:write"}, "bench")
		if err != nil {
			b.Fatal(err)
		}
		keys := apikeys.New(store, security.NewMemoryKeyRecords(nil))
		apiKey, _, err = keys.Create(context.Background(), "alice", "bench", []string{"a:read"})
		if err != nil {
			b.Fatal(err)
		}
		r := chi.NewRouter()
		ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }
		r.Get("/items/{id}", ok)
		r.Get("/items", ok)
		r.Get("/keyed", ok)
		g, err = guard.New(table, r, append(opts,
			guard.WithAuthenticator(policy.SchemeOAuth2, tokens.Bearer{Tokens: ts}),
			guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys),
			guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))))...)
		if err != nil {
			b.Fatal(err)
		}
		return g, pair.Access, apiKey
	}
	for _, bc := range []struct {
		name     string
		path     string
		accounts bool
		opts     []guard.Option
	}{
		// Route lookup, bearer verification (cached), scopes, three tiers,
		// headers, context, and chi routing to the handler (which, for a
		// path parameter, sets the request's path values: two allocations
		// of chi's).
		{"guard", "/items/42", false, []guard.Option{guard.WithoutRequestValidation()}},
		// The same on a route without parameters: the guard's own
		// allocations alone.
		{"guard,static-route", "/items", false, []guard.Option{guard.WithoutRequestValidation()}},
		// The same with an API key (cached) instead of a token.
		{"guard,static-route,api-key", "/keyed", false, []guard.Option{guard.WithoutRequestValidation()}},
		// The same with account state.
		{"guard+accounts", "/items/42", true, []guard.Option{guard.WithoutRequestValidation()}},
		// As served: request validation against the document on.
		{"guard+validation", "/items/42", true, nil},
		// Validated with query parameters (openapi3filter's decoding).
		{"guard+validation,query", "/items?limit=10&q=abc", true, nil},
		// And every answer checked against the document, reported.
		{"guard+validation+responses", "/items/42", true, []guard.Option{guard.WithResponseValidation(guard.ResponsesReport, nil)}},
		// Traced: every request sampled, its spans batched to an
		// exporter that drops them (the SDK's cost, not the network's).
		{"guard+traced", "/items/42", false, []guard.Option{guard.WithoutRequestValidation(),
			guard.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter())))}},
	} {
		g, token, apiKey := newGuard(bc.accounts, bc.opts...)
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", bc.path, nil)
			if bc.path == "/keyed" {
				req.Header.Set("X-API-Key", apiKey)
			} else {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			w := &codeWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.code = 0
				g.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// memoryTokens is a token service on store with a key of its own.
func memoryTokens(tb testing.TB, store *security.MemoryStore, opts ...tokens.Option) *tokens.Service {
	tb.Helper()
	key, err := tokens.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	ts, err := tokens.New("specguard", "specguard", key, store, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return ts
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
