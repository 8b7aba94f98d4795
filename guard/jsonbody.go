package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/specguard/specguard/internal/ijson"
	"github.com/specguard/specguard/internal/respcheck"
	"github.com/specguard/specguard/problem"
)

// What the validator checks and what a handler decodes must be one value.
// A Content-Type whose parameters Go's mime package cannot parse
// ("application/json; charset") is JSON to the validator, which cuts it at
// ";", but not to the guard's checks that ask mime (the case-variant
// check); and a JSON body that is not one I-JSON value (see
// internal/ijson) may decode in a handler to another value than the one
// the validator checked: {"meta":{"lang":"xx"},"meta":{}} is meta {} to
// the validator, which keeps the last, and lang "xx" to encoding/json,
// which merges them; so may a form field given twice (the validator
// checks the first value that is not empty, a handler reads the first).
// All are refused (400) before the validator reads the body.

// strictBody answers 400 (or 413) and returns false when r, for an
// operation declaring rb, has a malformed Content-Type, a JSON body (or
// JSON part of a multipart body) that is no I-JSON document, or a form or
// multipart body giving a field more than once that may not repeat (see
// repeatable). It reads such a body whole, leaving a copy in its place for
// the validator.
func (g *Guard) strictBody(w http.ResponseWriter, r *http.Request, v *opValidation) bool {
	rb := v.route.Operation.RequestBody
	if rb == nil {
		return true
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return true // the validator says whether a body was due
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		g.refuse(w, r, v, problem.Invalid("The request does not match the API description.", []problem.FieldError{{
			Field: "header.Content-Type", Message: "is not a media type: " + strings.TrimPrefix(err.Error(), "mime: ")}}))
		return false
	}
	asDeclared(r, rb.Value.Content, ct, mt)
	form, multi := mt == "application/x-www-form-urlencoded", mt == "multipart/form-data"
	if !form && !multi && !respcheck.IsJSON(ct) || r.Body == nil || r.Body == http.NoBody {
		return true
	}
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		g.refuse(w, r, v, tooLargeProblem(tooLarge))
		return false
	} else if err != nil {
		g.refuse(w, r, v, problem.Invalid("The request body could not be read.", nil))
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if form || multi {
		var name, msg string
		if form {
			name, msg = repeated(body, rb.Value.Content.Get(ct))
		} else {
			name, msg = badParts(body, params["boundary"], rb.Value.Content.Get(ct))
		}
		if name != "" {
			g.refuse(w, r, v, problem.Invalid("The request does not match the API description.", []problem.FieldError{{
				Field: "body." + name, Message: msg}}))
			return false
		}
		return true
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true // no body: the validator says whether one was due
	}
	if msg := ijson.Check(body); msg != "" {
		g.refuse(w, r, v, problem.Invalid("The request does not match the API description.", []problem.FieldError{{Field: "body", Message: msg}}))
		return false
	}
	return true
}

// asDeclared writes r's Content-Type ct, of media type mt, with the media
// type as content spells it where the two differ only in case. Media types
// are case-insensitive (RFC 9110 8.3.1), and the validator reads them so;
// a handler oapi-codegen generates for an operation with several bodies
// picks the one to bind by the declared key as a prefix of the header, as
// written: Application/JSON was validated as JSON and reached the handler
// with no body bound, a required one too.
func asDeclared(r *http.Request, content openapi3.Content, ct, mt string) {
	written, params, hasParams := strings.Cut(ct, ";")
	written = strings.TrimSpace(written)
	for key := range content {
		if key != written && strings.EqualFold(key, mt) {
			if hasParams {
				key += ";" + params
			}
			r.Header.Set("Content-Type", key)
			return
		}
	}
}

// repeated returns a field of a form body given more than once whose
// schema in mt is no array, or "", and what is wrong with it. The
// validator checks the first value that is not empty, a handler reads the
// first (r.FormValue): title=&title=ok passed minLength 1 with "" handed on.
func repeated(body []byte, mt *openapi3.MediaType) (string, string) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return "", "" // the validator refuses it
	}
	mayRepeat, named := repeatable(mt), bracketed(mt)
	for name, vs := range values {
		if msg := named(name); msg != "" {
			return name, msg
		}
		if len(vs) > 1 && !mayRepeat(name) {
			return name, givenTwice
		}
	}
	return "", ""
}

// bracketed returns what is wrong with a field name of a form body (or a
// part's) in mt, "" when nothing is. A handler oapi-codegen generates
// binds the field tags from tags[] and tags[0] too (runtime.BindForm),
// where the validator reads tags by its name alone: tags[]=anything went
// to the handler unchecked (and tags[ made it panic). Where mt's encoding
// writes the field in the deepObject style, its names are those of the
// style (see deepObjectName).
func bracketed(mt *openapi3.MediaType) func(name string) string {
	var sh *shape
	return func(name string) string {
		base := fieldBase(name)
		if base == name || mt == nil || mt.Schema == nil {
			return ""
		}
		if sh == nil {
			sh = new(shape)
			sh.collect(mt.Schema.Value, 0)
		}
		if _, declared := sh.props[name]; declared {
			return ""
		}
		if _, declared := sh.props[base]; !declared {
			return "" // no field a handler binds: the schema's additional properties decide
		}
		if enc := mt.Encoding[base]; enc != nil && enc.Style == openapi3.SerializationDeepObject {
			if deepObjectName(name, base) {
				return ""
			}
			return "is no property of " + base + " as the deepObject style writes one (" + base + "[property])"
		}
		return "stands for " + base + " in the handler, which validation reads by its own name alone: give each value as " + base + "="
	}
}

const givenTwice = "is given more than once, and is no array"

// badParts returns a part of a multipart body (and what is wrong with it)
// whose JSON is not one I-JSON value (see internal/ijson: the validator
// decodes it into a map, keeping the last of a repeated name, a handler
// into a struct, merging them), or a field given in more than one part
// whose schema in mt is no array; "" when there is none.
func badParts(body []byte, boundary string, mt *openapi3.MediaType) (string, string) {
	parts := multipart.NewReader(bytes.NewReader(body), boundary)
	seen := map[string]bool{}
	mayRepeat, named := repeatable(mt), bracketed(mt)
	var props *shape // mt's schema's, collected for the first JSON part
	var folds shapes // the parts' schemas', as a walk needs them
	for {
		p, err := parts.NextPart()
		if err != nil {
			return "", "" // the end, or a body the validator refuses
		}
		name := p.FormName()
		if msg := named(name); msg != "" {
			return name, msg
		}
		if seen[name] && !mayRepeat(name) {
			return name, givenTwice
		}
		seen[name] = true
		if respcheck.IsJSON(p.Header.Get("Content-Type")) {
			data, err := io.ReadAll(p)
			if err != nil {
				return "", ""
			}
			if msg := ijson.Check(data); msg != "" {
				return name, msg
			}
			// A key that differs from a property only in case, as in a
			// JSON body (see caseVariant).
			var value any
			if mt == nil || mt.Schema == nil || json.Unmarshal(data, &value) != nil {
				continue
			}
			if props == nil {
				props = new(shape)
				props.collect(mt.Schema.Value, 0)
			}
			for _, s := range props.props[name] {
				if field, property := folds.foldedKey(value, s, name); field != "" {
					return field, foldedMessage(property)
				}
			}
		}
	}
}

// repeatable returns whether a field of mt's schema may be given more than
// once: a schema of it (the property's in the schema or an allOf, anyOf
// or oneOf member, or additionalProperties for a field the schema does
// not name) may be given more than once (see mayRepeat), or the schema
// says nothing of it (no value of it to slip past the validator; one it
// refuses, it refuses). The schema's shape is collected once, on the
// first field asked about.
func repeatable(mt *openapi3.MediaType) func(name string) bool {
	var sh *shape
	return func(name string) bool {
		if mt == nil || mt.Schema == nil {
			return true
		}
		if sh == nil {
			sh = new(shape)
			sh.collect(mt.Schema.Value, 0)
		}
		schemas := sh.props[name]
		if len(schemas) == 0 {
			schemas = sh.extra
		}
		return len(schemas) == 0 || slices.ContainsFunc(schemas, mayRepeat)
	}
}

// mayBeArray reports whether s, or a member of its allOf, anyOf or oneOf,
// is an array.
func mayBeArray(s *openapi3.Schema, depth int) bool {
	if s == nil || depth > maxFoldDepth {
		return false
	}
	if s.Type.Includes(openapi3.TypeArray) {
		return true
	}
	for _, refs := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, r := range refs {
			if mayBeArray(r.Value, depth+1) {
				return true
			}
		}
	}
	return false
}

// mayRepeat reports whether a form field or query parameter of schema s
// may be given more than once: s, or a member of its allOf, anyOf or
// oneOf, may be an array, or s constrains nothing (no type, no
// members, no bounds: no value of it to slip past the validator). Any
// other is refused repeated: the validator checks the first value that is
// not empty, a handler reads the first, so q=&q=abc handed "" past
// minLength 3.
func mayRepeat(s *openapi3.Schema) bool {
	if s == nil || mayBeArray(s, 0) {
		return true
	}
	return (s.Type == nil || len(s.Type.Slice()) == 0) && len(s.AllOf)+len(s.AnyOf)+len(s.OneOf) == 0 && s.Not == nil &&
		len(s.Enum) == 0 && s.Pattern == "" && s.Format == "" && s.MinLength == 0 && s.MaxLength == nil &&
		s.Min == nil && s.Max == nil && s.MultipleOf == nil
}
