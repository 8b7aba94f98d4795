package guard

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// Outcome is how authentication of one request ended.
type Outcome string

const (
	AuthPublic      Outcome = "public"             // security: [] (nothing looked at)
	AuthOK          Outcome = "ok"                 // an alternative was satisfied
	AuthAnonymous   Outcome = "anonymous"          // no credential, and {} admits that
	AuthMissing     Outcome = "missing"            // no credential; 401
	AuthInvalid     Outcome = "invalid"            // a bad, expired or revoked credential; 401
	AuthMalformed   Outcome = "malformed"          // an unreadable or duplicated credential; 400
	AuthScope       Outcome = "insufficient_scope" // valid, but too few scopes; 403
	AuthNotFresh    Outcome = "not_fresh"          // a refreshed token where a fresh one is required; 401
	AuthCSRF        Outcome = "csrf"               // a cookie write that failed the CSRF check; 403
	AuthUnavailable Outcome = "unavailable"        // a store needed to decide is down; 503
	// AuthUnverified: a credential whose check needs an outside call
	// (Outbound), refused by the operation's anonymous tiers before it was
	// looked at; 429.
	AuthUnverified Outcome = "unverified"
)

// Event is what the guard decided for one request to an operation.
type Event struct {
	Op   *policy.Operation
	Auth Outcome
	// Scheme is the scheme that decided: the satisfied alternative's
	// schemes joined by "+" on success, the scheme whose credential failed
	// otherwise; empty when no scheme decided (public, missing, anonymous).
	Scheme    string
	Principal *security.Principal // the verified caller, on AuthOK only
	// Limits is the limiter's verdict; no tier was decided when its
	// Applied is 0.
	Limits limits.Verdict
}

// authResult is the outcome of authenticate.
type authResult struct {
	p      *security.Principal
	failed *policy.Scheme   // the scheme whose credential failed, if one did
	gate   onetrip.Precheck // the deferred store check, when deferred
	gated  *policy.Scheme   // the scheme whose credential the gate checks
	err    error            // why the request must be refused
	// charged is true when the request was charged as anonymous before a
	// credential was verified with an outside call (see Outbound); anon is
	// that verdict.
	charged bool
	anon    limits.Verdict
}

// errUnverified: the anonymous tiers refused a request whose credential
// needs an outside call, so it was not looked at.
var errUnverified = errors.New("the credential was not verified: the anonymous limit refused the request first")

// chargedAnonymous reports whether the request was charged as anonymous
// before an outside call verified a credential that then failed (or was
// never looked at), or was not enough to let the request in as anyone:
// that charge is its decision, once.
func (a *authResult) chargedAnonymous() bool { return a.charged && (a.err != nil || a.p == nil) }

func (a *authResult) schemeName() string {
	switch {
	case a.err == nil && a.p != nil:
		return a.p.Scheme
	case a.failed != nil:
		return a.failed.Name
	}
	return ""
}

// errNoCredentials and scopeError are the failures that are not an
// Authenticator's error: nothing accepted was presented, or too little
// scope. The detail of errNoCredentials is the operation's (see
// noCredentials).
var errNoCredentials = errors.New("this operation needs credentials")

type scopeError struct{ scopes []string }

func (e *scopeError) Error() string {
	return "this operation needs the scopes: " + strings.Join(e.scopes, " ")
}

// outcome of one scheme for one request, memoised so schemes shared by
// several alternatives are verified once.
type outcome struct {
	scheme *policy.Scheme
	p      *security.Principal
	err    error
}

// authenticate evaluates the operation's alternatives in order (OR); inside
// one, every scheme must pass (AND) and hold its scopes. A non-nil err
// means the request must be refused with it (see reject). With deferred,
// one credential's store check is left to a gate. at is the request's
// reading of the clock (zero when the guard took none). anon, when not
// nil, is the verdict of the anonymous tiers already charged for this
// request (authenticating again): no outside lookup charges them twice.
func (g *Guard) authenticate(r *http.Request, op *policy.Operation, deferred bool, at time.Time, anon *limits.Verdict) (res authResult) {
	sec := &op.Security
	if sec.Public {
		return res
	}
	if anon != nil {
		res.charged, res.anon = true, *anon
	}
	var memo [4]outcome
	seen := memo[:0]
	verify := func(s *policy.Scheme) outcome {
		for _, o := range seen {
			if g.sameVerifier(o.scheme, s) {
				return o
			}
		}
		var o outcome
		auth := g.authFor(s)
		if ob, ok := auth.(Outbound); ok && !res.charged && len(op.Limits) > 0 && ob.Outbound(r, s) {
			res.charged = true
			res.anon, _ = g.decide(r, op, nil, 0, nil, nil, at)
		}
		if res.charged && !res.anon.Allowed {
			o.scheme, o.err = s, errUnverified
			seen = append(seen, o)
			return o
		}
		// One check rides in the rate-limit call; a second credential (an
		// AND alternative) is checked on its own.
		if d := g.deferFns[s.Type]; d != nil && g.byScheme[s.Name] == nil {
			var gate onetrip.Precheck
			o.p, gate, o.err = d(r.Context(), r, s, onetrip.Mode{At: at, Gated: deferred && res.gate == nil})
			if gate != nil {
				res.gate, res.gated = gate, s
			}
		} else {
			o.p, o.err = auth.Authenticate(r.Context(), r, s)
		}
		o.scheme = s
		seen = append(seen, o)
		return o
	}

	// refused returns the first credential looked at that refuses the
	// request whatever else would admit it: one no scheme reading its
	// place takes (an invalid one would have refused it at once). With
	// all, first every credential presented for op's schemes is looked
	// at, as an alternative stops at its first missing credential, and
	// any bad one refuses it: invalid, malformed or undecidable, and,
	// with csrf, a cookie failing its CSRF check.
	refused := func(all, csrf bool) (*policy.Scheme, error) {
		if all {
			for _, alt := range sec.Alternatives {
				for _, sr := range alt {
					verify(sr.Scheme)
				}
			}
		}
		var unclaimed *outcome
		for i := range seen {
			o := &seen[i]
			switch {
			case o.err == nil:
			case errors.Is(o.err, security.ErrUnclaimed):
				// A scheme that could not decide (its provider is down)
				// may have been the one: undecided beats refused.
				if unclaimed == nil || errors.Is(o.err, security.ErrUnavailable) && !errors.Is(unclaimed.err, security.ErrUnavailable) {
					unclaimed = o
				}
			case errors.Is(o.err, security.ErrCSRF) && !csrf:
			default:
				return o.scheme, o.err
			}
		}
		if unclaimed == nil {
			return nil, nil
		}
		for _, o := range seen {
			if o.p != nil && o.scheme.Place() == unclaimed.scheme.Place() {
				return nil, nil // another scheme reading that place took it
			}
		}
		return unclaimed.scheme, unclaimed.err
	}

	// soft is the first failure that leaves only its alternative
	// unsatisfied: a valid credential with too few scopes, or a cookie
	// failing its CSRF check. It decides when nothing admits the request.
	var soft error
	var softScheme *policy.Scheme
	for _, alt := range sec.Alternatives {
		var got *security.Principal
		satisfied := true
		for _, sr := range alt {
			o := verify(sr.Scheme)
			if o.err != nil && (errors.Is(o.err, security.ErrUnclaimed) || errors.Is(o.err, security.ErrCSRF)) {
				if soft == nil && errors.Is(o.err, security.ErrCSRF) {
					soft, softScheme = o.err, sr.Scheme
				}
				satisfied = false
				break
			}
			if o.err != nil {
				res.failed, res.err = sr.Scheme, o.err
				return res
			}
			if o.p == nil {
				satisfied = false
				break
			}
			if !o.p.HasScopes(sr.Scopes) {
				if soft == nil {
					soft, softScheme = &scopeError{scopes: sr.Scopes}, sr.Scheme
				}
				satisfied = false
				break
			}
			if got != nil && got.Subject != o.p.Subject {
				res.failed, res.err = sr.Scheme, fmt.Errorf("%w: the credentials name different users", security.ErrInvalid)
				return res
			}
			if got != nil && oneKey(got, o.p) {
				// The API key beside it, or a token minted from that
				// key (the client_credentials grant), is that key
				// again: an AND asks for two credentials.
				res.failed, res.err = sr.Scheme, fmt.Errorf("%w: the credentials are one API key (twice, or with a token minted from it)", security.ErrInvalid)
				return res
			}
			got = combine(got, o.p, sr.Scheme.Name)
		}
		if !satisfied {
			continue
		}
		// Admitted. Credentials it does not need that were not looked
		// at on the way stay unread: verifying them could cost a store
		// or database call, a charge to the anonymous tiers, or the
		// request's one deferred check.
		if s, err := refused(false, false); err != nil {
			res.failed, res.err = s, err
			return res
		}
		if op.RequireFresh && !got.Fresh() {
			res.failed, res.err = alt[0].Scheme, security.ErrNotFresh
			return res
		}
		res.p = got
		return res
	}
	// Nothing admits the request. Every credential presented is looked
	// at: a bad one decides (not "no credentials" for a forged one beside
	// a missing one), then a soft failure, then the absence of
	// credentials; {} lets in as anonymous only a request whose every
	// credential is good (a good one that satisfied nothing, half of an
	// AND, leaves its pending gate, which still decides whether it was
	// revoked).
	if s, err := refused(true, sec.Anonymous && soft == nil); err != nil {
		res.failed, res.err = s, err
		return res
	}
	switch {
	case soft != nil:
		res.failed, res.err = softScheme, soft
	case !sec.Anonymous:
		res.err = errNoCredentials
	}
	return res
}

// outcomeOf classifies the result of authenticate.
func outcomeOf(op *policy.Operation, a *authResult) Outcome {
	err := a.err
	switch {
	case err == nil && op.Security.Public:
		return AuthPublic
	case err == nil && a.p == nil:
		return AuthAnonymous
	case err == nil:
		return AuthOK
	case errors.Is(err, errNoCredentials):
		return AuthMissing
	case errors.Is(err, errUnverified):
		return AuthUnverified
	case isScopeError(err):
		return AuthScope
	case errors.Is(err, security.ErrMalformed):
		return AuthMalformed
	case errors.Is(err, security.ErrNotFresh):
		return AuthNotFresh
	case errors.Is(err, security.ErrInvalid):
		return AuthInvalid
	case errors.Is(err, security.ErrCSRF):
		return AuthCSRF
	}
	return AuthUnavailable
}

// isScopeError is errors.As for *scopeError, kept apart so that its target
// is allocated only on this error path.
func isScopeError(err error) bool {
	var scopeErr *scopeError
	return errors.As(err, &scopeErr)
}

// sameVerifier reports whether a result for scheme a stands for scheme b:
// they read the same place with the same verifier, one that decides by
// that place alone. Schemes of one type share their authenticator; bearer
// and oauth2 share a result only when they are given the same one
// (specguard's own token in the Authorization header, say), as two
// different verifiers may take different tokens. An authenticator of the
// app's own is handed the scheme, and may tell two of one type apart (two
// issuers): it is asked for each. Every openIdConnect scheme has a
// provider of its own.
func (g *Guard) sameVerifier(a, b *policy.Scheme) bool {
	if a == b {
		return true
	}
	if g.byScheme[a.Name] != nil || g.byScheme[b.Name] != nil {
		return false // an authenticator of its own (WithSchemeAuthenticator)
	}
	if a.Type == policy.SchemeOIDC || b.Type == policy.SchemeOIDC || !g.placeOnly[a.Type] || !g.placeOnly[b.Type] {
		return false
	}
	return a.Param == b.Param && (a.Type == b.Type || g.bearerShared && isBearer(a.Type) && isBearer(b.Type))
}

// sameAuthenticator reports whether a and b are one authenticator: one
// map, or equal values of one comparable type (two tokens.Bearer of one
// service are).
func sameAuthenticator(a, b Authenticator) bool {
	if a == nil || b == nil || reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Kind() == reflect.Map {
		return va.UnsafePointer() == vb.UnsafePointer()
	}
	// Comparing holds no panic only for values that are comparable all
	// the way down (an interface field may hold a map).
	return va.Comparable() && vb.Comparable() && a == b
}

func isBearer(t policy.SchemeType) bool { return t == policy.SchemeBearer || t == policy.SchemeOAuth2 }

// combine merges the principals of an AND alternative: the result holds only
// the scopes every credential holds.
func combine(acc, p *security.Principal, scheme string) *security.Principal {
	if acc == nil && p.Scheme == scheme {
		return p // already made for this scheme (a cached token's principal)
	}
	if acc == nil {
		c := *p
		c.Scheme = scheme
		return &c
	}
	c := *acc
	c.Scheme += "+" + scheme
	scopes := make([]string, 0, len(acc.Scopes))
	for _, s := range acc.Scopes {
		if p.HasScope(s) {
			scopes = append(scopes, s)
		}
	}
	c.Scopes = scopes
	c.Credentials = append(acc.Credentials[:len(acc.Credentials):len(acc.Credentials)], p.Credentials...)
	if len(p.Claims) > 0 {
		c.Claims = make(map[string]string, len(acc.Claims)+len(p.Claims))
		maps.Copy(c.Claims, p.Claims)
		maps.Copy(c.Claims, acc.Claims) // the first credential's claim wins
	}
	return &c
}

// oneKey reports whether p and acc stand for one API key: the key twice
// (in two schemes' headers), or the key and a token minted from it,
// either way round. One token read by two schemes (bearer and oauth2 of
// one header) is one credential the document asks for twice.
func oneKey(acc, p *security.Principal) bool {
	for _, c := range p.Credentials {
		for _, a := range acc.Credentials {
			if c.Kind() == a.Kind() && c.Kind() != security.KindAPIKey && c.ID() == a.ID() {
				continue
			}
			if k := keyOf(c); k != "" && k == keyOf(a) {
				return true
			}
		}
	}
	return false
}

// keyOf is the id of the API key c stands for: its own, or the one a
// token was minted from; "" for none.
func keyOf(c security.Credential) string {
	if c.Kind() == security.KindAPIKey {
		return c.ID()
	}
	if k, ok := c.(interface{ APIKey() string }); ok {
		return k.APIKey()
	}
	return ""
}

// describe says how a credential of scheme s is presented.
func describe(s *policy.Scheme) string {
	switch s.Type {
	case policy.SchemeBearer, policy.SchemeOAuth2:
		return s.Name + " (an Authorization: Bearer token)"
	case policy.SchemeOIDC:
		return s.Name + " (an Authorization: Bearer token from its identity provider)"
	case policy.SchemeAPIKeyHeader:
		return s.Name + " (the " + s.Param + " header)"
	case policy.SchemeAPIKeyCookie:
		return s.Name + " (the " + s.Param + " cookie)"
	}
	return s.Name
}

// accepted lists, once each, how op accepts credentials: "bearerAuth (an
// Authorization: Bearer token) or cookieAuth (the sid cookie)"; an AND
// alternative is joined with "and".
func accepted(op *policy.Operation) string {
	var alts []string
	for _, alt := range op.Security.Alternatives {
		parts := make([]string, len(alt))
		for i, sr := range alt {
			parts[i] = describe(sr.Scheme)
		}
		if a := strings.Join(parts, " and "); !slices.Contains(alts, a) {
			alts = append(alts, a)
		}
	}
	return strings.Join(alts, " or ")
}

// presented names the credentials r carries of schemes op does not accept
// (their names and where they travel, never their values).
func (g *Guard) presented(r *http.Request, op *policy.Operation) []string {
	takes := func(s *policy.Scheme) bool {
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				if sr.Scheme.Place() == s.Place() {
					return true
				}
			}
		}
		return false
	}
	var out []string
	seen := map[string]bool{} // where the credential travels: bearer and oauth2 share one
	for _, name := range g.schemeNames {
		s := g.table.Schemes[name]
		where := s.Place()
		if takes(s) || seen[where] {
			continue
		}
		carried := false
		switch s.Type {
		case policy.SchemeBearer, policy.SchemeOAuth2, policy.SchemeOIDC:
			scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			carried = strings.EqualFold(scheme, "Bearer")
		case policy.SchemeAPIKeyHeader:
			carried = r.Header.Get(s.Param) != ""
		case policy.SchemeAPIKeyCookie:
			_, err := r.Cookie(s.Param)
			carried = err == nil
		}
		if carried {
			seen[where] = true
			out = append(out, describe(s))
		}
	}
	return out
}

// noCredentials is the detail of a 401 for a request that presented no
// credential op accepts.
func (g *Guard) noCredentials(r *http.Request, op *policy.Operation) string {
	detail := "this operation needs credentials: it accepts " + accepted(op)
	if other := g.presented(r, op); len(other) > 0 {
		detail += "; the request carried " + strings.Join(other, " and ") + ", which it does not accept"
	}
	return detail
}
