package conform_test

import (
	"net/http"
	"testing"

	"github.com/specguard/specguard/conform"
)

// README: no-credential wants "401 with one bare challenge per accepted
// scheme". A server that accepts a bearer token or an API key but
// challenges only for the bearer token (the client is never told an
// ApiKey is accepted, nor in which header) must fail the case.
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
