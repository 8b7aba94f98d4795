package guard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/policy"
)

const dispatchSpec = `
openapi: 3.0.3
info: {title: dispatch, version: "1"}
security: [{}]
x-rate-limit: false
paths:
  /items:
    get: {operationId: listItems, responses: {'200': {description: ok}}}
    post: {operationId: addItem, responses: {'200': {description: ok}}}
  /items/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get: {operationId: getItem, responses: {'200': {description: ok}}}
  /items/{id}/tags/{tag}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
      - {name: tag, in: path, required: true, schema: {type: string}}
    put: {operationId: tagItem, responses: {'200': {description: ok}}}
  /sub/{x}:
    parameters: [{name: x, in: path, required: true, schema: {type: string}}]
    get: {operationId: getSub, responses: {'200': {description: ok}}}
`

// seen is what a handler can read of how it was routed.
type seen struct {
	Pattern, RoutePattern, RouteMethod, RoutePath string
	Keys, Values, PathValues, URLParams           []string
	Routes                                        bool // the route context names a router
}

// dispatchRouter is the document's router; every handler writes what it
// saw.
func dispatchRouter() chi.Router {
	see := func(w http.ResponseWriter, r *http.Request) {
		rc := chi.RouteContext(r.Context())
		s := seen{Pattern: r.Pattern, RoutePattern: rc.RoutePattern(), RouteMethod: rc.RouteMethod, RoutePath: rc.RoutePath,
			Keys: rc.URLParams.Keys, Values: rc.URLParams.Values, Routes: rc.Routes != nil}
		for _, k := range []string{"id", "tag", "x"} {
			s.PathValues = append(s.PathValues, r.PathValue(k))
			s.URLParams = append(s.URLParams, chi.URLParam(r, k))
		}
		fmt.Fprintf(w, "%#v", s)
	}
	r := chi.NewRouter()
	r.Get("/items", see)
	r.Post("/items", see)
	r.Get("/items/{id}", see)
	r.Put("/items/{id}/tags/{tag}", see)
	r.Route("/sub", func(r chi.Router) { r.Get("/{x}", see) })
	return r
}

// TestRunIsTheRoutersDispatch: a handler the guard calls itself (a route
// of the router's own) sees exactly what it sees when chi's router routes
// the request, and so does one of a subrouter (which the router routes)
// and every handler behind a guard mounted in a parent router.
func TestRunIsTheRoutersDispatch(t *testing.T) {
	table, err := policy.Compile("dispatch.yaml", []byte(dispatchSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, validate := range []bool{true, false} {
		var opts []Option
		if !validate {
			opts = append(opts, WithoutRequestValidation())
		}
		g, err := New(table, dispatchRouter(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		// The router's own routes are called directly; the subrouter's not.
		for _, route := range []string{"GET /items", "POST /items", "GET /items/{id}", "PUT /items/{id}/tags/{tag}", "GET /sub/{x}"} {
			method, pattern, _ := strings.Cut(route, " ")
			st := g.operation(method, pattern)
			if st == nil {
				t.Fatalf("%s: no operation", route)
			}
			if direct := st.handler != nil; direct == strings.HasPrefix(pattern, "/sub/") {
				t.Errorf("%s: called directly %v", route, direct)
			}
		}
		bareParent, guardedParent := chi.NewRouter(), chi.NewRouter()
		bareParent.Mount("/api", dispatchRouter())
		guardedParent.Mount("/api", g)
		for _, tc := range []struct {
			guarded, bare http.Handler
			prefix        string
		}{
			{g, dispatchRouter(), ""},
			{guardedParent, bareParent, "/api"},
		} {
			for _, req := range []string{"GET /items", "POST /items", "GET /items/42", "GET /items/a%2Fb", "PUT /items/7/tags/red", "GET /sub/y"} {
				method, path, _ := strings.Cut(req, " ")
				want, got := httptest.NewRecorder(), httptest.NewRecorder()
				tc.bare.ServeHTTP(want, httptest.NewRequest(method, tc.prefix+path, nil))
				tc.guarded.ServeHTTP(got, httptest.NewRequest(method, tc.prefix+path, nil))
				if got.Code != 200 || want.Code != 200 {
					t.Fatalf("%s %s%s: status %d guarded, %d bare", method, tc.prefix, path, got.Code, want.Code)
				}
				if got.Body.String() != want.Body.String() {
					t.Errorf("%s %s%s (validation %v): the handler saw\n%s\nbehind the guard, and\n%s\nbehind chi alone", method, tc.prefix, path, validate, got.Body, want.Body)
				}
			}
		}
	}
}

// wrapped is a chi.Router of one's own whose ServeHTTP does more than
// route: the guard must leave every request to it.
type wrapped struct {
	*chi.Mux
	served int
}

func (w *wrapped) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.served++
	w.Mux.ServeHTTP(rw, r)
}

func TestRouterOfOnesOwnRoutes(t *testing.T) {
	table, err := policy.Compile("dispatch.yaml", []byte(dispatchSpec))
	if err != nil {
		t.Fatal(err)
	}
	w := &wrapped{Mux: dispatchRouter().(*chi.Mux)}
	g, err := New(table, w)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("GET", "/items/42", nil))
	if rec.Code != 200 || w.served != 1 {
		t.Errorf("GET /items/42: status %d, the router's ServeHTTP ran %d times; want 200 and once", rec.Code, w.served)
	}
}
