package guard_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/oapi-codegen/runtime"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

const escapedDoc = `openapi: 3.0.3
info: {title: escaped, version: "1"}
paths:
  /files/{name}:
    get:
      operationId: getFile
      security: []
      x-rate-limit: false
      parameters:
        - {name: name, in: path, required: true, schema: {type: string, minLength: 3, pattern: '^[^/.]+$'}}
      responses: {'200': {description: ok}}
  /ids/{id}:
    get:
      operationId: getID
      security: []
      x-rate-limit: false
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, pattern: '^[A-Za-z0-9_-]+$'}}
      responses: {'200': {description: ok}}
  /raw/{id}:
    get:
      operationId: getRaw
      security: []
      x-rate-limit: false
      parameters:
        - {name: id, in: path, required: true, schema: {type: string, pattern: '^[A-Za-z0-9_-]+$'}}
        - {name: q, in: query, schema: {type: string}}
      responses: {'200': {description: ok}}
`

// A path parameter escaped otherwise than Go would escape it ("%2F",
// "%2e", "%41") reaches chi's route still escaped, and oapi-codegen's
// binding unescapes it for the handler. It was validated escaped:
// "%2e%2e%2fetc" passed a pattern that the "../etc" the handler got
// fails. Both forms are validated now, the one the binding hands on and
// the one chi.URLParam does.
func TestEscapedPathParametersValidatedAsHandled(t *testing.T) {
	table, err := policy.Compile("escaped.yaml", []byte(escapedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/files/{name}", func(w http.ResponseWriter, req *http.Request) {
		var name string // bound as oapi-codegen's chi server binds it
		if err := runtime.BindStyledParameterWithOptions("simple", "name", chi.URLParam(req, "name"), &name,
			runtime.BindStyledParameterOptions{ParamLocation: runtime.ParamLocationPath, Required: true, Type: "string", ValueIsUnescaped: req.URL.RawPath == ""}); err != nil {
			http.Error(w, "bind", http.StatusTeapot)
			return
		}
		_, _ = w.Write([]byte(name))
	})
	// A handler reading chi.URLParam is handed the escaped form: it is
	// validated too (/ids takes the guard's own check of path parameters,
	// /raw openapi3filter's, for its query parameter).
	raw := func(w http.ResponseWriter, req *http.Request) { _, _ = w.Write([]byte(chi.URLParam(req, "id"))) }
	r.Get("/ids/{id}", raw)
	r.Get("/raw/{id}", raw)
	g, err := guard.New(table, r)
	if err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]int{
		// An unreserved character encoded is the character (RFC 3986
		// 6.2.2.2): the guard routes, and the router hands on, the path
		// with it decoded, so chi.URLParam reads "Abc" and that is what
		// is validated.
		"/ids/abc": 200, "/ids/%41bc": 200, "/ids/abc%2D": 200, "/raw/abc": 200, "/raw/%41bc": 200, "/raw/a%2Fb": 400, "/raw/abc?q=%41": 200,
		"/ids/%41b%2Fc": 400,
		"/files/abc":    200, "/files/a%20c": 200, "/files/%61bc": 200,
		"/files/..": 400, "/files/%2e%2e": 400, "/files/%2E%2E%2Fetc": 400, "/files/a%2Fb": 400, "/files/%41": 400,
	} {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != want {
			t.Errorf("GET %s: %d %q, want %d", target, w.Code, w.Body, want)
		}
	}
}
