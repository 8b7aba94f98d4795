package guard_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

// A body that breaks a schema is a body finding, with its pointer, whatever
// the schema's name: openapi3filter's reason quotes it, and one named
// PageHeader or HttpStatus was reported as a header or status finding
// (helper-174).
func TestBodyOfASchemaNamedLikeAReason(t *testing.T) {
	for _, name := range []string{"PageHeader", "HttpStatus", "ContentType"} {
		doc := strings.ReplaceAll(`openapi: 3.0.3
info: {title: ref, version: "1"}
paths:
  /banner:
    get:
      operationId: getBanner
      security: []
      x-rate-limit: false
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/NAME'}
components:
  schemas:
    NAME:
      type: object
      required: [title]
      properties: {title: {type: string}}
`, "NAME", name)
		table, err := policy.Compile("ref.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		r := chi.NewRouter()
		r.Get("/banner", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"title":7}`))
		})
		g, reported := checking(t, table, r, guard.ResponsesReport)
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/banner", nil))
		got := strings.Join(reported(), "\n")
		if want := "getBanner 200 body /title: value must be a string"; got != want {
			t.Errorf("schema %s: reported %q, want %q", name, got, want)
		}
	}
}
