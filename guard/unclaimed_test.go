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

const providerSpec = `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /either:
    get:
      operationId: either
      security: [{bearerAuth: []}, {partner: [read]}]
      responses: {'200': {description: ok}}
  /partner-first:
    get:
      operationId: partnerFirst
      security: [{partner: []}, {bearerAuth: []}]
      responses: {'200': {description: ok}}
  /own-or-cookie:
    get:
      operationId: ownOrCookie
      security: [{bearerAuth: []}, {cookieAuth: []}, {}]
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    bearerAuth: {type: http, scheme: bearer}
    cookieAuth: {type: apiKey, in: cookie, name: sid}
    partner:
      type: openIdConnect
      openIdConnectUrl: https://id.example.com/.well-known/openid-configuration
      x-audience: api
`

// issuerAuth accepts the bearer tokens that start with its prefix and
// marks every other one unclaimed, as the security package's own and
// outside verifiers do; down makes it unable to decide.
type issuerAuth struct {
	prefix string
	down   bool
}

func (a issuerAuth) Authenticate(_ context.Context, r *http.Request, s *policy.Scheme) (*security.Principal, error) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case tok == "":
		return nil, nil
	case a.down:
		return nil, fmt.Errorf("%w (%w)", security.ErrUnavailable, security.ErrUnclaimed)
	case strings.HasPrefix(tok, a.prefix+"bad"):
		return nil, fmt.Errorf("%w: bad signature", security.ErrInvalid) // its own, forged
	case strings.HasPrefix(tok, a.prefix):
		return &security.Principal{Subject: s.Name + ":" + tok, Scheme: s.Name, Scopes: []string{"read"}}, nil
	}
	return nil, fmt.Errorf("%w: not issued here (%w)", security.ErrInvalid, security.ErrUnclaimed)
}

// TestUnclaimedCredentials: a bearer token is taken by the scheme whose
// issuer made it, whatever the order of the alternatives; refused when no
// scheme takes it, even where another credential or {} would admit the
// request; and one provider being down holds up no other scheme.
func TestUnclaimedCredentials(t *testing.T) {
	e := newEdgesFrom(t, providerSpec)
	cases := []struct {
		name        string
		partnerDown bool
		path, token string
		cookie      bool
		want        int
		scheme      string
	}{
		{"own token, own first", false, "/either", "own-1", false, 200, "bearerAuth"},
		{"outside token, own first", false, "/either", "ext-1", false, 200, "partner"},
		{"outside token, partner first", false, "/partner-first", "ext-1", false, 200, "partner"},
		{"own token, partner first", false, "/partner-first", "own-1", false, 200, "bearerAuth"},
		{"nobody's token", false, "/either", "stranger", false, 401, "bearerAuth"},
		{"own forged token is not tried elsewhere", false, "/either", "own-bad", false, 401, "bearerAuth"},
		{"nobody's token with a valid cookie", false, "/own-or-cookie", "stranger", true, 401, "bearerAuth"},
		{"nobody's token where anonymous is allowed", false, "/own-or-cookie", "stranger", false, 401, "bearerAuth"},
		{"provider down: own tokens still work", true, "/partner-first", "own-1", false, 200, "bearerAuth"},
		{"provider down: its tokens are undecided", true, "/partner-first", "ext-1", false, 503, "partner"},
		{"provider down: undecided even where own tokens come first", true, "/either", "ext-1", false, 503, "partner"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got guard.Event
			g := e.guardBy(t, map[policy.SchemeType]guard.Authenticator{
				policy.SchemeBearer: issuerAuth{prefix: "own-"},
				policy.SchemeOIDC:   issuerAuth{prefix: "ext-", down: c.partnerDown},
			},
				guard.WithObserver(func(_ http.ResponseWriter, _ *http.Request, ev guard.Event) { got = ev }),
			)
			mods := []func(*http.Request){func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+c.token) }}
			if c.cookie {
				mods = append(mods, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "sid", Value: "alice"}) })
			}
			rec := serve(g, http.MethodGet, c.path, mods...)
			if rec.Code != c.want || got.Scheme != c.scheme {
				t.Fatalf("%d by %q, want %d by %q: %s", rec.Code, got.Scheme, c.want, c.scheme, rec.Body)
			}
		})
	}
}
