package security

import (
	"context"
	"slices"
	"strings"

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

	// Credentials are the credentials that admitted the request, one per
	// scheme in Scheme and in its order. Credential finds one by kind;
	// a kind's package says what more its own carry (tokens.AccessOf).
	Credentials []Credential
	// Claims are the claims an x-rate-limit tier may count by
	// (key: claim:<name>) beyond Subject and Role: the login of a token
	// (ClaimFamily), the string, number and boolean claims of an outside
	// provider's token, as strings, or what a service's own Authenticator
	// puts there (its guard.ClaimCarrier says which).
	Claims map[string]string
}

// A Credential is one credential that admitted a request, as its kind
// describes it. A kind may carry more (a token's login: tokens.Access);
// one that proves a password was just given says so with a method
// Fresh() bool (x-require-fresh), and one that stands for an API key (a
// token minted from one) with a method APIKey() string, the key's id,
// which an x-rate-limit tier keyed by apikey then counts it under.
type Credential interface {
	// Kind is KindToken, KindSession, KindAPIKey, KindExternal, or a kind
	// of one's own.
	Kind() string
	// ID identifies the credential within its kind: a token's jti, a
	// session's id, an API key's id; x-rate-limit tiers keyed by session
	// and apikey count by it. "" when it has none.
	ID() string
}

// The kinds of specguard's credentials.
const (
	KindToken    = "token"    // an access token of specguard's own (security/tokens)
	KindSession  = "session"  // a cookie session (security/sessions)
	KindAPIKey   = "apikey"   // an API key (security/apikeys)
	KindExternal = "external" // a token of an outside identity provider (security/oidc): Subject is "<scheme>:<sub>" and names no local account
)

// NewCredential returns the Credential of the given kind and id, for a
// kind that carries nothing more.
func NewCredential(kind, id string) Credential { return &credential{kind, id} }

type credential struct{ kind, id string }

func (c *credential) Kind() string { return c.kind }
func (c *credential) ID() string   { return c.id }

// Credential returns the first credential of kind that admitted the
// request, or nil.
func (p *Principal) Credential(kind string) Credential {
	for _, c := range p.Credentials {
		if c.Kind() == kind {
			return c
		}
	}
	return nil
}

// Fresh reports whether every credential that admitted the request proves
// a password was just given (specguard's access tokens minted at a login,
// not a refresh): what an operation with x-require-fresh needs.
func (p *Principal) Fresh() bool {
	for _, c := range p.Credentials {
		if f, ok := c.(interface{ Fresh() bool }); !ok || !f.Fresh() {
			return false
		}
	}
	return len(p.Credentials) > 0
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
// its scheme); ClaimRole is Role; any other name is looked up in Claims.
// When the first credential is an outside token, its claims are its own
// (role included), namespaced by its scheme as its subject is
// ("partner:acme"): a provider's tenant or role never shares a bucket with
// another provider's, nor with specguard's own accounts.
func (p *Principal) Claim(name string) string {
	switch {
	case name == ClaimSubject:
		return p.Subject
	case !p.external():
		if name == ClaimRole {
			return p.Role
		}
		return p.Claims[name]
	}
	v := p.Claims[name]
	if v == "" {
		return ""
	}
	// The subject is "<scheme>:<sub>" (a scheme's name has no colon).
	scheme, _, _ := strings.Cut(p.Subject, ":")
	return scheme + ":" + v
}

// external reports whether the request was admitted by an outside token
// first: its claims are the token's own, role included.
func (p *Principal) external() bool {
	return len(p.Credentials) > 0 && p.Credentials[0].Kind() == KindExternal
}
