package guard

import (
	"context"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/policy"
)

const validateSpec = `
openapi: 3.0.3
info: {title: v, version: "1"}
paths:
  /posts/{id}/{lang}/{tag}:
    parameters:
      - {name: lang, in: path, required: true, schema: {type: string, enum: [en, fr, "\u00e9t\u00e9"]}}
      - {name: tag, in: path, required: true, schema: {type: string, minLength: 2, maxLength: 4}}
    get:
      operationId: getPost
      security: []
      x-rate-limit: false
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, minLength: 2, maxLength: 8, pattern: '^[A-Za-z0-9_\u00E9-]+$'}}
      responses: {'200': {description: ok}}
`

// FuzzPathValidation: the direct check of path parameters decides exactly
// as openapi3filter.ValidateRequest, and names the same fields with the
// same reasons, for any pair of values.
func FuzzPathValidation(f *testing.F) {
	table, err := policy.Compile("v.yaml", []byte(validateSpec))
	if err != nil {
		f.Fatal(err)
	}
	op := table.Operation("getPost")
	v := newOpValidation(table.Doc, op)
	if v.pathOnly == nil {
		f.Fatal("GET /posts/{id}/{lang}/{tag} should take the direct path")
	}
	for _, seed := range [][3]string{
		{"ab", "en", "go"}, {"a", "en", "go"}, {"abcdefghi", "fr", "go"}, {"ab cd", "de", "go"}, {"", "", ""},
		{"été", "été", "go"}, {"ab\x00", "en", "go"}, {"ab%20", "en", "go"}, {"\xff\xfe", "fr", "go"},
		{"éééééééé", "en", "go"}, {"ééééééééé", "en", "go"},
		// Lengths are counted as kin-openapi counts them (it means UTF-16 units,
		// but a decoded rune is never a surrogate: an emoji counts 1).
		{"ab", "en", "😀"}, {"ab", "en", "a😀"}, {"ab", "en", "ab😀"}, {"ab", "en", "abc😀"}, {"ab", "en", "\xed\xa0\x80"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, id, lang, tag string) {
		rctx := chi.NewRouteContext()
		rctx.URLParams.Add("lang", lang)
		rctx.URLParams.Add("id", id)
		rctx.URLParams.Add("tag", tag)
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = "/posts/" + id + "/" + lang + "/" + tag
		r.URL.RawPath = ""
		direct, done := v.validatePath(r, rctx)
		if !done {
			return // percent-encoded: openapi3filter decides
		}
		kin := openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
			Request: r, PathParams: map[string]string{"id": id, "lang": lang, "tag": tag}, Route: v.route, Options: validationOptions,
		})
		if (direct == nil) != (kin == nil) {
			t.Fatalf("id %q lang %q tag %q: direct %v, openapi3filter %v", id, lang, tag, direct, kin)
		}
		if direct != nil && !reflect.DeepEqual(fieldErrors(direct), fieldErrors(kin)) {
			t.Fatalf("id %q lang %q tag %q: direct says %+v, openapi3filter %+v", id, lang, tag, fieldErrors(direct), fieldErrors(kin))
		}
	})
}

// An operation without inputs has nothing to validate: it takes the direct
// path, which accepts what openapi3filter accepts (query strings and bodies
// the operation does not declare are not its inputs).
func TestNoInputsTakeTheDirectPath(t *testing.T) {
	table, err := policy.Compile("v.yaml", []byte(`
openapi: 3.0.3
info: {title: v, version: "1"}
paths:
  /me:
    get:
      operationId: getMe
      security: []
      x-rate-limit: false
      responses:
        '200': {description: ok}
`))
	if err != nil {
		t.Fatal(err)
	}
	v := newOpValidation(table.Doc, table.Operation("getMe"))
	if v.pathOnly == nil {
		t.Fatal("GET /me has no inputs: it should take the direct path")
	}
	for _, target := range []string{"/me", "/me?limit=abc", "/me?x=%zz"} {
		r := httptest.NewRequest("GET", target, strings.NewReader(`{"not":"declared"}`))
		err, done := v.validatePath(r, chi.NewRouteContext())
		if !done || err != nil {
			t.Errorf("%s: done %v, err %v; want done and valid", target, done, err)
		}
		if err := openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
			Request: r, Route: v.route, Options: validationOptions,
		}); err != nil {
			t.Errorf("%s: openapi3filter refuses what the direct path accepts: %v", target, err)
		}
	}
}
