package policy

import (
	"encoding/json"
	"reflect"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Decoding a schema as kin-openapi does costs a pass over its bytes per
// level of nesting, several times over: openapi3.Schema.UnmarshalJSON
// tries the bytes as a boolean, decodes them into the struct (each nested
// schema by this same method, on its own bytes again) and then decodes
// them all once more into a map for the extensions. On a large document
// (GitHub's) this was half the compile. decodeSchemaRef takes the same
// steps (the fields, then the extensions: every key but the fields'
// names) for each schema's own members, without the nested schemas, and
// decodes the nested ones itself, so each level is read once more rather
// than five times.
//
// The nested schemas are the fields below: every one is a key the
// method leaves out of the extensions, so the extensions come out the
// same. The boolean-or-schema fields (additionalProperties,
// unevaluatedItems, unevaluatedProperties) stay with the method, which
// takes a detour of its own through a map for them.
var (
	schemaLists = map[string]func(*openapi3.Schema) *openapi3.SchemaRefs{
		"oneOf":       func(s *openapi3.Schema) *openapi3.SchemaRefs { return &s.OneOf },
		"anyOf":       func(s *openapi3.Schema) *openapi3.SchemaRefs { return &s.AnyOf },
		"allOf":       func(s *openapi3.Schema) *openapi3.SchemaRefs { return &s.AllOf },
		"prefixItems": func(s *openapi3.Schema) *openapi3.SchemaRefs { return &s.PrefixItems },
	}
	schemaOnes = map[string]func(*openapi3.Schema) **openapi3.SchemaRef{
		"not":           func(s *openapi3.Schema) **openapi3.SchemaRef { return &s.Not },
		"items":         func(s *openapi3.Schema) **openapi3.SchemaRef { return &s.Items },
		"contains":      func(s *openapi3.Schema) **openapi3.SchemaRef { return &s.Contains },
		"propertyNames": func(s *openapi3.Schema) **openapi3.SchemaRef { return &s.PropertyNames },
		"if":            func(s *openapi3.Schema) **openapi3.SchemaRef { return &s.If },
		"then":          func(s *openapi3.Schema) **openapi3.SchemaRef { return &s.Then },
		"else":          func(s *openapi3.Schema) **openapi3.SchemaRef { return &s.Else },
		"contentSchema": func(s *openapi3.Schema) **openapi3.SchemaRef { return &s.ContentSchema },
	}
	schemaMaps = map[string]func(*openapi3.Schema) *openapi3.Schemas{
		"properties":        func(s *openapi3.Schema) *openapi3.Schemas { return &s.Properties },
		"patternProperties": func(s *openapi3.Schema) *openapi3.Schemas { return &s.PatternProperties },
		"dependentSchemas":  func(s *openapi3.Schema) *openapi3.Schemas { return &s.DependentSchemas },
		"$defs":             func(s *openapi3.Schema) *openapi3.Schemas { return &s.Defs },
	}
	// nestedKeys are the keys above, and "$ref", whose object the method
	// reads whole.
	nestedKeys = func() []string {
		keys := []string{"$ref"}
		for k := range schemaLists {
			keys = append(keys, k)
		}
		for k := range schemaOnes {
			keys = append(keys, k)
		}
		for k := range schemaMaps {
			keys = append(keys, k)
		}
		return keys
	}()
)

// schemaFields is openapi3.Schema without its UnmarshalJSON: decoding into
// it decodes the fields alone, as the method's first step does.
type schemaFields openapi3.Schema

// schemaKeys are the keys openapi3.Schema.UnmarshalJSON leaves out of the
// extensions: the JSON names of its fields (TestFieldKeys).
var schemaKeys = fieldKeys[openapi3.Schema]()

// fieldKeys returns the JSON names of T's fields.
func fieldKeys[T any]() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[T]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}

// decodeSchemaRef decodes data, a JSON value encoding/json has checked
// (a slice of a document it decoded), as openapi3.SchemaRef.UnmarshalJSON
// does; ok is false when that method refuses it.
func decodeSchemaRef(data []byte) (ref *openapi3.SchemaRef, ok bool) {
	ref = &openapi3.SchemaRef{}
	whole := func() (*openapi3.SchemaRef, bool) { return ref, ref.UnmarshalJSON(data) == nil }
	if len(data) == 0 || data[0] != '{' {
		return whole() // a boolean schema, or an error
	}
	var nested []jsonMember // the nested schemas
	var exts []jsonMember   // the extensions
	rest := make([]byte, 0, len(data))
	rest = append(rest, '{')
	ok = eachMember(data, func(key string, rawKey, value []byte) bool {
		for _, n := range nestedKeys {
			if key == n {
				for _, kv := range nested {
					if kv.key == key {
						return false // given twice: encoding/json merges some
					}
				}
				nested = append(nested, jsonMember{key, value})
				return true
			}
			if strings.EqualFold(key, n) {
				return false // encoding/json would decode it into that field
			}
		}
		if !schemaKeys[key] {
			exts = append(exts, jsonMember{key, value})
		}
		if len(rest) > 1 {
			rest = append(rest, ',')
		}
		rest = append(append(append(rest, rawKey...), ':'), value...)
		return true
	})
	if !ok {
		return whole()
	}
	for _, kv := range nested {
		if kv.key == "$ref" {
			return whole() // a reference: its siblings are the method's to read
		}
	}
	// The method's own steps for an object: its fields, then every member
	// but those fields' (exact) names as the extensions, as a map would
	// hold them (of a key given twice, the last).
	s := &openapi3.Schema{}
	if json.Unmarshal(append(rest, '}'), (*schemaFields)(s)) != nil {
		return nil, false
	}
	if s.Extensions, ok = decodeExtensions(exts); !ok {
		return nil, false
	}
	for _, kv := range nested {
		key, raw := kv.key, kv.value
		switch {
		case schemaLists[key] != nil:
			list, ok := decodeSchemaList(raw)
			if !ok {
				return nil, false
			}
			*schemaLists[key](s) = list
		case schemaOnes[key] != nil:
			if string(raw) == "null" {
				continue
			}
			one, ok := decodeSchemaRef(raw)
			if !ok {
				return nil, false
			}
			*schemaOnes[key](s) = one
		default:
			m, ok := decodeSchemaMap(raw)
			if !ok {
				return nil, false
			}
			*schemaMaps[key](s) = m
		}
	}
	ref.Value = s
	return ref, true
}

// decodeSchemaList decodes a JSON array of schemas (null: none).
func decodeSchemaList(data []byte) (openapi3.SchemaRefs, bool) {
	if string(data) == "null" {
		return nil, true
	}
	list := openapi3.SchemaRefs{}
	ok := eachElement(data, func(raw []byte) bool {
		if string(raw) == "null" {
			list = append(list, nil)
			return true
		}
		ref, ok := decodeSchemaRef(raw)
		list = append(list, ref)
		return ok
	})
	return list, ok
}

// decodeSchemaMap decodes a JSON object of schemas (null: none); of a
// name given twice, the last, as encoding/json does.
func decodeSchemaMap(data []byte) (openapi3.Schemas, bool) {
	return decodeMap(data, decodeSchemaRef)
}

// decodeMap decodes a JSON object of values decode reads (null: none; a
// null value: a nil entry); of a name given twice, the last, as
// encoding/json does.
func decodeMap[T any](data []byte, decode func([]byte) (*T, bool)) (map[string]*T, bool) {
	if string(data) == "null" {
		return nil, true
	}
	m := map[string]*T{}
	ok := eachMember(data, func(name string, _, raw []byte) bool {
		if string(raw) == "null" {
			m[name] = nil
			return true
		}
		v, ok := decode(raw)
		m[name] = v
		return ok
	})
	return m, ok
}

// exampleFields is openapi3.Example without its UnmarshalJSON.
type exampleFields openapi3.Example

// exampleKeys are the keys openapi3.Example.UnmarshalJSON leaves out of
// the extensions (TestFieldKeys).
var exampleKeys = fieldKeys[openapi3.Example]()

// decodeExampleRef decodes data, JSON encoding/json has checked, as
// openapi3.ExampleRef.UnmarshalJSON does; ok is false when that method
// refuses it. An example is decoded once, not once more for the
// extensions, which on GitHub's description, with its large examples,
// was a tenth of the compile.
func decodeExampleRef(data []byte) (ref *openapi3.ExampleRef, ok bool) {
	ref = &openapi3.ExampleRef{}
	whole := func() (*openapi3.ExampleRef, bool) { return ref, ref.UnmarshalJSON(data) == nil }
	if len(data) == 0 || data[0] != '{' {
		return whole()
	}
	var exts []jsonMember
	if !eachMember(data, func(key string, _, value []byte) bool {
		if strings.EqualFold(key, "$ref") {
			return false // a reference: the method's to read
		}
		if !exampleKeys[key] {
			exts = append(exts, jsonMember{key, value})
		}
		return true
	}) {
		return whole()
	}
	e := &openapi3.Example{}
	if json.Unmarshal(data, (*exampleFields)(e)) != nil {
		return nil, false
	}
	if e.Extensions, ok = decodeExtensions(exts); !ok {
		return nil, false
	}
	ref.Value = e
	return ref, true
}

// decodeExamples decodes a JSON object of examples (null: none).
func decodeExamples(data []byte) (openapi3.Examples, bool) {
	return decodeMap(data, decodeExampleRef)
}

// jsonMember is a member of a JSON object: its key, unquoted, and value.
type jsonMember struct {
	key   string
	value []byte
}

// decodeExtensions decodes the members kept as extensions (of a key given
// twice, the last); nil when there are none.
func decodeExtensions(exts []jsonMember) (map[string]any, bool) {
	if len(exts) == 0 {
		return nil, true
	}
	m := make(map[string]any, len(exts))
	for _, kv := range exts {
		var v any
		if json.Unmarshal(kv.value, &v) != nil {
			return nil, false
		}
		m[kv.key] = v
	}
	return m, true
}
