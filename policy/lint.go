package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/specguard/specguard/internal/formats"
	"github.com/specguard/specguard/internal/text"
)

// ExtLintIgnore silences lint warnings by code, for a finding the author has
// weighed: `x-lint-ignore: [anonymous-write]` on an operation,
// `x-lint-ignore: [unused-scope]` on an oauth2 security scheme,
// `x-lint-ignore: [cookie-prefix]` on a cookie scheme, or
// `x-lint-ignore: [server-path]` at the document's root.
const ExtLintIgnore = "x-lint-ignore"

// Lint warning codes.
const (
	WarnUnlimitedWrite = "unlimited-write" // an unsafe method with x-rate-limit: false
	WarnAuthResponses  = "auth-responses"  // a protected operation that does not declare 401/403 (or 400, where a credential can be malformed)
	WarnLimitResponses = "limit-responses" // a limited operation that does not declare 429 and its headers
	WarnUnusedScope    = "unused-scope"    // an oauth2 scope no operation requires, nor names in x-owner
	// WarnUngrantedScope: an operation requires, of a scheme whose
	// credentials specguard issues, a scope no role of x-roles grants.
	WarnUngrantedScope = "ungranted-scope"
	WarnAnonymousWrite = "anonymous-write" // an unsafe method reachable without credentials
	WarnLintIgnore     = "lint-ignore"     // a malformed x-lint-ignore
	// WarnValidationResponses: an operation whose parameters or body the
	// guard validates (400 on a mismatch) that declares no 400.
	WarnValidationResponses = "validation-responses"
	// WarnExamples: an example that does not match its schema. Examples
	// are documentation, never enforced, so they do not stop serve.
	WarnExamples = "example-schema"
	// WarnCookiePrefix: a session cookie (an apiKey scheme in a cookie)
	// not named __Host-..., which a sibling subdomain could set; the
	// credential service (package credentials) refuses to issue it.
	WarnCookiePrefix = "cookie-prefix"
	// WarnUnthrottledFailures: an operation that takes credentials, whose
	// tiers all count authenticated callers only. A failed authentication
	// is counted as anonymous, so here nothing counts it: guessed tokens
	// and made-up API keys are checked as fast as they come.
	WarnUnthrottledFailures = "unthrottled-failures"
	// WarnUncheckedFormat: a string format of a request's parameter or
	// body that the guard does not check (see internal/formats): an
	// annotation a handler must not take as checked.
	WarnUncheckedFormat = "unchecked-format"
	// WarnServerPath: a servers URL with a path (/api/v1). specguard
	// serves each operation at the path the document gives it, so a client
	// that follows servers gets 404, unless a proxy in front strips the
	// prefix (then silence it: x-lint-ignore at the document's root, or on
	// the operation).
	WarnServerPath = "server-path"
)

var warnCodes = map[string]bool{
	WarnUnlimitedWrite: true, WarnAuthResponses: true, WarnLimitResponses: true,
	WarnUnusedScope: true, WarnAnonymousWrite: true, WarnValidationResponses: true, WarnExamples: true,
	WarnCookiePrefix: true, WarnUnthrottledFailures: true, WarnUncheckedFormat: true, WarnUngrantedScope: true,
	WarnServerPath: true,
}

// schemeCodes are the warnings of security schemes, silenced by the
// scheme's x-lint-ignore (and by no operation's).
var schemeCodes = []string{WarnCookiePrefix, WarnUnusedScope}

// Warning is something a document compiles with but probably should not.
// It prints as one line: "source:line: where: warning: message [code]".
type Warning struct {
	Source string
	Line   int
	Where  string
	Code   string
	Msg    string
}

func (w *Warning) String() string {
	return formatLine(w.Source, w.Line, w.Where, fmt.Sprintf("warning: %s [%s]", w.Msg, w.Code))
}

// Lint compiles a document as Compile does and also reports warnings. It
// returns every error and every warning it can find: unlike Compile it goes
// on past errors, so one run shows all there is to fix. Warnings are nil when
// the document cannot be loaded at all.
func Lint(source string, data []byte) (Errors, []*Warning) {
	_, errs, warnings := LintTable(source, data)
	return errs, warnings
}

// LintTable is Lint that also returns the compiled table when there are
// no errors (nil otherwise), for a caller that goes on to describe it.
func LintTable(source string, data []byte) (*Table, Errors, []*Warning) {
	t, errs := compileDoc(source, data)
	if t == nil {
		return nil, errs, nil
	}
	ws := t.lint(brokenLimits(errs))
	if len(errs) > 0 {
		return nil, errs, ws
	}
	return t, errs, ws
}

// retryHeaders are what a 429 answered by the limiter carries.
var retryHeaders = []string{"RateLimit", "RateLimit-Policy", "Retry-After"}

// brokenLimits reports, for an operation, whether errs refuse a tier of
// the x-rate-limit it is limited by (its own, or the document's): its
// compiled tiers are then not what the document says, and what they lack
// is no reason for a warning.
func brokenLimits(errs Errors) func(op *Operation) bool {
	broken := map[string]bool{} // "document", or an operation's String()
	meant := map[string]bool{}  // operations with an x-rate-limit misspelt
	for _, e := range errs {
		switch {
		case e.Field == ExtRateLimit || strings.HasPrefix(e.Field, ExtRateLimit+"[") || strings.HasPrefix(e.Field, ExtRateLimit+"."):
			broken[e.Where] = true
		case e.near == ExtRateLimit:
			meant[e.Where] = true // its own tiers, which it does not have
		}
	}
	return func(op *Operation) bool {
		if _, own := op.Spec.Extensions[ExtRateLimit]; own || meant[op.String()] {
			return broken[op.String()] || meant[op.String()]
		}
		return broken["document"]
	}
}

func (t *Table) lint(brokenLimits func(*Operation) bool) []*Warning {
	ws := t.lintExamples()
	required := map[string]bool{}
	granted := map[string]bool{} // by some role of x-roles
	for _, scopes := range t.Roles {
		for _, s := range scopes {
			granted[s] = true
		}
	}
	for _, op := range t.ops {
		where := op.String()
		ignore, bad := lintIgnores(op.Spec.Extensions)
		warn := func(code, format string, args ...any) {
			if !ignore[code] {
				ws = append(ws, &Warning{Source: t.Source, Line: op.Line, Where: where, Code: code, Msg: fmt.Sprintf(format, args...)})
			}
		}
		for _, msg := range bad {
			warn(WarnLintIgnore, "%s", msg)
		}
		for _, code := range schemeCodes {
			if ignore[code] {
				warn(WarnLintIgnore, "%s on an operation silences nothing of %s, a warning of security schemes: put it on the scheme", ExtLintIgnore, code)
			}
		}
		ungranted := map[string]bool{}
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				for _, s := range sr.Scopes {
					required[s] = true
					if len(t.Roles) > 0 && sr.Scheme.Type != SchemeOIDC && !granted[s] && !ungranted[s] {
						ungranted[s] = true
						warn(WarnUngrantedScope, "no role of x-roles grants the scope %q, so no credential specguard issues holds it and no caller gets past this requirement; add it to a role", s)
					}
				}
			}
		}
		// As written too: an alternative the compiler refused (an error
		// says why) still names the scopes it meant to use.
		written := op.Spec.Security
		if written == nil {
			written = &t.Doc.Security
		}
		for _, req := range *written {
			for _, scopes := range req {
				for _, s := range scopes {
					required[s] = true
				}
			}
		}
		if op.Owner != nil {
			// A scope that lets its holder act on anyone's resource is
			// used, though no operation requires it to be called.
			for _, s := range op.Owner.Override {
				required[s] = true
			}
		}
		unsafe := !safeMethod(op.Method)
		if unsafe && (op.Security.Public || op.Security.Anonymous) {
			warn(WarnAnonymousWrite, "%s is reachable without credentials; make sure anonymous callers may do this", op.Method)
		}
		if unsafe && op.Unlimited {
			warn(WarnUnlimitedWrite, "%s has x-rate-limit: false; nothing limits how often it can be called", op.Method)
		}
		if len(op.Security.Alternatives) > 0 {
			if !declares(op, http.StatusUnauthorized) {
				warn(WarnAuthResponses, "declares no 401 response; the guard answers 401 to missing or invalid credentials")
			}
			if why := forbiddenWhy(op); why != "" && !declares(op, http.StatusForbidden) {
				warn(WarnAuthResponses, "declares no 403 response; the guard answers 403 %s", why)
			}
		}
		if what := validated(op); what != "" && !declares(op, http.StatusBadRequest) {
			warn(WarnValidationResponses, "declares no 400 response; the guard answers 400 when %s does not match the document", what)
		} else if len(op.Security.Alternatives) > 0 && !declares(op, http.StatusBadRequest) {
			warn(WarnAuthResponses, "declares no 400 response; the guard answers 400 to a malformed credential (an unreadable bearer token, RFC 6750 invalid_request; two API-key headers or session cookies)")
		}
		if len(op.Security.Alternatives) > 0 && len(op.Limits) > 0 && !countsAnonymous(op) && !brokenLimits(op) {
			warn(WarnUnthrottledFailures, "no tier counts anonymous callers (who: any or anonymous), and a failed authentication is counted as one: nothing limits how fast credentials can be guessed here; add a tier keyed by ip")
		}
		for _, f := range uncheckedFormats(op) {
			warn(WarnUncheckedFormat, "the format %q of %s is not checked, only described: check the value in the handler, or give its schema a pattern", f[0], f[1])
		}
		if len(op.Limits) > 0 {
			resp := response(op, http.StatusTooManyRequests)
			if resp == nil {
				warn(WarnLimitResponses, "is rate limited but declares no 429 response")
			} else {
				for _, h := range retryHeaders {
					if !hasHeader(resp, h) {
						warn(WarnLimitResponses, "its 429 response does not declare the %s header", h)
					}
				}
			}
		}
	}
	ws = append(ws, t.schemeIgnores()...)
	ws = append(ws, t.serverPaths()...)
	ws = append(ws, t.unusedScopes(required)...)
	ws = append(ws, t.cookiePrefixes()...)
	return ws
}

// countsAnonymous reports whether a tier of op counts anonymous callers.
func countsAnonymous(op *Operation) bool {
	for i := range op.Limits {
		if op.Limits[i].Who != WhoAuthenticated {
			return true
		}
	}
	return false
}

// serverPaths warns of every servers entry (the document's, a path
// item's, an operation's) whose URL has a path, once where it is written.
// The document's x-lint-ignore silences them all, an operation's its own.
func (t *Table) serverPaths() []*Warning {
	rootIgnore, bad := lintIgnores(t.Doc.Extensions)
	for _, code := range slices.Sorted(maps.Keys(rootIgnore)) {
		if code != WarnServerPath && code != WarnExamples {
			bad = append(bad, fmt.Sprintf("%s at the document's root silences %s and %s (of components and path items) only, not %s: put it on the operation or the scheme", ExtLintIgnore, WarnServerPath, WarnExamples, code))
		}
	}
	var ws []*Warning
	for _, msg := range bad {
		ws = append(ws, &Warning{Source: t.Source, Line: t.lines.or(0, ExtLintIgnore), Where: "document", Code: WarnLintIgnore, Msg: msg})
	}
	if rootIgnore[WarnServerPath] {
		return ws
	}
	check := func(servers openapi3.Servers, line int, where string) {
		for i, sv := range servers {
			p, err := sv.BasePath()
			if err != nil || strings.TrimRight(p, "/") == "" {
				continue
			}
			if sv.Origin != nil && sv.Origin.Key != nil {
				line = sv.Origin.Key.Line
			}
			ws = append(ws, &Warning{Source: t.Source, Line: line, Where: where, Code: WarnServerPath,
				Msg: fmt.Sprintf("servers[%d].url %q has the path %s, but specguard serves each operation at the path the document gives it: a client that follows servers gets 404; "+
					"write the prefix into the paths, or, behind a proxy that strips it, silence this with x-lint-ignore", i, sv.URL, p)})
		}
	}
	check(t.Doc.Servers, t.lines.or(0, "servers"), "servers")
	if t.Doc.Paths != nil {
		for _, path := range slices.Sorted(maps.Keys(t.Doc.Paths.Map())) {
			if item := t.Doc.Paths.Value(path); item != nil {
				check(item.Servers, t.lines.or(originLine(item.Origin), "paths", path), "paths."+path)
			}
		}
	}
	for _, op := range t.ops {
		if ignore, _ := lintIgnores(op.Spec.Extensions); !ignore[WarnServerPath] && op.Spec.Servers != nil {
			check(*op.Spec.Servers, op.Line, op.String())
		}
	}
	return ws
}

// schemeIgnores warns of a malformed x-lint-ignore on any security
// scheme, whatever its type.
func (t *Table) schemeIgnores() []*Warning {
	if t.Doc.Components == nil {
		return nil
	}
	var ws []*Warning
	for _, name := range slices.Sorted(maps.Keys(t.Doc.Components.SecuritySchemes)) {
		ref := t.Doc.Components.SecuritySchemes[name]
		if ref == nil || ref.Value == nil {
			continue
		}
		ignore, bad := lintIgnores(ref.Value.Extensions)
		for _, code := range slices.Sorted(maps.Keys(ignore)) {
			if !slices.Contains(schemeCodes, code) {
				bad = append(bad, fmt.Sprintf("%s on a security scheme silences %s only, not %s: put it on the operation", ExtLintIgnore, strings.Join(schemeCodes, " and "), code))
			}
		}
		for _, msg := range bad {
			ws = append(ws, &Warning{Source: t.Source, Line: t.lines.or(originLine(ref.Value.Origin), "components", "securitySchemes", name), Where: "components.securitySchemes." + name, Code: WarnLintIgnore, Msg: msg})
		}
	}
	return ws
}

// cookiePrefixes warns of every session cookie not named __Host-.
func (t *Table) cookiePrefixes() []*Warning {
	var ws []*Warning
	for _, name := range slices.Sorted(maps.Keys(t.Schemes)) {
		sc := t.Schemes[name]
		if sc.Type != SchemeAPIKeyCookie || strings.HasPrefix(sc.Param, "__Host-") {
			continue
		}
		line := 0
		if ref := t.Doc.Components.SecuritySchemes[name]; ref != nil && ref.Value != nil {
			if ignore, _ := lintIgnores(ref.Value.Extensions); ignore[WarnCookiePrefix] {
				continue
			}
			line = t.lines.or(originLine(ref.Value.Origin), "components", "securitySchemes", name)
		}
		ws = append(ws, &Warning{Source: t.Source, Line: line, Where: "components.securitySchemes." + name, Code: WarnCookiePrefix,
			Msg: fmt.Sprintf("the session cookie %q is not named __Host-..., so a sibling subdomain could set it, and the credential service refuses it; name it %q",
				sc.Param, "__Host-"+strings.TrimPrefix(sc.Param, "__Secure-"))})
	}
	return ws
}

func (t *Table) unusedScopes(required map[string]bool) []*Warning {
	if t.Doc.Components == nil {
		return nil
	}
	names := make([]string, 0, len(t.Doc.Components.SecuritySchemes))
	for name := range t.Doc.Components.SecuritySchemes {
		names = append(names, name)
	}
	sort.Strings(names)
	var ws []*Warning
	for _, name := range names {
		s := t.Doc.Components.SecuritySchemes[name].Value
		if s == nil || s.Type != "oauth2" || s.Flows == nil {
			continue
		}
		scopes := map[string]bool{}
		for _, flow := range []*openapi3.OAuthFlow{s.Flows.Implicit, s.Flows.Password, s.Flows.ClientCredentials, s.Flows.AuthorizationCode} {
			if flow != nil {
				for scope := range flow.Scopes {
					scopes[scope] = true
				}
			}
		}
		ignore, _ := lintIgnores(s.Extensions)
		where := "components.securitySchemes." + name
		if ignore[WarnUnusedScope] {
			continue
		}
		unused := []string{}
		for scope := range scopes {
			if !required[scope] {
				unused = append(unused, scope)
			}
		}
		sort.Strings(unused)
		for _, scope := range unused {
			ws = append(ws, &Warning{Source: t.Source, Line: t.lines.or(originLine(s.Origin), "components", "securitySchemes", name), Where: where,
				Code: WarnUnusedScope, Msg: fmt.Sprintf("scope %q is declared but no operation requires it", scope)})
		}
	}
	return ws
}

// validated names what of op's requests the guard validates ("its body",
// "its path parameter id"), or "" when there is nothing to validate.
func validated(op *Operation) string {
	if op.Spec.RequestBody != nil {
		return "its body"
	}
	params := append(openapi3.Parameters{}, op.PathItem.Parameters...)
	params = append(params, op.Spec.Parameters...)
	for _, p := range params {
		if p.Value != nil {
			return fmt.Sprintf("its %s parameter %s", p.Value.In, p.Value.Name)
		}
	}
	return ""
}

// forbiddenWhy says why the guard may answer 403 for op, or "" when it never does.
func forbiddenWhy(op *Operation) string {
	for _, alt := range op.Security.Alternatives {
		for _, sr := range alt {
			if len(sr.Scopes) > 0 {
				return "when the credential lacks a required scope"
			}
		}
	}
	if !safeMethod(op.Method) {
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				if sr.Scheme.Type == SchemeAPIKeyCookie {
					return "when a cookie-authenticated request fails the CSRF check"
				}
			}
		}
	}
	return ""
}

func lintIgnores(ext map[string]any) (map[string]bool, []string) {
	raw, ok := ext[ExtLintIgnore]
	if !ok {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, []string{ExtLintIgnore + " must be a list of warning codes"}
	}
	ignore := map[string]bool{}
	var bad []string
	for i, v := range list {
		code, _ := v.(string)
		if !warnCodes[code] {
			bad = append(bad, fmt.Sprintf("%s[%d]: unknown warning code %v", ExtLintIgnore, i, v))
			continue
		}
		ignore[code] = true
	}
	return ignore, bad
}

func response(op *Operation, status int) *openapi3.Response {
	if op.Spec.Responses == nil {
		return nil
	}
	if r := op.Spec.Responses.Status(status); r != nil && r.Value != nil {
		return r.Value
	}
	return nil
}

// declares reports whether op declares status, or a default response that
// covers it.
func declares(op *Operation, status int) bool {
	if response(op, status) != nil {
		return true
	}
	return op.Spec.Responses != nil && op.Spec.Responses.Default() != nil
}

func hasHeader(r *openapi3.Response, name string) bool {
	for h := range r.Headers {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// lintExamples warns of every example that does not match its schema:
// what validation finds with examples once the compiler's own validation,
// without them, passed.
// An example of an operation is named in kin-openapi's error by the
// operation's path and method: the warning is the operation's, on its
// line, and its x-lint-ignore silences it.
func (t *Table) lintExamples() []*Warning {
	rootIgnore, _ := lintIgnores(t.Doc.Extensions)
	err := t.Doc.Validate(context.Background(), openapi3.EnableMultiError())
	var ws []*Warning
	for _, e := range validationFindings(err) {
		msg := text.OneLine(e.Error())
		w := &Warning{Source: t.Source, Where: "document", Code: WarnExamples,
			Msg: "an example does not match its schema (examples are not enforced): " + msg}
		if m := exampleOf.FindStringSubmatch(msg); m != nil {
			if op := t.operationAt(m[2], m[1]); op != nil {
				if ignore, _ := lintIgnores(op.Spec.Extensions); ignore[WarnExamples] {
					continue
				}
				w.Line, w.Where = op.Line, op.String()
			}
		} else if ce := (*openapi3.ComponentValidationError)(nil); errors.As(e, &ce) {
			// A component's example is no operation's: the document's
			// x-lint-ignore silences them.
			if rootIgnore[WarnExamples] {
				continue
			}
			w.Where, w.Line = t.componentAt(ce.Section, ce.Name)
		} else if m := pathOf.FindStringSubmatch(msg); m != nil {
			// A path item's own parameters are its operations' alike:
			// the document's, as a component's.
			if rootIgnore[WarnExamples] {
				continue
			}
			w.Where = "paths." + m[1]
			if t.Doc.Paths != nil {
				if item := t.Doc.Paths.Value(m[1]); item != nil {
					w.Line = t.lines.or(originLine(item.Origin), "paths", m[1])
				}
			}
		}
		ws = append(ws, w)
	}
	return ws
}

// componentAt names the component of kin-openapi's section ("schema",
// "request body") and name as a lint finding does, and gives its line (0
// when unknown).
func (t *Table) componentAt(section, name string) (where string, line int) {
	key, ok := componentKeys[section]
	if !ok {
		return "components", t.lines.or(0, "components")
	}
	var o *openapi3.Origin
	if c := t.Doc.Components; c != nil {
		switch section {
		case "schema":
			if r := c.Schemas[name]; r != nil && r.Value != nil {
				o = r.Value.Origin
			}
		case "parameter":
			if r := c.Parameters[name]; r != nil && r.Value != nil {
				o = r.Value.Origin
			}
		case "request body":
			if r := c.RequestBodies[name]; r != nil && r.Value != nil {
				o = r.Value.Origin
			}
		case "response":
			if r := c.Responses[name]; r != nil && r.Value != nil {
				o = r.Value.Origin
			}
		case "header":
			if r := c.Headers[name]; r != nil && r.Value != nil {
				o = r.Value.Origin
			}
		}
	}
	return "components." + key + "." + name, t.lines.or(originLine(o), "components", key, name)
}

// componentKeys are the components' keys by kin-openapi's section names.
var componentKeys = map[string]string{"schema": "schemas", "parameter": "parameters", "request body": "requestBodies",
	"response": "responses", "header": "headers", "example": "examples", "link": "links", "callback": "callbacks",
	"security scheme": "securitySchemes"}

// exampleOf finds the path and method in kin-openapi's error for an
// operation's example; pathOf the path in one for a path item's own.
var (
	exampleOf = regexp.MustCompile(`invalid path (\S+): invalid operation ([A-Z]+):`)
	pathOf    = regexp.MustCompile(`invalid path (\S+): `)
)

// operationAt is the operation of method at the document's path, nil when
// there is none.
func (t *Table) operationAt(method, path string) *Operation {
	for _, op := range t.ops {
		if op.Method == method && op.Path == path {
			return op
		}
	}
	return nil
}

// described are the formats that say how to read a value, not what it
// must be (a number's size, a password field, a file's bytes): no value
// of their type breaks them unchecked.
var described = map[string]bool{"int32": true, "int64": true, "float": true, "double": true, "password": true, "binary": true}

// uncheckedFormats returns the string formats of op's parameters and
// request body that validation does not check, each once, with where the
// first is ("query.note", "body.meta.title").
func uncheckedFormats(op *Operation) [][2]string {
	var out [][2]string
	seen := map[string]bool{}
	visited := map[*openapi3.Schema]bool{}
	var walk func(s *openapi3.Schema, where string)
	walk = func(s *openapi3.Schema, where string) {
		if s == nil || visited[s] {
			return
		}
		visited[s] = true
		if f := s.Format; f != "" && !formats.Checked(f) && !described[f] && !seen[f] {
			seen[f] = true
			out = append(out, [2]string{f, where})
		}
		for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
			if ref := s.Properties[name]; ref != nil {
				walk(ref.Value, where+"."+name)
			}
		}
		for _, refs := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
			for _, ref := range refs {
				walk(ref.Value, where)
			}
		}
		if s.Items != nil {
			walk(s.Items.Value, where+".0")
		}
		if s.AdditionalProperties.Schema != nil {
			walk(s.AdditionalProperties.Schema.Value, where+".*")
		}
	}
	for _, p := range op.Parameters() {
		if p.Schema != nil {
			walk(p.Schema.Value, p.In+"."+p.Name)
		}
		for _, ct := range slices.Sorted(maps.Keys(p.Content)) {
			if mt := p.Content[ct]; mt.Schema != nil {
				walk(mt.Schema.Value, p.In+"."+p.Name)
			}
		}
	}
	if rb := op.Spec.RequestBody; rb != nil && rb.Value != nil {
		for _, ct := range slices.Sorted(maps.Keys(rb.Value.Content)) {
			if mt := rb.Value.Content[ct]; mt.Schema != nil {
				walk(mt.Schema.Value, "body")
			}
		}
	}
	return out
}
