package guard_test

// Parameters and form fields a handler oapi-codegen generates reads
// otherwise than the validator: each handler here binds as the generated
// code of oapi-codegen v2 does (its runtime's calls, with their options).

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/oapi-codegen/runtime"
)

// readAlike fails t unless the request (what) was refused 400 naming field
// without reaching the handler (got nil), or, with field empty, admitted
// with the handler binding what it should (good).
func readAlike(t *testing.T, what string, w *httptest.ResponseRecorder, field string, got any, good bool) {
	t.Helper()
	reached := got != nil && !reflect.ValueOf(got).IsNil()
	switch {
	case field == "" && (w.Code != 200 || !good):
		t.Errorf("%s: %d %s, the handler got %+v", what, w.Code, w.Body, got)
	case field != "" && (!answered(w, 400, field) || reached):
		t.Errorf("%s: %d %s, want 400 naming %s, the handler not reached", what, w.Code, w.Body, field)
	}
}

// A deepObject parameter's names are read by the validator only as
// name[property], and bound by the handler from any name that starts
// name[: filter[author and filter[[author]] reached the handler as author,
// unchecked. Such names are refused.
func TestDeepObjectNamesReadAlike(t *testing.T) {
	type filter struct {
		Author *string `json:"author,omitempty"`
	}
	var got *filter
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /search:
    get:
      operationId: search
      security: []
      parameters:
        - name: filter
          in: query
          style: deepObject
          explode: true
          schema:
            type: object
            additionalProperties: false
            properties:
              author: {type: string, maxLength: 8}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(w http.ResponseWriter, r *http.Request) {
		var f *filter
		if err := runtime.BindQueryParameterWithOptions("deepObject", true, false, "filter", r.URL.Query(), &f, runtime.BindQueryParameterOptions{Type: "object"}); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got = f
	})
	for _, c := range []struct {
		query, field string // field: the one the 400 names; "" for a 200
	}{
		{"filter[author]=short", ""},
		{"filter[author]=far-too-long-author", "filter.author"},
		{"filter[author=far-too-long-author", "filter[author"},
		{"filter[[author]]=far-too-long-author", "filter[[author]]"},
		{"filter[author]]=far-too-long-author", "filter[author]]"},
		{"filter[]=far-too-long-author", "filter[]"},
	} {
		got = nil
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/search?"+c.query, nil))
		field := c.field
		if field != "" {
			field = "query." + field
		}
		readAlike(t, "GET /search?"+c.query, w, field, got, got != nil && got.Author != nil && *got.Author == "short")
	}
}

// A form field written tags[] or tags[0] is bound by the handler as tags
// (runtime.BindForm reads the query and the body: r.Form), and was read
// by the validator under its own name, which the schema does not have:
// values off the enum and over maxItems reached the handler, and tags[
// made it panic. Such names are refused, in the body and the query.
func TestFormArrayNamesReadAlike(t *testing.T) {
	type note struct {
		Tags  *[]string `form:"tags,omitempty" json:"tags,omitempty"`
		Title string    `form:"title" json:"title"`
	}
	var got *note
	g := guarded(t, `openapi: 3.0.3
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
              additionalProperties: false
              required: [title]
              properties:
                title: {type: string, maxLength: 5}
                tags: {type: array, maxItems: 2, items: {type: string, enum: [a, b]}}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("the handler panicked: %v", p)
			}
		}()
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var body note
		if err := runtime.BindForm(&body, r.Form, nil, nil); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got = &body
	})
	for _, c := range []struct{ target, body, field string }{
		{"/notes", "title=ok&tags=a&tags=b", ""},
		{"/notes", "title=ok&tags=evil", "body.tags.0"},
		{"/notes", "title=ok&tags[]=evil&tags[]=x&tags[]=y", "body.tags[]"},
		{"/notes", "title=ok&tags[0]=evil", "body.tags[0]"},
		{"/notes", "title=ok&tags[=x", "body.tags["},
		{"/notes?tags[]=evil", "title=ok", "query.tags[]"},
		{"/notes?tags=evil", "title=ok", "query.tags"},
	} {
		got = nil
		req := httptest.NewRequest(http.MethodPost, c.target, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		readAlike(t, "POST "+c.target+" "+c.body, w, c.field, got, got != nil && got.Tags != nil && strings.Join(*got.Tags, ",") == "a,b")
	}
}

// An object parameter written in a style (a query's form with explode
// false, a header's simple) is bound by pasting its pairs into a JSON
// object: a key in another case, or escaped (l\u0061ng), landed on lang,
// the last winning, and an escaped value passed a pattern the handler's
// value fails. Quotes and backslashes, a property named twice and a
// case variant of one are refused.
func TestStyledObjectParametersReadAlike(t *testing.T) {
	type obj struct {
		Lang *string `json:"lang,omitempty"`
	}
	var got *obj
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /obj:
    get:
      operationId: objOp
      security: []
      parameters:
        - {name: o, in: query, style: form, explode: false, schema: {type: object, properties: {lang: {type: string, enum: [en, fr]}}}}
        - {name: X-Obj, in: header, schema: {type: object, properties: {lang: {type: string, enum: [en, fr]}}}}
        - {name: X-Exp, in: header, explode: true, schema: {type: object, properties: {lang: {type: string, enum: [en, fr]}}}}
        - {name: p, in: query, style: form, explode: false, schema: {type: object, additionalProperties: false, properties: {lang: {type: string, pattern: '^[^<>]*$'}}}}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(w http.ResponseWriter, r *http.Request) {
		var o, p *obj
		for name, dst := range map[string]**obj{"o": &o, "p": &p} {
			if err := runtime.BindQueryParameterWithOptions("form", false, false, name, r.URL.Query(), dst, runtime.BindQueryParameterOptions{Type: "object"}); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
		}
		got = o
		if p != nil {
			got = p
		}
		for name, explode := range map[string]bool{"X-Obj": false, "X-Exp": true} {
			if vs := r.Header.Values(name); len(vs) == 1 {
				var h obj
				if err := runtime.BindStyledParameterWithOptions("simple", name, vs[0], &h, runtime.BindStyledParameterOptions{ParamLocation: runtime.ParamLocationHeader, Explode: explode, Type: "object"}); err != nil {
					http.Error(w, err.Error(), 400)
					return
				}
				got = &h
			}
		}
	})
	for _, c := range []struct{ query, header, field string }{
		{"o=" + url.QueryEscape("lang,en"), "", ""},
		{"", "X-Obj: lang,fr", ""},
		{"", "X-Exp: lang=fr", ""},
		{"o=" + url.QueryEscape("lang,xx"), "", "query.o.lang"},
		{"o=" + url.QueryEscape("lang,en,LANG,xx"), "", "query.o.LANG"},
		{"o=" + url.QueryEscape("lang,en,lang,xx"), "", "query.o.lang"},
		{"o=" + url.QueryEscape(`lang,en,l\u0061ng,xx`), "", "query.o"},
		{"o=" + url.QueryEscape("LANG,xx"), "", "query.o.LANG"},
		{"p=" + url.QueryEscape(`lang,\u003cscript\u003e`), "", "query.p"},
		{"", "X-Obj: lang,en,Lang,xx", "header.X-Obj.Lang"},
		{"", "X-Exp: lang=en,Lang=xx", "header.X-Exp.Lang"},
		{"p=" + url.QueryEscape(`lang,"x"`), "", "query.p"},
	} {
		got = nil
		req := httptest.NewRequest(http.MethodGet, "/obj?"+c.query, nil)
		if name, value, ok := strings.Cut(c.header, ": "); ok {
			req.Header.Set(name, value)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		readAlike(t, "GET /obj?"+c.query+" "+c.header, w, c.field, got, got != nil && got.Lang != nil)
	}
}

// A form field given in the query beside a form body is refused also
// where an exploded object parameter takes names of its own
// (additionalProperties, the default): the handler reads the field from
// the query (r.FormValue), the validator took it for the object's.
func TestFormFieldInQueryBesideAnExplodedObject(t *testing.T) {
	got := "(not reached)"
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /notes:
    post:
      operationId: addNote
      security: []
      parameters:
        - {name: o, in: query, schema: {type: object, properties: {lang: {type: string}}}}
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              properties:
                title: {type: string, maxLength: 5}
                other: {type: string}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(w http.ResponseWriter, r *http.Request) { got = r.FormValue("title") })
	for _, c := range []struct{ query, field string }{
		{"lang=en&extra=1", ""},
		{"title=far+too+long", "query.title"},
	} {
		got = "(not reached)"
		req := httptest.NewRequest(http.MethodPost, "/notes?"+c.query, strings.NewReader("other=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if c.field == "" && w.Code != 200 || c.field != "" && !answered(w, 400, c.field) {
			t.Errorf("POST /notes?%s other=x: %d %s (the handler read title %q)", c.query, w.Code, w.Body, got)
		}
	}
}

// The same for an object written allOf: [$ref] (no type of its own, which
// the handler binds as a struct all the same), and for path parameters in
// the label and matrix styles, whose pairs were let through.
func TestStyledObjectsOfEveryShapeReadAlike(t *testing.T) {
	type obj struct {
		Lang *string `json:"lang,omitempty"`
	}
	var got *obj
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
components:
  schemas:
    Obj: {type: object, properties: {lang: {type: string, enum: [en, fr]}}}
paths:
  /all:
    get:
      operationId: allOp
      security: []
      parameters:
        - {name: X-All, in: header, schema: {allOf: [$ref: '#/components/schemas/Obj'], description: d}}
      responses: {"200": {description: ok}, "400": {description: no}}
  /l/{o}:
    get:
      operationId: labelOp
      security: []
      parameters:
        - {name: o, in: path, required: true, style: label, schema: {$ref: '#/components/schemas/Obj'}}
      responses: {"200": {description: ok}, "400": {description: no}}
  /m/{o}:
    get:
      operationId: matrixOp
      security: []
      parameters:
        - {name: o, in: path, required: true, style: matrix, explode: true, schema: {$ref: '#/components/schemas/Obj'}}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(w http.ResponseWriter, r *http.Request) {
		var h obj
		var err error
		switch {
		case strings.HasPrefix(r.URL.Path, "/l/"):
			err = runtime.BindStyledParameterWithOptions("label", "o", r.PathValue("o"), &h, runtime.BindStyledParameterOptions{ParamLocation: runtime.ParamLocationPath, Type: "object"})
		case strings.HasPrefix(r.URL.Path, "/m/"):
			err = runtime.BindStyledParameterWithOptions("matrix", "o", r.PathValue("o"), &h, runtime.BindStyledParameterOptions{ParamLocation: runtime.ParamLocationPath, Explode: true, Type: "object"})
		default:
			err = runtime.BindStyledParameterWithOptions("simple", "X-All", r.Header.Get("X-All"), &h, runtime.BindStyledParameterOptions{ParamLocation: runtime.ParamLocationHeader, Type: "object"})
		}
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got = &h
	})
	for _, c := range []struct{ path, header, field string }{
		{"/all", "lang,en", ""},
		{"/l/.lang,fr", "", ""},
		{"/m/;lang=fr", "", ""},
		{"/all", "lang,en,Lang,xx", "header.X-All.Lang"},
		{"/all", `lang,en,l\u0061ng,xx`, "header.X-All"},
		{"/l/.lang,en,Lang,xx", "", "path.o.Lang"},
		{"/l/.lang,en,lang,xx", "", "path.o.lang"},
		{"/m/;lang=en;Lang=xx", "", "path.o.Lang"},
	} {
		got = nil
		req := httptest.NewRequest(http.MethodGet, c.path, nil)
		if c.header != "" {
			req.Header.Set("X-All", c.header)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		readAlike(t, "GET "+c.path+" X-All: "+c.header, w, c.field, got, got != nil && got.Lang != nil)
	}
}

// An object in the spaceDelimited and pipeDelimited styles is split on its
// delimiter, and a map behind allOf (no type, no properties of its own)
// is an object too: both went through with a case variant or an escape.
func TestDelimitedObjectsAndMapsReadAlike(t *testing.T) {
	type obj struct {
		Lang *string `json:"lang,omitempty"`
	}
	var got *obj
	var tags map[string]string
	g := guarded(t, `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
components:
  schemas:
    Tags: {type: object, additionalProperties: {type: string, pattern: '^[^<>]*$'}}
paths:
  /s:
    get:
      operationId: spaceOp
      security: []
      parameters:
        - {name: o, in: query, style: spaceDelimited, explode: false, schema: {type: object, properties: {lang: {type: string, enum: [en, fr]}}}}
      responses: {"200": {description: ok}, "400": {description: no}}
  /p:
    get:
      operationId: pipeOp
      security: []
      parameters:
        - {name: o, in: query, style: pipeDelimited, explode: false, schema: {type: object, properties: {lang: {type: string, enum: [en, fr]}}}}
      responses: {"200": {description: ok}, "400": {description: no}}
  /t:
    get:
      operationId: tagsOp
      security: []
      parameters:
        - {name: X-Tags, in: header, schema: {allOf: [$ref: '#/components/schemas/Tags']}}
      responses: {"200": {description: ok}, "400": {description: no}}
`, func(w http.ResponseWriter, r *http.Request) {
		var err error
		switch r.URL.Path {
		case "/s":
			err = runtime.BindQueryParameterWithOptions("spaceDelimited", false, false, "o", r.URL.Query(), &got, runtime.BindQueryParameterOptions{Type: "object"})
		case "/p":
			err = runtime.BindQueryParameterWithOptions("pipeDelimited", false, false, "o", r.URL.Query(), &got, runtime.BindQueryParameterOptions{Type: "object"})
		default:
			err = runtime.BindStyledParameterWithOptions("simple", "X-Tags", r.Header.Get("X-Tags"), &tags, runtime.BindStyledParameterOptions{ParamLocation: runtime.ParamLocationHeader, Type: "object"})
		}
		if err != nil {
			http.Error(w, err.Error(), 400)
		}
	})
	for _, c := range []struct{ target, header, field string }{
		{"/s?o=lang%20en", "", ""},
		{"/p?o=lang|fr", "", ""},
		{"/t", "k,v", ""},
		{"/s?o=lang%20en%20Lang%20xx", "", "query.o.Lang"},
		{"/p?o=lang|en|Lang|xx", "", "query.o.Lang"},
		{"/t", `k,\u003cscript\u003e`, "header.X-Tags"},
	} {
		got, tags = nil, nil
		req := httptest.NewRequest(http.MethodGet, c.target, nil)
		if c.header != "" {
			req.Header.Set("X-Tags", c.header)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		var reached any
		if got != nil || tags != nil {
			reached = []any{got, tags}
		}
		readAlike(t, "GET "+c.target+" X-Tags: "+c.header, w, c.field, reached, reached != nil)
	}
}
