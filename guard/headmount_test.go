package guard_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

const headMountSpec = `
openapi: 3.0.3
info: {title: headmount, version: "1"}
x-rate-limit: false
security: [{partner: []}]
paths:
  /orgs/{org}/repos:
    get:
      operationId: listRepos
      parameters: [{name: org, in: path, required: true, schema: {type: string}}]
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    partner: {type: http, scheme: bearer}
`

// An unguarded HEAD route must not take the HEAD requests of a GET
// operation, which the guard serves as that operation (WithUnguarded's
// doc). Beside a router mounted at a path with a parameter
// (Route("/orgs/{org}", ...)), chi tries a static or regexp segment of the
// parent router before the mount's parameter, so the unguarded route is
// not "outside" the mount at all. New took such a route, and HEAD of the
// protected path was answered 200 by the unguarded handler.
func TestUnguardedHeadBesideAParameterMount(t *testing.T) {
	for _, route := range []string{"HEAD /orgs/acme/repos", "HEAD /orgs/{o:[a-z]+}/repos"} {
		t.Run(route, func(t *testing.T) {
			g, err := guardBesideOrgsMount(t, route)
			if err != nil {
				if !strings.Contains(err.Error(), "would take the HEAD requests of operation listRepos") {
					t.Errorf("guard.New refused it, for another reason: %v", err)
				}
				return
			}
			// GET is guarded...
			if w := serve(g, "GET", "/orgs/acme/repos"); w.Code != http.StatusUnauthorized {
				t.Fatalf("GET /orgs/acme/repos without a credential: %d, want 401", w.Code)
			}
			// ...and HEAD of the same operation's path is not.
			w := serve(g, "HEAD", "/orgs/acme/repos")
			if w.Code != http.StatusUnauthorized {
				t.Errorf("guard.New accepted %s beside GET /orgs/{org}/repos (listRepos); HEAD /orgs/acme/repos without a credential: %d (X-Served-By %q), want 401 as listRepos, or New to refuse the route",
					route, w.Code, w.Header().Get("X-Served-By"))
			}
		})
	}
}

// A mount's static text comes before a parent's catch-all or parameter:
// beside a mount at /orgs/{org}, HEAD /* and /{a}/{b}/repos take none of
// its requests. Skipping every mount with a parameter (3e5cb01) refused
// them, a static site's HEAD /* beside such a mount among them.
func TestUnguardedCatchAllBesideAParameterMount(t *testing.T) {
	for _, route := range []string{"HEAD /*", "HEAD /{a}/{b}/repos"} {
		t.Run(route, func(t *testing.T) {
			g, err := guardBesideOrgsMount(t, route)
			if err != nil {
				t.Fatalf("guard.New refused a safe set-up: %v", err)
			}
			if w := serve(g, "HEAD", "/orgs/acme/repos"); w.Code != http.StatusUnauthorized {
				t.Errorf("HEAD /orgs/acme/repos: %d (X-Served-By %q), want 401", w.Code, w.Header().Get("X-Served-By"))
			}
			if w := serve(g, "HEAD", "/static/app/repos"); w.Header().Get("X-Served-By") != "free" {
				t.Errorf("HEAD /static/app/repos: %d, want the free route", w.Code)
			}
		})
	}
}

// guardBesideOrgsMount is guard.New of headMountSpec over a router that
// mounts listRepos at /orgs/{org} and serves route (a HEAD route) beside
// it, unguarded, answering X-Served-By: free.
func guardBesideOrgsMount(t *testing.T, route string) (*guard.Guard, error) {
	t.Helper()
	table, err := policy.Compile("headmount.yaml", []byte(headMountSpec))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Route("/orgs/{org}", func(r chi.Router) {
		r.Get("/repos", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("listRepos")) })
	})
	_, pattern, _ := strings.Cut(route, " ")
	r.Head(pattern, func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-Served-By", "free") })
	return guard.New(table, r, guard.WithAuthenticator(policy.SchemeBearer, people), guard.WithUnguarded(route))
}
