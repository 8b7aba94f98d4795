package security

import (
	"context"
	"slices"

	"github.com/specguard/specguard/internal/ctxkey"
)

// Principal is a verified caller. The guard puts it in the request context;
// handlers read it with FromContext. Its Claim method answers x-rate-limit
// keys of the form claim:<name>. It is read-only: the principal of a
// cached token, session or API key is shared by every request that
// presents the same credential.
type Principal struct {
	Subject string   // the user id
	Role    string   // the account's current role (when account state is kept; else at issue)
	Scheme  string   // the security scheme(s) that admitted the request, "+"-joined for AND
	Scopes  []string // scopes held, sorted: the credential's own that the current role grants

	TokenID   string // jti of the access token, when a token was presented
	FamilyID  string // refresh-token family (one login) of the access token
	SessionID string // cookie session id, when a session was presented
	KeyID     string // API key id, when a key was presented
	Fresh     bool   // the token was minted from a password, not a refresh

	// External is true for a token from an outside identity provider
	// (an openIdConnect scheme): Subject is "<scheme>:<sub>" and names no
	// local account.
	External bool
	// Claims are the claims an x-rate-limit tier may count by
	// (key: claim:<name>) beyond the fields above: the string, number and
	// boolean claims of an External token, as strings, or what a service's
	// own Authenticator puts there (its guard.ClaimCarrier says which).
	Claims map[string]string
}

// HasScope reports whether p holds scope.
func (p *Principal) HasScope(scope string) bool {
	_, found := slices.BinarySearch(p.Scopes, scope)
	return found
}

// HasScopes reports whether p holds every one of scopes.
func (p *Principal) HasScopes(scopes []string) bool {
	for _, s := range scopes {
		if !p.HasScope(s) {
			return false
		}
	}
	return true
}

// NewContext returns a copy of ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxkey.Principal, p)
}

// FromContext returns the verified caller of this request, or nil for an
// anonymous caller or a public operation.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxkey.Principal).(*Principal)
	return p
}

// The claims of specguard's own credentials that an x-rate-limit tier may
// count by (key: claim:<name>): tokens carry all three, sessions and API
// keys ClaimSubject and ClaimRole.
const (
	ClaimSubject = "sub"  // the account id (Subject): every credential
	ClaimRole    = "role" // the account's role
	ClaimFamily  = "fam"  // the login a token belongs to (its refresh-token family)
)

// Claim returns the value of a claim the principal carries, for
// x-rate-limit keys of the form claim:<name>; "" when it carries none of
// that name. ClaimSubject is Subject (for an outside token, namespaced by
// its scheme); the claims of an External token are its own; otherwise
// ClaimRole and ClaimFamily are Role and FamilyID, and any other name is
// looked up in Claims.
func (p *Principal) Claim(name string) string {
	if name == ClaimSubject {
		return p.Subject
	}
	if !p.External {
		switch name {
		case ClaimRole:
			return p.Role
		case ClaimFamily:
			return p.FamilyID
		}
	}
	return p.Claims[name]
}
