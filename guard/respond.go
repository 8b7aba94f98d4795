package guard

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
	"github.com/specguard/specguard/security"
)

// Every refusal the guard makes is written here.

// challenge is the WWW-Authenticate challenge of scheme s (RFC 6750 for
// bearer tokens; ApiKey and Cookie name where the credential goes).
func (g *Guard) challenge(s *policy.Scheme, code, description, scope string) string {
	c := problem.Challenge{Scheme: "Bearer", Realm: g.realm, Error: code, Description: description, Scope: scope}
	if s == nil {
		return c.String()
	}
	switch s.Type {
	case policy.SchemeAPIKeyHeader:
		c.Scheme, c.Param = "ApiKey", s.Param
	case policy.SchemeAPIKeyCookie:
		c.Scheme, c.Param = "Cookie", s.Param
	}
	return c.String()
}

// missingChallenges are op's challenges to a request without credentials:
// one per scheme op accepts, in the order it lists them. Every such answer
// shares them: clipped, so that a middleware's Header().Add copies them
// rather than write into room they have left.
func (g *Guard) missingChallenges(op *policy.Operation) []string {
	var out []string
	for _, alt := range op.Security.Alternatives {
		for _, sr := range alt {
			if c := g.challenge(sr.Scheme, "", "", ""); !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return slices.Clip(out)
}

// reject answers an authentication failure. The detail names what was
// wrong with the credential, never the credential itself.
func (g *Guard) reject(w http.ResponseWriter, r *http.Request, st *opState, a *authResult) {
	err := a.err
	detail := err.Error()
	h := w.Header()
	var scopeErr *scopeError
	switch {
	case errors.Is(err, errNoCredentials):
		h["Www-Authenticate"] = st.challenges
		g.problems.Write(w, &problem.Problem{Type: "unauthenticated", Title: "Authentication required", Status: http.StatusUnauthorized, Detail: g.noCredentials(r, st.op)})
	case errors.As(err, &scopeErr):
		h.Set("WWW-Authenticate", g.challenge(a.failed, "insufficient_scope", "the credential lacks a required scope", strings.Join(scopeErr.scopes, " ")))
		g.problems.Write(w, &problem.Problem{Type: "insufficient-scope", Title: "Insufficient scope", Status: http.StatusForbidden, Detail: detail})
	case errors.Is(err, security.ErrMalformed):
		h.Set("WWW-Authenticate", g.challenge(a.failed, "invalid_request", detail, ""))
		g.problems.Write(w, &problem.Problem{Type: "invalid-request", Title: "Malformed credentials", Status: http.StatusBadRequest, Detail: detail})
	case errors.Is(err, security.ErrNotFresh):
		h.Set("WWW-Authenticate", g.challenge(a.failed, "insufficient_user_authentication", detail, ""))
		g.problems.Write(w, &problem.Problem{Type: "fresh-login-required", Title: "Fresh login required", Status: http.StatusUnauthorized, Detail: detail})
	case errors.Is(err, security.ErrInvalid):
		h.Set("WWW-Authenticate", g.challenge(a.failed, "invalid_token", detail, ""))
		g.problems.Write(w, &problem.Problem{Type: "invalid-token", Title: "Invalid credentials", Status: http.StatusUnauthorized, Detail: detail})
	case errors.Is(err, security.ErrCSRF):
		g.problems.Write(w, &problem.Problem{Type: "csrf", Title: "CSRF check failed", Status: http.StatusForbidden, Detail: detail})
	default: // ErrUnavailable or anything unexpected: fail closed.
		if g.logErr != nil {
			g.logErr(r, err)
		}
		g.problems.Unavailable(w, "A store needed to check credentials is unavailable; try again shortly.")
	}
}

// refuseLimit answers a request the limiter refused: 429 when tiers did,
// 503 when the store failed and on-store-error denies.
func (g *Guard) refuseLimit(w http.ResponseWriter, r *http.Request, op *policy.Operation, v *limits.Verdict) {
	if v.Denied == 0 {
		if g.logErr != nil && v.StoreErr != nil {
			g.logErr(r, v.StoreErr)
		}
		g.problems.Unavailable(w, "The rate-limit store is unavailable; try again shortly.")
		return
	}
	retry := strconv.FormatInt(v.RetryAfter, 10)
	w.Header().Set("Retry-After", retry)
	violated := v.Violated(op)
	g.problems.Write(w, &problem.Problem{
		Type:             problem.QuotaExceeded,
		Title:            "Request cannot be satisfied as assigned quota has been exceeded",
		Status:           http.StatusTooManyRequests,
		Detail:           "Rate limit exceeded: " + strings.Join(violated, ", ") + "; retry in " + retry + "s.",
		ViolatedPolicies: violated,
	})
}

// methods are those a request may have for a 405's Allow list.
var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace}

// notFound answers a request to no operation: 405 with the methods the
// path has, else 404.
func (g *Guard) notFound(w http.ResponseWriter, method, path string) {
	var allow []string
	rctx := chi.NewRouteContext()
	for _, m := range methods {
		rctx.Reset()
		if m == method {
			continue
		}
		if pattern := g.router.Find(rctx, m, path); pattern != "" && (g.table.Lookup(m, pattern) != nil || g.free[m+" "+pattern]) {
			allow = append(allow, m)
		} else if m == http.MethodHead && method != http.MethodGet {
			// A GET operation serves HEAD too (see serve).
			rctx.Reset()
			if pattern := g.router.Find(rctx, http.MethodGet, path); pattern != "" && g.table.Lookup(http.MethodGet, pattern) != nil {
				allow = append(allow, m)
			}
		}
	}
	if len(allow) > 0 {
		g.problems.MethodNotAllowed(w, allow)
		return
	}
	g.problems.NotFound(w)
}
