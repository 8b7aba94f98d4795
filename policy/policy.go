package policy

import (
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// SchemeType is a kind of credential specguard knows how to verify.
type SchemeType uint8

const (
	// SchemeBearer is `type: http, scheme: bearer`: a JWT in the Authorization header.
	SchemeBearer SchemeType = iota + 1
	// SchemeOAuth2 is `type: oauth2`: the same bearer JWT, whose scopes are checked.
	SchemeOAuth2
	// SchemeAPIKeyHeader is `type: apiKey, in: header`.
	SchemeAPIKeyHeader
	// SchemeAPIKeyCookie is `type: apiKey, in: cookie`: a server-side session.
	SchemeAPIKeyCookie
	// SchemeOIDC is `type: openIdConnect`: a bearer token issued by an
	// outside provider, verified against its published keys or, when
	// opaque, by introspection.
	SchemeOIDC
)

func (t SchemeType) String() string {
	switch t {
	case SchemeBearer:
		return "http bearer"
	case SchemeOAuth2:
		return "oauth2"
	case SchemeAPIKeyHeader:
		return "apiKey in header"
	case SchemeAPIKeyCookie:
		return "apiKey in cookie"
	case SchemeOIDC:
		return "openIdConnect"
	}
	return "unknown"
}

// Scheme is one entry of components.securitySchemes that specguard enforces.
type Scheme struct {
	Name string     // the key under components.securitySchemes
	Type SchemeType // how the credential is presented and verified
	// Param is where the credential travels: "Authorization" for bearer,
	// oauth2 and openIdConnect, the header name or cookie name for apiKey
	// schemes.
	Param string
	// Provider is the outside identity provider of an openIdConnect
	// scheme; nil for every other type.
	Provider *Provider
}

// Place is where a credential of s travels, "header Authorization" or
// "cookie sid": schemes with the same place read the same credential.
func (s *Scheme) Place() string {
	if s.Type == SchemeAPIKeyCookie {
		return "cookie " + s.Param
	}
	return "header " + s.Param
}

// Provider is an openIdConnect scheme's identity provider, as declared.
type Provider struct {
	// URL is openIdConnectUrl: the provider's discovery document.
	URL string
	// Audience is x-audience: a token must name one of them in aud.
	Audience []string
	// Issuers is x-issuers: the accepted iss values, compared exactly.
	// Empty means the issuer the discovery document names.
	Issuers []string
	// ScopesClaim is x-scopes-claim: the claim holding the token's scopes,
	// a space-separated string or an array of strings. Empty means scope
	// (a space-separated string), else scp (a string or an array).
	ScopesClaim string
	// Introspect is false when x-introspect is false: the provider's
	// opaque tokens (anything but a JWT) are refused, never sent out.
	// Otherwise they are introspected (RFC 7662) when the provider has an
	// introspection endpoint and specguard credentials for it: those that
	// start with OpaquePrefix (x-introspect: {prefix: ...}) when it is set,
	// else every one no other provider's prefix claims.
	Introspect   bool
	OpaquePrefix string
	// Line is the scheme's line in the source, 0 when unknown.
	Line int
}

// SchemeRequirement is one scheme inside a security alternative, with the
// scopes its credential must hold.
type SchemeRequirement struct {
	Scheme *Scheme
	Scopes []string
}

// Requirement is one security alternative: every scheme in it must pass (AND).
type Requirement []SchemeRequirement

// Security is an operation's effective security declaration.
type Security struct {
	// Public is true for `security: []`: no credential is looked at.
	Public bool
	// Anonymous is true when `{}` is one of the alternatives: a caller who
	// presents no credential at all is admitted as anonymous.
	Anonymous bool
	// Alternatives are tried in document order (OR); `{}` is not among them.
	Alternatives []Requirement
}

// KeyKind says what a rate-limit tier counts by.
type KeyKind uint8

const (
	KeyIP        KeyKind = iota + 1 // the client IP
	KeyPrincipal                    // the verified subject
	KeyAPIKey                       // the verified API key id
	KeySession                      // the verified cookie session id
	KeyClaim                        // a claim of the verified access token
	KeyGlobal                       // one counter for every caller
)

func (k KeyKind) String() string {
	switch k {
	case KeyIP:
		return "ip"
	case KeyPrincipal:
		return "principal"
	case KeyAPIKey:
		return "apikey"
	case KeySession:
		return "session"
	case KeyClaim:
		return "claim"
	case KeyGlobal:
		return "global"
	}
	return "unknown"
}

// Who says which callers a tier applies to.
type Who uint8

const (
	WhoAny           Who = iota // every caller
	WhoAnonymous                // callers without verified credentials
	WhoAuthenticated            // callers with verified credentials
)

func (w Who) String() string {
	switch w {
	case WhoAnonymous:
		return "anonymous"
	case WhoAuthenticated:
		return "authenticated"
	}
	return "any"
}

// Tier is one compiled x-rate-limit entry. Every tier that applies to a
// request must admit it.
type Tier struct {
	Name   string        // policy name, unique within the operation
	Limit  int64         // requests per Window
	Window time.Duration // >= 1s
	Burst  int64         // requests admitted at once; Limit when not given
	Key    KeyKind
	// Claim is the claim name when Key is KeyClaim. Which credentials
	// carry it is their authenticators' to say (guard.ClaimCarrier).
	Claim string
	Who   Who
	Cost  int64 // weight of one call, >= 1
	// Bucket names the counter: operations that declare the same `shared`
	// name count into one bucket; otherwise it is private to the operation.
	Bucket string
	// AllowOnStoreError admits requests when the store cannot be reached
	// (`on-store-error: allow`); by default they are refused with 503.
	AllowOnStoreError bool
	// Inherited is true for a tier of the document's default x-rate-limit,
	// false for one the operation declares.
	Inherited bool
}

// Interval is the GCRA emission interval, Window/Limit, in whole
// microseconds: the unit both rate-limit stores compute in (Redis Lua
// numbers are doubles, exact only below 2^53).
func (t *Tier) Interval() int64 { return t.Window.Microseconds() / t.Limit }

// Operation is the compiled, immutable policy of one OpenAPI operation.
type Operation struct {
	ID      string // operationId
	Method  string // upper case
	Path    string // the OpenAPI path template, e.g. /posts/{id}
	Pattern string // the chi route pattern
	Line    int    // line of the operation in the source, 0 when unknown

	Security Security
	// Limits are the rate-limit tiers; empty with Unlimited set for
	// `x-rate-limit: false`.
	Limits    []Tier
	Unlimited bool
	// RequireFresh is `x-require-fresh: true`: only a token minted from a
	// password (not a refreshed one) is accepted.
	RequireFresh bool
	// Owner is x-owner: the operation acts on the caller's own resource
	// only (nil when it does not say so).
	Owner *Owner

	// Spec and PathItem point into the loaded document, for request validation.
	Spec     *openapi3.Operation
	PathItem *openapi3.PathItem
}

// Owner says that an operation acts only on the caller's own resource,
// the one its last path parameter names (x-owner). The handlers enforce
// it; the guard cannot know who owns what; `specguard conform` checks it.
type Owner struct {
	// Override are scopes whose holders may act on anyone's resource.
	Override []string
}

// String describes it: "owner only", "owner only, or users:admin".
func (o *Owner) String() string {
	if len(o.Override) == 0 {
		return "owner only"
	}
	return "owner only, or " + strings.Join(o.Override, ", ")
}

// Table is the compiled policy of a whole document.
type Table struct {
	Doc     *openapi3.T
	Source  string             // the name errors and lint findings use for the document
	Schemes map[string]*Scheme // the enforceable schemes some operation uses
	// Roles maps a role to the scopes it grants (the oauth2 scheme's
	// x-roles), sorted.
	Roles map[string][]string
	// Scopes are every scope the oauth2 schemes declare, sorted.
	Scopes []string

	lines   keyLines // a JSON document's lines (see linesOf)
	ops     []*Operation
	byRoute map[route]*Operation
	byID    map[string]*Operation
}

// route is a method and chi route pattern: a map key built without
// allocating, unlike a joined string.
type route struct{ method, pattern string }

// Operations returns every operation, sorted by path then method.
func (t *Table) Operations() []*Operation { return t.ops }

// Lookup returns the operation registered for method and chi route pattern,
// or nil when there is none.
func (t *Table) Lookup(method, pattern string) *Operation {
	return t.byRoute[route{method, pattern}]
}

// Operation returns the operation with the given operationId, or nil.
func (t *Table) Operation(id string) *Operation { return t.byID[id] }

// RoleScopes returns the scopes granted to role, sorted, or nil for an
// unknown role. The slice is shared: do not modify it.
func (t *Table) RoleScopes(role string) []string { return t.Roles[role] }
