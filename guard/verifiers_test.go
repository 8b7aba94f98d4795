package guard_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

const twoVerifiersSpec = `
openapi: 3.0.3
info: {title: two verifiers, version: "1"}
x-rate-limit: false
paths:
  /admin:
    get:
      operationId: admin
      security:
        - own: [admin]
        - partner: []
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    own:
      type: oauth2
      flows: {password: {tokenUrl: /token, scopes: {admin: admin}}}
    partner: {type: http, scheme: bearer}
`

// oneToken is an Authenticator that knows one bearer token, and says any
// other may be another scheme's.
type oneToken struct{ token, subject string }

func (o oneToken) Authenticate(_ context.Context, r *http.Request, s *policy.Scheme) (*security.Principal, error) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok:
		return nil, nil
	case got != o.token:
		return nil, fmt.Errorf("%w: %w", security.ErrInvalid, security.ErrUnclaimed)
	}
	return &security.Principal{Subject: o.subject, Scheme: s.Name}, nil
}

// An oauth2 scheme and a bearer scheme verified by two authenticators are
// two verifiers of the Authorization header: a token one of them takes
// (too few scopes there) is not the other's to admit.
func TestBearerAndOAuth2WithTheirOwnAuthenticators(t *testing.T) {
	e := newEdgesFrom(t, twoVerifiersSpec)
	g, err := guard.New(e.table, e.router,
		guard.WithAuthenticator(policy.SchemeOAuth2, oneToken{token: "own-user", subject: "alice"}),
		guard.WithAuthenticator(policy.SchemeBearer, oneToken{token: "partner", subject: "partner-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if w := serve(g, "GET", "/admin", withHeader("Authorization", "Bearer own-user")); w.Code != http.StatusForbidden {
		t.Errorf("the own token without admin, which the partner scheme does not take: %d %q, want 403", w.Code, w.Body)
	}
	if w := serve(g, "GET", "/admin", withHeader("Authorization", "Bearer partner")); w.Code != http.StatusOK {
		t.Errorf("the partner's token: %d %q, want 200", w.Code, w.Body)
	}

	// One authenticator for both: one verification stands for both.
	one := oneToken{token: "own-user", subject: "alice"}
	g, err = guard.New(e.table, e.router, guard.WithAuthenticator(policy.SchemeOAuth2, one), guard.WithAuthenticator(policy.SchemeBearer, one))
	if err != nil {
		t.Fatal(err)
	}
	if w := serve(g, "GET", "/admin", withHeader("Authorization", "Bearer own-user")); w.Code != http.StatusOK {
		t.Errorf("one authenticator for both schemes: %d %q, want 200", w.Code, w.Body)
	}
}

const twoIssuersSpec = `
openapi: 3.0.3
info: {title: two issuers, version: "1"}
x-rate-limit: false
paths:
  /orders:
    delete:
      operationId: purgeOrders
      security:
        - partner: [orders:read]
        - staff: [orders:write]
      responses: {'204': {description: ok}}
components:
  securitySchemes:
    staff:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: 'https://staff.example.com/token', scopes: {orders:write: w}}}
    partner:
      type: oauth2
      flows: {clientCredentials: {tokenUrl: 'https://partner.example.com/token', scopes: {orders:read: r, orders:write: w}}}
`

// byScheme is an Authenticator of the app's own that tells the schemes of
// one type apart, as the scheme it is handed lets it: each knows its own
// tokens.
type byScheme map[string]map[string]*security.Principal

func (a byScheme) Authenticate(_ context.Context, r *http.Request, s *policy.Scheme) (*security.Principal, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, nil
	}
	p, ok := a[s.Name][raw]
	if !ok {
		return nil, fmt.Errorf("%w: not a token of %s (%w)", security.ErrInvalid, s.Name, security.ErrUnclaimed)
	}
	return p, nil
}

// Two schemes of one type, one Authenticator of the app's own: its verdict
// for one scheme is not the other's, as it is handed the scheme. A
// partner's token with orders:write alone, which the staff scheme refuses,
// got in as staff: the partner scheme's verdict was reused for it
// (helper-147).
func TestSchemesOfOneTypeAskTheAppsAuthenticatorApart(t *testing.T) {
	e := newEdgesFrom(t, twoIssuersSpec)
	auth := byScheme{
		"staff":   {"staff-1": {Subject: "staff:ann", Scopes: []string{"orders:write"}}},
		"partner": {"partner-1": {Subject: "partner:acme", Scopes: []string{"orders:write"}}},
	}
	g, err := guard.New(e.table, e.router, guard.WithAuthenticator(policy.SchemeOAuth2, auth))
	if err != nil {
		t.Fatal(err)
	}
	if w := serve(g, "DELETE", "/orders", withHeader("Authorization", "Bearer partner-1")); w.Code != http.StatusForbidden {
		t.Errorf("a partner token without orders:read, which the staff scheme refuses: %d %q, want 403", w.Code, w.Body)
	}
	if w := serve(g, "DELETE", "/orders", withHeader("Authorization", "Bearer staff-1")); w.Code/100 != 2 {
		t.Errorf("a staff token with orders:write: %d %q, want 2xx", w.Code, w.Body)
	}
}
