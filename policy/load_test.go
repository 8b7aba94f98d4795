package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	yaml "gopkg.in/yaml.v3"
)

// sameAsLoader fails t unless load reads data exactly as kin-openapi's
// loader does: the same document, or the same error. It returns whether
// load took its own path (decodeJSON).
func sameAsLoader(t *testing.T, name string, data []byte) (split bool) {
	t.Helper()
	_, split = decodeJSON(data)
	got, gotErr := load(data)
	loader := openapi3.NewLoader()
	loader.IncludeOrigin = true
	want, wantErr := loader.LoadFromData(data)
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("%s: load: error %v, the loader's %v", name, gotErr, wantErr)
	case gotErr != nil && gotErr.Error() != wantErr.Error():
		t.Fatalf("%s: load: error %q, the loader's %q", name, gotErr, wantErr)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("%s: load read another document than the loader", name)
	}
	return split
}

// asJSON is a YAML document as JSON, read as the loader reads YAML
// (yaml.v3).
func asJSON(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var keyed func(v any) any // JSON's keys are strings; YAML's need not be
	keyed = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				v[k] = keyed(e)
			}
		case map[any]any:
			m := make(map[string]any, len(v))
			for k, e := range v {
				m[fmt.Sprint(k)] = keyed(e)
			}
			return m
		case []any:
			for i, e := range v {
				v[i] = keyed(e)
			}
		}
		return v
	}
	j, err := json.Marshal(keyed(v))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return j
}

// repoDocuments are the OpenAPI documents of the product (not the
// example's, which is the user's to change).
func repoDocuments(t *testing.T) []string {
	t.Helper()
	docs, _ := filepath.Glob("../cmd/specguard/testdata/*.yaml")
	public, _ := filepath.Glob("../cmd/specguard/testdata/public/*.yaml")
	docs = append(append(docs, public...), "../internal/guardtest/testdata/guard.yaml", "../credentials/openapi.yaml")
	if len(docs) < 6 {
		t.Fatalf("found %d documents: %v", len(docs), docs)
	}
	return docs
}

// TestLoadSameAsLoader: every document of the repository, as YAML (the
// loader's own path) and as JSON (decoded section by section), and one
// with every section the split decodes on its own, read as the loader
// reads them.
func TestLoadSameAsLoader(t *testing.T) {
	for _, path := range repoDocuments(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if sameAsLoader(t, path, data) {
			t.Errorf("%s: a YAML document was split as JSON", path)
		}
		if !sameAsLoader(t, path+" as JSON", asJSON(t, path, data)) {
			t.Errorf("%s as JSON: not split: the loader read it alone", path)
		}
	}
	sections, err := os.ReadFile("testdata/sections.json")
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsLoader(t, "sections.json", sections) {
		t.Error("sections.json: not split: the loader read it alone")
	}
	// Enough schemas to be decoded on every core (race-checked under
	// make test), each referring to the next.
	many := map[string]any{"openapi": "3.0.3", "info": map[string]any{"title": "many", "version": "1"}, "paths": map[string]any{}}
	schemas := map[string]any{}
	for i := range 300 {
		schemas[fmt.Sprintf("S%d", i)] = map[string]any{"type": "object", "x-n": i, "properties": map[string]any{
			"next": map[string]any{"$ref": fmt.Sprintf("#/components/schemas/S%d", (i+1)%300)},
			"name": map[string]any{"type": "string", "maxLength": i + 1}}}
	}
	many["components"] = map[string]any{"schemas": schemas}
	manyJSON, err := json.Marshal(many)
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsLoader(t, "300 schemas", manyJSON) {
		t.Error("300 schemas: not split")
	}
	// What the loader's detour through a map changes in a path item: the
	// last of two keys differing only in case is the one that sorts last,
	// and numbers are float64 (one past 2^53 rounds; 2^64-1 no longer
	// fits a uint64, and the loader refuses it).
	for _, tc := range []struct{ name, old, new string }{
		{"required and Required", `"parameters": [{"$ref": "#/components/parameters/ID"}]`,
			`"parameters": [{"name": "id", "in": "path", "required": true, "Required": false, "schema": {"type": "string", "pattern": "^[a-z]+$"}, "Schema": {"type": "string"}}]`},
		{"in and In", `"operationId": "listItems",`, `"operationId": "listItems", "parameters": [{"name": "q", "in": "query", "In": "header", "schema": {"type": "string"}}],`},
		{"2^53+1", `"operationId": "listItems",`, `"operationId": "listItems", "parameters": [{"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 9007199254740993}}],`},
		{"2^64-1", `"operationId": "listItems",`, `"operationId": "listItems", "parameters": [{"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 18446744073709551615}}],`},
	} {
		doc := strings.Replace(string(sections), tc.old, tc.new, 1)
		if doc == string(sections) {
			t.Fatalf("%s: %q is not in sections.json", tc.name, tc.old)
		}
		sameAsLoader(t, "a path item with "+tc.name, []byte(doc))
	}
	// Indented with tabs and CRLF line ends: still JSON.
	var b bytes.Buffer
	b.WriteString("\r\n\t ")
	b.Write(bytes.ReplaceAll(sections, []byte("\n"), []byte("\r\n\t")))
	if !sameAsLoader(t, "sections.json, CRLF", b.Bytes()) {
		t.Error("sections.json with CRLF line ends: not split")
	}
}

// TestLoadLeavesToLoader: what the split does not read as the loader
// would is left to the loader, which reads it (or refuses it) as always.
func TestLoadLeavesToLoader(t *testing.T) {
	sections, err := os.ReadFile("testdata/sections.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, old, new string }{
		// encoding/json would decode these into the section's field.
		{"a section's name in other case", `"paths": {`, `"Paths": {`},
		{"a component section's name in other case", `"schemas": {`, `"Schemas": {`},
		// The loader leaves no paths or components; the split would.
		{"null paths", `"paths": {`, `"paths": null, "x-was-paths": {`},
		{"null components", `"components": {`, `"components": null, "x-was-components": {`},
		{"a null schema", `"Nothing": false`, `"Nothing": null`},
		// Errors: the loader's words.
		{"a schema of the wrong type", `"Nothing": false`, `"Nothing": 5`},
		{"a path item of the wrong type", `"/items": {`, `"/other": 5, "/items": {`},
		{"components of the wrong type", `"components": {`, `"components": [], "x-was-components": {`},
		{"a section of the wrong type", `"headers": {`, `"headers": "none", "x-was-headers": {`},
		{"trailing bytes", "\n}\n", "\n} {}"},
	} {
		doc := strings.Replace(string(sections), tc.old, tc.new, 1)
		if doc == string(sections) {
			t.Fatalf("%s: %q is not in sections.json", tc.name, tc.old)
		}
		if sameAsLoader(t, tc.name, []byte(doc)) {
			t.Errorf("%s: split, not left to the loader", tc.name)
		}
	}
}

// TestDuplicateSectionsRefused: a section given twice is where the split
// and the loader differ (the loader merges two maps); the document is
// refused before either reading counts.
func TestDuplicateSectionsRefused(t *testing.T) {
	sections, err := os.ReadFile("testdata/sections.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ old, new string }{
		{`"links": {`, `"links": {"Other": {"operationId": "listItems"}}, "links": {`},
		{`"webhooks": {`, `"webhooks": {"other": {}}, "webhooks": {`},
	} {
		doc := strings.Replace(string(sections), tc.old, tc.new, 1)
		_, err := Compile("dup.json", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), "given twice in one object") {
			t.Errorf("%s given twice: Compile = %v, want it refused as given twice", strings.Trim(tc.old, `"{: `), err)
		}
	}
}

// TestLoadSameAsLoaderGitHub reads GitHub's REST description both ways,
// and its outline both ways, when SPECGUARD_GITHUB_SPEC names it (make
// bench-github does).
func TestLoadSameAsLoaderGitHub(t *testing.T) {
	path := os.Getenv("SPECGUARD_GITHUB_SPEC")
	if path == "" {
		t.Skip("SPECGUARD_GITHUB_SPEC is not set (make bench-github sets it)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !sameAsLoader(t, path, data) {
		t.Errorf("%s: not split", path)
	}
	if o, _ := sameOutline(t, path, data); len(o) == 0 {
		t.Errorf("%s: an empty outline", path)
	}
}

// A second YAML document in the file (after "---") was dropped unread by
// the loader: an operation declared there was neither served nor linted.
// It is refused, naming the line of its "---"; a "---" with nothing after
// it is no document.
func TestSecondYAMLDocumentRefused(t *testing.T) {
	const first = "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\nx-rate-limit: false\npaths:\n  /a:\n    get: {operationId: a, security: [], responses: {\"200\": {description: ok}}}\n"
	for _, tc := range []struct {
		name, doc string
		line      int // of the error; 0: compiles
	}{
		{"a second document", first + "---\npaths:\n  /admin:\n    delete: {operationId: wipe, security: [{bearer: []}], responses: {\"204\": {description: gone}}}\n", 7},
		{"a second document, malformed", first + "---\nb: [\n", 8},
		{"a second scalar", first + "--- x\n", 7},
		{"a third document after an empty second", first + "---\n---\npaths:\n  /admin:\n    delete: {operationId: wipe, responses: {\"204\": {description: gone}}}\n", 8},
		{"a --- at the end", first + "---\n", 0},
		{"a --- and a comment", first + "---\n# nothing more\n", 0},
		{"a --- at the start", "---\n" + first, 0},
		{"an end marker", first + "...\n", 0},
	} {
		_, err := Compile("spec.yaml", []byte(tc.doc))
		switch {
		case tc.line == 0 && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.line != 0 && (err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("spec.yaml:%d:", tc.line))):
			t.Errorf("%s: %v, want an error at spec.yaml:%d", tc.name, err, tc.line)
		}
	}
}
