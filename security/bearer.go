package security

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
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
	raw, err := bearerCredential(r)
	if raw == "" || err != nil {
		return nil, nil, err
	}
	// A token in the cache passed the syntax check when it was first
	// verified: only an unknown one is scanned (hundreds of bytes).
	c, err := b.Tokens.verifySignature(raw, isB64Token)
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
	token, err := bearerCredential(r)
	if token != "" && err == nil && !isB64Token(token) {
		return "", errBadTokenSyntax
	}
	return token, err
}

// bearerCredential is BearerToken without the check of the token's
// characters.
func bearerCredential(r *http.Request) (string, error) {
	// The cheap check must also see a percent-encoded name ("access%5Ftoken"),
	// which Query decodes to the same parameter.
	if q := r.URL.RawQuery; q != "" && (strings.Contains(q, "access_token") || strings.Contains(q, "%")) {
		if _, ok := r.URL.Query()["access_token"]; ok {
			return "", fmt.Errorf("%w: tokens are not accepted in the query string", ErrMalformed)
		}
	}
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", fmt.Errorf("%w: more than one Authorization header", ErrMalformed)
	}
	h := values[0]
	scheme, token, found := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if strings.EqualFold(h, "Bearer") {
			return "", fmt.Errorf("%w: empty bearer token", ErrMalformed)
		}
		return "", nil
	}
	if !found || token == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrMalformed)
	}
	if len(token) > MaxTokenBytes {
		return "", fmt.Errorf("%w: token larger than %d bytes", ErrInvalid, MaxTokenBytes)
	}
	return token, nil
}

var errBadTokenSyntax = fmt.Errorf("%w: the bearer token has characters RFC 6750 does not allow", ErrMalformed)

// isB64Token reports whether s matches RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for i < len(s) && b64tokenChar[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// b64tokenChar marks the characters of RFC 6750's b64token before any
// trailing '=': a table lookup per byte, as tokens are hundreds long.
var b64tokenChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()
