package conform_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/policy"
)

// from.url is "a path on the server" (Fetch.URL), joined to --base as
// text: a url that is no path (here "@host:port/login") sends the login's
// body, a password, to another host than --base. It must be refused.
// A credential's from.url is a path on the server: "@host:port/login"
// sent the password to another host (helper-177).
func TestFetchURLStaysOnBase(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: [{bearer: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}, '401': {description: no}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`
	table, err := policy.Compile("spec.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"t"}`))
	}))
	defer other.Close()
	base := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer base.Close()
	for _, url := range []string{"@" + strings.TrimPrefix(other.URL, "http://") + "/login", "login"} {
		_, err = conform.Run(context.Background(), table, conform.Options{Base: base.URL, Only: []string{"method"}, Credentials: []conform.Credential{
			{Name: "u", Scheme: "bearer", From: &conform.Fetch{URL: url, Body: map[string]any{"email": "u@example.com", "password": "secret"}, Field: "access_token"}},
		}})
		if n := elsewhere.Load(); n > 0 {
			t.Fatalf("from.url %q sent %d request(s), the password among them, to %s, not --base %s (err %v)", url, n, other.URL, base.URL, err)
		}
		if want := fmt.Sprintf("credential 1 (u): from.url %q is not a path on the server: give one starting with /", url); err == nil || err.Error() != want {
			t.Errorf("from.url %q: %v, want %q", url, err, want)
		}
	}
}
