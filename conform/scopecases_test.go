package conform_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/specguard/specguard/conform"
)

// runAgainst runs the cases only selects of doc, with creds, against h.
func runAgainst(t *testing.T, doc string, h http.Handler, creds []conform.Credential, only ...string) *conform.Report {
	t.Helper()
	table := compiled(t, doc)
	srv := httptest.NewServer(h)
	defer srv.Close()
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Credentials: creds, Only: only})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

const scopesDoc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security:
        - oauth: [a]
        - oauth: [b]
        - key: [admin]
        - key: []
          other: []
      x-rate-limit: false
      responses:
        '200': {description: ok}
        '401': {description: no}
        '403': {description: no}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
    other: {type: apiKey, in: header, name: X-Other}
    oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: /t, scopes: {a: a, b: b, c: c, admin: admin}}}}
`

// scopesServer enforces scopesDoc for its credentials: t1 holds b, t2 c;
// the key k1 holds admin, the key k2 nothing, o is an other.
var scopesServer = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	key, other := r.Header.Get("X-Key"), r.Header.Get("X-Other")
	switch {
	case r.Header.Get("Authorization") == "Bearer t1", key == "k1", key == "k2" && other == "o":
		w.WriteHeader(http.StatusOK)
	case r.Header.Get("Authorization") == "Bearer t2", key == "k2":
		w.Header().Set("WWW-Authenticate", `Bearer realm="x", error="insufficient_scope"`)
		w.WriteHeader(http.StatusForbidden)
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}
})

// A scope case tries every credential that lacks the scope, not only the
// first: t1 lacks a but satisfies the alternative of b; t2 lacks a and
// satisfies none, and is the one to send.
func TestScopeCaseTriesEveryCandidate(t *testing.T) {
	rep := runAgainst(t, scopesDoc, scopesServer, []conform.Credential{
		{Name: "t1", Scheme: "oauth", Value: "t1", Scopes: []string{"b"}},
		{Name: "t2", Scheme: "oauth", Value: "t2", Scopes: []string{"c"}},
	}, "scope:oauth:a")
	if len(rep.Results) != 1 || rep.Results[0].Verdict != conform.Pass || !strings.Contains(rep.Results[0].Detail, "t2") {
		t.Fatalf("scope:oauth:a: %s, want a pass with t2", verdicts(rep))
	}
}

// A credential whose scopes the file does not give may satisfy an
// alternative of one scheme by itself (k1 holds admin): an and: case does
// not send it alone and call a 200 a failure.
func TestAndCaseLeavesCredentialsOfUnknownScopes(t *testing.T) {
	rep := runAgainst(t, scopesDoc, scopesServer, []conform.Credential{{Name: "k1", Scheme: "key", Value: "k1"}}, "and:")
	if rep.Failed != 0 {
		t.Fatalf("a key of unknown scopes sent alone: %s", verdicts(rep))
	}
}

// A malformed bearer token refused with a 400 that names the Authorization
// header but carries no challenge breaks RFC 6750 (section 3.1: the
// refusal says error="invalid_request"): the case fails, as the README
// says, where it used to pass.
func TestMalformedBearerWithoutAChallenge(t *testing.T) {
	doc := `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: [{bearer: []}]
      x-rate-limit: false
      responses:
        '200': {description: ok}
        '400': {description: bad}
        '401': {description: no}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`
	silent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"title":"bad","status":400,"errors":[{"field":"header.Authorization","message":"unreadable"}]}`))
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	rep := runAgainst(t, doc, silent, nil, "malformed:")
	if rep.Failed != 1 {
		t.Fatalf("a malformed bearer token refused without a challenge: %s, want a failure", verdicts(rep))
	}
}

// A credential whose scopes the file did not give (a session, a key) held
// none the cases could count on, and scopes the file gave were believed:
// a role granted one more scope after an edit of x-roles, and the browser
// session's stale list failed the scope case, blaming the service. Such a
// credential's scopes are read from the document's GET /me, and scopes
// given must agree with its answer.
func TestScopesOfACredentialAreAskedOfMe(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /me:
    get:
      operationId: getMe
      x-credential: me
      security: [{key: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}, '401': {description: no}}
  /a:
    get:
      operationId: getA
      security: [{key: [admin]}]
      x-rate-limit: false
      responses: {'200': {description: ok}, '401': {description: no}, '403': {description: no}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
    oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: /t, scopes: {admin: admin, b: b}}}}
`
	srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Key")
		switch {
		case key != "k1" && key != "k2":
			w.Header().Set("WWW-Authenticate", `ApiKey realm="x"`)
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/me" && key == "k1":
			_, _ = w.Write([]byte(`{"id":"u1","scopes":["admin"]}`))
		case r.URL.Path == "/me":
			_, _ = w.Write([]byte(`{"id":"u2","scopes":[]}`))
		case key == "k1":
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="x", error="insufficient_scope"`)
			w.WriteHeader(http.StatusForbidden)
		}
	})
	rep := runAgainst(t, doc, srv, []conform.Credential{
		{Name: "admin", Scheme: "key", Value: "k1"},
		{Name: "plain", Scheme: "key", Value: "k2"},
	}, "scope:key:admin")
	if len(rep.Results) != 1 || rep.Results[0].Verdict != conform.Pass || !strings.Contains(rep.Results[0].Detail, "plain") {
		t.Fatalf("scope:key:admin: %s, want a pass with plain, whose scopes GET /me gives", verdicts(rep))
	}
	table := compiled(t, doc)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	_, err := conform.Run(context.Background(), table, conform.Options{Base: ts.URL, Only: []string{"scope"},
		Credentials: []conform.Credential{{Name: "admin", Scheme: "key", Value: "k1", Scopes: []string{"admin", "b"}}}})
	if want := "scopes [admin b], but GET /me (getMe) answers [admin] for this credential: correct the file, or leave scopes out to take the answer's"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("scopes the file gives that GET /me does not: %v, want %q", err, want)
	}
}
