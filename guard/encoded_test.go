package guard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/oapi-codegen/runtime"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// encodedAuth: "Bearer ok" is alice with a:read a:admin; no header is none.
type encodedAuth struct{}

func (encodedAuth) Authenticate(_ context.Context, r *http.Request, _ *policy.Scheme) (*security.Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	if h == "Bearer ok" {
		return &security.Principal{Subject: "alice", Scopes: []string{"a:admin", "a:read"}}, nil
	}
	return nil, security.ErrInvalid
}

const encodedDoc = `openapi: 3.0.3
info: {title: encoded, version: "1"}
x-rate-limit: false
paths:
  /users/{id}:
    get:
      operationId: getUser
      security: []
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {'200': {description: ok}}
  /users/export:
    get:
      operationId: exportUsers
      security: [{oauth2: ["a:admin"]}]
      responses: {'200': {description: ok}}
  /files/{name}:
    get:
      operationId: getFile
      security: []
      parameters: [{name: name, in: path, required: true, schema: {type: string}}]
      responses: {'200': {description: ok}}
  /files/{name}.json:
    get:
      operationId: getFileJSON
      security: [{oauth2: ["a:admin"]}]
      parameters: [{name: name, in: path, required: true, schema: {type: string}}]
      responses: {'200': {description: ok}}
  /docs/{name}:
    get:
      operationId: getDoc
      security: [{oauth2: ["a:admin"]}]
      parameters: [{name: name, in: path, required: true, schema: {type: string}}]
      responses: {'200': {description: ok}}
  /docs/public:
    get:
      operationId: getPublicDoc
      security: []
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    oauth2:
      type: oauth2
      flows:
        password: {tokenUrl: /token, scopes: {"a:read": r, "a:admin": a}}
`

func encodedGuard(t *testing.T, doc string) http.Handler {
	t.Helper()
	table, err := policy.Compile("encoded.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	for _, op := range table.Operations() {
		id := op.ID
		r.Method(op.Method, op.Pattern, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			// bind every path parameter as oapi-codegen's chi wrapper does
			var vals []string
			rc := chi.RouteContext(req.Context())
			for _, k := range rc.URLParams.Keys {
				var v string
				_ = runtime.BindStyledParameterWithOptions("simple", k, chi.URLParam(req, k), &v,
					runtime.BindStyledParameterOptions{ParamLocation: runtime.ParamLocationPath, Required: true, Type: "string", ValueIsUnescaped: req.URL.RawPath == ""})
				vals = append(vals, k+"="+v)
			}
			_, _ = w.Write([]byte(id + " " + strings.Join(vals, ",")))
		}))
	}
	g, err := guard.New(table, r, guard.WithAuthenticator(policy.SchemeOAuth2, encodedAuth{}))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// The document's GET /users/export and GET /files/{name}.json require
// a:admin; the same URLs with an unreserved character percent-encoded
// (RFC 3986 6.2.2.2: equivalent) were served anonymously by the public
// template operations, whose handlers got the decoded value (helper-110).
// They are routed as the plain URLs are, by the guard and the router.
func TestEncodedUnreservedCharactersRouteAsPlain(t *testing.T) {
	g := encodedGuard(t, encodedDoc)
	for _, target := range []string{"/users/%65xport", "/users/%65%78port", "/files/secret%2Ejson", "/files/secret%2ejson", "/%75sers/export"} {
		w := httptest.NewRecorder()
		req := httptest.NewRequest("GET", target, nil)
		g.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s (path %s, which the document guards with a:admin): %d %s, want 401", target, req.URL.Path, w.Code, w.Body)
		}
		w = httptest.NewRecorder()
		req = httptest.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer ok")
		g.ServeHTTP(w, req)
		if w.Code != http.StatusOK || strings.HasPrefix(w.Body.String(), "getUser") || strings.HasPrefix(w.Body.String(), "getFile ") {
			t.Errorf("GET %s with a:admin: %d %s, want the guarded operation's handler", target, w.Code, w.Body)
		}
	}
	// Mounted on a parent router, which leaves the rest of the path as
	// written in its route context.
	parent := chi.NewRouter()
	parent.Mount("/api", g)
	for _, target := range []string{"/api/users/%65xport", "/api/files/secret%2Ejson"} {
		w := httptest.NewRecorder()
		parent.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s, mounted: %d %s, want 401", target, w.Code, w.Body)
		}
	}
	// A reserved character encoded stays as it is: %2F is no separator.
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("GET", "/users/a%2Fb", nil))
	if w.Code != http.StatusOK || w.Body.String() != "getUser id=a/b" {
		t.Errorf("GET /users/a%%2Fb: %d %s, want getUser with id a/b", w.Code, w.Body)
	}
}

// An encoded percent (%25) is data, not an escape: /users/%2565xport is
// getUser with id "%65xport", mounted under a parent router or not. Mounted,
// the parent's remaining path is already decoded once (Go writes no
// RawPath for it), and decoding it again routed /docs/%2570ublic to the
// public /docs/public (helper-111).
func TestEncodedPercentIsDataMountedOrNot(t *testing.T) {
	g := encodedGuard(t, encodedDoc)
	parent := chi.NewRouter()
	parent.Mount("/api", g)
	for _, c := range []struct {
		target string
		code   int
		body   string // what the handler's answer holds
	}{
		{"/users/%2565xport", 200, "getUser"},
		{"/users/%2541bc", 200, "id=%41bc"},
		{"/docs/%2570ublic", 401, ""},
	} {
		for _, mounted := range []bool{false, true} {
			target, h := c.target, http.Handler(g)
			if mounted {
				target, h = "/api"+target, parent
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
			if w.Code != c.code || !strings.Contains(w.Body.String(), c.body) {
				t.Errorf("anonymous GET %s (mounted %v): %d %s, want %d holding %q", target, mounted, w.Code, w.Body, c.code, c.body)
			}
		}
	}
}
