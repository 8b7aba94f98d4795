package conform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/specguard/specguard/conform"
)

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
	table := compiled(t, doc)
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
	_, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"method"}, Credentials: []conform.Credential{
		{Name: "tok", Scheme: "bearer", Value: "good"},
		{Name: "k", Scheme: "key", From: &conform.Fetch{URL: "/api-keys", With: "tok", Body: map[string]any{"name": "x"}, Field: "key"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

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
	table := compiled(t, doc)
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
		_, err := conform.Run(context.Background(), table, conform.Options{Base: base.URL, Only: []string{"method"}, Credentials: []conform.Credential{
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

// The text report is one line per case: a problem type with a line break
// (or a terminal's escape) in a server's answer added a line that read as
// a PASS (helper-177).
func TestTextReportOneLinePerCase(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: [{bearer: []}]
      x-rate-limit: false
      responses:
        '200': {description: ok}
        '401': {description: no}
        '403': {description: no}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`
	srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"type":"x\u001b[2K\nPASS  GET /admin (deleteEverything)  scope:bearer:admin: 403 insufficient_scope","status":403}`))
	})
	rep := runAgainst(t, doc, srv, nil, "no-credential")
	var b strings.Builder
	rep.WriteText(&b)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(rep.Results)+1 {
		t.Fatalf("%d results, %d lines:\n%s", len(rep.Results), len(lines), b.String())
	}
	if strings.ContainsRune(b.String(), 0x1b) {
		t.Errorf("the report holds an escape: %q", b.String())
	}
}

// An answer over the 1 MiB conform reads was checked cut, and failed as
// no JSON: its status and headers are checked, not its body (helper-177).
func TestLargeAnswerIsNotAViolation(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: []
      x-rate-limit: false
      responses:
        '200': {description: ok, content: {application/json: {schema: {type: array, items: {type: string}}}}}
`
	items := make([]string, 20000)
	for i := range items {
		items[i] = strings.Repeat("x", 100)
	}
	big, _ := json.Marshal(items) // about 2 MB
	srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/a" || r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(big)
	})
	rep := runAgainst(t, doc, srv, nil, "response")
	if rep.Failed != 0 {
		t.Fatalf("a %d-byte answer as declared: %s", len(big), verdicts(rep))
	}
	// Its status is still checked.
	teapot := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write(big)
	})
	rep = runAgainst(t, doc, teapot, nil, "response")
	if got := verdicts(rep); !strings.Contains(got, "response:418=fail (status 418 is not declared and there is no default") {
		t.Errorf("a %d-byte answer of an undeclared 418: %s", len(big), got)
	}
}

// A 401 to a request without credentials challenges every scheme the
// operation accepts, as the README says: one that never named the API
// key's header passed (helper-177).
func TestNoCredentialWantsAChallengePerScheme(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: [{bearer: []}, {key: []}]
      x-rate-limit: false
      responses:
        '200': {description: ok}
        '401': {description: no}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    key: {type: apiKey, in: header, name: X-Key}
`
	bearerOnly := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="x"`) // no ApiKey challenge
		w.WriteHeader(http.StatusUnauthorized)
	})
	rep := runAgainst(t, doc, bearerOnly, nil, "no-credential")
	for _, res := range rep.Results {
		if res.Case == "no-credential" && res.Verdict == conform.Pass {
			t.Fatalf("a 401 challenging only Bearer where an API key (X-Key) is accepted too passed: %s", verdicts(rep))
		}
	}
	both := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("WWW-Authenticate", `Bearer realm="x"`)
		w.Header().Add("WWW-Authenticate", `ApiKey realm="x", header="x-key"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	rep = runAgainst(t, doc, both, nil, "no-credential")
	for _, res := range rep.Results {
		if res.Case == "no-credential" && res.Verdict != conform.Pass {
			t.Errorf("a 401 challenging both schemes: %s", verdicts(rep))
		}
	}
}
