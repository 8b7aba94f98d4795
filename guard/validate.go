package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/internal/formats"
	"github.com/specguard/specguard/internal/ijson"
	"github.com/specguard/specguard/internal/respcheck"
	"github.com/specguard/specguard/internal/text"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
)

// validationOptions are openapi3filter's options for every request: the
// first error only (every error at once let a 1 MiB body of unknown
// properties cost 108 MiB of allocation and a 6.7 MB answer, one entry
// per property), no authentication (the guard has done it), and the
// string formats of internal/formats checked.
var validationOptions = &openapi3filter.Options{
	AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
	SchemaValidationOptions: formats.Options,
}

// validationKeep is validationOptions for an operation whose body keys are
// checked for case variants (see caseVariant): the validator leaves the
// body it decoded, rather than the check decoding it again.
var validationKeep = &openapi3filter.Options{
	AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
	KeepValidatedValue:      true,
	SchemaValidationOptions: formats.Options,
}

// opValidation is what request validation needs for one operation.
type opValidation struct {
	route *routers.Route
	// malformed answers the requests refused here, when not nil
	// (WithMalformedAnswer).
	malformed func(http.ResponseWriter, *http.Request, *problem.Problem)
	// pathOnly lists the parameters when an operation's only input is
	// string path parameters in the simple style (GET /posts/{id}, say):
	// those are validated by their schemas directly, which is all
	// openapi3filter.ValidateRequest would do, without its request
	// decoding. nil otherwise; empty (not nil) for an operation without
	// inputs (no parameters, no body), where there is nothing to validate.
	pathOnly []*openapi3.Parameter
	// checks[i], when not nil, decides whether a value is valid for
	// pathOnly[i] without allocating; a value it refuses goes to the schema
	// (VisitJSON) for the exact error.
	checks []*stringCheck
	// folds: the body's keys are checked for case variants of its
	// schema's properties (see caseVariant), with shapes.
	folds  bool
	shapes shapes
	// exact: the body's numbers are checked again as its handler binds
	// them (see exactNumbers); so are exactParams'.
	exact       bool
	exactParams []*openapi3.Parameter
	// once lists the query parameters that may not be repeated (see
	// onceOnly).
	once []string
	// formOnly holds, for each media type a form body may be validated
	// against, the fields of its schema that are no query parameter (see
	// formFields).
	formOnly map[*openapi3.MediaType][]string
	// jsonParams are the parameters whose value is JSON (their content's
	// one media type application/json, or a range holding it): checked as
	// a JSON body is (see checkJSONParams).
	jsonParams []jsonParam
	// params are the operation's (policy.Operation.Parameters).
	params []*openapi3.Parameter
	// deepObjects are the query parameters in the deepObject style: a name
	// of the query that starts as one of theirs must be one both the
	// validator and the handler read as its property (see deepObjectName).
	deepObjects []string
	// styledObjects are the object parameters written in a style (not as
	// content, not exploded into names of the query): see
	// checkStyledObjects.
	styledObjects []styledObject
}

// styledObject is an object parameter written in a style, and the style.
type styledObject struct {
	p  *openapi3.Parameter
	sm *openapi3.SerializationMethod
}

// jsonParam is a parameter whose value is JSON, and its schema; folds
// when the schema names properties a key could stand in for.
type jsonParam struct {
	p      *openapi3.Parameter
	schema *openapi3.Schema
	folds  bool
	exact  bool // its numbers are checked again (see exactNumbers)
}

// onceOnly reports whether query parameter p given more than once is to
// be refused (see mayRepeat).
func onceOnly(p *openapi3.Parameter) bool {
	ref := p.Schema
	for _, mt := range p.Content {
		ref = mt.Schema
	}
	return ref != nil && !mayRepeat(ref.Value)
}

// exploded returns the object schema of query parameter p when its
// properties are given as names of the query of their own (style form,
// explode: ?title=x&lang=en), nil otherwise.
func exploded(p *openapi3.Parameter) *openapi3.Schema {
	if p.Schema == nil || !isObject(p.Schema.Value) ||
		p.Style != "" && p.Style != openapi3.SerializationForm || p.Explode != nil && !*p.Explode {
		return nil
	}
	return p.Schema.Value
}

// isObject reports whether s describes an object, as a handler
// oapi-codegen generates binds one (a struct): its type says so, or it has
// none and names properties, in itself or a member of its allOf, anyOf or
// oneOf (allOf: [$ref], a description beside it).
func isObject(s *openapi3.Schema) bool { return objectAt(s, 0) }

func objectAt(s *openapi3.Schema, depth int) bool {
	switch {
	case s == nil || depth > maxFoldDepth:
		return false
	case s.Type.Is(openapi3.TypeObject):
		return true
	case s.Type != nil && len(*s.Type) > 0:
		return false
	case len(s.Properties) > 0, s.AdditionalProperties.Schema != nil, s.AdditionalProperties.Has != nil && *s.AdditionalProperties.Has:
		return true // a struct or a map
	}
	for _, members := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, m := range members {
			if m != nil && objectAt(m.Value, depth+1) {
				return true
			}
		}
	}
	return false
}

// unreadableBodies are the media types of op's request body that
// openapi3filter validates but cannot decode (it has no decoder for them):
// every body of one would be refused. A range (*/*, text/*) may take a
// type it reads; a schema of type string and format binary is read as
// bytes, and a media type without schema is not read.
func unreadableBodies(op *policy.Operation) []string {
	body := op.Spec.RequestBody
	if body == nil || body.Value == nil {
		return nil
	}
	var out []string
	for _, key := range slices.Sorted(maps.Keys(body.Value.Content)) {
		media := body.Value.Content[key]
		if media == nil || media.Schema == nil {
			continue
		}
		if s := media.Schema.Value; s != nil && s.Type.Is("string") && s.Format == "binary" {
			continue
		}
		// A key may list several, each taken (kin-openapi's Content.Get).
		for part := range strings.SplitSeq(key, ",") {
			mt, _, _ := strings.Cut(part, ";")
			mt = strings.ToLower(strings.TrimSpace(mt))
			if !strings.Contains(mt, "*") && !respcheck.Decodable(mt) {
				out = append(out, mt)
			}
		}
	}
	return out
}

// formFields returns, for each media type of body a form may be validated
// against (see mayHoldForm), the fields of its schema that are not among
// query, sorted. A handler's r.FormValue, and oapi-codegen's form binding
// (r.Form), take a field from the query string as well as from the body,
// while the validator looks for it in the body alone: a field left out of
// the body and put in the query reached the handler unchecked.
func formFields(body *openapi3.RequestBodyRef, query map[string]bool) map[*openapi3.MediaType][]string {
	if body == nil || body.Value == nil {
		return nil
	}
	var out map[*openapi3.MediaType][]string
	for ct, mt := range body.Value.Content {
		if !mayHoldForm(ct) || mt.Schema == nil {
			continue
		}
		sh := new(shape)
		sh.collect(mt.Schema.Value, 0)
		var fields []string
		for name := range sh.props {
			if !query[name] {
				fields = append(fields, name)
			}
		}
		if fields != nil {
			slices.Sort(fields)
			if out == nil {
				out = map[*openapi3.MediaType][]string{}
			}
			out[mt] = fields
		}
	}
	return out
}

// checkJSONParams refuses, for a parameter whose value is JSON, what a
// JSON body is refused for once validated: a value that is not one I-JSON
// value, or a key that differs from a property only in case (see
// caseVariant). The handlers oapi-codegen generates decode such a value
// with encoding/json into a struct, which merges a repeated name and
// takes AUTHOR for author, where the validator saw the last and the exact
// name alone.
func (v *opValidation) checkJSONParams(r *http.Request, rctx *chi.Context, q url.Values) []problem.FieldError {
	for _, jp := range v.jsonParams {
		raw, found := paramValue(r, rctx, q, jp.p)
		if !found || raw == "" {
			continue
		}
		field := jp.p.In + "." + jp.p.Name
		if msg := ijson.Check([]byte(raw)); msg != "" {
			return []problem.FieldError{{Field: field, Message: msg}}
		}
		if !jp.folds && !jp.exact {
			continue // no key to stand in for a property, nor number to check again
		}
		var value any
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber() // as the validator decodes it
		if dec.Decode(&value) != nil {
			continue // the validator refused it
		}
		if jp.folds {
			if f, name := v.shapes.foldedKey(value, jp.schema, field); f != "" {
				return []problem.FieldError{{Field: f, Message: foldedMessage(name)}}
			}
		}
		if jp.exact {
			if f, msg := inexact(value, jp.schema, field, 0); f != "" {
				return []problem.FieldError{{Field: f, Message: msg}}
			}
		}
	}
	return nil
}

// paramValue is p's value in r as the validator reads it: the first of a
// query parameter, header or cookie; a path parameter as the handler is
// handed it (see pathValue).
func paramValue(r *http.Request, rctx *chi.Context, q url.Values, p *openapi3.Parameter) (string, bool) {
	switch p.In {
	case openapi3.ParameterInQuery:
		vs, ok := q[p.Name]
		if !ok || len(vs) == 0 {
			return "", false
		}
		return vs[0], true
	case openapi3.ParameterInHeader:
		vs := r.Header.Values(p.Name)
		if len(vs) == 0 {
			return "", false
		}
		return vs[0], true
	case openapi3.ParameterInCookie:
		c, err := r.Cookie(p.Name)
		if err != nil {
			return "", false
		}
		return c.Value, true
	case openapi3.ParameterInPath:
		raw, ok := urlParam(rctx, p.Name)
		if !ok {
			return "", false
		}
		v, err := pathValue(r, raw)
		return v, err == nil
	}
	return "", false
}

// checkQuery refuses a query parameter of once given more than once, and,
// in a request whose body is a form, a field of the form given in the
// query (q).
func (v *opValidation) checkQuery(r *http.Request, q url.Values) []problem.FieldError {
	for _, name := range v.once {
		if len(q[name]) > 1 {
			return []problem.FieldError{{Field: "query." + name, Message: givenTwice}}
		}
	}
	for _, name := range v.deepObjects {
		for key := range q {
			if strings.HasPrefix(key, name+"[") && !deepObjectName(key, name) {
				// The validator reads filter[[author]] as the property
				// "[author" and skips filter[author; the handler binds
				// both as author.
				return []problem.FieldError{{Field: "query." + key, Message: "is no property of " + name + " as the deepObject style writes one (" + name + "[property])"}}
			}
		}
	}
	if len(v.formOnly) == 0 || len(q) == 0 {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data" {
		return nil
	}
	fields := v.formOnly[v.route.Operation.RequestBody.Value.Content.Get(ct)]
	for key := range q {
		// A handler binds the form from the query and the body together
		// (r.Form), tags[] and tags[0] as tags.
		if _, found := slices.BinarySearch(fields, fieldBase(key)); found {
			return []problem.FieldError{{Field: "query." + key, Message: "is a field of the form body, not a query parameter"}}
		}
	}
	return nil
}

// fieldBase is the field a form or query name stands for in a handler
// oapi-codegen generates (runtime.BindForm): tags for tags, tags[] and
// tags[0].
func fieldBase(name string) string {
	if i := strings.IndexByte(name, '['); i >= 0 {
		return name[:i]
	}
	return name
}

// deepObjectName reports whether key is base followed by one or more
// [property] subscripts, none empty nor holding a bracket: the names the
// validator and a generated handler read alike.
func deepObjectName(key, base string) bool {
	rest, ok := strings.CutPrefix(key, base)
	if !ok || rest == "" {
		return false
	}
	for rest != "" {
		end := strings.IndexByte(rest, ']')
		if rest[0] != '[' || end < 2 || strings.IndexByte(rest[1:end], '[') >= 0 {
			return false
		}
		rest = rest[end+1:]
	}
	return true
}

// checkStyledObjects refuses, for an object parameter written in a style
// (a header's simple k,v,k,v; a query's form with explode false), what a
// handler oapi-codegen generates reads otherwise than the validator: it
// pastes the pairs into a JSON object for encoding/json, so a quote or a
// backslash in them is read as JSON (l\u0061ng is lang, \u003c is <),
// a property named twice is its last, and a name differing from a
// property only in case is that property.
func (v *opValidation) checkStyledObjects(r *http.Request, rctx *chi.Context, q url.Values) []problem.FieldError {
	for _, so := range v.styledObjects {
		raw, found := paramValue(r, rctx, q, so.p)
		if !found || raw == "" {
			continue
		}
		field := so.p.In + "." + so.p.Name
		if strings.ContainsAny(raw, `"\`) {
			return []problem.FieldError{{Field: field, Message: `holds " or \, which the handler would read as JSON`}}
		}
		// The pairs as the runtime splits them (splitStyledParameter):
		// k,v,k,v; exploded, k=v joined by the style's separator.
		sep := ","
		switch so.sm.Style {
		case openapi3.SerializationSimple, openapi3.SerializationForm:
		case openapi3.SerializationLabel:
			raw = strings.TrimPrefix(raw, ".")
			if so.sm.Explode {
				sep = "."
			}
		case openapi3.SerializationMatrix:
			if so.sm.Explode {
				raw, sep = strings.TrimPrefix(raw, ";"), ";"
			} else {
				raw = strings.TrimPrefix(raw, ";"+so.p.Name+"=")
			}
		case openapi3.SerializationSpaceDelimited:
			sep = " "
		case openapi3.SerializationPipeDelimited:
			sep = "|"
		default:
			continue // quotes and backslashes refused alone
		}
		var keys []string
		parts := strings.Split(raw, sep)
		if so.sm.Explode {
			for _, part := range parts {
				k, _, _ := strings.Cut(part, "=")
				keys = append(keys, k)
			}
		} else {
			for i := 0; i < len(parts); i += 2 {
				keys = append(keys, parts[i])
			}
		}
		value := make(map[string]any, len(keys))
		for i, k := range keys {
			for _, prev := range keys[:i] {
				if strings.EqualFold(prev, k) {
					return []problem.FieldError{{Field: field + "." + k, Message: "names the property " + prev + " again: the handler would take the last"}}
				}
			}
			value[k] = ""
		}
		if f, name := v.shapes.foldedKey(value, so.p.Schema.Value, field); f != "" {
			return []problem.FieldError{{Field: f, Message: foldedMessage(name)}}
		}
	}
	return nil
}

// stringCheck is the part of a string schema a path value can violate:
// enum, minLength and maxLength (counted exactly as kin-openapi counts),
// pattern (compiled as kin-openapi compiles it).
type stringCheck struct {
	enum []string
	min  int64
	max  int64 // -1: none
	re   *regexp.Regexp
}

var codepoint = regexp.MustCompile(`\\u([0-9A-F]{4})`)

func newStringCheck(s *openapi3.Schema) *stringCheck {
	if s.Not != nil || len(s.AnyOf) > 0 || len(s.OneOf) > 0 || s.Always != nil || s.Const != nil {
		return nil
	}
	c := &stringCheck{min: int64(s.MinLength), max: -1}
	if s.MaxLength != nil {
		c.max = int64(*s.MaxLength)
	}
	for _, v := range s.Enum {
		str, ok := v.(string)
		if !ok {
			return nil
		}
		c.enum = append(c.enum, str)
	}
	if s.Pattern != "" {
		re, err := regexp.Compile(codepoint.ReplaceAllString(s.Pattern, `\x{$1}`))
		if err != nil {
			return nil
		}
		c.re = re
	}
	return c
}

func (c *stringCheck) valid(v string) bool {
	if len(c.enum) > 0 && !slices.Contains(c.enum, v) {
		return false
	}
	if c.min > 0 || c.max >= 0 {
		n := int64(0)
		for _, r := range v {
			if utf16.IsSurrogate(r) {
				n += 2
			} else {
				n++
			}
		}
		if n < c.min || c.max >= 0 && n > c.max {
			return false
		}
	}
	return c.re == nil || c.re.MatchString(v)
}

func newOpValidation(doc *openapi3.T, op *policy.Operation) *opValidation {
	v := &opValidation{route: &routers.Route{Spec: doc, Path: op.Path, PathItem: op.PathItem, Method: op.Method, Operation: op.Spec},
		folds: foldsJSON(op.Spec.RequestBody), exact: exactNumbers(op.Spec.RequestBody)}
	all := op.Parameters()
	v.params = all
	query := map[string]bool{}
	for _, p := range all {
		if p.Schema != nil && p.Schema.Value != nil && boundsNumbers(p.Schema.Value, 0) {
			v.exactParams = append(v.exactParams, p)
		}
		if p.In == openapi3.ParameterInQuery {
			query[p.Name] = true
			if onceOnly(p) {
				v.once = append(v.once, p.Name)
			}
			if s := exploded(p); s != nil {
				// Its properties are names of the query too. Others it
				// may take (additional properties) are not a form's
				// fields: the handler would read those from the query.
				var sh shape
				sh.collect(s, 0)
				for name := range sh.props {
					query[name] = true
				}
			}
		}
		if p.Schema != nil && p.Schema.Value != nil && p.Content == nil {
			if sm, err := p.SerializationMethod(); err == nil {
				switch {
				case p.In == openapi3.ParameterInQuery && sm.Style == openapi3.SerializationDeepObject:
					v.deepObjects = append(v.deepObjects, p.Name)
				case !isObject(p.Schema.Value) || p.In == openapi3.ParameterInQuery && exploded(p) != nil:
				default:
					v.styledObjects = append(v.styledObjects, styledObject{p, sm})
				}
			}
		}
		// openapi3filter decodes a parameter's content as JSON when
		// application/json resolves to its one media type, a range too.
		if mt := p.Content.Get("application/json"); mt != nil && mt.Schema != nil {
			v.jsonParams = append(v.jsonParams, jsonParam{p, mt.Schema.Value, namesProperties(mt.Schema.Value, 0), boundsNumbers(mt.Schema.Value, 0)})
		}
	}
	v.formOnly = formFields(op.Spec.RequestBody, query)
	if op.Spec.RequestBody != nil || doc.IsOpenAPI31OrLater() {
		return v
	}
	var params []*openapi3.Parameter
	for _, p := range all {
		if p.In != openapi3.ParameterInPath || p.Content != nil || p.Schema == nil || p.Schema.Value == nil ||
			(p.Style != "" && p.Style != openapi3.SerializationSimple) || p.AllowEmptyValue {
			return v
		}
		if s := p.Schema.Value; !s.Type.Is(openapi3.TypeString) || s.Format != "" || s.Default != nil || len(s.AllOf) > 0 {
			return v
		}
		params = append(params, p)
		v.checks = append(v.checks, newStringCheck(p.Schema.Value))
	}
	if params == nil {
		params = []*openapi3.Parameter{}
	}
	v.pathOnly = params
	return v
}

// options are openapi3filter's options for v's requests.
func (v *opValidation) options() *openapi3filter.Options {
	if v.folds || v.exact {
		return validationKeep
	}
	return validationOptions
}

// validatePath validates an operation whose only inputs are path
// parameters, as the handler binds them (pathValue); done is false when
// the request needs openapi3filter (another kind of operation, or an
// empty value, which it reports as missing).
func (v *opValidation) validatePath(r *http.Request, rctx *chi.Context) (err error, done bool) {
	if v.pathOnly == nil {
		return nil, false
	}
	// The first error only, as validationOptions asks of openapi3filter,
	// in its order of parameters.
	for i, p := range v.pathOnly {
		raw, found := urlParam(rctx, p.Name)
		if !found || raw == "" {
			return nil, false
		}
		decoded, err := pathValue(r, raw)
		if err != nil {
			return &openapi3filter.RequestError{Parameter: p, Err: err}, true
		}
		// Both forms a handler may be handed (see pathValue).
		for j, value := range [2]string{raw, decoded} {
			if j == 1 && value == raw {
				break
			}
			if c := v.checks[i]; c != nil && c.valid(value) {
				continue
			}
			if err := p.Schema.Value.VisitJSON(value, formats.Options...); err != nil {
				return &openapi3filter.RequestError{Parameter: p, Err: err}, true
			}
		}
	}
	return nil, true
}

// pathValue is a path parameter as oapi-codegen's binding hands it to the
// handler. chi routes on the escaped path when it is not the standard
// escaping of the decoded one (r.URL.RawPath is set: "%2F", "%2e", "%41"),
// and its parameters are then still escaped, as chi.URLParam gives them;
// the binding unescapes them. Both forms are validated: checked escaped
// alone, "%2e%2e%2fetc" passed a pattern that the "../etc" the binding
// handed on fails; checked unescaped alone, "%41bc" reached a handler
// reading chi.URLParam past a pattern without "%".
func pathValue(r *http.Request, raw string) (string, error) {
	if r.URL.RawPath == "" || strings.IndexByte(raw, '%') < 0 {
		return raw, nil
	}
	v, err := url.PathUnescape(raw)
	if err != nil {
		return "", errors.New("not valid percent-encoding")
	}
	return v, nil
}

// validateRaw validates, as they came, the path parameters that decoded
// is their unescaped form of (see pathValue), where they differ.
func (v *opValidation) validateRaw(ctx context.Context, r *http.Request, rctx *chi.Context, decoded map[string]string) error {
	raw := make(map[string]string, len(rctx.URLParams.Keys))
	differ := false
	for i, k := range rctx.URLParams.Keys {
		raw[k] = rctx.URLParams.Values[i]
		differ = differ || raw[k] != decoded[k]
	}
	if !differ {
		return nil
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: raw, Route: v.route, Options: validationOptions}
	for _, p := range v.params {
		if p.In == openapi3.ParameterInPath && raw[p.Name] != decoded[p.Name] {
			if err := openapi3filter.ValidateParameter(ctx, in, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func urlParam(rctx *chi.Context, name string) (string, bool) {
	for i, k := range rctx.URLParams.Keys {
		if k == name {
			return rctx.URLParams.Values[i], true
		}
	}
	return "", false
}

// validateRequest checks r against the document's schemas for its
// operation, and answers 400 (or 413) when it does not match.
// ctx carries the validate step's span when tracing. The validator reads
// r's body and leaves a copy in its place, defaults filled in: r itself,
// so the handler reads that copy.
func (g *Guard) validateRequest(ctx context.Context, w http.ResponseWriter, r *http.Request, v *opValidation, rctx *chi.Context) bool {
	err, done := v.validatePath(r, rctx)
	if !done {
		// Parsed once, for the checks here and openapi3filter.
		query := r.URL.Query()
		if bad := v.checkQuery(r, query); bad != nil {
			g.refuse(w, r, v, problem.Invalid("The request does not match the API description.", bad))
			return false
		}
		if !g.strictBody(w, r, v) {
			return false
		}
		params := make(map[string]string, len(rctx.URLParams.Keys))
		var bad openapi3.MultiError
		for i, k := range rctx.URLParams.Keys {
			v, err := pathValue(r, rctx.URLParams.Values[i])
			if err != nil {
				bad = append(bad, &openapi3filter.RequestError{Parameter: &openapi3.Parameter{In: openapi3.ParameterInPath, Name: k}, Err: err})
			}
			params[k] = v
		}
		if len(bad) > 0 {
			g.refuse(w, r, v, problem.Invalid("The request does not match the API description.", fieldErrors(bad)))
			return false
		}
		err = openapi3filter.ValidateRequest(ctx, &openapi3filter.RequestValidationInput{
			Request:     r,
			PathParams:  params,
			QueryParams: query,
			Route:       v.route,
			Options:     v.options(),
		})
		if err == nil {
			err = v.validateRaw(ctx, r, rctx, params)
		}
		if err == nil {
			bad := v.checkJSONParams(r, rctx, query)
			if bad == nil {
				bad = v.checkStyledObjects(r, rctx, query)
			}
			if bad == nil {
				bad = v.checkExactParams(r, rctx, query)
			}
			if bad != nil {
				g.refuse(w, r, v, problem.Invalid("The request does not match the API description.", bad))
				return false
			}
		}
	}
	if err == nil {
		return (!v.folds || g.caseVariant(w, r, v)) && (!v.exact || g.exactBody(w, r, v))
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		g.refuse(w, r, v, tooLargeProblem(tooLarge))
		return false
	}
	g.refuse(w, r, v, problem.Invalid("The request does not match the API description.", fieldErrors(err)))
	return false
}

// refuse answers a request validation refused with p, or as the
// operation's WithMalformedAnswer says.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, v *opValidation, p *problem.Problem) {
	if v.malformed != nil {
		v.malformed(w, r, p)
		return
	}
	g.problems.Write(w, p)
}

// tooLargeProblem is the 413 of a body over the limit.
func tooLargeProblem(err *http.MaxBytesError) *problem.Problem {
	return &problem.Problem{Type: "body-too-large", Title: "Request body too large", Status: http.StatusRequestEntityTooLarge,
		Detail: fmt.Sprintf("The body exceeds %d bytes.", err.Limit)}
}

// fieldErrors flattens openapi3filter's errors into one entry per field,
// named like "body.title" or "query.limit".
func fieldErrors(err error) []problem.FieldError {
	var out []problem.FieldError
	var walk func(err error, field string)
	walk = func(err error, field string) {
		switch e := err.(type) {
		case *openapi3filter.RequestError:
			if e.Parameter != nil {
				field = e.Parameter.In + "." + e.Parameter.Name
			} else if e.RequestBody != nil {
				field = "body"
			}
			if e.Err == nil {
				out = append(out, problem.FieldError{Field: field, Message: text.OneLine(e.Reason)})
				return
			}
			walk(e.Err, field)
		case openapi3.MultiError:
			for _, inner := range e {
				walk(inner, field)
			}
		case *openapi3.SchemaError:
			if ptr := e.JSONPointer(); len(ptr) > 0 {
				field += "." + strings.Join(ptr, ".")
			}
			out = append(out, problem.FieldError{Field: field, Message: text.OneLine(e.Reason)})
		default:
			if inner := errors.Unwrap(err); inner != nil {
				walk(inner, field)
				return
			}
			out = append(out, problem.FieldError{Field: field, Message: text.OneLine(err.Error())})
		}
	}
	walk(err, "request")
	return out
}
