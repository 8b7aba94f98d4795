package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// schemaCases are schemas (and examples) that decodeSchemaRef and
// decodeExampleRef must read exactly as kin-openapi's UnmarshalJSON does,
// or refuse as it does.
var schemaCases = []string{
	`{}`,
	`true`,
	`false`,
	`null`,
	`"x"`,
	`5`,
	`[]`,
	`{"type": "object", "properties": {"a": {"type": "string", "maxLength": 9007199254740993}, "b": {"$ref": "#/components/schemas/B"}}}`,
	`{"type": "array", "items": {"type": "array", "items": {"type": "integer", "x-deep": [1, {"a": "}"}]}}}`,
	`{"allOf": [{"$ref": "#/components/schemas/A"}, {"type": "object", "required": ["id"]}], "x-kind": "all"}`,
	`{"oneOf": [true, null, {"not": {"type": "null"}}], "anyOf": null, "not": null, "items": null, "properties": null}`,
	`{"properties": {"a": null, "b": true, "a": {"type": "integer"}}}`,
	`{"properties": {"a": {}}, "properties": {"b": {}}}`,
	`{"items": {"type": "string"}, "items": {"type": "integer"}}`,
	`{"Properties": {"a": {"type": "string"}}}`,
	`{"ITEMS": {"type": "string"}, "type": "array"}`,
	`{"$ref": "#/components/schemas/A", "description": "siblings", "x-a": 1}`,
	`{"$REF": "#/components/schemas/A"}`,
	`{"prop\u0065rties": {"\u00e9t\u00e9": {"type": "string", "pattern": "^[{\"\\]}]+$"}}}`,
	`{"type": "object", "additionalProperties": {"type": "object", "properties": {"n": {"type": "number", "minimum": 1e3}}}}`,
	`{"additionalProperties": false, "unevaluatedProperties": {"type": "string"}, "unevaluatedItems": true}`,
	`{"prefixItems": [{"type": "string"}, true], "contains": {"const": 3}, "minContains": 1}`,
	`{"if": {"required": ["a"]}, "then": {"required": ["b"]}, "else": false, "propertyNames": {"pattern": "^x"}}`,
	`{"$defs": {"d": {"type": "string"}}, "patternProperties": {"^x-": {}}, "dependentSchemas": {"a": {"required": ["b"]}}, "contentSchema": {"type": "object"}}`,
	`{"discriminator": {"propertyName": "kind"}, "oneOf": [{"$ref": "#/components/schemas/A"}], "nullable": true, "example": {"a": [1, 2]}}`,
	` { "type" : "object" , "properties" : { "a" : { "type" : "string" } } } `,
	`{"summary": "s", "description": "d", "value": {"a": [1, 2.5e3, "x"], "$ref": "not one"}, "x-e": true, "externalValue": "u"}`,
	`{"Value": 1, "value": 2, "x-e": 1, "x-e": 2}`,
	`{"$ref": "#/components/examples/E", "summary": "s", "x-a": 1, "other": 2}`,
	`{"summary": 5, "value": 1}`,
	"{\n\t\"type\": \"object\",\r\n\t\"properties\": {\"a\": {\"enum\": [\"a\", \"b\"]}}\n}",
	`{"properties": 5}`,
	`{"items": "x"}`,
	`{"allOf": {}}`,
	`{"allOf": [5]}`,
	`{"properties": {"a": {"type": 5}}}`,
	`{"minLength": -1, "properties": {"a": {}}}`,
}

// sameAsKin fails t unless decodeSchemaRef and decodeExampleRef read data
// as kin-openapi does.
func sameAsKin(t *testing.T, data []byte) {
	t.Helper()
	want := &openapi3.SchemaRef{}
	wantErr := want.UnmarshalJSON(data)
	got, ok := decodeSchemaRef(data)
	same(t, "decodeSchemaRef", data, got, want, ok, wantErr)
	wantEx := &openapi3.ExampleRef{}
	wantErr = wantEx.UnmarshalJSON(data)
	gotEx, ok := decodeExampleRef(data)
	same(t, "decodeExampleRef", data, gotEx, wantEx, ok, wantErr)
}

// same fails t unless a decoder's result is kin-openapi's.
func same(t *testing.T, decoder string, data []byte, got, want any, ok bool, wantErr error) {
	t.Helper()
	switch {
	case ok != (wantErr == nil):
		t.Fatalf("%s: %s ok %v, kin-openapi's error %v", data, decoder, ok, wantErr)
	case ok && !reflect.DeepEqual(got, want):
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("%s: %s read\n%s\nkin-openapi\n%s", data, decoder, g, w)
	}
}

func TestDecodeSchemaRefSameAsKin(t *testing.T) {
	for _, c := range schemaCases {
		if !json.Valid([]byte(c)) {
			t.Fatalf("%s is not JSON: decodeSchemaRef is only given JSON", c)
		}
		sameAsKin(t, []byte(c))
	}
}

// FuzzDecodeRef: whatever JSON they are given, decodeSchemaRef and
// decodeExampleRef read it as kin-openapi's own methods do, or refuse it
// as they do. It is only
// ever given JSON that encoding/json has checked (a slice of a document
// it decoded), so bytes that are not JSON are not tried.
func FuzzDecodeRef(f *testing.F) {
	for _, c := range schemaCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || bytes.Count(data, []byte("{"))+bytes.Count(data, []byte("[")) > 200 {
			return // not JSON; or nested so deep that it only makes the run slow
		}
		sameAsKin(t, data)
	})
}

// The scanner finds members and elements of JSON as encoding/json does,
// escapes and brackets inside strings included, and says no to what is
// not an object or an array.
func TestScanMembers(t *testing.T) {
	var keys, values []string
	ok := eachMember([]byte(` {"a" : "}\"{" , "b\u0063":[1, {"x": "]"}] ,"":null} `), func(key string, _, value []byte) bool {
		keys, values = append(keys, key), append(values, string(value))
		return true
	})
	if !ok || !reflect.DeepEqual(keys, []string{"a", "bc", ""}) || !reflect.DeepEqual(values, []string{`"}\"{"`, `[1, {"x": "]"}]`, "null"}) {
		t.Errorf("members: ok %v, keys %q, values %q", ok, keys, values)
	}
	var elems []string
	ok = eachElement([]byte(`[ 1e3, "a,b", {"c": [2]} , true ]`), func(v []byte) bool { elems = append(elems, string(v)); return true })
	if !ok || !reflect.DeepEqual(elems, []string{"1e3", `"a,b"`, `{"c": [2]}`, "true"}) {
		t.Errorf("elements: ok %v, %q", ok, elems)
	}
	for _, bad := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a":1}x`, `{"a:1}`} {
		if eachMember([]byte(bad), func(string, []byte, []byte) bool { return true }) {
			t.Errorf("eachMember accepted %q", bad)
		}
	}
	for _, bad := range []string{``, `{}`, `[`, `[1,]`, `[1 2]`, `[1]x`, `["a]`} {
		if eachElement([]byte(bad), func([]byte) bool { return true }) {
			t.Errorf("eachElement accepted %q", bad)
		}
	}
}

// The field keys are the keys kin-openapi leaves out of a schema's and an
// example's extensions, no more and no fewer: every one of them, and
// unknown ones, decoded both ways.
func TestFieldKeys(t *testing.T) {
	if len(schemaKeys) < 50 || !schemaKeys["properties"] || !schemaKeys["$defs"] || schemaKeys["x-a"] {
		t.Fatalf("schemaKeys: %v", schemaKeys)
	}
	if len(exampleKeys) != 4 || !exampleKeys["value"] || !exampleKeys["externalValue"] {
		t.Fatalf("exampleKeys: %v", exampleKeys)
	}
	for _, keys := range []map[string]bool{schemaKeys, exampleKeys} {
		for key := range keys {
			for _, v := range []string{"null", `"s"`, "1", "true", "{}", "[]"} {
				sameAsKin(t, []byte(`{"`+key+`": `+v+`, "x-a": 1, "other": 2}`))
			}
		}
	}
}
