package guard_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

const shadowSpec = `
openapi: 3.0.3
info: {title: shadows, version: "1"}
x-rate-limit: false
security: [{partner: []}]
paths:
  /files/{name}:
    get:
      operationId: getFile
      parameters: [{name: name, in: path, required: true, schema: {type: string}}]
      responses: {'200': {description: ok}}
  /docs/{name}.json:
    get:
      operationId: getDoc
      parameters: [{name: name, in: path, required: true, schema: {type: string}}]
      responses: {'200': {description: ok}}
  /static/manifest.json:
    get:
      operationId: manifest
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    partner: {type: http, scheme: bearer}
`

// A route named unguarded must not take requests of an operation: chi
// tries static text before a regexp, and a regexp before a plain
// parameter, so such a route would serve, unchecked, what the document
// guards.
func TestUnguardedRoutesTakeNoOperationsRequests(t *testing.T) {
	for _, c := range []struct {
		route string
		// refused: New names the operation whose requests it takes.
		refused string
		// free and guarded: a path the route serves unguarded, and one of
		// the operation's beside it.
		free, guarded string
		// mount: the route is the root of a router mounted here.
		mount string
	}{
		{route: "GET /files/{name:[a-z]+}", refused: "getFile"},
		{route: "GET /files/secret", refused: "getFile"},
		{route: "GET /{dir:fil.*}/{name}", free: "/filing/a", guarded: "/files/a"},
		{route: "GET /docs/a.json", refused: "getDoc"},
		{route: "GET /files/{name}/raw", free: "/files/a/raw", guarded: "/files/a"},
		{route: "GET /files/*", free: "/files/a/b", guarded: "/files/a"},
		{route: "GET /{dir}/readme", free: "/other/readme", guarded: "/files/readme"},
		{route: "GET /static/{file:.+}", free: "/static/app.js", guarded: "/static/manifest.json"},
		{route: "GET /files/{name:[0-9]+}/raw", free: "/files/1/raw", guarded: "/files/1"},
		{route: "POST /files/{name:[a-z]+}", guarded: "/files/a"},
		{route: "GET /files/", free: "/files/", guarded: "/files/a"},
		{route: "GET /docs/openapi.yaml", free: "/docs/openapi.yaml", guarded: "/docs/a.json"},
		{route: "GET /docs/{name}.yaml", free: "/docs/a.yaml", guarded: "/docs/a.json"},
		{route: "GET /files/secret/", mount: "/files/secret", refused: "getFile"},
		{route: "GET /files/{x:[a-z]+}/", mount: "/files/{x:[a-z]+}", refused: "getFile"},
		{route: "GET /other/", mount: "/other", free: "/other/", guarded: "/files/other"},
		{route: "GET /other/", mount: "/other", free: "/other", guarded: "/files/other"},
		{route: "GET /docs/{name}.{ext}", refused: "getDoc"},
	} {
		t.Run(c.route, func(t *testing.T) {
			e := newEdgesFrom(t, shadowSpec)
			method, pattern, _ := strings.Cut(c.route, " ")
			free := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("free")) })
			if c.mount != "" {
				e.router.Route(c.mount, func(r chi.Router) { r.Method(method, "/", free) })
			} else {
				e.router.Method(method, pattern, free)
			}
			g, err := guard.New(e.table, e.router, guard.WithAuthenticator(policy.SchemeBearer, people), guard.WithUnguarded(c.route))
			if c.refused != "" {
				want := "unguarded route " + c.route + " would take requests of operation " + c.refused
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("guard.New = %v, want an error containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.free != "" {
				if w := serve(g, method, c.free); w.Code != http.StatusOK || w.Body.String() != "free" {
					t.Errorf("%s %s: %d %q, want the unguarded route's 200", method, c.free, w.Code, w.Body)
				}
			}
			if w := serve(g, "GET", c.guarded); w.Code != http.StatusUnauthorized {
				t.Errorf("GET %s without a credential: %d %q, want 401", c.guarded, w.Code, w.Body)
			}
		})
	}
}
