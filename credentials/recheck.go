package credentials

import (
	"errors"
	"net/http"
	"strings"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

// authenticator is the service's authenticator of scheme type t, nil for a
// type it issues no credential of.
func (s *Service) authenticator(t policy.SchemeType) guard.Authenticator {
	switch t {
	case policy.SchemeBearer, policy.SchemeOAuth2:
		return tokens.Bearer{Tokens: s.tokens}
	case policy.SchemeAPIKeyCookie:
		return s.sessions
	case policy.SchemeAPIKeyHeader:
		return s.keys
	}
	return nil
}

// stillAdmits checks again, once r's body has been read, that the
// credentials that admitted r still do, as the guard would find them now.
// The guard admits a request when its headers arrive; its body may then
// take as long as the server's read timeout allows, which is the client's
// to stretch. A logout everywhere, a disable, a demotion or a revocation
// in between must still stop a change that would outlive it: a new API key
// minted at the account's new version, an admin's write. A credential of a
// kind this service does not issue (an outside provider's token) is left
// as the guard found it: nothing here can end it. It answers the refusal
// and reports false.
func (s *Service) stillAdmits(w http.ResponseWriter, r *http.Request) bool {
	p, op := caller(r), policy.FromContext(r.Context())
	if p == nil || op == nil {
		s.unauthorized(w, "invalid_token", "the request carries no verified credential")
		return false
	}
	names := strings.Split(p.Scheme, "+")
	fresh := make([]*security.Principal, len(names))
	checked := make([]bool, len(names))
	var short *policy.SchemeRequirement // the first scheme found short of its scopes
	for _, alt := range op.Security.Alternatives {
		if !namedAs(alt, names) {
			continue
		}
		admits := true
		for i, sr := range alt {
			if !checked[i] {
				checked[i] = true
				q, err := s.again(r, sr.Scheme, p, i)
				switch {
				case errors.Is(err, security.ErrUnavailable):
					s.fail(w, r, err)
					return false
				case err != nil:
					s.challenge(w, sr.Scheme, "invalid_token", "the credential ended while the request arrived", "")
					s.problems.Write(w, &problem.Problem{Type: "invalid-token", Title: "Invalid credentials", Status: http.StatusUnauthorized,
						Detail: "The credential ended while the request arrived."})
					return false
				}
				fresh[i] = q
			}
			if q := fresh[i]; q != nil && !q.HasScopes(sr.Scopes) {
				admits = false
				if short == nil {
					short = &alt[i]
				}
				break
			}
		}
		if admits {
			return true
		}
	}
	if short == nil {
		s.forbidden(w, "The request was admitted by credentials this operation does not declare.")
		return false
	}
	s.challenge(w, short.Scheme, "insufficient_scope", "the credential no longer holds the scopes this operation needs", strings.Join(short.Scopes, " "))
	s.problems.Write(w, &problem.Problem{Type: "insufficient-scope", Title: "Insufficient scope", Status: http.StatusForbidden,
		Detail: "The credential no longer holds the scopes this operation needs: " + strings.Join(short.Scopes, ", ") + "."})
	return false
}

// challenge sets the WWW-Authenticate challenge of a refusal of scheme's
// credential, as the guard words it (RFC 6750 3; an API key or a cookie
// names its header or cookie).
func (s *Service) challenge(w http.ResponseWriter, scheme *policy.Scheme, code, description, scope string) {
	c := problem.Challenge{Scheme: "Bearer", Realm: s.cfg.realm, Error: code, Description: description, Scope: scope}
	switch scheme.Type {
	case policy.SchemeAPIKeyHeader:
		c.Scheme, c.Param = "ApiKey", scheme.Param
	case policy.SchemeAPIKeyCookie:
		c.Scheme, c.Param = "Cookie", scheme.Param
	}
	w.Header().Set("WWW-Authenticate", c.String())
}

// again authenticates r anew for scheme, the i-th of the schemes that
// admitted p: the principal it makes now, or nil when the credential is of
// a kind the service does not issue (then it is not checked again).
func (s *Service) again(r *http.Request, scheme *policy.Scheme, p *security.Principal, i int) (*security.Principal, error) {
	auth := s.authenticator(scheme.Type)
	if auth == nil || i >= len(p.Credentials) {
		return nil, nil
	}
	switch p.Credentials[i].Kind() {
	case security.KindToken, security.KindSession, security.KindAPIKey:
	default:
		return nil, nil
	}
	q, err := auth.Authenticate(r.Context(), r, scheme)
	if err == nil && (q == nil || q.Subject != p.Subject) {
		err = security.ErrInvalid
	}
	return q, err
}

// namedAs reports whether alt is the alternative of the schemes names.
func namedAs(alt policy.Requirement, names []string) bool {
	if len(alt) != len(names) {
		return false
	}
	for i, sr := range alt {
		if sr.Scheme.Name != names[i] {
			return false
		}
	}
	return true
}
