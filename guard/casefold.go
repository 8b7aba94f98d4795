package guard

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/specguard/specguard/internal/respcheck"
	"github.com/specguard/specguard/problem"
)

// Go's encoding/json (which oapi-codegen's handlers decode bodies with)
// matches an object's keys to a struct's fields whatever their case, the
// last key winning; the validator matches them exactly. So a body
// {"title":"ok","TITLE":"<anything>"} passed every check of title while
// the handler was handed the unchecked TITLE, wherever a schema allows
// properties it does not name. A key that is no property of its object's
// schema but differs from one only in case is refused instead.

// foldsJSON reports whether op's request body has a media type a JSON
// body can be validated against (see mayHoldJSON) whose schema names
// properties: only then can a key stand in for one.
func foldsJSON(rb *openapi3.RequestBodyRef) bool {
	return jsonBodyHas(rb, func(s *openapi3.Schema) bool { return namesProperties(s, 0) })
}

// jsonBodyHas reports whether rb has a media type a JSON body can be
// validated against (see mayHoldJSON) whose schema has what has asks for.
func jsonBodyHas(rb *openapi3.RequestBodyRef, has func(*openapi3.Schema) bool) bool {
	if rb == nil || rb.Value == nil {
		return false
	}
	for ct, mt := range rb.Value.Content {
		if mayHoldJSON(ct) && mt.Schema != nil && has(mt.Schema.Value) {
			return true
		}
	}
	return false
}

// A request body is validated against the media type its Content-Type
// resolves to (openapi3.Content.Get): the key naming it, else its type's
// range (application/*), else */*. So a JSON body or a form sent to an
// operation that declares only a range is validated, and decoded by its
// handler, as one, and must be checked as one: a key declared
// application/* let {"title":"ok","TITLE":"<unchecked>"} through.

// mediaRanges returns the media ranges a declared key lists, lowered and
// without parameters: kin-openapi reads a key
// "application/json, application/merge-patch+json" as both.
func mediaRanges(key string) []string {
	var out []string
	for _, e := range strings.Split(key, ",") {
		e, _, _ = strings.Cut(strings.ToLower(e), ";")
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// mayHoldJSON reports whether a JSON body (application/json, or any type
// with the +json suffix) can resolve to the declared key ct.
func mayHoldJSON(ct string) bool {
	return slices.ContainsFunc(mediaRanges(ct), func(e string) bool { return respcheck.IsJSON(e) || strings.HasSuffix(e, "/*") })
}

// mayHoldForm reports whether a form body (application/x-www-form-urlencoded,
// multipart/form-data) can resolve to the declared key ct.
func mayHoldForm(ct string) bool {
	return slices.ContainsFunc(mediaRanges(ct), func(e string) bool {
		switch e {
		case "application/x-www-form-urlencoded", "multipart/form-data", "application/*", "multipart/*", "*/*":
			return true
		}
		return false
	})
}

// maxFoldDepth bounds a walk over a schema alone (its allOf, anyOf and
// oneOf members), which a recursive schema would make endless.
const maxFoldDepth = 32

// namesProperties reports whether s, or a schema of its values' parts,
// names properties.
func namesProperties(s *openapi3.Schema, depth int) bool {
	if s == nil || depth > maxFoldDepth {
		return false
	}
	var sh shape
	sh.collect(s, 0)
	return len(sh.props) > 0 ||
		slices.ContainsFunc(sh.items, func(s *openapi3.Schema) bool { return namesProperties(s, depth+1) }) ||
		slices.ContainsFunc(sh.extra, func(s *openapi3.Schema) bool { return namesProperties(s, depth+1) })
}

// caseVariant answers 400 and returns false when r's JSON body, already
// validated, holds a key that differs from a property of its schema only
// in case. It walks the value the validator decoded (validationKeep), not
// the body again.
func (g *Guard) caseVariant(w http.ResponseWriter, r *http.Request, v *opValidation) bool {
	value, schema, ok := validatedJSON(r, v)
	if !ok {
		return true
	}
	if field, name := v.shapes.foldedKey(value, schema, "body"); field != "" {
		g.refuse(w, r, v, problem.Invalid("The request does not match the API description.", []problem.FieldError{{
			Field: field, Message: foldedMessage(name)}}))
		return false
	}
	return true
}

// validatedJSON returns r's JSON body as the validator decoded it
// (validationKeep) and the schema it checked it against; ok is false when
// r has no such body.
func validatedJSON(r *http.Request, v *opValidation) (value any, schema *openapi3.Schema, ok bool) {
	ct := r.Header.Get("Content-Type")
	decoded, kept := r.Body.(interface{ ValidatedValue() any })
	if !respcheck.IsJSON(ct) || !kept {
		return nil, nil, false
	}
	mt := v.route.Operation.RequestBody.Value.Content.Get(ct)
	if mt == nil || mt.Schema == nil {
		return nil, nil, false
	}
	return decoded.ValidatedValue(), mt.Schema.Value, true
}

// foldedMessage says what is wrong with a key that differs from the
// property name only in case.
func foldedMessage(name string) string {
	return "differs from the property " + name + " only in case: a decoder would take it for " + name
}

// foldedKey returns the first key of v (at field) that is no property of
// s but differs from one only in case, and that property's name. It walks
// the value, which the body's size bounds, as deep as it goes.
func (c *shapes) foldedKey(v any, s *openapi3.Schema, field string) (string, string) {
	if s == nil {
		return "", ""
	}
	sh := c.of(s)
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if ps, ok := sh.props[k]; ok {
				for _, p := range ps {
					if f, n := c.foldedKey(val, p, field+"."+k); f != "" {
						return f, n
					}
				}
				continue
			}
			for name := range sh.props {
				if strings.EqualFold(k, name) {
					return field + "." + k, name
				}
			}
			for _, extra := range sh.extra {
				if f, n := c.foldedKey(val, extra, field+"."+k); f != "" {
					return f, n
				}
			}
		}
	case []any:
		for i, item := range x {
			for _, is := range sh.items {
				if f, n := c.foldedKey(item, is, field+"."+strconv.Itoa(i)); f != "" {
					return f, n
				}
			}
		}
	}
	return "", ""
}

// shapes keeps the shape of each schema a check has walked: schemas do
// not change once compiled, and a body's every object would otherwise
// collect its schema's again.
type shapes struct{ m sync.Map } // *openapi3.Schema -> *shape

func (c *shapes) of(s *openapi3.Schema) *shape {
	if v, ok := c.m.Load(s); ok {
		return v.(*shape)
	}
	sh := &shape{}
	sh.collect(s, 0)
	v, _ := c.m.LoadOrStore(s, sh)
	return v.(*shape)
}

// shape is what a schema, its allOf, anyOf and oneOf members included,
// says of a value's parts: the schemas of each property (a key any of
// them names is no stand-in), of additional properties, of array items.
type shape struct {
	props map[string][]*openapi3.Schema
	extra []*openapi3.Schema
	items []*openapi3.Schema
}

func (sh *shape) collect(s *openapi3.Schema, depth int) {
	if s == nil || depth > maxFoldDepth {
		return
	}
	for name, p := range s.Properties {
		if p != nil && p.Value != nil {
			if sh.props == nil {
				sh.props = map[string][]*openapi3.Schema{}
			}
			sh.props[name] = append(sh.props[name], p.Value)
		}
	}
	if ap := s.AdditionalProperties.Schema; ap != nil && ap.Value != nil {
		sh.extra = append(sh.extra, ap.Value)
	}
	if s.Items != nil && s.Items.Value != nil {
		sh.items = append(sh.items, s.Items.Value)
	}
	for _, refs := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, r := range refs {
			sh.collect(r.Value, depth+1)
		}
	}
}
