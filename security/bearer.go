package security

import (
	"context"
	"net/http"
	"sort"
	"strings"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security/internal/cred"
)

// BearerAuthenticator verifies access tokens in the Authorization header,
// for http bearer and oauth2 schemes.
type BearerAuthenticator struct{ Tokens *TokenService }

// Authenticate verifies the request's bearer token: (nil, nil) when it
// has none, an error wrapping ErrMalformed, ErrInvalid or ErrUnavailable
// when it is bad or cannot be checked.
func (b BearerAuthenticator) Authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*Principal, error) {
	p, _, err := b.authenticate(ctx, r, scheme, false)
	return p, err
}

// Carries reports whether the principals of specguard's access tokens
// carry claim: ClaimSubject, ClaimRole and ClaimFamily.
func (BearerAuthenticator) Carries(_ *policy.Scheme, claim string) bool {
	return claim == ClaimSubject || claim == ClaimRole || claim == ClaimFamily
}

// authenticateDeferred is Authenticate with the store check of what it
// verified left to the returned precheck (nil when there is nothing to
// check), for the guard to run in the rate-limit call (see onetrip).
func (b BearerAuthenticator) authenticateDeferred(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*Principal, onetrip.Precheck, error) {
	return deferred(b.authenticate(ctx, r, scheme, true))
}

func (b BearerAuthenticator) authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme, gated bool) (*Principal, *gate, error) {
	raw, err := cred.Bearer(r)
	if raw == "" || err != nil {
		return nil, nil, err
	}
	// A token in the cache passed the syntax check when it was first
	// verified: only an unknown one is scanned (hundreds of bytes).
	c, err := b.Tokens.verifySignature(raw, cred.IsB64Token)
	if err != nil {
		return nil, nil, err
	}
	return b.Tokens.hold(ctx, c, scheme.Name, gated)
}

// splitScopes returns the sorted scopes of a space-separated list.
func splitScopes(s string) []string {
	scopes := strings.Fields(s)
	sort.Strings(scopes)
	return scopes
}

// BearerToken returns the token of an "Authorization: Bearer" header, or ""
// when the request has none (another scheme counts as none). Ambiguous or
// malformed presentations are errors wrapping ErrMalformed: two
// Authorization headers, a token in the query string (RFC 6750 section 5.3
// advises against it, and URLs leak into logs), or a bad token syntax.
func BearerToken(r *http.Request) (string, error) {
	token, err := cred.Bearer(r)
	if token != "" && err == nil && !cred.IsB64Token(token) {
		return "", cred.ErrBadTokenSyntax
	}
	return token, err
}
