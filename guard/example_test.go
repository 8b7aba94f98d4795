package guard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// exampleSpec is a service of its own: one public operation, and one that
// needs an API key, at most two calls a minute per caller.
const exampleSpec = `
openapi: 3.0.3
info: {title: notes, version: "1"}
paths:
  /health:
    get:
      operationId: health
      security: []
      x-rate-limit: false
      responses: {'200': {description: ok}}
  /notes:
    get:
      operationId: listNotes
      security: [{apiKey: []}]
      x-rate-limit:
        - {name: per-key, limit: 2, window: 1m, key: principal, who: authenticated}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    apiKey: {type: apiKey, in: header, name: X-Notes-Key}
`

// keyring is an Authenticator of the service's own: a fixed table of keys.
type keyring map[string]*security.Principal

func (k keyring) Authenticate(_ context.Context, r *http.Request, s *policy.Scheme) (*security.Principal, error) {
	v := r.Header.Get(s.Param)
	if v == "" {
		return nil, nil // no credential: this alternative is not satisfied
	}
	p, ok := k[v]
	if !ok {
		return nil, fmt.Errorf("%w: unknown key", security.ErrInvalid)
	}
	return p, nil
}

func ExampleNew() {
	table, err := policy.Compile("notes.yaml", []byte(exampleSpec))
	if err != nil {
		panic(err)
	}
	r := chi.NewRouter()
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	r.Get("/notes", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "notes of ", security.FromContext(r.Context()).Subject)
	})
	g, err := guard.New(table, r,
		guard.WithAuthenticator(policy.SchemeAPIKeyHeader, keyring{
			"k-alice": {Subject: "alice", Credentials: []security.Credential{security.NewCredential(security.KindAPIKey, "alice-1")}},
		}),
		guard.WithLimiter(limits.New(limits.NewMemoryStore(nil))),
	)
	if err != nil {
		panic(err)
	}

	call := func(method, path, key string) {
		req := httptest.NewRequest(method, path, nil)
		if key != "" {
			req.Header.Set("X-Notes-Key", key)
		}
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		fmt.Println(w.Code, strings.TrimSpace(firstLine(w)))
	}
	call("GET", "/health", "")
	call("GET", "/notes", "")
	call("GET", "/notes", "k-mallory")
	call("GET", "/notes", "k-alice")
	call("GET", "/notes", "k-alice")
	call("GET", "/notes", "k-alice")
	call("DELETE", "/notes", "k-alice")
	call("GET", "/nowhere", "")
	// Output:
	// 200 ok
	// 401 ApiKey realm="specguard", header="X-Notes-Key"
	// 401 ApiKey realm="specguard", header="X-Notes-Key", error="invalid_token", error_description="invalid credentials: unknown key"
	// 200 notes of alice
	// 200 notes of alice
	// 429 retry after 30s; violated: per-key
	// 405 allow: GET, HEAD
	// 404 urn:specguard:problem:not-found
}

// firstLine sums up a response: its body, or what its error says.
func firstLine(w *httptest.ResponseRecorder) string {
	h := w.Header()
	switch w.Code {
	case http.StatusUnauthorized:
		return h.Get("WWW-Authenticate")
	case http.StatusTooManyRequests:
		return "retry after " + h.Get("Retry-After") + "s; violated: " + between(w.Body.String(), `"violated-policies":["`, `"`)
	case http.StatusMethodNotAllowed:
		return "allow: " + h.Get("Allow")
	case http.StatusNotFound:
		return between(w.Body.String(), `"type":"`, `"`)
	}
	return w.Body.String()
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}
