package conform_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/policy"
)

// A document whose delete-api-key operation takes the key's id in its
// query (DELETE /api-keys?id=...), not as a path parameter: policy.Compile
// accepts it, and a run whose credentials file made a key crashed in
// tidy (lastParam of a path without a parameter) instead of reporting.
// A credential operation whose path holds no parameter for the id (a
// document may put it in the query) crashed conform (a slice out of
// range) in the clean-up of a key it made; the call is now an error
// (helper-177).
func TestDeleteKeyWithoutPathParameter(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /api-keys:
    post:
      operationId: createKey
      x-credential: create-api-key
      security: [{bearer: []}]
      x-rate-limit: false
      responses: {'201': {description: made}, '401': {description: no}}
    delete:
      operationId: deleteKey
      x-credential: delete-api-key
      security: [{bearer: []}]
      x-rate-limit: false
      parameters: [{name: id, in: query, required: true, schema: {type: string}}]
      responses: {'204': {description: gone}, '401': {description: no}}
  /b:
    get:
      operationId: getB
      security: [{key: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}, '401': {description: no}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    key: {type: apiKey, in: header, name: X-Key}
`
	table, err := policy.Compile("spec.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Header.Get("Authorization") == "Bearer good" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"k1","key":"sg_k1.secret"}`))
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("conform.Run panicked: %v", p)
		}
	}()
	_, err = conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"method"}, Credentials: []conform.Credential{
		{Name: "tok", Scheme: "bearer", Value: "good"},
		{Name: "k", Scheme: "key", From: &conform.Fetch{URL: "/api-keys", With: "tok", Body: map[string]any{"name": "x"}, Field: "key"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
}
