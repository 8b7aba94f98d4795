package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/specguard/specguard/internal/text"
	yaml3 "gopkg.in/yaml.v3"
)

// Extension names the compiler reads.
const (
	ExtRateLimit    = "x-rate-limit"
	ExtRoles        = "x-roles"
	ExtRequireFresh = "x-require-fresh"
	ExtOwner        = "x-owner"        // the operation acts on the caller's own resource only
	ExtAudience     = "x-audience"     // openIdConnect schemes: the accepted aud values
	ExtIssuers      = "x-issuers"      // openIdConnect schemes: the accepted iss values
	ExtScopesClaim  = "x-scopes-claim" // openIdConnect schemes: the claim holding scopes
	ExtIntrospect   = "x-introspect"   // openIdConnect schemes: which opaque tokens are introspected
	// ExtCredential marks an operation package credentials serves (read
	// there; named here so that a misspelling is caught).
	ExtCredential = "x-credential"
)

// Error is one reason a document cannot be compiled. It prints as one line:
// "source:line: METHOD /path (operationId): field: message".
type Error struct {
	Source string
	Line   int    // 0 when unknown
	Col    int    // 0 when unknown
	Where  string // the operation ("POST /posts (createPost)") or document part; may be empty
	Field  string // the offending field, e.g. "x-rate-limit[0].window"; may be empty
	Msg    string

	// unknown are the fields kin-openapi's validation does not know here
	// ("extra sibling fields"), which the shape check may have said.
	unknown []string
	// near is the field a misspelt one was probably meant to be.
	near string
}

func (e *Error) Error() string {
	msg := e.Msg
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	source := e.Source
	if e.Line > 0 && e.Col > 0 {
		return formatLine(source, e.Line, e.Where, msg, e.Col)
	}
	return formatLine(source, e.Line, e.Where, msg)
}

// formatLine prints "source:line: where: msg" (or "source:line:col: ...",
// given a column), leaving out a zero line and an empty where.
func formatLine(source string, line int, where, msg string, col ...int) string {
	var b strings.Builder
	b.WriteString(source)
	if line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(line))
		if len(col) > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(col[0]))
		}
	}
	b.WriteString(": ")
	if where != "" {
		b.WriteString(where)
		b.WriteString(": ")
	}
	b.WriteString(msg)
	return b.String()
}

// Errors is every reason a document cannot be compiled, in document order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace,
}

var paramName = regexp.MustCompile(`\{([^{}]*)\}`)
var validParamName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Compile loads an OpenAPI 3 document, validates it and compiles every
// operation. source names the document in error messages (a file path, say).
// The returned error, when not nil, is an Errors listing every problem found;
// of a document that cannot be loaded (a value of the wrong type, a $ref to
// another file: the document must be one file), that and what the shape
// check finds (misspelt fields, keys given twice), as nothing more can be
// read.
func Compile(source string, data []byte) (*Table, error) {
	t, errs := compileDoc(source, data)
	if len(errs) > 0 {
		return nil, errs
	}
	return t, nil
}

// compileDoc compiles as far as it can: the table is nil only when the
// document cannot be loaded or validated; otherwise it holds every operation
// (with what could be compiled of it) next to the errors.
func compileDoc(source string, data []byte) (*Table, Errors) {
	// The YAML parsers refuse surrogate escapes (valid JSON, valid YAML
	// 1.2); the loader reads a JSON document as JSON, where they are fine,
	// and a rewritten one only as YAML, several times slower.
	loadData, shapeData := data, data
	if rewritten := readSurrogates(data); len(data) > 0 && &rewritten[0] != &data[0] && !json.Valid(data) {
		loadData, shapeData = rewritten, rewritten
	}
	// The shape check reads the document for its lines, the loader reads
	// it again into kin-openapi's types: at the same time.
	var shapeErrs Errors
	var syntax bool
	var meant []meant
	var lines keyLines
	shaped := make(chan struct{})
	go func() {
		shapeErrs, syntax, meant, lines = checkShape(source, shapeData)
		close(shaped)
	}()
	t, errs := compileLoaded(source, loadData)
	<-shaped
	if syntax {
		return nil, shapeErrs // nothing more can be read
	}
	lines.fill(t, errs)
	if len(shapeErrs) == 0 {
		return t, errs
	}
	// The loader's own complaint about an unknown field has no line (the
	// shape check's has), nor has kin-openapi's validation's, and the
	// compiler's about the field a misspelling was meant to be says it
	// again.
	if t == nil && len(errs) == 1 && errs[0].Line == 0 {
		errs = nil
	}
	errs = slices.DeleteFunc(errs, func(e *Error) bool {
		return saidUnknown(e, shapeErrs) || said(e, meant) || slices.ContainsFunc(shapeErrs, func(s *Error) bool {
			return s.Where == e.Where && s.Field == e.Field && s.Msg == e.Msg
		})
	})
	return t, append(shapeErrs, errs...)
}

func compileLoaded(source string, data []byte) (*Table, Errors) {
	doc, err := load(data)
	if err != nil {
		msg := text.OneLine(err.Error())
		if m := externalRef.FindStringSubmatch(msg); m != nil {
			// The document is one file: say where the $ref to another is.
			return nil, Errors{{Source: source, Line: lineOf(data, m[1]), Field: "$ref",
				Msg: fmt.Sprintf("%q is in another file; the document must be one file (what the guard enforces is what it says)", m[1])}}
		}
		if e := typeError(source, data, msg); e != nil {
			return nil, Errors{e}
		}
		return nil, Errors{{Source: source, Msg: "cannot load OpenAPI document: " + msg}}
	}
	// Both read the document alone: at the same time.
	spread := make(chan string, 1)
	go func() { spread <- tooSpread(doc) }()
	c := &compiler{source: source, doc: doc, data: data}
	// Examples are documentation, never enforced: one that does not match
	// its schema is a lint warning (WarnExamples), not a reason to refuse.
	err = validateDoc(doc)
	if where := <-spread; where != "" {
		return nil, Errors{spreadError(source, where)}
	}
	if err != nil {
		// Every error at once: the compiler's, and kin-openapi's.
		var t *Table
		if doc.Paths != nil {
			t = c.compile()
		}
		return nil, append(c.errs, c.validationErrors(t, err)...)
	}
	t := c.compile()
	return t, c.errs
}

// kin-openapi's findings: about one operation, about a security scheme
// (declared, or required and undeclared), about fields it does not know.
var (
	opFinding   = regexp.MustCompile(`^invalid paths: invalid path (.+?): invalid operation ([A-Z]+): (.+)$`)
	schemeNamed = regexp.MustCompile(`security scheme "([^"]*)"`)
	extraFields = regexp.MustCompile(`extra sibling fields: \[([^\]]*)\]`)
)

// saidScheme reports whether the compiler said what is wrong with the
// security scheme name, where it is declared or where it is required.
func (c *compiler) saidScheme(name string) bool {
	return slices.ContainsFunc(c.errs, func(e *Error) bool {
		return e.Where == "components.securitySchemes."+name || strings.HasSuffix(e.Field, "."+name)
	})
}

// saidUnknown reports whether the shape check said of every field
// kin-openapi's finding e does not know that it is no field there.
func saidUnknown(e *Error, shapeErrs Errors) bool {
	return len(e.unknown) > 0 && !slices.ContainsFunc(e.unknown, func(name string) bool {
		return !slices.ContainsFunc(shapeErrs, func(s *Error) bool { return s.Field == name || strings.HasSuffix(s.Field, "."+name) })
	})
}

// validationErrors turns kin-openapi's findings into errors of the
// document, one each, on its operation's line where it names one (t holds
// the operations, or is nil). kin-openapi refuses, among much else, a
// security scheme or requirement the compiler refused too, and two
// operations of one operationId: the compiler's lines (naming operation
// and field) say those better, and kin-openapi's word on them is left out.
func (c *compiler) validationErrors(t *Table, err error) Errors {
	var out Errors
	for _, f := range validationFindings(err) {
		msg := text.OneLine(f.Error())
		if m := schemeNamed.FindStringSubmatch(msg); m != nil && c.saidScheme(m[1]) || len(c.errs) > 0 && strings.Contains(msg, "same operation id") {
			continue
		}
		e := &Error{Source: c.source, Msg: "invalid OpenAPI document: " + msg}
		if m := extraFields.FindStringSubmatch(msg); m != nil {
			e.unknown = strings.Fields(m[1])
		}
		if m := opFinding.FindStringSubmatch(msg); m != nil && t != nil {
			if op := t.operationAt(m[2], m[1]); op != nil {
				e.Line, e.Where, e.Msg = op.Line, op.String(), m[3]
			}
		}
		out = append(out, e)
	}
	return out
}

// validateDoc validates doc as kin-openapi does, less two findings:
// examples, which nothing enforces (lint warns of them), and paths that
// differ only in their parameters' names, which the compiler checks itself
// per method (GitHub's description has them: GET and DELETE of one
// resource naming its id differently).
func validateDoc(doc *openapi3.T) error {
	kept := validationFindings(doc.Validate(context.Background(), openapi3.DisableExamplesValidation(), openapi3.EnableMultiError()))
	switch len(kept) {
	case 0:
		return nil
	case 1:
		return kept[0]
	}
	return openapi3.MultiError(kept)
}

// validationFindings flattens what kin-openapi's validation returned (with
// EnableMultiError), less conflicting paths.
func validationFindings(err error) []error {
	var kept []error
	var walk func(error)
	walk = func(err error) {
		if me, ok := err.(openapi3.MultiError); ok {
			for _, e := range me {
				walk(e)
			}
			return
		}
		var conflict *openapi3.ConflictingPathsError
		if !errors.As(err, &conflict) {
			kept = append(kept, err)
		}
	}
	if err != nil {
		walk(err)
	}
	return kept
}

type compiler struct {
	source string
	doc    *openapi3.T
	data   []byte
	errs   Errors

	schemes     map[string]*Scheme
	unsupported map[string]string // scheme name -> why it cannot be enforced
	oauthScopes map[string]map[string]bool
	allScopes   map[string]bool
	// providerErrs are the errors of invalid openIdConnect schemes, said
	// once when an operation uses the scheme.
	providerErrs map[string]Errors
	buckets      map[string]bucketOwner
	// meant are the extensions misspelt ones were meant to be: the
	// compiler does not say again that they are missing.
	meant []meant
	// extProblems are extensionProblem's answers, by name, kind and
	// whether the value has x-owner's shape.
	extProblems map[extKey]struct{ msg, near string }
	// nestedSeen are the objects checkNested has checked.
	nestedSeen map[any]bool
}

type bucketOwner struct {
	where string
	tier  Tier
}

// hasProvider reports whether the document declares an openIdConnect
// scheme.
func (c *compiler) hasProvider() bool {
	for _, s := range c.schemes {
		if s.Type == SchemeOIDC {
			return true
		}
	}
	return false
}

func (c *compiler) fail(line int, where, field, format string, args ...any) {
	c.errs = append(c.errs, &Error{Source: c.source, Line: line, Where: where, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (c *compiler) compile() *Table {
	t := &Table{
		Doc:     c.doc,
		Source:  c.source,
		Schemes: map[string]*Scheme{},
		byRoute: map[route]*Operation{},
		byID:    map[string]*Operation{},
	}
	c.buckets = map[string]bucketOwner{}
	c.compileSchemes()
	t.Roles = c.compileRoles()
	for s := range c.allScopes {
		t.Scopes = append(t.Scopes, s)
	}
	sort.Strings(t.Scopes)

	before := len(c.errs)
	rootLimits, rootAt, rootUnlimited, rootHasLimits := c.parseLimits(c.rootLine(ExtRateLimit), "document", c.doc.Extensions)
	// A default with a tier refused already says what is wrong: no
	// operation says again that none of its tiers applies.
	rootRefused := len(c.errs) > before

	// OpenAPI 3.1 makes paths optional (a document of webhooks or
	// components only): no operations, as for an empty paths object.
	if c.doc.Paths == nil {
		c.doc.Paths = openapi3.NewPaths()
	}
	c.checkDocumentParts()
	paths := c.doc.Paths.InMatchingOrder()
	sort.Strings(paths)
	// Paths that differ only in their parameters' names route alike: each
	// method may be declared on one of them only.
	shapes := map[string]*Operation{}
	c.refuseOurs(c.doc.Paths.Origin, 0, "paths", "paths object", c.doc.Paths.Extensions)
	for _, path := range paths {
		item := c.doc.Paths.Value(path)
		pattern, ok := c.chiPattern(item, path)
		if !ok {
			continue
		}
		c.checkExtensions(originLine(item.Origin), path, "path item", item.Extensions)
		c.checkParameters(originLine(item.Origin), "path "+path, item.Parameters)
		c.checkServers(originLine(item.Origin), "path "+path, item.Servers)
		for _, method := range methods {
			spec := item.GetOperation(method)
			if spec == nil {
				continue
			}
			op := &Operation{
				ID:       spec.OperationID,
				Method:   method,
				Path:     path,
				Pattern:  pattern,
				Line:     originLine(spec.Origin),
				Spec:     spec,
				PathItem: item,
			}
			where := fmt.Sprintf("%s %s (%s)", method, path, op.ID)
			if op.ID == "" {
				where = fmt.Sprintf("%s %s", method, path)
				c.fail(op.Line, where, "operationId", "missing; every operation needs one")
			} else if other := t.byID[op.ID]; other != nil {
				c.fail(op.Line, where, "operationId", "duplicate; %s %s uses it too", other.Method, other.Path)
			}
			shape := method + " " + paramName.ReplaceAllString(path, "{}")
			if other := shapes[shape]; other != nil {
				c.fail(op.Line, where, "", "%s %s routes the same requests (paths differing only in parameter names are one path)", other.Method, other.Path)
			} else {
				shapes[shape] = op
			}
			c.checkExtensions(op.Line, where, "operation", spec.Extensions)
			c.checkNested(op, where)
			op.Security = c.compileSecurity(op, where)
			if tiers, at, unlimited, present := c.parseLimits(op.Line, where, spec.Extensions); present {
				op.Unlimited = unlimited
				op.Limits = c.bindLimits(op, where, ExtRateLimit, tiers, at, false)
			} else if rootHasLimits {
				op.Unlimited = rootUnlimited
				op.Limits = c.bindLimits(op, where, "x-rate-limit (document default)", rootLimits, rootAt, true)
				if !op.Unlimited && len(op.Limits) == 0 && !rootRefused {
					c.fail(op.Line, where, ExtRateLimit, "no tier of the document default applies to this operation; declare x-rate-limit here")
				}
			} else {
				c.fail(op.Line, where, ExtRateLimit, "missing, and the document declares no default; declare one, or x-rate-limit: false to leave it unlimited")
			}
			op.RequireFresh = c.compileFresh(op, where)
			op.Owner = c.compileOwner(op, where)
			t.ops = append(t.ops, op)
			t.byRoute[route{method, pattern}] = op
			if op.ID != "" && t.byID[op.ID] == nil {
				t.byID[op.ID] = op
			}
		}
	}
	for _, op := range t.ops {
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				t.Schemes[sr.Scheme.Name] = sr.Scheme
			}
		}
	}
	c.checkIntrospection(t.Schemes)
	c.errs = slices.DeleteFunc(c.errs, func(e *Error) bool { return said(e, c.meant) })
	return t
}

// rootLine returns the line of a top-level YAML key, found in the source
// (kin-openapi records no location for mappings), or 0.
func (c *compiler) rootLine(key string) int {
	for i, line := range bytes.Split(c.data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte(key+":")) {
			return i + 1
		}
	}
	return 0
}

func originLine(o *openapi3.Origin) int {
	if o != nil && o.Key != nil {
		return o.Key.Line
	}
	return 0
}

// chiPattern turns an OpenAPI path template into a chi route pattern. The
// two syntaxes agree for plain {name} parameters; anything chi would read
// differently (a regexp, a wildcard) is refused.
func (c *compiler) chiPattern(item *openapi3.PathItem, path string) (string, bool) {
	ok := true
	seen := map[string]bool{}
	for _, m := range paramName.FindAllStringSubmatch(path, -1) {
		if !validParamName.MatchString(m[1]) {
			c.fail(originLine(item.Origin), "path "+path, "", "parameter name %q cannot be routed; use letters, digits, '_', '.' or '-'", m[1])
			ok = false
		} else if seen[m[1]] {
			// chi panics on it when the route is registered.
			c.fail(originLine(item.Origin), "path "+path, "", "parameter {%s} appears twice; give each a name of its own", m[1])
			ok = false
		}
		seen[m[1]] = true
	}
	if strings.Contains(path, "*") {
		c.fail(originLine(item.Origin), "path "+path, "", "'*' is not allowed in a path template")
		ok = false
	}
	return path, ok
}

// schemeExtensions are the type of the scheme each of specguard's scheme
// extensions is read on.
var schemeExtensions = map[string]string{
	ExtRoles: "oauth2", ExtAudience: "openIdConnect", ExtIssuers: "openIdConnect", ExtScopesClaim: "openIdConnect", ExtIntrospect: "openIdConnect",
}

func (c *compiler) compileSchemes() {
	c.schemes = map[string]*Scheme{}
	c.unsupported = map[string]string{}
	c.oauthScopes = map[string]map[string]bool{}
	c.allScopes = map[string]bool{}
	c.providerErrs = map[string]Errors{}
	if c.doc.Components == nil {
		return
	}
	for name, ref := range c.doc.Components.SecuritySchemes {
		s := ref.Value
		if s == nil {
			c.unsupported[name] = "the scheme is empty"
			continue
		}
		// An extension on a scheme that does not read it would be
		// dropped: x-audience on an http bearer scheme restricts nothing.
		for _, ext := range slices.Sorted(maps.Keys(schemeExtensions)) {
			if _, ok := s.Extensions[ext]; ok && s.Type != schemeExtensions[ext] {
				c.fail(originLine(s.Origin), "components.securitySchemes."+name, ext,
					"is read on %s schemes only; on a scheme of type %q nothing would enforce it", schemeExtensions[ext], s.Type)
			}
		}
		switch {
		case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
			c.schemes[name] = &Scheme{Name: name, Type: SchemeBearer, Param: "Authorization"}
		case s.Type == "oauth2":
			c.schemes[name] = &Scheme{Name: name, Type: SchemeOAuth2, Param: "Authorization"}
			scopes := map[string]bool{}
			if f := s.Flows; f != nil {
				for _, flow := range []*openapi3.OAuthFlow{f.Implicit, f.Password, f.ClientCredentials, f.AuthorizationCode} {
					if flow == nil {
						continue
					}
					for scope := range flow.Scopes {
						scopes[scope] = true
						c.allScopes[scope] = true
					}
				}
			}
			c.oauthScopes[name] = scopes
		case s.Type == "apiKey" && s.In == "header":
			if strings.EqualFold(s.Name, "Authorization") {
				c.unsupported[name] = "an apiKey in the Authorization header would collide with bearer tokens"
				continue
			}
			c.schemes[name] = &Scheme{Name: name, Type: SchemeAPIKeyHeader, Param: http.CanonicalHeaderKey(s.Name)}
		case s.Type == "apiKey" && s.In == "cookie":
			c.schemes[name] = &Scheme{Name: name, Type: SchemeAPIKeyCookie, Param: s.Name}
		case s.Type == "openIdConnect":
			if p := c.compileProvider(name, s); p != nil {
				c.schemes[name] = &Scheme{Name: name, Type: SchemeOIDC, Param: "Authorization", Provider: p}
			} else {
				c.unsupported[name] = "the openIdConnect scheme is not valid; see components.securitySchemes." + name
			}
		case s.Type == "apiKey" && s.In == "query":
			c.unsupported[name] = "apiKey in query cannot be enforced: credentials in URLs leak into logs and caches"
		case s.Type == "http":
			c.unsupported[name] = fmt.Sprintf("http scheme %q cannot be enforced; specguard verifies bearer tokens", s.Scheme)
		default:
			c.unsupported[name] = fmt.Sprintf("scheme type %q cannot be enforced", s.Type)
		}
	}
}

func (c *compiler) compileRoles() map[string][]string {
	var roles map[string][]string
	names := make([]string, 0, len(c.oauthScopes))
	for name := range c.oauthScopes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := c.doc.Components.SecuritySchemes[name].Value
		raw, ok := s.Extensions[ExtRoles]
		if !ok {
			continue
		}
		where := "components.securitySchemes." + name
		line := originLine(s.Origin)
		m, ok := raw.(map[string]any)
		if !ok {
			c.fail(line, where, ExtRoles, "must map each role to a list of scopes")
			continue
		}
		if roles != nil {
			c.fail(line, where, ExtRoles, "declared on more than one scheme; declare roles once")
			continue
		}
		roles = map[string][]string{}
		for role, v := range m {
			list, ok := v.([]any)
			if !ok {
				c.fail(line, where, ExtRoles+"."+role, "must be a list of scopes")
				continue
			}
			scopes := []string{}
			for i, item := range list {
				scope, ok := item.(string)
				if !ok || !c.oauthScopes[name][scope] {
					c.fail(line, where, fmt.Sprintf("%s.%s[%d]", ExtRoles, role, i), "scope %v is not declared by the scheme's flows", item)
					continue
				}
				scopes = append(scopes, scope)
			}
			sort.Strings(scopes)
			roles[role] = slices.Compact(scopes)
		}
	}
	return roles
}

// extKey is what extensionProblem's answer depends on.
type extKey struct {
	name, kind string
	owner      bool
}

// checkExtensions runs the shape check's test of extension names on an
// object as the loader resolved it: one reached through a YAML alias or
// merge key, or a path item's $ref, which the shape check (reading the
// text) does not see there. What the shape check said of the same object
// is said once (compileDoc).
// checkNested refuses specguard's own extensions (their exact names)
// written inside op, a level or more below where they are read: in its
// responses, a response (beside its $ref too), a response's media types
// and headers, a parameter, its request body and media types, its
// external docs, a callback (an x-require-fresh appended after the
// responses, at the indentation of their codes). Each would be ignored,
// and the operation less guarded than written. Near names are not looked
// for there: x-ratelimit-headers may document a response. An object
// shared through components is reported once; a path item's parameters
// are checked with the path item (checkParameters).
func (c *compiler) checkNested(op *Operation, where string) {
	check := func(o *openapi3.Origin, kind string, exts map[string]any) {
		c.refuseOurs(o, op.Line, where, kind, exts)
	}
	checkContent := func(content openapi3.Content) {
		for _, mt := range slices.Sorted(maps.Keys(content)) {
			if m := content[mt]; m != nil {
				check(m.Origin, "media type", m.Extensions)
			}
		}
	}
	spec := op.Spec
	if spec.Responses != nil {
		check(spec.Responses.Origin, "responses object", spec.Responses.Extensions)
		for _, code := range slices.Sorted(maps.Keys(spec.Responses.Map())) {
			r := spec.Responses.Value(code)
			if r == nil {
				continue
			}
			check(r.Origin, "response", r.Extensions)
			if v := r.Value; v != nil && c.firstSeen(v) {
				check(v.Origin, "response", v.Extensions)
				checkContent(v.Content)
				for _, name := range slices.Sorted(maps.Keys(v.Headers)) {
					if h := v.Headers[name]; h != nil {
						check(h.Origin, "header", h.Extensions)
						if h.Value != nil && c.firstSeen(h.Value) {
							check(h.Value.Origin, "header", h.Value.Extensions)
						}
					}
				}
			}
		}
	}
	c.checkParameters(op.Line, where, spec.Parameters)
	if rb := spec.RequestBody; rb != nil {
		check(rb.Origin, "request body", rb.Extensions)
		if v := rb.Value; v != nil && c.firstSeen(v) {
			check(v.Origin, "request body", v.Extensions)
			checkContent(v.Content)
		}
	}
	if d := spec.ExternalDocs; d != nil {
		check(d.Origin, "external documentation object", d.Extensions)
	}
	if spec.Servers != nil {
		c.checkServers(op.Line, where, *spec.Servers)
	}
	for _, name := range slices.Sorted(maps.Keys(spec.Callbacks)) {
		if cb := spec.Callbacks[name]; cb != nil {
			check(cb.Origin, "callback", cb.Extensions)
			if cb.Value != nil && c.firstSeen(cb.Value) {
				check(cb.Value.Origin, "callback", cb.Value.Extensions)
			}
		}
	}
}

// checkDocumentParts refuses specguard's extensions on the parts of the
// document outside its paths and security schemes that nothing reads
// them on: its info, its external documentation, a tag (an
// x-rate-limit there guards none of the tag's operations) and a server.
func (c *compiler) checkDocumentParts() {
	d := c.doc
	if d.Info != nil {
		c.refuseOurs(d.Info.Origin, 0, "info", "info object", d.Info.Extensions)
		if d.Info.Contact != nil {
			c.refuseOurs(d.Info.Contact.Origin, 0, "info", "contact object", d.Info.Contact.Extensions)
		}
		if d.Info.License != nil {
			c.refuseOurs(d.Info.License.Origin, 0, "info", "license object", d.Info.License.Extensions)
		}
	}
	if d.ExternalDocs != nil {
		c.refuseOurs(d.ExternalDocs.Origin, 0, "externalDocs", "external documentation object", d.ExternalDocs.Extensions)
	}
	for _, tag := range d.Tags {
		if tag != nil {
			c.refuseOurs(tag.Origin, 0, "tag "+tag.Name, "tag", tag.Extensions)
			if tag.ExternalDocs != nil {
				c.refuseOurs(tag.ExternalDocs.Origin, 0, "tag "+tag.Name, "external documentation object", tag.ExternalDocs.Extensions)
			}
		}
	}
	c.checkServers(0, "servers", d.Servers)
}

// checkServers refuses specguard's extensions on servers (the
// document's, a path item's or an operation's) and their variables.
func (c *compiler) checkServers(line int, where string, servers openapi3.Servers) {
	for _, s := range servers {
		if s == nil {
			continue
		}
		c.refuseOurs(s.Origin, line, where, "server", s.Extensions)
		for _, name := range slices.Sorted(maps.Keys(s.Variables)) {
			if v := s.Variables[name]; v != nil {
				c.refuseOurs(v.Origin, line, where, "server variable", v.Extensions)
			}
		}
	}
}

// checkParameters is checkNested of the parameters params (an
// operation's, or a path item's, checked once with it).
func (c *compiler) checkParameters(line int, where string, params openapi3.Parameters) {
	for _, p := range params {
		if p == nil {
			continue
		}
		c.refuseOurs(p.Origin, line, where, "parameter", p.Extensions)
		if p.Value != nil && c.firstSeen(p.Value) {
			c.refuseOurs(p.Value.Origin, line, where, "parameter", p.Value.Extensions)
		}
	}
}

// firstSeen reports whether checkNested meets the object v (a pointer)
// for the first time: one in components, reached by several operations,
// is checked once.
func (c *compiler) firstSeen(v any) bool {
	if c.nestedSeen[v] {
		return false
	}
	if c.nestedSeen == nil {
		c.nestedSeen = map[any]bool{}
	}
	c.nestedSeen[v] = true
	return true
}

// refuseOurs refuses specguard's own extensions among exts, of an object
// of kind where none is read, at o's line (line when o has none).
func (c *compiler) refuseOurs(o *openapi3.Origin, line int, where, kind string, exts map[string]any) {
	if l := originLine(o); l != 0 {
		line = l
	}
	for _, name := range slices.Sorted(maps.Keys(exts)) {
		if _, ours := extensions[name]; ours {
			msg, _ := extensionProblem(name, kind, false)
			c.fail(line, where, name, "%s", msg)
		}
	}
}

func (c *compiler) checkExtensions(line int, where, kind string, exts map[string]any) {
	if len(exts) == 0 {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(exts)) {
		if !strings.HasPrefix(name, "x-") {
			continue // a field OpenAPI lacks: the shape check and the validator say so
		}
		// A large document names the same few extensions on every
		// operation (GitHub's: x-github): each is looked at once.
		owner := false
		switch exts[name].(type) {
		case bool, map[string]any:
			owner = true
		}
		key := extKey{name, kind, owner}
		p, seen := c.extProblems[key]
		if !seen {
			p.msg, p.near = extensionProblem(name, kind, owner)
			if c.extProblems == nil {
				c.extProblems = map[extKey]struct{ msg, near string }{}
			}
			c.extProblems[key] = p
		}
		if msg, near := p.msg, p.near; msg != "" {
			c.fail(line, where, name, "%s", msg)
			if near != "" {
				c.meant = append(c.meant, meant{where, near})
				c.errs[len(c.errs)-1].near = near
			}
		}
	}
}

func (c *compiler) compileSecurity(op *Operation, where string) Security {
	reqs := op.Spec.Security
	field := "security"
	if reqs == nil {
		reqs = &c.doc.Security
		field = "security (document default)"
		if c.doc.Security != nil && len(c.doc.Security) == 0 {
			c.fail(op.Line, where, "security", "no security declared here, and the document root's security: [] is no default (every operation without its own would be public unseen); declare security: [] here to make this one public")
			return Security{}
		}
		if len(c.doc.Security) == 0 {
			c.fail(op.Line, where, "security", "no security declared here or at the document root; use security: [] to make it public")
			return Security{}
		}
	}
	if len(*reqs) == 0 {
		return Security{Public: true}
	}
	var sec Security
	for i, req := range *reqs {
		if req == nil {
			// A null item (a "-" left alone on its line, say) is not {}:
			// letting anonymous callers in takes writing so.
			c.fail(op.Line, where, fmt.Sprintf("%s[%d]", field, i), "null is not a security requirement; write {} to let anonymous callers in, or remove the item")
			continue
		}
		if len(req) == 0 {
			sec.Anonymous = true
			continue
		}
		names := make([]string, 0, len(req))
		for name := range req {
			names = append(names, name)
		}
		sort.Strings(names)
		alt := make(Requirement, 0, len(names))
		ok := true
		for _, name := range names {
			f := fmt.Sprintf("%s[%d].%s", field, i, name)
			scheme := c.schemes[name]
			if scheme == nil {
				if errs, invalid := c.providerErrs[name]; invalid {
					// Said once, at the scheme; every use fails with it.
					c.errs = append(c.errs, errs...)
					c.providerErrs[name] = nil
				} else if why, known := c.unsupported[name]; known {
					c.fail(op.Line, where, f, "%s", why)
				} else {
					c.fail(op.Line, where, f, "unknown security scheme; components.securitySchemes does not declare it")
				}
				ok = false
				continue
			}
			scopes := req[name]
			if scopes == nil {
				// "oauth:" with nothing after it is not [], though both
				// require no scope: say which was meant.
				c.fail(op.Line, where, f, "null is not a list of scopes; write [] to require none")
				ok = false
				continue
			}
			for _, scope := range scopes {
				if !scopeToken(scope) {
					// No token's space-separated scope list could hold it,
					// nor an insufficient_scope challenge name it (RFC
					// 6750 3): "posts write" read as two scopes there.
					c.fail(op.Line, where, f, "scope %q is not a scope name (RFC 6749 3.3: printable ASCII, no space, quote or backslash)", scope)
					ok = false
				} else if scheme.Type == SchemeOIDC {
					// The provider defines its scopes; the document cannot
					// list them, so any name is checked against the token.
				} else if scheme.Type == SchemeOAuth2 && !c.oauthScopes[name][scope] {
					c.fail(op.Line, where, f, "scope %q is not declared by the %s scheme", scope, name)
					ok = false
				} else if scheme.Type != SchemeOAuth2 && !c.allScopes[scope] {
					c.fail(op.Line, where, f, "scope %q is not declared by any oauth2 scheme", scope)
					ok = false
				}
			}
			alt = append(alt, SchemeRequirement{Scheme: scheme, Scopes: slices.Clone(scopes)})
		}
		if ok {
			sec.Alternatives = append(sec.Alternatives, alt)
		}
	}
	return sec
}

// compileOwner reads x-owner: true, or {override: [scope, ...]}: the
// operation acts only on the caller's own resource, the one its last path
// parameter names; a holder of an override scope may act on anyone's. The
// guard cannot know who owns what: the handlers enforce it, and
// `specguard conform` checks it.
func (c *compiler) compileOwner(op *Operation, where string) *Owner {
	raw, ok := op.Spec.Extensions[ExtOwner]
	if !ok || raw == false {
		return nil
	}
	owner := &Owner{}
	switch v := raw.(type) {
	case bool:
	case map[string]any:
		for k, val := range v {
			if k != "override" {
				c.fail(op.Line, where, ExtOwner+"."+k, "unknown field; x-owner takes override, a list of scopes")
				return nil
			}
			list, _ := val.([]any)
			if list == nil {
				c.fail(op.Line, where, ExtOwner+".override", "must be a list of scopes, not %v", val)
				return nil
			}
			for _, s := range list {
				scope, _ := s.(string)
				if scope == "" {
					c.fail(op.Line, where, ExtOwner+".override", "must be a list of scopes, not %v", val)
					return nil
				}
				// An identity provider's scopes are its own names, declared
				// nowhere; any other must be an oauth2 scheme's.
				if !c.allScopes[scope] && !c.hasProvider() {
					c.fail(op.Line, where, ExtOwner+".override", "scope %q is not declared by an oauth2 scheme", scope)
					return nil
				}
				owner.Override = append(owner.Override, scope)
			}
		}
	default:
		c.fail(op.Line, where, ExtOwner, "must be true, false or {override: [scopes]}, not %v", raw)
		return nil
	}
	if !strings.Contains(op.Path, "{") {
		c.fail(op.Line, where, ExtOwner, "names the resource by a path parameter, and %s has none", op.Path)
		return nil
	}
	if op.Security.Public || op.Security.Anonymous {
		c.fail(op.Line, where, ExtOwner, "an operation on the caller's own resource needs a caller; this one admits anonymous callers")
		return nil
	}
	slices.Sort(owner.Override)
	return owner
}

func (c *compiler) compileFresh(op *Operation, where string) bool {
	raw, ok := op.Spec.Extensions[ExtRequireFresh]
	if !ok {
		return false
	}
	fresh, isBool := raw.(bool)
	if !isBool {
		c.fail(op.Line, where, ExtRequireFresh, "must be true or false, not %v", raw)
		return false
	}
	if !fresh {
		return false
	}
	if op.Security.Public || op.Security.Anonymous {
		c.fail(op.Line, where, ExtRequireFresh, "needs an operation that requires a token; this one admits anonymous callers")
		return false
	}
	for i, alt := range op.Security.Alternatives {
		for _, sr := range alt {
			if sr.Scheme.Type != SchemeBearer && sr.Scheme.Type != SchemeOAuth2 {
				c.fail(op.Line, where, ExtRequireFresh, "security alternative %d uses %s (%s), which carries no freshness; only specguard's own bearer tokens do", i, sr.Scheme.Name, sr.Scheme.Type)
				return false
			}
		}
	}
	return true
}

// keyLines are the lines of a JSON document's keys the compiler names
// places by: its top-level keys, its paths, their operations (the method
// in upper case) and its security schemes, each by its keys joined by a
// NUL.
type keyLines map[string]int

// linesOf reads the keyLines of a JSON document's outline (the shape
// check's, outlineJSON).
func linesOf(root object) keyLines {
	l := keyLines{}
	for _, top := range root {
		l[top.name] = top.line
		switch top.name {
		case "paths":
			for _, path := range top.obj {
				l["paths\x00"+path.name] = path.line
				for _, op := range path.obj {
					l["paths\x00"+path.name+"\x00"+strings.ToUpper(op.name)] = op.line
				}
			}
		case "components":
			for _, section := range top.obj {
				if section.name == "securitySchemes" {
					for _, sc := range section.obj {
						l["components\x00securitySchemes\x00"+sc.name] = sc.line
					}
				}
			}
		}
	}
	return l
}

// fill gives a JSON document's table and errors the lines kin-openapi
// did not (it keeps no origin for JSON): read by the shape check at the
// same time as the document was compiled, they are set afterwards.
func (l keyLines) fill(t *Table, errs Errors) {
	if l == nil {
		return
	}
	if t != nil {
		t.lines = l
		for _, op := range t.ops {
			op.Line = l.or(op.Line, "paths", op.Path, op.Method)
		}
	}
	for _, e := range errs {
		if e.Line != 0 {
			continue
		}
		switch where := e.Where; {
		case where == "document":
			e.Line = l[strings.SplitN(strings.SplitN(e.Field, ".", 2)[0], "[", 2)[0]]
		case strings.HasPrefix(where, "components.securitySchemes."):
			e.Line = l.or(0, "components", "securitySchemes", strings.TrimPrefix(where, "components.securitySchemes."))
		case strings.HasPrefix(where, "path "):
			e.Line = l.or(0, "paths", strings.TrimPrefix(where, "path "))
		default: // "METHOD /path (operationId)", or without the id
			method, rest, _ := strings.Cut(where, " ")
			path, _, _ := strings.Cut(rest, " ")
			e.Line = l.or(0, "paths", path, method)
		}
	}
}

// or is line when it is known (not 0), else the line of the key at keys.
func (l keyLines) or(line int, keys ...string) int {
	if line != 0 || l == nil {
		return line
	}
	return l[strings.Join(keys, "\x00")]
}

// externalRef finds the reference in kin-openapi's refusal of one to
// another file.
var externalRef = regexp.MustCompile(`disallowed external reference: "([^"]+)"`)

// lineOf is the line of data where s first appears, 0 when it does not.
func lineOf(data []byte, s string) int {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}

// unmarshalType is the loader's complaint about a value of the wrong type
// (version: 1 where a string is due), which names the Go field but no line.
var unmarshalType = regexp.MustCompile(`cannot unmarshal (\w+) into field (\w+)\.(\w+) of type (\w+)`)

// typeError is the loader's type error msg as an error with a line: the
// first value of a key of that name whose type is not the one due, where
// the document says it; nil when there is no such error or no such value.
func typeError(source string, data []byte, msg string) *Error {
	m := unmarshalType.FindStringSubmatch(msg)
	if m == nil {
		return nil
	}
	got, typ, key, want := m[1], m[2], m[3], m[4]
	var due string
	switch {
	case want == "string":
		due = "a string"
	case want == "bool":
		due = "true or false"
	case strings.HasPrefix(want, "int") || strings.HasPrefix(want, "uint") || strings.HasPrefix(want, "float"):
		due = "a number"
	default:
		return nil
	}
	var root yaml3.Node
	if yaml3.Unmarshal(data, &root) != nil {
		return nil
	}
	// The value under a key named as the Go type (info: for Info) first,
	// then anywhere.
	var found *yaml3.Node
	var walk func(n *yaml3.Node, parent string, strict bool)
	walk = func(n *yaml3.Node, parent string, strict bool) {
		if found != nil {
			return
		}
		if n.Kind == yaml3.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == key && is(v, got) && !(v.Kind == yaml3.ScalarNode && fits(v.Tag, want)) && (!strict || strings.EqualFold(parent, typ)) {
					found = v
					return
				}
				if !freeForm(k.Value) {
					walk(v, k.Value, strict)
				}
			}
			return
		}
		for _, c := range n.Content {
			walk(c, parent, strict)
		}
	}
	walk(&root, "", true)
	walk(&root, "", false)
	if found == nil {
		return nil
	}
	value := found.Value
	switch {
	case found.Kind != yaml3.ScalarNode:
		value = "the value"
	case found.Tag == "!!str":
		value = strconv.Quote(value)
	}
	hint := ""
	if want == "string" && found.Kind == yaml3.ScalarNode {
		hint = fmt.Sprintf(": quote it (%q)", found.Value)
	}
	return &Error{Source: source, Line: found.Line, Col: found.Column, Field: key,
		Msg: fmt.Sprintf("%s is %s, where %s is due%s", value, article(strings.Replace(got, "bool", "boolean", 1)), due, hint)}
}

// freeForm reports whether the value under key is the author's own data,
// whose keys are no OpenAPI fields (an example, a default, an extension).
func freeForm(key string) bool {
	switch key {
	case "example", "examples", "default", "enum", "const":
		return true
	}
	return strings.HasPrefix(key, "x-")
}

// is reports whether n is a value of kind, as encoding/json names it in
// a type error ("number", "string", "bool", "array", "object").
func is(n *yaml3.Node, kind string) bool {
	switch kind {
	case "array":
		return n.Kind == yaml3.SequenceNode
	case "object":
		return n.Kind == yaml3.MappingNode
	case "number":
		return n.Kind == yaml3.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float")
	case "string":
		return n.Kind == yaml3.ScalarNode && n.Tag == "!!str"
	case "bool":
		return n.Kind == yaml3.ScalarNode && n.Tag == "!!bool"
	}
	return false
}

// fits reports whether a YAML scalar of tag can be decoded into a Go value
// of type want.
func fits(tag, want string) bool {
	switch {
	case want == "string":
		return tag == "!!str"
	case want == "bool":
		return tag == "!!bool"
	case strings.HasPrefix(want, "float"):
		return tag == "!!int" || tag == "!!float"
	}
	return tag == "!!int"
}

// scopeToken reports whether s is a scope-token of RFC 6749 3.3:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func scopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}
