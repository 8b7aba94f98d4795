package policy

import "strings"

// The claims of specguard's own credentials that an x-rate-limit tier may
// count by (key: claim:<name>). The compiler refuses a claim that no
// scheme of an operation carries; security.Principal.Claim answers these
// names and no others.
const (
	// ClaimSubject is the account id: every credential carries it.
	ClaimSubject = "sub"
	// ClaimRole is the account's role: every credential of an account whose
	// state is kept (tokens always; sessions and API keys with account state).
	ClaimRole = "role"
	// ClaimFamily is the login a token belongs to (its refresh-token family):
	// access tokens only.
	ClaimFamily = "fam"
)

// SchemeClaims returns the claims a credential of type t carries.
func SchemeClaims(t SchemeType) []string {
	switch t {
	case SchemeBearer, SchemeOAuth2:
		return []string{ClaimSubject, ClaimRole, ClaimFamily}
	case SchemeAPIKeyHeader, SchemeAPIKeyCookie:
		return []string{ClaimSubject, ClaimRole}
	}
	return nil
}

// carries reports whether a credential of type t carries claim. A token
// from an outside provider may carry any claim.
func carries(t SchemeType, claim string) bool {
	if t == SchemeOIDC {
		return true
	}
	for _, c := range SchemeClaims(t) {
		if c == claim {
			return true
		}
	}
	return false
}

// knownClaim reports whether any credential carries claim: any claim when
// the document declares an openIdConnect scheme.
func (c *compiler) knownClaim(claim string) bool {
	if c.anyClaims {
		return true
	}
	for _, t := range []SchemeType{SchemeBearer, SchemeAPIKeyHeader} {
		if carries(t, claim) {
			return true
		}
	}
	return false
}

// claimsNote lists what each kind of credential carries, for messages.
func claimsNote() string {
	return "tokens carry " + strings.Join(SchemeClaims(SchemeBearer), ", ") +
		"; sessions and API keys " + strings.Join(SchemeClaims(SchemeAPIKeyHeader), ", ") +
		"; openIdConnect tokens any claim"
}
