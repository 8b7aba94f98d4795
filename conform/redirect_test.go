package conform_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/policy"
)

// conform followed redirects, to other hosts too, with the case's X-API-Key
// and cookies. A redirect is the server's answer: never followed.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var leaked atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "" || r.Header.Get("Cookie") != "" || r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		w.WriteHeader(200)
	}))
	defer elsewhere.Close()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	defer server.Close()
	table, err := policy.Compile("spec.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      security: [{key: []}, {cookie: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}, '401': {description: no}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
    cookie: {type: apiKey, in: cookie, name: sid}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: server.URL, Client: &http.Client{},
		Credentials: []conform.Credential{{Name: "k", Scheme: "key", Value: "sg_secret"}, {Name: "c", Scheme: "cookie", Value: "session-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := leaked.Load(); n != 0 {
		t.Errorf("%d requests carried a credential to the host the server redirected to", n)
	}
	if rep.Failed == 0 {
		t.Errorf("a server answering 302 to everything passed: %+v", rep)
	}
}
