package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// pathItemCases are path items that decodePathItem must read exactly as
// openapi3.PathItem.UnmarshalJSON does, or refuse as it does.
var pathItemCases = []string{
	`{}`,
	`{"get": {"responses": {"200": {"description": "ok"}}}}`,
	`{"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z]+$"}}],
	  "get": {"operationId": "g", "parameters": [{"$ref": "#/components/parameters/P"}, {"name": "q", "in": "query", "content": {"application/json": {"schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}],
	    "responses": {"200": {"description": "ok", "headers": {"X-A": {"schema": {"type": "integer", "minimum": 1}}, "X-B": {"$ref": "#/components/headers/B"}},
	      "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/A"}}, "example": {"schema": {"not": "a schema"}}}}},
	      "default": {"$ref": "#/components/responses/E", "content": {"a/b": {"schema": {"type": "string"}}}}, "x-r": {"schema": {}}}},
	  "post": {"requestBody": {"required": true, "content": {"application/json": {"schema": {"allOf": [{"$ref": "#/components/schemas/A"}, {"required": ["b"]}]}}}},
	    "responses": {"201": {"description": "made", "content": {"application/json": {"schema": true}}}}},
	  "put": {"requestBody": {"$ref": "#/components/requestBodies/R", "content": {"a/b": {"schema": {"type": "string"}}}}, "responses": null},
	  "x-ext": {"parameters": [{"schema": {"type": "string"}}]}}`,
	`{"GET": {"responses": {"200": {"description": "ok", "content": {"a/b": {"schema": {"type": "string"}}}}}}}`,
	`{"get": {"Parameters": [{"name": "a", "in": "query", "schema": {"type": "string"}}], "responses": {}}}`,
	`{"parameters": [{"name": "a", "in": "query", "Schema": {"type": "string"}, "schema": {"type": "integer"}}]}`,
	`{"get": {"responses": {"200": {"description": "ok", "content": {"a/b": {"SCHEMA": {"type": "string"}}}}}}}`,
	`{"$ref": "#/components/pathItems/P", "get": {"responses": {"200": {"description": "ok", "content": {"a/b": {"schema": {"type": "string"}}}}}}}`,
	`{"get": {"parameters": [null, {"name": "b", "in": "query", "schema": null}], "requestBody": null, "responses": {"200": null}}}`,
	`{"get": {"parameters": {"a": 1}, "responses": {"200": {"description": "ok", "content": [1]}}}}`,
	`{"get": {"responses": {"200": {"description": "ok", "content": {"a/b": {"schema": {"type": 5}}}}}}}`,
	`{"get": {"responses": {"200": {"description": "ok", "headers": {"X": {"schema": {"type": "string"}, "content": {"text/plain": {"schema": {"type": "string"}}}}}}}}}`,
	`{"query": {"responses": {"200": {"description": "ok", "content": {"a/b": {"schema": {"type": "string"}}}}}}, "trace": {"parameters": [{"name": "t", "in": "header", "schema": {"enum": ["a"]}}]}}`,
	`{"get": {"requestBody": {"content": {"a/b": {"schema": {"type": "string"}, "itemSchema": {"type": "object", "properties": {"a": {}}}}}}}}`,
	`{"get": "x"}`,
	`[]`,
	`null`,
}

// detour is data as decodePaths hands a path item on: decoded into a map
// and encoded again, as the loader does.
func detour(data []byte) ([]byte, bool) {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return nil, false
	}
	again, err := json.Marshal(v)
	return again, err == nil
}

// samePathItem fails t unless decodePathItem reads data as kin-openapi does.
func samePathItem(t *testing.T, data []byte) {
	t.Helper()
	want := &openapi3.PathItem{}
	wantErr := want.UnmarshalJSON(data)
	got, ok := decodePathItem(data)
	switch {
	case ok != (wantErr == nil):
		t.Fatalf("%s: decodePathItem ok %v, kin-openapi's error %v", data, ok, wantErr)
	case ok && !reflect.DeepEqual(got, want):
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("%s: decodePathItem read\n%s\nkin-openapi\n%s", data, g, w)
	}
}

func TestDecodePathItemSameAsKin(t *testing.T) {
	for _, c := range pathItemCases {
		again, ok := detour([]byte(c))
		if !ok {
			t.Fatalf("%s is not JSON", c)
		}
		samePathItem(t, again)
	}
	// The schemas are taken out where kin-openapi's types have them.
	again, _ := detour([]byte(pathItemCases[2]))
	var s schemaStrip
	if _, ok := s.pathItem(again); !ok || len(s.found) != 5 {
		t.Errorf("took out %d schemas (ok %v), want 5: of id, q, X-A, the 200 answer and the request body", len(s.found), ok)
	}
}

// FuzzDecodePathItem: whatever JSON path item it is given (after the
// loader's detour), decodePathItem reads it as kin-openapi's own method
// does, or refuses it as it does.
func FuzzDecodePathItem(f *testing.F) {
	for _, c := range pathItemCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.Count(data, []byte("{"))+bytes.Count(data, []byte("[")) > 200 {
			return // nested so deep that it only makes the run slow
		}
		again, ok := detour(data)
		if !ok {
			return // not JSON: decodePaths hands on only JSON it encoded
		}
		samePathItem(t, again)
	})
}
