package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	yaml3 "gopkg.in/yaml.v3"
)

// sameOutline fails t unless outlineJSON reads data (valid JSON) as
// outlineYAML reads yaml.v3's parse of it. It returns the outline.
func sameOutline(t *testing.T, name string, data []byte) (object, []dup) {
	t.Helper()
	if !json.Valid(data) {
		t.Fatalf("%s: not JSON", name)
	}
	var n yaml3.Node
	if err := yaml3.Unmarshal(readSurrogates(data), &n); err != nil { // as checkShape reads YAML
		t.Fatalf("%s: yaml.v3: %v", name, err)
	}
	wantObj, wantDups, _ := outlineYAML(n.Content[0])
	wantObj = withoutMerged(wantObj) // JSON has no merge keys to follow
	gotObj, gotDups := outlineJSON(data)
	if !reflect.DeepEqual(gotDups, wantDups) {
		t.Fatalf("%s: duplicates\n got %+v\nwant %+v", name, gotDups, wantDups)
	}
	if !reflect.DeepEqual(gotObj, wantObj) {
		t.Fatalf("%s: outline\n got %+v\nwant %+v", name, gotObj, wantObj)
	}
	return gotObj, gotDups
}

// withoutMerged is o without what merge keys bring in.
func withoutMerged(o object) object {
	for i := range o {
		o[i].merged = nil
		o[i].obj = withoutMerged(o[i].obj)
	}
	return o
}

// outlineCases are JSON documents whose outline is read both ways: what
// the reader of the bytes could get wrong.
var outlineCases = map[string]string{
	"keys twice, at every depth": `{"openapi": "3.0.3", "paths": {"/a": {"get": {"security": [], "operationId": "a",
	  "security": [{"b": []}], "responses": {"200": {"description": "x", "description": "y"}}}}},
	  "paths": {}, "components": {"schemas": {"S": {"type": "object", "properties": {"p": {"type": "string", "type": "integer"}}}}}}`,
	"a key three times, and twice in an array's object": `{"a": 1, "a": 2, "a": 3, "l": [{"x": 1}, {"x": 1, "x": 2}, [{"y": [], "y": {}}]]}`,
	"a key twice, once escaped":                         `{"paths": {"/a": {"get": {"security": [], "secur\u0069ty": [], "x-rate-limit": 1, "x-rate-lim\u0069t": 2}}}}`,
	"merge keys":                                        `{"<<": 1, "<<": 2, "x": {"<<": {}, "<<": []}}`,
	"many keys, some twice": func() string {
		var b strings.Builder
		b.WriteString(`{"paths": {`)
		for i := range 60 {
			fmt.Fprintf(&b, `"/p%d": {"get": {"operationId": "op%d"}}, `, i%30, i)
		}
		b.WriteString(`"/last": {}}, "components": {"securitySchemes": {`)
		for i := range 30 {
			fmt.Fprintf(&b, `"s%d": {"type": "http", "schema": "bearer"},`, i%20)
		}
		b.WriteString(`"z": {}}}}`)
		return b.String()
	}(),
	"characters before keys": "{\"info\": {\"title\": \"héllo ☃ 🚀\", \"x-é\": 1, \"description\": \"tab\\there \\\"quoted\\\" \\\\\"},\n\t\"paths\": {\"/é/{id}\": {\"get\": {\"operationId\": \"é🚀\", \"x-rate-limt\": {}}}}}",
	"line ends":              "{\r\n\"a\": {\r\"b\": 1,\n\r\n\"c\": [\r\n1,\r2],\t\"d\": {}},\r\n  \"a\": 2\r\n}\r\n",
	"scalars as text": `{"paths": {"/a": {"get": {"operationId": 12.5e3, "responses": null}, "put": {"operationId": true},
	  "post": {"operationId": null}, "patch": {"operationId": {"x": 1}}, "delete": {"operationId": [1]},
	  "GET": {"operationId": "upper"}, "head": {"operationId": "a", "operationId": "b"}}}}`,
	"deep":         `{"a": {"b": {"c": {"d": {"e": {"f": {"g": 1, "g": 2}}, "e2": "s"}, "d": 1}}}}`,
	"empty":        `{"a": {}, "b": [], "c": {"d": {}, "e": []}, "paths": {"/": {}}}`,
	"a top array":  `[{"a": 1, "a": 2}, {"b": {"c": 1}}]`,
	"a top string": `"openapi"`,
	"compact":      `{"openapi":"3.0.3","paths":{"/a":{"get":{"operationId":"a","securty":[]}}},"components":{"securitySchemes":{"k":{"type":"apiKey","in":"header","name":"K","x-rate-limit":1}}}}`,
}

// TestOutlineJSONSameAsYAML: the shape check's reading of a JSON document
// is yaml.v3's, key by key: the repository's documents as JSON (indented,
// compact, with CRLF and tabs), sections.json, the cases above, and
// random documents full of keys given twice.
func TestOutlineJSONSameAsYAML(t *testing.T) {
	for _, path := range repoDocuments(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		compact := asJSON(t, path, data)
		var indented bytes.Buffer
		if err := json.Indent(&indented, compact, "", "  "); err != nil {
			t.Fatal(err)
		}
		if o, _ := sameOutline(t, path+" as JSON", compact); len(o) == 0 {
			t.Fatalf("%s: an empty outline", path)
		}
		sameOutline(t, path+" as indented JSON", indented.Bytes())
		crlf := bytes.ReplaceAll(indented.Bytes(), []byte("\n  "), []byte("\r\n\t"))
		sameOutline(t, path+" with CRLF and tabs", crlf)
	}
	sections, err := os.ReadFile("testdata/sections.json")
	if err != nil {
		t.Fatal(err)
	}
	sameOutline(t, "sections.json", sections)
	dups := 0
	for name, doc := range outlineCases {
		_, d := sameOutline(t, name, []byte(doc))
		dups += len(d)
	}
	if dups < 30 {
		t.Errorf("the cases hold %d keys given twice; the test reads fewer than it should", dups)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		doc := randomJSON(rnd, 0)
		sameOutline(t, fmt.Sprintf("random document %d: %s", i, doc), []byte(doc))
	}
}

// randomJSON writes a random JSON value with few distinct keys (so that
// many are given twice), the fields the shape check reads among them, and
// random white space between tokens.
func randomJSON(rnd *rand.Rand, depth int) string {
	space := func() string {
		return []string{"", "", " ", "\n", "\r\n", "\r", "\t", "\n\t  "}[rnd.IntN(8)]
	}
	inline := func() string { // YAML wants a key and its colon on one line
		return []string{"", " ", "\t"}[rnd.IntN(3)]
	}
	keys := []string{"paths", "/a", "get", "post", "security", "securty", "operationId", "components",
		"securitySchemes", "x-rate-limit", "x-rate-limt", "é", "s\\u00e9", "🚀", "a\\\"b", "<<", "x-roles"}
	items := func(open, close string, n int, item func() string) string {
		var b strings.Builder
		b.WriteString(open + space())
		for j := range n {
			if j > 0 {
				b.WriteString("," + space())
			}
			b.WriteString(item() + space())
		}
		return b.String() + close
	}
	switch k := rnd.IntN(10); {
	case depth < 6 && k < 5:
		return items("{", "}", rnd.IntN(6), func() string {
			return `"` + keys[rnd.IntN(len(keys))] + `"` + inline() + ":" + space() + randomJSON(rnd, depth+1)
		})
	case depth < 6 && k < 7:
		return items("[", "]", rnd.IntN(4), func() string { return randomJSON(rnd, depth+1) })
	default:
		return []string{`"s"`, `"ü \"q\" ☃"`, "12", "-1.5e3", "true", "false", "null", `""`}[rnd.IntN(8)]
	}
}

// JSON that yaml.v3 refuses (an escaped slash, a line break before a
// colon) compiles as the same document written plainly: the shape check
// reads JSON as JSON.
func TestShapeReadsJSONAsJSON(t *testing.T) {
	data, err := os.ReadFile("../internal/guardtest/testdata/guard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plain := asJSON(t, "guard.yaml", data)
	odd := bytes.ReplaceAll(plain, []byte(`"/`), []byte(`"\/`))
	odd = bytes.Replace(odd, []byte(`"paths":`), []byte("\"paths\"\n:"), 1)
	if bytes.Count(odd, []byte(`\/`)) < 10 || !json.Valid(odd) {
		t.Fatal("the document was not rewritten as meant")
	}
	var n yaml3.Node
	if yaml3.Unmarshal(odd, &n) == nil {
		t.Fatal("yaml.v3 reads the rewritten document now: find JSON it refuses")
	}
	want, errs := compileDoc("openapi.json", plain)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got, errs := compileDoc("openapi.json", odd)
	if len(errs) > 0 {
		t.Fatalf("%v", errs)
	}
	if g, w := fmt.Sprint(got.Operations()), fmt.Sprint(want.Operations()); g != w || len(want.Operations()) == 0 {
		t.Fatalf("another table:\n%s\nwant\n%s", g, w)
	}
}

// FuzzOutlineJSON: whatever JSON yaml.v3 also reads, the two outlines are
// the same. Left out, where they differ by design (see outlineJSON): raw
// U+0085, U+2028 and U+2029, and surrogate pair escapes.
func FuzzOutlineJSON(f *testing.F) {
	for _, doc := range outlineCases {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || bytes.ContainsAny(data, "\u0085\u2028\u2029") || surrogateEscape.Match(data) {
			return
		}
		var n yaml3.Node
		if yaml3.Unmarshal(readSurrogates(data), &n) != nil || len(n.Content) == 0 {
			return
		}
		sameOutline(t, "input", data)
	})
}

// Where the JSON reading and yaml.v3's differ, the shape check says what
// the file holds: a column after a surrogate pair escape counts the
// escape as written. A document that is not UTF-8 is refused, as before,
// on its line.
func TestShapeOfJSONAsWritten(t *testing.T) {
	doc := "{\"openapi\": \"3.0.3\",\n\"info\": {\"title\": \"\\ud83d\\ude80\", \"title\": \"u\", \"version\": \"1\"}, \"paths\": {}}"
	errs, syntax, _, _ := checkShape("d.json", []byte(doc))
	col := strings.Index(doc, `"title": "u"`) - strings.Index(doc, "\n")
	if syntax || len(errs) != 1 || errs[0].Line != 2 || errs[0].Col != col || !strings.Contains(errs[0].Msg, "given twice") {
		t.Errorf("got %v, want the second title at 2:%d", errs, col)
	}
	bad := []byte("{\"openapi\": \"3.0.3\",\n\"paths\": {\"/a\\u00e9\": {}, \"/a\xff\": {}}}")
	if !json.Valid(bad) {
		t.Fatal("encoding/json refuses invalid UTF-8 now: this case tests nothing")
	}
	_, errs = compileDoc("d.json", bad)
	if len(errs) != 1 || errs[0].Line != 2 || !strings.Contains(errs[0].Msg, "YAML") {
		t.Errorf("invalid UTF-8: got %v, want one YAML error on line 2", errs)
	}
}
