package security

import (
	"context"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/policy"
)

const validateSpec = `
openapi: 3.0.3
info: {title: v, version: "1"}
paths:
  /posts/{id}/{lang}:
    parameters:
      - {name: lang, in: path, required: true, schema: {type: string, enum: [en, fr, "\u00e9t\u00e9"]}}
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
		f.Fatal("GET /posts/{id}/{lang} should take the direct path")
	}
	for _, seed := range [][2]string{
		{"ab", "en"}, {"a", "en"}, {"abcdefghi", "fr"}, {"ab cd", "de"}, {"", ""}, {"été", "été"},
		{"ab\x00", "en"}, {"ab%20", "en"}, {"\xff\xfe", "fr"}, {"éééééééé", "en"}, {"ééééééééé", "en"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, id, lang string) {
		rctx := chi.NewRouteContext()
		rctx.URLParams.Add("lang", lang)
		rctx.URLParams.Add("id", id)
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = "/posts/" + id + "/" + lang
		r.URL.RawPath = ""
		direct, done := v.validatePath(r, rctx)
		if !done {
			return // percent-encoded: openapi3filter decides
		}
		kin := openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
			Request: r, PathParams: map[string]string{"id": id, "lang": lang}, Route: v.route, Options: validationOptions,
		})
		if (direct == nil) != (kin == nil) {
			t.Fatalf("id %q lang %q: direct %v, openapi3filter %v", id, lang, direct, kin)
		}
		if direct != nil && !reflect.DeepEqual(fieldErrors(direct), fieldErrors(kin)) {
			t.Fatalf("id %q lang %q: direct says %+v, openapi3filter %+v", id, lang, fieldErrors(direct), fieldErrors(kin))
		}
	})
}
