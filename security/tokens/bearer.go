package tokens

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/internal/cred"
	"github.com/specguard/specguard/security/internal/hold"
)

// Bearer verifies access tokens in the Authorization header,
// for http bearer and oauth2 schemes.
type Bearer struct{ Tokens *Service }

func init() {
	hold.RegisterDeferrer(func(b Bearer) hold.DeferFunc { return b.authenticateGuarded })
	hold.RegisterDeferrer(func(b *Bearer) hold.DeferFunc {
		if b == nil {
			return nil
		}
		return b.authenticateGuarded
	})
}

// Authenticate verifies the request's bearer token: (nil, nil) when it
// has none, an error wrapping ErrMalformed, ErrInvalid or ErrUnavailable
// when it is bad or cannot be checked.
func (b Bearer) Authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*security.Principal, error) {
	p, _, err := b.authenticate(ctx, r, scheme, onetrip.Mode{})
	return p, err
}

// Carries reports whether the principals of specguard's access tokens
// carry claim: ClaimSubject, ClaimRole and ClaimFamily.
func (Bearer) Carries(_ *policy.Scheme, claim string) bool {
	return claim == security.ClaimSubject || claim == security.ClaimRole || claim == security.ClaimFamily
}

// authenticateGuarded is Authenticate with the store check of what it
// verified left to the returned precheck when m.Gated (nil when there is
// nothing to check), for the guard to run in the rate-limit call, and the
// time the guard read for the request (see onetrip.Mode).
func (b Bearer) authenticateGuarded(ctx context.Context, r *http.Request, scheme *policy.Scheme, m onetrip.Mode) (*security.Principal, onetrip.Precheck, error) {
	return hold.Deferred(b.authenticate(ctx, r, scheme, m))
}

func (b Bearer) authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme, m onetrip.Mode) (*security.Principal, *hold.Gate, error) {
	raw, err := cred.Bearer(r)
	if raw == "" || err != nil {
		return nil, nil, err
	}
	if b.Tokens == nil {
		return nil, nil, fmt.Errorf("%w: tokens.Bearer has no Tokens to verify with", security.ErrUnavailable)
	}
	// A token in the cache passed the syntax check when it was first
	// verified: only an unknown one is scanned (hundreds of bytes).
	c, err := b.Tokens.verifySignature(raw, cred.IsB64Token, m.At)
	if err != nil {
		return nil, nil, err
	}
	return b.Tokens.hold(ctx, c, scheme.Name, m)
}

// splitScopes returns the sorted scopes of a space-separated list.
func splitScopes(s string) []string {
	scopes := strings.Fields(s)
	sort.Strings(scopes)
	return scopes
}
