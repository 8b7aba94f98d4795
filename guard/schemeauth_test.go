package guard_test

import (
	"context"
	"crypto/subtle"
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
)

// partnerAuth takes one partner's secret in the header its scheme names.
type partnerAuth struct{}

func (partnerAuth) Authenticate(_ context.Context, r *http.Request, s *policy.Scheme) (*security.Principal, error) {
	v := r.Header.Get(s.Param)
	if v == "" {
		return nil, nil
	}
	if subtle.ConstantTimeCompare([]byte(v), []byte("partner-secret")) != 1 {
		return nil, security.ErrInvalid
	}
	return &security.Principal{Subject: "partner", Scheme: s.Name,
		Credentials: []security.Credential{security.NewCredential(security.KindAPIKey, "partner")}}, nil
}

// Two schemes of one type verified apart: specguard's API keys for one,
// the app's partner secret for the other, each taking only its own. A
// second WithAuthenticator for the type replaced the first without a
// word: given last, the partner secret passed as an API key and no API key
// passed; given first, any API key passed as the partner's.
func TestSchemeAuthenticator(t *testing.T) {
	table, err := policy.Compile("t.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit:
  - {name: callers, limit: 100, window: 1m, key: principal, who: authenticated}
paths:
  /invoices:
    get:
      operationId: listInvoices
      security: [{apiKeyAuth: []}, {partnerKey: []}]
      responses: {"200": {description: ok}, "401": {description: no}}
  /partner:
    get:
      operationId: partnerOnly
      security: [{partnerKey: []}]
      responses: {"200": {description: ok}, "401": {description: no}}
components:
  securitySchemes:
    apiKeyAuth: {type: apiKey, in: header, name: X-API-Key}
    partnerKey: {type: apiKey, in: header, name: X-Partner-Key}
`))
	if err != nil {
		t.Fatal(err)
	}
	router := func() chi.Router {
		r := chi.NewRouter()
		r.Get("/invoices", func(http.ResponseWriter, *http.Request) {})
		r.Get("/partner", func(http.ResponseWriter, *http.Request) {})
		return r
	}
	keys := apikeys.New(security.NewMemoryStore(nil), security.NewMemoryKeyRecords(nil))
	key, _, err := keys.Create(context.Background(), "alice", "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	limiter := guard.WithLimiter(limits.New(limits.NewMemoryStore(nil)))
	g, err := guard.New(table, router(), guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys),
		guard.WithSchemeAuthenticator("partnerKey", partnerAuth{}), limiter)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, header, value string
		want                int
	}{
		{"/invoices", "X-API-Key", key, 200},
		{"/invoices", "X-API-Key", "partner-secret", 401},
		{"/invoices", "X-Partner-Key", "partner-secret", 200},
		{"/invoices", "X-Partner-Key", key, 401},
		{"/partner", "X-Partner-Key", "partner-secret", 200},
		{"/partner", "X-Partner-Key", key, 401},
		{"/partner", "X-API-Key", key, 401},
	} {
		req := httptest.NewRequest("GET", c.path, nil)
		req.Header.Set(c.header, c.value)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != c.want {
			t.Errorf("%s with %s: %d, want %d", c.path, c.header, w.Code, c.want)
		}
	}

	for _, c := range []struct {
		opts []guard.Option
		want string
	}{
		{[]guard.Option{guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys), guard.WithAuthenticator(policy.SchemeAPIKeyHeader, partnerAuth{})},
			"WithAuthenticator(apiKey in header) is given twice: one authenticator verifies every scheme of a type; to verify one scheme of it otherwise, use WithSchemeAuthenticator"},
		{[]guard.Option{guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys), guard.WithSchemeAuthenticator("partner", partnerAuth{})},
			`WithSchemeAuthenticator("partner"): t.yaml declares no such scheme`},
		{[]guard.Option{guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys), guard.WithSchemeAuthenticator("partnerKey", (*apikeys.Service)(nil))},
			`WithSchemeAuthenticator("partnerKey"): a nil *apikeys.Service`},
		{[]guard.Option{guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keys), guard.WithSchemeAuthenticator("partnerKey", partnerAuth{}), guard.WithSchemeAuthenticator("partnerKey", keys)},
			`WithSchemeAuthenticator("partnerKey") is given twice`},
		// Every scheme has its own: none is needed for the type.
		{[]guard.Option{guard.WithSchemeAuthenticator("partnerKey", partnerAuth{})},
			"GET /invoices (listInvoices): no authenticator for scheme apiKeyAuth (apiKey in header)"},
	} {
		if _, err := guard.New(table, router(), append(c.opts, limiter)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New: %v, want %q", err, c.want)
		}
	}
	if _, err := guard.New(table, router(), guard.WithSchemeAuthenticator("apiKeyAuth", keys), guard.WithSchemeAuthenticator("partnerKey", partnerAuth{}), limiter); err != nil {
		t.Errorf("New with an authenticator for each scheme and none for their type: %v", err)
	}
}
