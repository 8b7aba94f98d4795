package guard_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

const caseDoc = `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /notes:
    post:
      operationId: addNote
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [title]
              properties:
                title: {type: string, maxLength: 5}
                meta:
                  type: object
                  properties:
                    lang: {type: string, enum: [en, fr]}
                tags:
                  type: array
                  items:
                    type: object
                    properties:
                      name: {type: string, maxLength: 3}
                wrapped:
                  description: a list beside its description
                  allOf:
                    - $ref: '#/components/schemas/Tags'
                node:
                  $ref: '#/components/schemas/Node'
      responses: {"200": {description: ok}}
components:
  schemas:
    Tags:
      type: array
      items: {type: object, properties: {name: {type: string, maxLength: 3}}}
    Node:
      type: object
      properties:
        name: {type: string, maxLength: 3}
        child: {$ref: '#/components/schemas/Node'}
`

// Go's encoding/json takes "TITLE" for the field title, the validator
// does not: a key that differs from a property only in case is refused,
// at any depth (a recursive schema as deep as the body goes; an array
// wrapped in allOf, a $ref beside a description), rather than handed to
// the handler unchecked.
func TestCaseVariantKeysAreRefused(t *testing.T) {
	table, err := policy.Compile("t.yaml", []byte(caseDoc))
	if err != nil {
		t.Fatal(err)
	}
	type note struct {
		Title string `json:"title"`
		Meta  struct {
			Lang string `json:"lang"`
		} `json:"meta"`
		Tags []struct {
			Name string `json:"name"`
		} `json:"tags"`
	}
	var got note
	r := chi.NewRouter()
	r.Post("/notes", func(w http.ResponseWriter, r *http.Request) {
		got = note{}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	g, err := guard.New(table, r)
	if err != nil {
		t.Fatal(err)
	}
	deep := `{"name":"a","NAME":"far too long"}`
	for range 40 {
		deep = `{"child":` + deep + `}`
	}
	for _, c := range []struct {
		body  string
		code  int
		field string
	}{
		{`{"title":"ok","TITLE":"this is far longer than five"}`, 400, "body.TITLE"},
		{`{"Title":"this is far longer than five"}`, 400, ""}, // required title missing
		{`{"title":"ok","meta":{"LANG":"xx"}}`, 400, "body.meta.LANG"},
		{`{"title":"ok","tags":[{"name":"a"},{"NAME":"toolong"}]}`, 400, "body.tags.1.NAME"},
		{`{"title":"ok","wrapped":[{"name":"a","NAME":"far too long"}]}`, 400, "body.wrapped.0.NAME"},
		{`{"title":"ok","node":{"child":{"name":"a","NAME":"far too long"}}}`, 400, "body.node.child.NAME"},
		{`{"title":"ok","node":` + deep + `}`, 400, ""},
		{`{"title":"ok","meta":{"lang":"fr"},"tags":[{"name":"a"}],"other":1}`, 200, ""},
	} {
		req := httptest.NewRequest(http.MethodPost, "/notes", strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != c.code || c.field != "" && !strings.Contains(w.Body.String(), `"field":"`+c.field+`"`) {
			t.Errorf("%.70s: %d %s, want %d naming %s (the handler got %+v)", c.body, w.Code, w.Body, c.code, c.field, got)
		}
	}
	if got.Title != "ok" || got.Meta.Lang != "fr" {
		t.Errorf("the good body reached the handler as %+v", got)
	}
}

// What the validator checks is what the handler decodes: a body of an
// operation declaring one is refused with a Content-Type that Go's mime
// package cannot parse (the validator took it for JSON, the case-variant
// check did not), and a JSON body that is not one I-JSON value: a name
// repeated in an object (encoding/json merges repeated objects' members,
// the validator keeps the last), data after the value, text that is not
// UTF-8.
func TestBodiesAreOneJSONValue(t *testing.T) {
	table, err := policy.Compile("t.yaml", []byte(caseDoc))
	if err != nil {
		t.Fatal(err)
	}
	reached := false
	r := chi.NewRouter()
	r.Post("/notes", func(w http.ResponseWriter, r *http.Request) { reached = true })
	g, err := guard.New(table, r)
	if err != nil {
		t.Fatal(err)
	}
	variant := `{"title":"ok","TITLE":"this is far longer than five"}`
	for _, c := range []struct {
		name, ct, body string
		code           int
		field          string
	}{
		{"a parameter without a value", "application/json; charset", variant, 400, "header.Content-Type"},
		{"an unclosed quote", `application/json; charset="utf-8`, variant, 400, "header.Content-Type"},
		{"a parameter without a name", "application/json; =x", variant, 400, "header.Content-Type"},
		{"empty parameters", "application/json;;", variant, 400, "header.Content-Type"},
		{"a repeated object", "application/json", `{"title":"ok","meta":{"lang":"xx"},"meta":{}}`, 400, "body"},
		{"a repeated string", "application/json", `{"title":"far too long","title":"ok"}`, 400, "body"},
		{"a name repeated escaped", "application/json", `{"title":"ok","\u0074itle":"far too long"}`, 400, "body"},
		{"a repeated name deeper", "application/json", `{"title":"ok","node":{"name":"a","name":"b"}}`, 400, "body"},
		{"a second value", "application/json", `{"title":"ok"}{"title":"ok"}`, 400, "body"},
		{"data after the value", "application/json", `{"title":"ok"}]]] not json`, 400, "body"},
		{"text that is not UTF-8", "application/json", "{\"title\":\"ok\",\"x\xff\":1,\"x\xfe\":2}", 400, "body"},
		{"white space after the value", "application/json", "{\"title\":\"ok\"}\r\n ", 200, ""},
		{"a charset", "application/json; charset=utf-8", `{"title":"ok","meta":{"lang":"fr"}}`, 200, ""},
		{"a name in two objects", "application/json", `{"title":"ok","node":{"name":"a","child":{"name":"b"}}}`, 200, ""},
	} {
		reached = false
		req := httptest.NewRequest(http.MethodPost, "/notes", strings.NewReader(c.body))
		req.Header.Set("Content-Type", c.ct)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != c.code || reached != (c.code == 200) || c.field != "" && !strings.Contains(w.Body.String(), `"field":"`+c.field+`"`) {
			t.Errorf("%s: %d %s (handler reached: %v), want %d naming %s", c.name, w.Code, w.Body, reached, c.code, c.field)
		}
	}
}

// A form field given twice is refused unless its schema is an array: the
// validator checks the first value that is not empty, a handler reads the
// first (r.FormValue), so title=&title=ok handed "" past minLength 1.
func TestFormFieldsAreGivenOnce(t *testing.T) {
	table, err := policy.Compile("t.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /notes:
    post:
      operationId: addNote
      security: []
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [title]
              properties:
                title: {type: string, minLength: 1, maxLength: 5}
                tags: {type: array, items: {type: string}}
      responses: {"200": {description: ok}}
  /tagged:
    post:
      operationId: addTagged
      security: []
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              allOf:
                - type: object
                  properties: {title: {type: string, minLength: 1, maxLength: 5}}
                - type: object
                  properties: {tags: {type: array, items: {type: string}}}
      responses: {"200": {description: ok}}
  /either:
    post:
      operationId: addEither
      security: []
      parameters:
        - {name: o, in: query, schema: {type: object, properties: {lang: {type: string}}, additionalProperties: false}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, properties: {title: {type: string, maxLength: 5}}}
          application/x-www-form-urlencoded:
            schema: {type: object, properties: {title: {type: string, maxLength: 5}, lang: {type: string}}}
      responses: {"200": {description: ok}}
  /labels:
    post:
      operationId: addLabels
      security: []
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              additionalProperties: {type: array, items: {type: string}}
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got string
	r := chi.NewRouter()
	r.Post("/notes", func(w http.ResponseWriter, r *http.Request) { got = r.FormValue("title") })
	r.Post("/tagged", func(w http.ResponseWriter, r *http.Request) { got = r.FormValue("title") })
	r.Post("/labels", func(w http.ResponseWriter, r *http.Request) { got = "ok" })
	r.Post("/either", func(w http.ResponseWriter, r *http.Request) { got = "ok" })
	g, err := guard.New(table, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, body string
		code       int
		field      string
		json       bool
	}{
		{"/notes", "title=&title=ok", 400, "body.title", false},
		{"/notes", "title=ok&title=far+too+long", 400, "body.title", false},
		{"/notes", "title=ok&tags=a&tags=b", 200, "", false},
		{"/notes", "title=ok&other=1&other=2", 200, "", false}, // of no schema: nothing slips past it
		{"/notes", "title=ok", 200, "", false},
		// Declared in allOf members, and by additionalProperties.
		{"/tagged", "title=&title=ok", 400, "body.title", false},
		{"/tagged", "title=ok&tags=a&tags=b", 200, "", false},
		// A field left out of the body and given in the query: r.FormValue
		// and oapi-codegen's binding (r.Form) take it from there.
		{"/tagged?title=far+too+long", "tags=a", 400, "query.title", false},
		{"/notes?title=far+too+long", "title=ok", 400, "query.title", false},
		// Not a form: nothing reads the form's fields from the query.
		{"/either?title=far+too+long", `{"title":"ok"}`, 200, "", true},
		{"/either?title=far+too+long", "title=ok", 400, "query.title", false},
		// A property of an exploded object parameter is a query name.
		{"/either?lang=en", "title=ok", 200, "", false},
		{"/labels", "label=a&label=b", 200, "", false},
	} {
		got = "(not reached)"
		req := httptest.NewRequest(http.MethodPost, c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.json {
			req.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != c.code || c.field != "" && !strings.Contains(w.Body.String(), `"field":"`+c.field+`"`) || c.code == 200 && got != "ok" {
			t.Errorf("%s %s: %d %s (the handler read title %q), want %d naming %s", c.path, c.body, w.Code, w.Body, got, c.code, c.field)
		}
	}
}

// A multipart body's JSON part is one I-JSON value, and a field is given
// in one part unless its schema is an array: the validator decodes a JSON
// part into a map, keeping the last of a repeated name, a handler into a
// struct, merging them.
func TestMultipartPartsAreOneValue(t *testing.T) {
	table, err := policy.Compile("t.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /notes:
    post:
      operationId: addNote
      security: []
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              properties:
                meta:
                  type: object
                  properties: {lang: {type: string, enum: [en, fr]}}
                title: {type: string, maxLength: 5}
                tags: {type: array, items: {type: string}}
            encoding:
              meta: {contentType: application/json}
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	reached := false
	r := chi.NewRouter()
	r.Post("/notes", func(http.ResponseWriter, *http.Request) { reached = true })
	g, err := guard.New(table, r)
	if err != nil {
		t.Fatal(err)
	}
	part := func(name, ct, body string) string {
		h := "--b\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n"
		if ct != "" {
			h += "Content-Type: " + ct + "\r\n"
		}
		return h + "\r\n" + body + "\r\n"
	}
	for _, c := range []struct {
		name, body string
		code       int
		field      string
	}{
		{"a JSON part naming a member twice", part("meta", "application/json", `{"lang":"xx","lang":"en"}`) + "--b--\r\n", 400, "body.meta"},
		{"a JSON part with a key in another case", part("meta", "application/json", `{"lang":"en","LANG":"xx"}`) + "--b--\r\n", 400, "body.meta.LANG"},
		{"a field in two parts", part("title", "", "far too long") + part("title", "", "ok") + "--b--\r\n", 400, "body.title"},
		{"an array in two parts", part("title", "", "ok") + part("tags", "", "a") + part("tags", "", "b") + "--b--\r\n", 200, ""},
		{"one value each", part("meta", "application/json", `{"lang":"en"}`) + part("title", "", "ok") + "--b--\r\n", 200, ""},
	} {
		reached = false
		req := httptest.NewRequest(http.MethodPost, "/notes", strings.NewReader(c.body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != c.code || reached != (c.code == 200) || c.field != "" && !strings.Contains(w.Body.String(), `"field":"`+c.field+`"`) {
			t.Errorf("%s: %d %s (handler reached: %v), want %d naming %s", c.name, w.Code, w.Body, reached, c.code, c.field)
		}
	}
}

// A query parameter given twice is refused unless its schema is an array:
// the validator checks the first value that is not empty, a handler reads
// the first (r.URL.Query().Get), so q=&q=abc handed "" past minLength 3.
func TestQueryParametersAreGivenOnce(t *testing.T) {
	var got string
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /search:
    get:
      operationId: search
      security: []
      parameters:
        - {name: q, in: query, required: true, schema: {type: string, minLength: 3, pattern: '^[a-z]+$'}}
        - {name: tag, in: query, schema: {type: array, items: {type: string}}}
        - name: filter
          in: query
          content:
            application/json:
              schema: {type: object, properties: {author: {type: string, maxLength: 8}}}
        # An array beside a description, as 3.0 writes it; an array or one.
        - {name: labels, in: query, schema: {description: labels, allOf: [{type: array, items: {type: string}}]}}
        - {name: ids, in: query, schema: {anyOf: [{type: array, items: {type: string}}, {type: string}]}}
        # No type, but bounds.
        - {name: m, in: query, schema: {minLength: 3, pattern: '^[a-z]+$'}}
      responses: {"200": {description: ok}}
`, func(w http.ResponseWriter, r *http.Request) { got = r.URL.Query().Get("q") })
	for _, c := range []struct {
		query string
		code  int
		field string
	}{
		{"q=&q=abc", 400, "query.q"},
		{"q=x&q=abc", 400, "query.q"},
		{"q=abc&q=abc", 400, "query.q"},
		{"q=abc&filter=%7B%7D&filter=%7B%22author%22%3A%22far-too-long%22%7D", 400, "query.filter"},
		{"q=abc&tag=a&tag=b", 200, ""},
		{"q=abc&labels=a&labels=b&ids=1&ids=2", 200, ""},
		{"q=abc&m=&m=abc", 400, "query.m"},
		{"q=abc&other=1&other=2", 200, ""}, // of no parameter: nothing slips past it
		{"q=abc", 200, ""},
	} {
		got = "(not reached)"
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/search?"+c.query, nil))
		if !answered(w, c.code, c.field) || c.code == 200 && got != "abc" {
			t.Errorf("GET /search?%s: %d %s (the handler read q %q), want %d naming %s", c.query, w.Code, w.Body, got, c.code, c.field)
		}
	}
}

// An operation's parameter replaces the path item's of the same name and
// location (OpenAPI 3.0.3, Path Item Object): on the direct path of
// path-only operations both were checked, and GET /items/abcdef was
// refused by the path item's maxLength 4 that DELETE, through
// openapi3filter, did not apply.
func TestOperationParametersReplaceThePathItems(t *testing.T) {
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /items/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string, maxLength: 4}}
    get:
      operationId: getItem
      security: []
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, maxLength: 8}}
      responses: {"200": {description: ok}}
    delete:
      operationId: deleteItem
      security: []
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, maxLength: 8}}
        - {name: why, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}
`, func(http.ResponseWriter, *http.Request) {})
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/items/abcdef", 200},
		{http.MethodDelete, "/items/abcdef", 200},
		{http.MethodGet, "/items/ab%2Fcd", 200}, // escaped: validated as it came too
		{http.MethodGet, "/items/abcdefghi", 400},
		{http.MethodDelete, "/items/abcdefghi", 400},
	} {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
		if w.Code != c.code {
			t.Errorf("%s %s: %d %s, want %d (the operation's id: maxLength 8)", c.method, c.path, w.Code, w.Body, c.code)
		}
	}
}

// A parameter whose value is JSON (content application/json) is checked
// as a JSON body is: oapi-codegen's handlers decode it with encoding/json
// into a struct, which merges a repeated name and takes AUTHOR for author,
// where the validator saw the last and the exact name alone.
func TestJSONParametersAreCheckedAsBodies(t *testing.T) {
	reached := false
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /posts:
    get:
      operationId: listPosts
      security: []
      parameters:
        - name: filter
          in: query
          content:
            application/json:
              schema:
                type: object
                properties:
                  author: {type: string, maxLength: 8}
                  meta: {type: object, properties: {lang: {type: string, enum: [en, fr]}}}
        - name: X-Filter
          in: header
          content:
            application/json:
              schema: {type: object, properties: {author: {type: string, maxLength: 8}}}
      responses: {"200": {description: ok}}
`, func(http.ResponseWriter, *http.Request) { reached = true })
	for _, c := range []struct {
		name, query, header string
		code                int
		field               string
	}{
		{"a key in another case", `{"author":"ok","AUTHOR":"far-too-long-author"}`, "", 400, "query.filter.AUTHOR"},
		{"a nested key in another case", `{"meta":{"lang":"en","Lang":"xx"}}`, "", 400, "query.filter.meta.Lang"},
		{"a name given twice", `{"meta":{"lang":"xx"},"meta":{}}`, "", 400, "query.filter"},
		{"data after the value", `{"author":"ok"}{"author":"far-too-long-author"}`, "", 400, "query.filter"},
		{"a header's key in another case", "", `{"author":"ok","Author":"far-too-long-author"}`, 400, "header.X-Filter.Author"},
		{"one value", `{"author":"ok","meta":{"lang":"fr"}}`, `{"author":"ok"}`, 200, ""},
		{"none", "", "", 200, ""},
	} {
		reached = false
		target := "/posts"
		if c.query != "" {
			target += "?filter=" + url.QueryEscape(c.query)
		}
		req := httptest.NewRequest(http.MethodGet, target, nil)
		if c.header != "" {
			req.Header.Set("X-Filter", c.header)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if !answered(w, c.code, c.field) || reached != (c.code == 200) {
			t.Errorf("%s: %d %s (handler reached: %v), want %d naming %s", c.name, w.Code, w.Body, reached, c.code, c.field)
		}
	}
}

// A body is validated against the media type its Content-Type resolves
// to, a range (application/*, multipart/*, */*) when no key names it: a
// JSON body or a form sent there is checked as one. Declared as a range,
// a key in another case ({"title":"ok","TITLE":"<unchecked>"}) and a form
// field moved to the query reached the handler unchecked; and so did a
// JSON parameter whose one media type is a range (openapi3filter decodes
// it as JSON).
func TestMediaRangesAreCheckedAsWhatTheyHold(t *testing.T) {
	var doc strings.Builder
	doc.WriteString(`openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
`)
	// A key may list several (kin-openapi reads each): one of them JSON,
	// a form, or a range.
	ranges := []string{"application/*", "multipart/*", "*/*", "application/merge-patch+json, application/json, application/x-www-form-urlencoded", "text/plain, application/*", "text/plain, multipart/form-data"}
	for i, rng := range ranges {
		fmt.Fprintf(&doc, `  /r%d:
    post:
      operationId: r%d
      security: []
      parameters:
        - name: filter
          in: query
          content:
            %q:
              schema: {type: object, properties: {author: {type: string, maxLength: 8}}}
      requestBody:
        required: true
        content:
          %q:
            schema: {type: object, properties: {title: {type: string, maxLength: 3}, other: {type: string}}}
      responses: {"200": {description: ok}}
`, i, i, rng, rng)
	}
	var got string
	g := guarded(t, doc.String(), func(w http.ResponseWriter, r *http.Request) { got = r.FormValue("title") })
	type request struct {
		name, query, ctype, body string
		field                    string // refused naming it; "" for admitted
	}
	for i, rng := range ranges {
		var cases []request
		if strings.Contains(rng, "application/") || rng == "*/*" {
			cases = append(cases,
				request{"a JSON key in another case", "", "application/json", `{"title":"ok","TITLE":"far too long"}`, "body.TITLE"},
				request{"a +json key in another case", "", "application/merge-patch+json", `{"title":"ok","Title":"far too long"}`, "body.Title"},
				request{"a form field in the query", "title=far+too+long", "application/x-www-form-urlencoded", "other=x", "query.title"},
				request{"a form", "", "application/x-www-form-urlencoded", "title=ok", ""},
				request{"a JSON body", "", "application/json", `{"title":"ok"}`, ""},
				request{"a JSON parameter's key in another case", "filter=" + url.QueryEscape(`{"author":"ok","AUTHOR":"far-too-long-author"}`), "application/json", `{"title":"ok"}`, "query.filter.AUTHOR"},
			)
		}
		if strings.Contains(rng, "multipart/") || rng == "*/*" {
			cases = append(cases,
				request{"a multipart field in the query", "title=far+too+long", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n", "query.title"},
			)
		}
		for _, c := range cases {
			got = "(not reached)"
			target := fmt.Sprintf("/r%d", i)
			if c.query != "" {
				target += "?" + c.query
			}
			req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.ctype)
			w := httptest.NewRecorder()
			g.ServeHTTP(w, req)
			if code := map[bool]int{true: 200, false: 400}[c.field == ""]; !answered(w, code, c.field) || (code == 400) != (got == "(not reached)") {
				t.Errorf("%s, declared %s: %d %s (the handler read title %q), want %d naming %q", c.name, rng, w.Code, w.Body, got, code, c.field)
			}
		}
	}
}

// The string formats internal/formats names are checked, beside
// kin-openapi's own (date-time): "format: uuid" passed any text to a
// handler that may take it as checked. Any other format is an annotation.
func TestFormatsAreChecked(t *testing.T) {
	reached := false
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /things/{id}:
    get:
      operationId: getThing
      security: []
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, format: uuid}}
        - {name: host, in: query, schema: {type: string, format: hostname}}
        - {name: from, in: query, schema: {type: string, format: ipv4}}
        - {name: to, in: query, schema: {type: string, format: ipv6}}
        - {name: note, in: query, schema: {type: string, format: free-text}}
      responses: {"200": {description: ok}}
  /ids/{id}:
    get:
      operationId: getID
      security: []
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, oneOf: [{format: uuid}]}}
      responses: {"200": {description: ok}}
  /things:
    post:
      operationId: makeThing
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                email: {type: string, format: email}
                site: {type: string, format: uri}
                at: {type: string, format: date-time}
      responses: {"200": {description: ok}}
`, func(http.ResponseWriter, *http.Request) { reached = true })
	const id = "/things/0b4e7c6a-3f1d-4a8e-9c2b-5d6f7a8b9c0d"
	for _, c := range []struct {
		method, target, body string
		code                 int
		field                string
	}{
		{http.MethodGet, "/things/not-a-uuid", "", 400, "path.id"},
		{http.MethodGet, "/ids/not-a-uuid", "", 400, "path.id"}, // the direct path of path-only operations
		{http.MethodGet, "/ids/0b4e7c6a-3f1d-4a8e-9c2b-5d6f7a8b9c0d", "", 200, ""},
		// Any version and variant, either case.
		{http.MethodGet, "/things/11111111-1111-1111-1111-111111111111", "", 200, ""},
		{http.MethodGet, "/things/00000000-0000-0000-C000-000000000046", "", 200, ""},
		{http.MethodGet, "/things/0b4e7c6a3f1d4a8e9c2b5d6f7a8b9c0d", "", 400, "path.id"},
		{http.MethodGet, id + "?to=fe80::1%25eth0", "", 400, "query.to"},
		{http.MethodGet, id + "?from=192.168.001.1", "", 400, "query.from"},
		{http.MethodGet, id + "?host=-bad-.example", "", 400, "query.host"},
		{http.MethodGet, id + "?from=300.1.1.1", "", 400, "query.from"},
		{http.MethodGet, id + "?to=192.0.2.1", "", 400, "query.to"},
		{http.MethodGet, id + "?host=api.example.com&from=192.0.2.1&to=2001:db8::1&note=anything+at+all", "", 200, ""},
		{http.MethodPost, "/things", `{"email":"no at sign"}`, 400, "body.email"},
		{http.MethodPost, "/things", `{"site":"::not a uri::"}`, 400, "body.site"},
		{http.MethodPost, "/things", `{"site":"/relative"}`, 400, "body.site"},
		{http.MethodPost, "/things", `{"site":"https://exämple.com/"}`, 400, "body.site"},
		{http.MethodPost, "/things", `{"email":"a b@example.com"}`, 400, "body.email"},
		{http.MethodPost, "/things", `{"at":"yesterday"}`, 400, "body.at"},
		{http.MethodPost, "/things", `{"email":"ann@example.com","site":"https://example.com/a?b","at":"2026-12-06T12:00:00Z"}`, 200, ""},
	} {
		reached = false
		req := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if !answered(w, c.code, c.field) || reached != (c.code == 200) {
			t.Errorf("%s %s %s: %d %s (handler reached: %v), want %d naming %s", c.method, c.target, c.body, w.Code, w.Body, reached, c.code, c.field)
		}
	}
}

// guarded compiles doc and guards a router that sends each of its
// operations to h.
func guarded(t *testing.T, doc string, h http.HandlerFunc) *guard.Guard {
	t.Helper()
	table, err := policy.Compile("t.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	for _, op := range table.Operations() {
		r.Method(op.Method, op.Pattern, h)
	}
	g, err := guard.New(table, r)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// answered reports whether w is an answer of code that, when field is
// not empty, names it among its errors.
func answered(w *httptest.ResponseRecorder, code int, field string) bool {
	return w.Code == code && (field == "" || strings.Contains(w.Body.String(), `"field":"`+field+`"`))
}

// The handler oapi-codegen generates for an operation with several bodies
// binds the one whose key the Content-Type starts with, as written; the
// validator reads a media type whatever its case. The handler below
// chooses as that one does.
func TestContentTypeReachesTheHandlerAsDeclared(t *testing.T) {
	var bound string
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /u:
    post:
      operationId: u
      security: []
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, additionalProperties: false, required: [role], properties: {role: {type: string, enum: [user]}}}
          application/x-www-form-urlencoded:
            schema: {type: object, additionalProperties: false, required: [role], properties: {role: {type: string, enum: [user]}}}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(w http.ResponseWriter, r *http.Request) {
		bound = "none"
		for _, key := range []string{"application/json", "application/x-www-form-urlencoded"} {
			if strings.HasPrefix(r.Header.Get("Content-Type"), key) {
				bound = key + r.Header.Get("Content-Type")[len(key):]
			}
		}
	})
	for _, c := range []struct{ ct, body, want string }{
		{"application/json", `{"role":"user"}`, "application/json"},
		{"Application/JSON", `{"role":"user"}`, "application/json"},
		{"APPLICATION/JSON; charset=utf-8", `{"role":"user"}`, "application/json; charset=utf-8"},
		{"Application/X-WWW-Form-Urlencoded", `role=user`, "application/x-www-form-urlencoded"},
	} {
		bound = ""
		r := httptest.NewRequest("POST", "/u", strings.NewReader(c.body))
		r.Header.Set("Content-Type", c.ct)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if w.Code != 200 || bound != c.want {
			t.Errorf("Content-Type %q: %d, the handler bound %q, want 200 and %q", c.ct, w.Code, bound, c.want)
		}
	}
	// A key declared with capitals, sent in lower case.
	g = guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /u:
    post:
      operationId: u
      security: []
      requestBody: {required: true, content: {application/vnd.Acme+json: {schema: {type: object}}, text/plain: {schema: {type: string}}}}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(w http.ResponseWriter, r *http.Request) {
		bound = "none"
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/vnd.Acme+json") {
			bound = "application/vnd.Acme+json"
		}
	})
	for _, c := range []struct{ ct, body, want string }{
		{"application/vnd.acme+json", `{}`, "application/vnd.Acme+json"},
	} {
		bound = ""
		r := httptest.NewRequest("POST", "/u", strings.NewReader(c.body))
		r.Header.Set("Content-Type", c.ct)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if w.Code != 200 || bound != c.want {
			t.Errorf("Content-Type %q: %d, the handler bound %q, want 200 and %q", c.ct, w.Code, bound, c.want)
		}
	}
}
