package conform

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/specguard/specguard/policy"
)

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// kinds are the ways op accepts credentials.
func kinds(op *policy.Operation) map[string]*policy.Scheme {
	out := map[string]*policy.Scheme{}
	for _, alt := range op.Security.Alternatives {
		for _, sr := range alt {
			if _, ok := out[kind(sr.Scheme)]; !ok {
				out[kind(sr.Scheme)] = sr.Scheme
			}
		}
	}
	return out
}

// satisfies reports whether credential c alone satisfies alternative alt.
func satisfies(c *credential, alt policy.Requirement) bool {
	if len(alt) != 1 || kind(alt[0].Scheme) != kind(c.scheme) {
		return false
	}
	return len(alt[0].Scopes) == 0 || c.known && c.holds(alt[0].Scopes)
}

// usable reports whether c may be sent to op at all: a session cookie on
// an unsafe method would be refused by the CSRF check whatever it holds.
func usable(c *credential, op *policy.Operation) bool {
	return safeMethod(op.Method) || c.scheme.Type != policy.SchemeAPIKeyCookie
}

// sendable reports whether c may be sent to op: usable, or a session
// cookie whose CSRF token its login answered with (sendSet sends it).
func sendable(c *credential, op *policy.Operation) bool {
	return usable(c, op) || c.scheme.Type == policy.SchemeAPIKeyCookie && c.csrf != ""
}

// sendSet sends op with every credential of set, a session cookie on an
// unsafe method with its CSRF token.
func (r *runner) sendSet(ctx context.Context, name string, op *policy.Operation, set []*credential, v *violation) (*response, error) {
	return r.send(ctx, name, op, nil, v, func(req *http.Request) {
		for _, c := range set {
			c.apply(req)
			if c.scheme.Type == policy.SchemeAPIKeyCookie && !safeMethod(op.Method) && c.csrf != "" {
				req.Header.Set("X-CSRF-Token", c.csrf)
			}
		}
	})
}

// lackingSet returns a live credential for each scheme of alt, each
// holding the scopes its scheme asks for, except that the one of alt[i]
// lacks scope: nil when the configured credentials make no such set, two
// schemes of alt take the same kind of credential, or every set they make
// would satisfy an alternative of op. A credential that holds the scheme's
// other scopes is tried first, so that what it lacks is the scope alone.
func (r *runner) lackingSet(ctx context.Context, op *policy.Operation, alt policy.Requirement, i int, scope string) []*credential {
	seen := map[string]bool{}
	for _, sr := range alt {
		if seen[kind(sr.Scheme)] {
			return nil
		}
		seen[kind(sr.Scheme)] = true
	}
	others := slices.DeleteFunc(slices.Clone(alt[i].Scopes), func(s string) bool { return s == scope })
	for _, holdsOthers := range []bool{true, false} {
		for _, c := range r.live() {
			if kind(c.scheme) == kind(alt[i].Scheme) && c.known && !c.holds([]string{scope}) && c.holds(others) == holdsOthers && sendable(c, op) {
				if set := r.completeSet(ctx, op, alt, i, c); set != nil {
					return set
				}
			}
		}
	}
	return nil
}

// completeSet returns lacking, in place i, with a live credential for each
// other scheme of alt that holds what it asks for, of lacking's account
// where both accounts are known (a server may refuse credentials of two
// accounts together; specguard does, 401): nil when there is none, or when
// the set would satisfy an alternative of op.
func (r *runner) completeSet(ctx context.Context, op *policy.Operation, alt policy.Requirement, i int, lacking *credential) []*credential {
	set := make([]*credential, len(alt))
	set[i] = lacking
	account := ""
	if len(alt) > 1 {
		account = r.account(ctx, lacking)
	}
	for j, sr := range alt {
		if j == i {
			continue
		}
		for _, c := range r.live() {
			if kind(c.scheme) != kind(sr.Scheme) || len(sr.Scopes) > 0 && !(c.known && c.holds(sr.Scopes)) || !sendable(c, op) {
				continue
			}
			if other := r.account(ctx, c); account != "" && other != "" && other != account {
				continue
			}
			set[j] = c
			break
		}
		if set[j] == nil {
			return nil
		}
	}
	if slices.ContainsFunc(op.Security.Alternatives, func(a policy.Requirement) bool { return setSatisfies(set, a) }) {
		return nil
	}
	return set
}

// setSatisfies reports whether the credentials of set together may
// satisfy alternative alt: a credential whose scopes are not known may
// hold any.
func setSatisfies(set []*credential, alt policy.Requirement) bool {
	for _, sr := range alt {
		if !slices.ContainsFunc(set, func(c *credential) bool {
			return kind(c.scheme) == kind(sr.Scheme) && (len(sr.Scopes) == 0 || !c.known || c.holds(sr.Scopes))
		}) {
			return false
		}
	}
	return true
}

// alternative names the schemes of alt, joined by +.
func alternative(alt policy.Requirement) string {
	names := make([]string, len(alt))
	for i, sr := range alt {
		names[i] = sr.Scheme.Name
	}
	return strings.Join(names, "+")
}

// setNames names the credentials of set, joined by +.
func setNames(set []*credential) string {
	names := make([]string, len(set))
	for i, c := range set {
		names[i] = c.name
	}
	return strings.Join(names, "+")
}

// admitted returns a configured credential that satisfies an alternative
// of op (and, when want is not nil, passes want), or nil.
func (r *runner) admitted(op *policy.Operation, want func(*credential) bool) *credential {
	for _, c := range r.live() {
		if !usable(c, op) || want != nil && !want(c) {
			continue
		}
		for _, alt := range op.Security.Alternatives {
			if satisfies(c, alt) {
				return c
			}
		}
	}
	return nil
}

// challenges returns the WWW-Authenticate challenges of resp.
func challenges(resp *response) []string { return resp.header.Values("WWW-Authenticate") }

// authCases: no credential, a malformed one per scheme, one of a scheme op
// does not accept, and one lacking each required scope.
func (r *runner) authCases(ctx context.Context, op *policy.Operation) {
	sec := &op.Security
	open := sec.Public || sec.Anonymous
	// The request of an unsafe operation that no credential guards breaks
	// its schema, so that even a server that lets it through changes
	// nothing.
	v := violate(op)
	var safe *violation
	if !safeMethod(op.Method) {
		safe = v
	}

	// No credential.
	resp, err := r.send(ctx, "no-credential", op, nil, safe, nil)
	switch {
	case err != nil:
		r.report(op, "no-credential", Fail, "%v", err)
	case resp.status == http.StatusTooManyRequests:
		r.report(op, "no-credential", Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
	case open && (resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden):
		r.report(op, "no-credential", Fail, "the document admits callers without credentials, the server answered %s", resp)
	case open:
		r.report(op, "no-credential", Pass, "%d: admitted without credentials, as declared", resp.status)
	case resp.status != http.StatusUnauthorized:
		r.report(op, "no-credential", Fail, "want 401, got %s", resp)
	default:
		if msg := checkBareChallenges(op, challenges(resp)); msg != "" {
			r.report(op, "no-credential", Fail, "401, but %s", msg)
		} else {
			r.report(op, "no-credential", Pass, "401 with %s", strings.Join(challenges(resp), ", "))
		}
	}
	r.headCase(ctx, op, open)
	if sec.Public {
		return
	}

	// A malformed credential of each kind op accepts.
	for _, s := range sortedSchemes(kinds(op)) {
		name := "malformed:" + s.Name
		bad := &credential{scheme: s, value: "%%conform%%"}
		resp, err := r.send(ctx, name, op, bad, safe, nil)
		switch {
		case err != nil:
			r.report(op, name, Fail, "%v", err)
		case resp.status == http.StatusTooManyRequests:
			r.report(op, name, Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
		case resp.status == http.StatusBadRequest && (challenged(resp, "invalid_request") || !bearerKind(s) && namesField(resp, where(s))):
			r.report(op, name, Pass, "400: refused, saying so")
		case resp.status == http.StatusBadRequest && safe != nil && namesField(resp, safe.field):
			// The body breaks the schema: a server that took the
			// credential for none (or for a good one) refuses the body
			// instead.
			r.report(op, name, Fail, "400 naming %s, which the case broke: the request refused, not the credential (a malformed credential must be refused, never taken for none or for a good one); got %s", safe.field, resp)
		case resp.status == http.StatusBadRequest && open && safe != nil:
			// Where anonymous callers are admitted, a server that took the
			// credential for none refuses the body: only a challenge says
			// the credential was refused.
			r.report(op, name, Fail, "400 without a challenge saying error=\"invalid_request\": the body's refusal, the credential taken for none (a malformed credential must be refused, never taken for none); got %s", resp)
		case resp.status == http.StatusBadRequest && bearerKind(s):
			r.report(op, name, Fail, "400 without a challenge saying error=\"invalid_request\" (RFC 6750 section 3.1); got %s", resp)
		case resp.status == http.StatusUnauthorized && bearerKind(s) && !challenged(resp, ""):
			r.report(op, name, Fail, "401 without a challenge saying what was wrong (error=, RFC 6750 section 3.1); got %s", resp)
		case resp.status == http.StatusBadRequest || resp.status == http.StatusUnauthorized:
			r.report(op, name, Pass, "%d: refused", resp.status)
		default:
			r.report(op, name, Fail, "a malformed credential must be refused (400 or 401), never taken for none; got %s", resp)
		}
	}

	// A valid credential of a scheme op does not accept.
	accepts := kinds(op)
	var other *credential
	for _, c := range r.live() {
		if _, ok := accepts[kind(c.scheme)]; !ok && usable(c, op) {
			other = c
			break
		}
	}
	if other == nil {
		r.report(op, "other-scheme", Skip, "no configured credential of a scheme it does not accept")
	} else {
		name := "other-scheme:" + other.scheme.Name
		// Where a scheme of op reads the place the credential travels (an
		// identity provider's token in the Authorization header of an
		// operation taking specguard's own), it is refused, not ignored.
		open := open && !readsPlace(op, other.scheme)
		resp, err := r.send(ctx, name, op, other, safe, nil)
		switch {
		case err != nil:
			r.report(op, name, Fail, "%v", err)
		case resp.status == http.StatusTooManyRequests:
			r.report(op, name, Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
		case open && resp.status != http.StatusUnauthorized && resp.status != http.StatusForbidden:
			r.report(op, name, Pass, "%d: taken for no credential, which the document admits", resp.status)
		case !open && resp.status == http.StatusUnauthorized:
			r.report(op, name, Pass, "401: %s (%s) is not accepted here", other.name, other.scheme.Name)
		default:
			r.report(op, name, Fail, "%s (%s) is not accepted here: want %s, got %s", other.name, other.scheme.Name, map[bool]string{true: "the anonymous answer", false: "401"}[open], resp)
		}
	}

	// Each scheme of an alternative that takes several (AND), alone: a
	// valid credential of it that satisfies no alternative by itself.
	for _, alt := range sec.Alternatives {
		if len(alt) < 2 {
			continue
		}
		for _, sr := range alt {
			name := "and:" + sr.Scheme.Name
			var half *credential
			for _, c := range r.live() {
				if kind(c.scheme) == kind(sr.Scheme) && c.known && c.holds(sr.Scopes) && sendable(c, op) &&
					!slices.ContainsFunc(sec.Alternatives, func(a policy.Requirement) bool { return satisfies(c, a) }) {
					half = c
					break
				}
			}
			if half == nil {
				r.report(op, name, Skip, "no configured credential of %s holds %v and satisfies no alternative alone", sr.Scheme.Name, sr.Scopes)
				continue
			}
			resp, err := r.sendSet(ctx, name, op, []*credential{half}, safe)
			switch {
			case err != nil:
				r.report(op, name, Fail, "%v", err)
			case resp.status == http.StatusTooManyRequests:
				r.report(op, name, Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
			case resp.status != http.StatusUnauthorized && resp.status != http.StatusForbidden:
				r.report(op, name, Fail, "%s alone, where the document asks for it together with another scheme: want 401 or 403, got %s", half.name, resp)
			default:
				r.report(op, name, Pass, "%d: %s alone is not enough", resp.status, half.name)
			}
		}
	}

	// For each scope an alternative requires: a valid credential of its
	// scheme lacking it (with, where the alternative asks for several
	// schemes at once, a credential of each of the others), satisfying no
	// alternative.
	for _, alt := range sec.Alternatives {
		for i, sr := range alt {
			for _, scope := range sr.Scopes {
				name := "scope:" + sr.Scheme.Name + ":" + scope
				if len(alt) > 1 {
					name = "and-" + name
				}
				set := r.lackingSet(ctx, op, alt, i, scope)
				switch {
				case set == nil && len(alt) == 1:
					r.report(op, name, Skip, "no configured credential of %s lacks %s and satisfies no other alternative", sr.Scheme.Name, scope)
					continue
				case set == nil:
					r.report(op, name, Skip, "no configured credentials make %s, its %s lacking %s, and satisfy no alternative", alternative(alt), sr.Scheme.Name, scope)
					continue
				}
				resp, err := r.sendSet(ctx, name, op, set, safe)
				switch {
				case err != nil:
					r.report(op, name, Fail, "%v", err)
				case resp.status == http.StatusTooManyRequests:
					r.report(op, name, Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
				case resp.status != http.StatusForbidden:
					r.report(op, name, Fail, "%s, where %s lacks %s: want 403 insufficient_scope, got %s", setNames(set), set[i].name, scope, resp)
				case !slices.ContainsFunc(challenges(resp), func(c string) bool { return strings.Contains(c, `error="insufficient_scope"`) }):
					r.report(op, name, Fail, "403, but no challenge says error=\"insufficient_scope\": %q", challenges(resp))
				default:
					r.report(op, name, Pass, "403 insufficient_scope for %s, where %s lacks %s", setNames(set), set[i].name, scope)
				}
			}
		}
	}
}

// bearerKind reports whether s takes bearer tokens, whose refusals RFC 6750
// says the error of (section 3.1); other schemes' challenges follow no
// standard.
func bearerKind(s *policy.Scheme) bool {
	return s.Type == policy.SchemeBearer || s.Type == policy.SchemeOAuth2 || s.Type == policy.SchemeOIDC
}

// other is another character of c's kind, which no decoder takes for c: a
// digit for a digit, a letter of c's case for a letter (not c in another
// case, which hex and UUIDs read alike; within a to f for a to f, so hex
// stays hex), "A" for anything else.
func other(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return '0' + (c-'0'+1)%10
	case c >= 'a' && c <= 'f':
		return 'a' + (c-'a'+1)%6
	case c >= 'A' && c <= 'F':
		return 'A' + (c-'A'+1)%6
	case c >= 'g' && c <= 'z':
		return 'g' + (c-'g'+1)%20
	case c >= 'G' && c <= 'Z':
		return 'G' + (c-'G'+1)%20
	}
	return 'A'
}

// where is the field a problem's errors name for s's credential:
// header.Authorization, header.<name> or cookie.<name>.
func where(s *policy.Scheme) string {
	switch s.Type {
	case policy.SchemeAPIKeyHeader:
		return "header." + s.Param
	case policy.SchemeAPIKeyCookie:
		return "cookie." + s.Param
	}
	return "header.Authorization"
}

// forgedCases: a credential of each kind op accepts, its secret changed (a
// signature or secret that is not checked lets it in): 401. They run after
// the other cases of op, whose requests a limit they spend would skip; an
// operation declaring no security is sent an unreadable credential of each
// kind instead (see ignoredCases).
func (r *runner) forgedCases(ctx context.Context, op *policy.Operation) {
	var safe *violation
	if !safeMethod(op.Method) {
		safe = violate(op)
	}
	if op.Security.Public {
		r.ignoredCases(ctx, op, safe)
		return
	}
	for _, s := range sortedSchemes(kinds(op)) {
		name := "forged:" + s.Name
		var real *credential
		for _, c := range r.live() {
			if kind(c.scheme) == kind(s) && usable(c, op) {
				real = c
				break
			}
		}
		if real == nil {
			r.report(op, name, Skip, "no configured credential of %s", s.Name)
			continue
		}
		forged := *real
		forged.value = tampered(real.value)
		resp, err := r.send(ctx, name, op, &forged, safe, nil)
		switch {
		case err != nil:
			r.report(op, name, Fail, "%v", err)
		case resp.status == http.StatusTooManyRequests:
			r.report(op, name, Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
		case resp.status != http.StatusUnauthorized || bearerKind(s) && !challenged(resp, "invalid_token"):
			r.report(op, name, Fail, "%s with one character of its secret changed: want 401 (invalid_token, for a bearer token), got %s", real.name, resp)
		default:
			r.report(op, name, Pass, "401: %s with its secret changed", real.name)
		}
	}
}

// challenged reports whether resp has a challenge saying error=code (any
// error when code is empty).
func challenged(resp *response, code string) bool {
	want := `error="` + code
	if code != "" {
		want += `"`
	}
	return slices.ContainsFunc(challenges(resp), func(c string) bool { return strings.Contains(c, want) })
}

// tampered is v with one character of its secret changed: the first after
// its last ".", which begins a JWS's signature, an API key's or a
// session's secret; without a ".", one three quarters in (past a prefix
// or an id, as in sk_live_..., and before the last, whose low bits may not
// count in base64). Every bit of that character counts, so the value
// decodes to another signature or secret.
func tampered(v string) string {
	b := []byte(v)
	if len(b) == 0 {
		return "A"
	}
	i := strings.LastIndexByte(v, '.') + 1
	if i == 0 || i >= len(b) {
		i = min(len(b)*3/4, max(len(b)-2, 0))
	}
	b[i] = other(b[i])
	return string(b)
}

// ignoredCases: an operation declaring no security reads no credential: an
// unreadable one of each kind the document uses is not refused.
func (r *runner) ignoredCases(ctx context.Context, op *policy.Operation, safe *violation) {
	for _, s := range sortedSchemes(r.allKinds()) {
		name := "ignored:" + s.Name
		bad := &credential{scheme: s, value: "%%conform%%"}
		resp, err := r.send(ctx, name, op, bad, safe, nil)
		switch {
		case err != nil:
			r.report(op, name, Fail, "%v", err)
		case resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden || challenged(resp, ""):
			r.report(op, name, Fail, "the operation declares no security, yet a %s credential was read: got %s", s.Name, resp)
		case resp.status == http.StatusTooManyRequests:
			r.report(op, name, Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
		default:
			r.report(op, name, Pass, "%d: the credential was not read", resp.status)
		}
	}
}

// allKinds is one scheme of each kind the document's operations use.
func (r *runner) allKinds() map[string]*policy.Scheme {
	out := map[string]*policy.Scheme{}
	for _, op := range r.table.Operations() {
		for k, s := range kinds(op) {
			if _, ok := out[k]; !ok {
				out[k] = s
			}
		}
	}
	return out
}

// checkBareChallenges says what is wrong with the challenges of a 401 to
// a request without credentials, or "" when nothing is: at least one, each
// "Scheme realm=...", none with an error, and one per scheme op accepts: a
// Bearer one when it takes a bearer token (RFC 6750 section 3), one naming
// the header of an API key (header="X-API-Key") or the cookie of a
// session (cookie="__Host-sid").
func checkBareChallenges(op *policy.Operation, cs []string) string {
	if len(cs) == 0 {
		return "no WWW-Authenticate challenge"
	}
	bearer := false
	for _, c := range cs {
		scheme, params, _ := strings.Cut(c, " ")
		if !strings.Contains(params, "realm=") {
			return fmt.Sprintf("challenge %q has no realm", c)
		}
		if strings.Contains(params, "error=") {
			return fmt.Sprintf("challenge %q has an error, though no credential was presented", c)
		}
		bearer = bearer || strings.EqualFold(scheme, "Bearer")
	}
	for _, s := range sortedSchemes(kinds(op)) {
		switch s.Type {
		case policy.SchemeAPIKeyHeader, policy.SchemeAPIKeyCookie:
			// A header's name in any case; a cookie's as it is.
			param, fold := `header="`+s.Param+`"`, strings.ToLower
			if s.Type == policy.SchemeAPIKeyCookie {
				param, fold = `cookie="`+s.Param+`"`, func(s string) string { return s }
			}
			if !slices.ContainsFunc(cs, func(c string) bool { return strings.Contains(fold(c), fold(param)) }) {
				return fmt.Sprintf("no challenge for %s (%s), though it accepts it: %q", s.Name, param, cs)
			}
		default:
			if !bearer {
				return fmt.Sprintf("no Bearer challenge, though it accepts bearer tokens: %q", cs)
			}
		}
	}
	return ""
}

func sortedSchemes(m map[string]*policy.Scheme) []*policy.Scheme {
	out := make([]*policy.Scheme, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *policy.Scheme) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// schemaCase: a request that breaks the declared schema is refused 400,
// naming the field.
func (r *runner) schemaCase(ctx context.Context, op *policy.Operation) {
	v := violate(op)
	if v == nil {
		r.report(op, "schema", Skip, "nothing in its request is constrained by the document")
		return
	}
	var cred *credential
	if !op.Security.Public && !op.Security.Anonymous {
		if cred = r.admitted(op, nil); cred == nil {
			r.report(op, "schema", Skip, "no configured credential satisfies it (validation runs after authentication)")
			return
		}
	}
	resp, err := r.send(ctx, "schema", op, cred, v, nil)
	switch {
	case err != nil:
		r.report(op, "schema", Fail, "%v", err)
	case resp.status == http.StatusTooManyRequests:
		r.report(op, "schema", Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
	case resp.status != http.StatusBadRequest:
		r.report(op, "schema", Fail, "%s: want 400, got %s", v.what, resp)
	case !namesField(resp, v.field):
		r.report(op, "schema", Fail, "%s: 400, but its errors do not name %s: %s", v.what, v.field, quoted(resp.body))
	default:
		r.report(op, "schema", Pass, "400 naming %s for %s", v.field, v.what)
	}
}

// namesField reports whether a problem's errors[] name field (or one of
// its properties: "body" covers "body.title"); or, for an answer in
// OAuth2's form (RFC 6749 section 5.2, the token endpoint's), whether its
// error_description does, as specguard writes it ("field: message; ...").
func namesField(resp *response, field string) bool {
	names := func(f string) bool { return f == field || strings.HasPrefix(f, field+".") }
	errs, _ := resp.problem["errors"].([]any)
	for _, e := range errs {
		m, _ := e.(map[string]any)
		if f, _ := m["field"].(string); names(f) {
			return true
		}
	}
	var oauth struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if resp.problem != nil || json.Unmarshal(resp.body, &oauth) != nil || oauth.Error == "" {
		return false
	}
	for _, part := range strings.Split(oauth.Description, "; ") {
		if f, _, ok := strings.Cut(part, ": "); ok && names(f) {
			return true
		}
	}
	return false
}

// headCase: HEAD of a GET that needs a credential, sent without one, is
// refused too (401, or not served at all): a server that routes HEAD to
// the GET's handler outside its security would answer what the GET
// guards. Not when the document declares a HEAD of its own.
func (r *runner) headCase(ctx context.Context, op *policy.Operation, open bool) {
	const name = "no-credential:HEAD"
	if op.Method != http.MethodGet || open || r.table.Lookup(http.MethodHead, op.Pattern) != nil || !r.wants(name) {
		return
	}
	// name "" to send: a HEAD answer has no body to check against the GET's.
	resp, err := r.send(ctx, "", op, nil, nil, func(req *http.Request) { req.Method = http.MethodHead })
	switch {
	case err != nil:
		r.report(op, name, Fail, "%v", err)
	case resp.status == http.StatusTooManyRequests:
		r.report(op, name, Skip, "rate limited before the case ran")
	case resp.status < 400:
		r.report(op, name, Fail, "HEAD without a credential: want 401 (the GET's security holds for HEAD) or no HEAD served, got %d", resp.status)
	default:
		r.report(op, name, Pass, "%d", resp.status)
	}
}

// ended says how credential c (nil: none) no longer works, as the
// document's me operation (x-credential: me) answers it: "" while it works,
// or when it cannot be asked.
func (r *runner) ended(ctx context.Context, c *credential) string {
	me := r.credentialOp("me")
	if c == nil || me == nil || !may(c, me) {
		return ""
	}
	resp, err := patiently(ctx, func() (*response, error) { return r.send(ctx, "", me, c, nil, nil) })
	if err == nil && resp.status == http.StatusUnauthorized {
		return fmt.Sprintf("%s no longer works (%s answers %s)", c.name, me.ID, resp)
	}
	return ""
}

// wrongCaller says what was wrong when every tier of op named in
// refusedBy counts only callers the request was not (anonymous ones, when
// it carried a credential op admits; authenticated ones, when it carried
// none): a 429 no tier the document declares could give. "" otherwise.
func wrongCaller(op *policy.Operation, refusedBy []string, authenticated bool) string {
	wrong := policy.WhoAuthenticated
	if authenticated {
		wrong = policy.WhoAnonymous
	}
	for _, name := range refusedBy {
		i := slices.IndexFunc(op.Limits, func(t policy.Tier) bool { return t.Name == name })
		if i < 0 || op.Limits[i].Who != wrong {
			return ""
		}
	}
	if len(refusedBy) == 0 {
		return ""
	}
	if authenticated {
		return "which the document applies to anonymous callers only, for a credential the operation admits: an authenticated caller counted as anonymous"
	}
	return "which the document applies to authenticated callers only, for a request without a credential: an anonymous caller counted as authenticated"
}

// limitCases: each tier admits what it declares, then refuses with 429
// and the headers that say so.
func (r *runner) limitCases(ctx context.Context, op *policy.Operation) {
	if op.Unlimited {
		// No number of calls shows that nothing limits it: nothing is
		// checked, and a run that checks nothing else does not pass.
		r.report(op, "limits", Skip, "x-rate-limit: false: nothing to exhaust")
		return
	}
	for i := range op.Limits {
		r.limitCase(ctx, op, &op.Limits[i])
	}
}

func (r *runner) limitCase(ctx context.Context, op *policy.Operation, t *policy.Tier) {
	name := "limit:" + t.Name
	if !r.wants(name) {
		return // not selected: its tier is not spent either
	}
	var cred *credential
	if t.Who == policy.WhoAuthenticated {
		cred = r.admitted(op, func(c *credential) bool {
			switch t.Key {
			case policy.KeyAPIKey:
				return c.scheme.Type == policy.SchemeAPIKeyHeader
			case policy.KeySession:
				return c.scheme.Type == policy.SchemeAPIKeyCookie
			}
			return true
		})
		if cred == nil {
			r.report(op, name, Skip, "counts authenticated callers, and no configured credential satisfies it")
			return
		}
	}
	// A request the server would carry out for real is made to break the
	// schema instead: it is counted, then refused by validation.
	var v *violation
	if !safeMethod(op.Method) && (cred != nil || op.Security.Public || op.Security.Anonymous) {
		if v = violate(op); v == nil {
			r.report(op, name, Skip, "%s with nothing the document constrains: every counted call would be carried out", op.Method)
			return
		}
	}
	first, err := r.send(ctx, name, op, cred, v, nil)
	if err != nil {
		r.report(op, name, Fail, "%v", err)
		return
	}
	if first.status == http.StatusTooManyRequests {
		switch {
		case !slices.Contains(violated(first), t.Name):
			if other := wrongCaller(op, violated(first), cred != nil); other != "" {
				if dead := r.ended(ctx, cred); dead != "" {
					// A credential that no longer works is anonymous:
					// the anonymous tier was right to count it.
					r.report(op, name, Skip, "429 by %v, and %s", violated(first), dead)
					return
				}
				r.report(op, name, Fail, "429 by %s, %s", violated(first), other)
				return
			}
			r.report(op, name, Skip, "429 by %v before this tier could be tried", violated(first))
		default:
			// Its bucket was spent already: the refusal must still say
			// what the document declares.
			if msg := checkRefusal(first, t); msg != "" {
				r.report(op, name, Fail, "429 at once, but %s", msg)
			} else if guessed, msg, unsure := r.guessCounted(ctx, op, t, v); msg != "" {
				r.report(op, name, Fail, "429 at once; but %s", msg)
			} else if unsure != "" {
				r.report(op, name, Skip, "429 at once; but %s", unsure)
			} else {
				r.report(op, name, Pass, "429 at once (its bucket spent already: shared with another operation, or by the cases before) with RateLimit-Policy q=%d;w=%d and Retry-After %s%s",
					t.Limit, int64(t.Window/time.Second), first.header.Get("Retry-After"), guessed)
			}
		}
		return
	}
	if msg := declaredPolicy(first, t); msg != "" {
		r.report(op, name, Fail, "%s", msg)
		return
	}
	limits := items(first.header.Values("RateLimit"))
	lim, ok := limits[t.Name]
	if !ok {
		r.report(op, name, Fail, "RateLimit does not name the tier (%q)", first.header.Values("RateLimit"))
		return
	}
	rv, _ := lim.Params.Get("r")
	remaining, _ := rv.(int64)
	if remaining > t.Burst-t.Cost {
		r.report(op, name, Fail, "after one call RateLimit says r=%d, more than the burst of %d allows", remaining, t.Burst)
		return
	}
	for other, it := range limits {
		if other == t.Name {
			continue
		}
		if orv, _ := it.Params.Get("r"); orv != nil {
			if o, ok := orv.(int64); ok && o < remaining {
				r.report(op, name, Skip, "tier %s runs out first (r=%d against r=%d)", other, o, remaining)
				return
			}
		}
	}
	want := remaining / t.Cost
	if want > int64(r.opts.MaxCalls) {
		r.report(op, name, Skip, "admits %d more calls at once: more than this run spends on one tier (%d)", want, r.opts.MaxCalls)
		return
	}
	// A call earns back its cost every perCall.
	perCall := time.Duration(t.Interval()*t.Cost) * time.Microsecond
	start := time.Now()
	var got int64
	var last *response
	// Calls admitted as the bucket refills are allowed for, up to MaxCalls
	// of them: against a tier that refills faster than the calls come, the
	// case ends (skipped: it cannot tell) rather than keeps the run going.
	for got <= want+2+min(int64(time.Since(start)/perCall), int64(r.opts.MaxCalls)) {
		resp, err := r.send(ctx, name, op, cred, v, nil)
		if err != nil {
			r.report(op, name, Fail, "%v", err)
			return
		}
		if resp.status == http.StatusTooManyRequests {
			last = resp
			break
		}
		got++
	}
	// Calls admitted meanwhile as the bucket refilled do not count against it.
	drips := int64(time.Since(start)/perCall) + 1
	switch {
	case last == nil && got <= want+drips:
		r.report(op, name, Skip, "still admitted after %d calls, as a tier that earns a call back every %s may when answered this slowly: RateLimit said %d were left", got+1, perCall, remaining)
	case last == nil:
		r.report(op, name, Fail, "still admitted after %d calls; RateLimit said %d were left", got+1, remaining)
	case got < want:
		r.report(op, name, Fail, "refused after %d calls; RateLimit said %d were left", got, remaining)
	case got > want+drips:
		r.report(op, name, Fail, "admitted %d calls; RateLimit said %d were left", got, remaining)
	case !slices.Contains(violated(last), t.Name):
		r.report(op, name, Fail, "429, but violated-policies is %v, without %s", violated(last), t.Name)
	default:
		if msg := checkRefusal(last, t); msg != "" {
			r.report(op, name, Fail, "429, but %s", msg)
			return
		}
		full := ""
		if remaining == t.Burst-t.Cost {
			full = ", from a full bucket"
		}
		guessed, msg, unsure := r.guessCounted(ctx, op, t, v)
		if msg != "" {
			r.report(op, name, Fail, "admitted %d calls as RateLimit said, then 429; but %s", got+1, msg)
			return
		}
		if unsure != "" {
			r.report(op, name, Skip, "admitted %d calls as RateLimit said, then 429; but %s", got+1, unsure)
			return
		}
		r.report(op, name, Pass, "admitted %d calls as RateLimit said%s, then 429 with RateLimit-Policy q=%d;w=%d and Retry-After %s%s",
			got+1, full, t.Limit, int64(t.Window/time.Second), last.header.Get("Retry-After"), guessed)
	}
}

// guessCounted checks, once anonymous tier t of op refused a caller
// without a credential, that a wrong credential from the same caller is
// refused by it too: a credential that fails is counted as none, so
// guessing credentials spends the anonymous budget (a server that counts
// each guess apart, by its value, lets them be guessed without end). It
// returns what the pass adds, or what is wrong. v is the case's
// violation, for an unsafe operation.
func (r *runner) guessCounted(ctx context.Context, op *policy.Operation, t *policy.Tier, v *violation) (pass, fail, unsure string) {
	if t.Who != policy.WhoAnonymous || op.Security.Public {
		return "", "", ""
	}
	if v == nil && !safeMethod(op.Method) {
		// A wrong credential is refused, but a server that took it would
		// carry the call out.
		if v = violate(op); v == nil {
			return "", "", ""
		}
	}
	var real *credential
	for _, s := range sortedSchemes(kinds(op)) {
		for _, c := range r.live() {
			if real == nil && kind(c.scheme) == kind(s) && usable(c, op) {
				real = c // one the operation reads: as forgedCases sends
			}
		}
	}
	if real == nil {
		return "", "", ""
	}
	// Wrong values no case sent before (the forged case sent tampered's):
	// a server counting each apart gives each a full bucket of its own.
	guess := func(n int) (*response, error) {
		forged := *real
		forged.value = guessed(real.value, n)
		return r.send(ctx, "limit:"+t.Name, op, &forged, v, nil)
	}
	start := time.Now()
	resp, err := guess(1)
	switch {
	case err != nil:
		return "", err.Error(), ""
	case resp.status == http.StatusTooManyRequests && slices.Contains(violated(resp), t.Name):
		return "; a wrong " + real.name + " then 429 by it too", "", ""
	}
	// Admitted by the tier: rightly only when the bucket earned a call
	// back meanwhile, which that call then spent, so that a second wrong
	// value is refused (a bucket of its own, of a burst of 1, says r=0
	// too).
	if lim, ok := items(resp.header.Values("RateLimit"))[t.Name]; ok {
		if rv, _ := lim.Params.Get("r"); rv != nil {
			if left, _ := rv.(int64); left < t.Cost {
				second, err := guess(2)
				switch {
				case err != nil:
					return "", err.Error(), ""
				case second.status == http.StatusTooManyRequests && slices.Contains(violated(second), t.Name):
					return "; a wrong " + real.name + " then counted by it too (r=" + strconv.FormatInt(left, 10) + "), and another 429", "", ""
				case time.Since(start) >= time.Duration(t.Interval()*t.Cost)*time.Microsecond:
					// The bucket earned another call back while the two were
					// answered: either may have spent it.
					return "", "", "two wrong " + real.name + " were admitted, the first with r below its cost, and the tier earns a call back faster than they were answered: a count of their own cannot be told apart"
				}
				resp = second
			}
		}
	}
	return "", fmt.Sprintf("a wrong %s from the same caller then got %s, with RateLimit %q: a credential that fails must be counted as none, "+
		"or credentials can be guessed without end", real.name, resp, resp.header.Values("RateLimit")), ""
}

// guessed is a wrong value for a credential v, the nth guess (from 1):
// tampered's, changed at one more place, the nth of its last segment
// (not its last character, whose base64 bits may not count), so that no
// guess is a value a case sent before.
func guessed(v string, n int) string {
	t := tampered(v)
	b := []byte(t)
	var places []int
	for k := strings.LastIndexByte(v, '.') + 1; k < len(b)-1; k++ {
		if t[k] == v[k] {
			places = append(places, k)
		}
	}
	if len(places) < n {
		return t + strings.Repeat("A", n) // too short to change apart
	}
	b[places[n-1]] = other(b[places[n-1]])
	return string(b)
}

// declaredPolicy says what is wrong with the RateLimit-Policy of resp for
// tier t: missing, or another limit than the document's.
func declaredPolicy(resp *response, t *policy.Tier) string {
	pol, ok := items(resp.header.Values("RateLimit-Policy"))[t.Name]
	if !ok {
		return fmt.Sprintf("RateLimit-Policy does not name the tier (%q): it is not enforced", resp.header.Values("RateLimit-Policy"))
	}
	q, _ := pol.Params.Get("q")
	w, _ := pol.Params.Get("w")
	if q != t.Limit || w != int64(t.Window/time.Second) {
		return fmt.Sprintf("RateLimit-Policy says q=%v;w=%v, the document limit %d per %ds", q, w, t.Limit, int64(t.Window/time.Second))
	}
	return ""
}

// checkRefusal says what is wrong with the headers of a 429 by tier t.
func checkRefusal(resp *response, t *policy.Tier) string {
	retry, err := strconv.Atoi(resp.header.Get("Retry-After"))
	if err != nil || retry < 1 {
		return fmt.Sprintf("Retry-After is %q, not whole seconds >= 1", resp.header.Get("Retry-After"))
	}
	if msg := declaredPolicy(resp, t); msg != "" {
		return msg
	}
	lim, ok := items(resp.header.Values("RateLimit"))[t.Name]
	if !ok {
		return "RateLimit does not name the tier"
	}
	// r counts units of cost: fewer left than a call costs.
	rv, _ := lim.Params.Get("r")
	if left, ok := rv.(int64); !ok || left < 0 || left >= t.Cost {
		return fmt.Sprintf("RateLimit says r=%v for the tier that refused (a call costs %d)", rv, t.Cost)
	}
	return ""
}

// violated is the violated-policies of a 429's problem.
func violated(resp *response) []string {
	list, _ := resp.problem["violated-policies"].([]any)
	out := make([]string, 0, len(list))
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// items parses a Structured Field list of named items ("name";k=v, ...).
func items(values []string) map[string]httpsfv.Item {
	out := map[string]httpsfv.Item{}
	list, err := httpsfv.UnmarshalList(values)
	if err != nil {
		return out
	}
	for _, m := range list {
		if it, ok := m.(httpsfv.Item); ok {
			if name, ok := it.Value.(string); ok {
				out[name] = it
			}
		}
	}
	return out
}

// readsPlace reports whether a scheme of op reads the header or cookie a
// credential of s travels in.
func readsPlace(op *policy.Operation, s *policy.Scheme) bool {
	for _, alt := range op.Security.Alternatives {
		for _, sr := range alt {
			if sr.Scheme.Place() == s.Place() {
				return true
			}
		}
	}
	return false
}
