package policy

import (
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// decodePathItem decodes a path item (after the loader's detour, see
// decodePaths) as openapi3.PathItem.UnmarshalJSON does, faster: the
// schemas of its parameters, request bodies, responses and headers, the
// bulk of it, are taken out and given to decodeSchemaRef, and the method
// decodes the rest, with an empty schema in each one's place, which is
// then replaced. Each level of the objects in between (an operation, its
// responses, a response, its content) is decoded by the method's own
// UnmarshalJSON, which reads all of the bytes below it again, more than
// once, and the schemas were most of those bytes.
//
// Where it goes down, it knows the fields as the loader's types name them.
// A key that differs from one of them only in case (encoding/json would
// decode it into that field) sends the whole item to the method; an
// object with a $ref is left to the method as it is.
func decodePathItem(data []byte) (*openapi3.PathItem, bool) {
	var s schemaStrip
	stripped, ok := s.pathItem(data)
	item := &openapi3.PathItem{}
	if !ok {
		return item, item.UnmarshalJSON(data) == nil
	}
	if item.UnmarshalJSON(stripped) != nil {
		return nil, false
	}
	for _, f := range s.found {
		at := f.at(item)
		if at == nil || *at == nil {
			// Not where it was expected: read it all the method's way.
			item = &openapi3.PathItem{}
			return item, item.UnmarshalJSON(data) == nil
		}
		ref, ok := decodeSchemaRef(f.raw)
		if !ok {
			return nil, false
		}
		*at = ref
	}
	return item, true
}

// schemaStrip takes the schemas out of a path item's JSON, each with
// where it belongs in the decoded item.
type schemaStrip struct {
	found []strippedSchema
}

type strippedSchema struct {
	at  func(*openapi3.PathItem) **openapi3.SchemaRef
	raw []byte
}

// The getters lead from a decoded path item to the object being read; nil
// when it is not there.
type (
	getParams    func(*openapi3.PathItem) openapi3.Parameters
	getParam     func(*openapi3.PathItem) *openapi3.Parameter
	getOperation func(*openapi3.PathItem) *openapi3.Operation
	getContent   func(*openapi3.PathItem) openapi3.Content
)

// pathMethods are the operation fields of openapi3.PathItem.
var pathMethods = []string{"connect", "delete", "get", "head", "options", "patch", "post", "put", "trace", "query"}

func (s *schemaStrip) pathItem(obj []byte) ([]byte, bool) {
	return s.object(obj, append([]string{"parameters"}, pathMethods...), func(key string, v []byte) ([]byte, bool) {
		if key == "parameters" {
			return s.params(v, func(p *openapi3.PathItem) openapi3.Parameters { return p.Parameters })
		}
		method := strings.ToUpper(key)
		return s.operation(v, func(p *openapi3.PathItem) *openapi3.Operation { return p.GetOperation(method) })
	})
}

func (s *schemaStrip) operation(obj []byte, op getOperation) ([]byte, bool) {
	return s.object(obj, []string{"parameters", "requestBody", "responses"}, func(key string, v []byte) ([]byte, bool) {
		switch key {
		case "parameters":
			return s.params(v, func(p *openapi3.PathItem) openapi3.Parameters {
				if o := op(p); o != nil {
					return o.Parameters
				}
				return nil
			})
		case "requestBody":
			return s.object(v, []string{"content"}, func(_ string, v []byte) ([]byte, bool) {
				return s.content(v, func(p *openapi3.PathItem) openapi3.Content {
					if o := op(p); o != nil && o.RequestBody != nil && o.RequestBody.Value != nil {
						return o.RequestBody.Value.Content
					}
					return nil
				})
			})
		}
		return s.members(v, func(code string, v []byte) ([]byte, bool) {
			if strings.HasPrefix(code, "x-") {
				return v, true
			}
			response := func(p *openapi3.PathItem) *openapi3.Response {
				if o := op(p); o != nil && o.Responses != nil {
					if r := o.Responses.Value(code); r != nil {
						return r.Value
					}
				}
				return nil
			}
			return s.object(v, []string{"content", "headers"}, func(key string, v []byte) ([]byte, bool) {
				if key == "content" {
					return s.content(v, func(p *openapi3.PathItem) openapi3.Content {
						if r := response(p); r != nil {
							return r.Content
						}
						return nil
					})
				}
				return s.members(v, func(name string, v []byte) ([]byte, bool) {
					return s.param(v, func(p *openapi3.PathItem) *openapi3.Parameter {
						if r := response(p); r != nil {
							if h := r.Headers[name]; h != nil && h.Value != nil {
								return &h.Value.Parameter
							}
						}
						return nil
					})
				})
			})
		})
	})
}

func (s *schemaStrip) params(arr []byte, params getParams) ([]byte, bool) {
	return s.elements(arr, func(i int, v []byte) ([]byte, bool) {
		return s.param(v, func(p *openapi3.PathItem) *openapi3.Parameter {
			if ps := params(p); i < len(ps) && ps[i] != nil {
				return ps[i].Value
			}
			return nil
		})
	})
}

// param reads a parameter or a header (a parameter in kin-openapi).
func (s *schemaStrip) param(obj []byte, param getParam) ([]byte, bool) {
	return s.object(obj, []string{"schema", "content"}, func(key string, v []byte) ([]byte, bool) {
		if key == "content" {
			return s.content(v, func(p *openapi3.PathItem) openapi3.Content {
				if x := param(p); x != nil {
					return x.Content
				}
				return nil
			})
		}
		return s.schema(v, func(p *openapi3.PathItem) **openapi3.SchemaRef {
			if x := param(p); x != nil {
				return &x.Schema
			}
			return nil
		})
	})
}

func (s *schemaStrip) content(obj []byte, content getContent) ([]byte, bool) {
	return s.members(obj, func(mediaType string, v []byte) ([]byte, bool) {
		return s.object(v, []string{"schema"}, func(_ string, v []byte) ([]byte, bool) {
			return s.schema(v, func(p *openapi3.PathItem) **openapi3.SchemaRef {
				if mt := content(p)[mediaType]; mt != nil {
					return &mt.Schema
				}
				return nil
			})
		})
	})
}

// schema takes out a schema object, leaving an empty one in its place.
func (s *schemaStrip) schema(v []byte, at func(*openapi3.PathItem) **openapi3.SchemaRef) ([]byte, bool) {
	if len(v) == 0 || v[0] != '{' || string(v) == "{}" {
		return v, true // a boolean or null: the method reads it
	}
	s.found = append(s.found, strippedSchema{at, v})
	return []byte("{}"), true
}

// object rewrites the members of obj named in fields with f, and keeps
// the others. Anything that is not an object is kept as it is, and so is
// an object with a $ref, with nothing taken out of it; a key that differs
// from a field only in case refuses the whole item.
func (s *schemaStrip) object(obj []byte, fields []string, f func(key string, v []byte) ([]byte, bool)) ([]byte, bool) {
	if len(obj) == 0 || obj[0] != '{' {
		return obj, true
	}
	mark := len(s.found)
	ref := false
	out, ok := rewrite(obj, func(key string, v []byte) ([]byte, bool) {
		if strings.EqualFold(key, "$ref") {
			ref = true
			return v, true
		}
		for _, field := range fields {
			if key == field {
				return f(key, v)
			}
			if strings.EqualFold(key, field) {
				return nil, false
			}
		}
		return v, true
	})
	if ok && ref {
		s.found = s.found[:mark]
		return obj, true
	}
	return out, ok
}

// members rewrites every member of a map-like object with f (null, or
// anything not an object, is kept as it is).
func (s *schemaStrip) members(obj []byte, f func(key string, v []byte) ([]byte, bool)) ([]byte, bool) {
	if len(obj) == 0 || obj[0] != '{' {
		return obj, true
	}
	return rewrite(obj, f)
}

// elements rewrites every element of an array with f (anything not an
// array is kept as it is).
func (s *schemaStrip) elements(arr []byte, f func(i int, v []byte) ([]byte, bool)) ([]byte, bool) {
	if len(arr) == 0 || arr[0] != '[' {
		return arr, true
	}
	out := make([]byte, 0, len(arr))
	out = append(out, '[')
	i := 0
	ok := eachElement(arr, func(v []byte) bool {
		w, ok := f(i, v)
		if i++; !ok {
			return false
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, w...)
		return true
	})
	return append(out, ']'), ok
}

// rewrite returns obj with each member's value replaced by what f returns.
func rewrite(obj []byte, f func(key string, v []byte) ([]byte, bool)) ([]byte, bool) {
	out := make([]byte, 0, len(obj))
	out = append(out, '{')
	ok := eachMember(obj, func(key string, rawKey, v []byte) bool {
		w, ok := f(key, v)
		if !ok {
			return false
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(append(append(out, rawKey...), ':'), w...)
		return true
	})
	return append(out, '}'), ok
}
