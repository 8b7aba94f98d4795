package conform_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/policy"
)

// openDoc is an unsafe operation that admits anonymous callers or an API
// key.
const openDoc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    post:
      operationId: addThing
      security: [{}, {key: []}]
      x-rate-limit: false
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [title], properties: {title: {type: string}}}
      responses:
        '201': {description: made}
        '400': {description: bad, content: {application/problem+json: {schema: {type: object}}}}
        '401': {description: no}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
`

// On an operation open to anonymous callers, the malformed case's body
// breaks the schema: a server that takes a malformed key for none refuses
// the body (400) and fails the case; one that refuses the key with a
// challenge passes it.
func TestMalformedOnAnOpenOperation(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(openDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		checksKey bool
		want      string
	}{
		{"a server that ignores the key", false, conform.Fail},
		{"a server that refuses it", true, conform.Pass},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/things" || r.Method != http.MethodPost {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/problem+json")
			if k := r.Header.Get("X-API-Key"); c.checksKey && k != "" && k != "good" {
				w.Header().Set("WWW-Authenticate", `ApiKey realm="t", header="X-API-Key", error="invalid_request"`)
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"type":"invalid-request","title":"Malformed credentials","status":400}`))
				return
			}
			var body map[string]any
			if json.NewDecoder(r.Body).Decode(&body) != nil || body["title"] == nil {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"type":"invalid-request","title":"bad","status":400}`))
				return
			}
			w.WriteHeader(http.StatusCreated) // anyone, whatever key they send
		}))
		rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"malformed"}})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range rep.Results {
			if r.Case == "malformed:key" {
				found = true
				if r.Verdict != c.want {
					t.Errorf("%s: %s %s (%s), want %s", c.name, r.Case, r.Verdict, r.Detail, c.want)
				}
			}
		}
		if !found {
			t.Errorf("%s: no malformed:key case ran: %+v", c.name, rep.Results)
		}
	}
}

// keyDoc is an operation that needs an API key.
const keyDoc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things:
    post:
      operationId: addThing
      security: [{key: []}]
      x-rate-limit: false
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [title], properties: {title: {type: string}}}
      responses:
        '201': {description: made}
        '400': {description: bad, content: {application/problem+json: {schema: {type: object}}}}
        '401': {description: no}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
`

// A key made of an id and a secret with no dot between (k1_...): the
// forged case changes the secret, not the id, so a server that finds the
// key by its id alone fails it. A server that answers an unreadable key
// with a plain 400 (API keys have no standard challenge) refuses it.
func TestForgedAndMalformedKeys(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(keyDoc))
	if err != nil {
		t.Fatal(err)
	}
	const key = "k1_0123456789abcdefghijklmnopqrstuvwxyz"
	for _, c := range []struct {
		name          string
		checksSecret  bool
		forged, plain string
	}{
		{"a server that finds the key by its id alone", false, conform.Fail, conform.Pass},
		{"a server that checks the secret", true, conform.Pass, conform.Pass},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := r.Header.Get("X-API-Key")
			switch {
			case r.URL.Path != "/things" || r.Method != http.MethodPost:
				http.NotFound(w, r)
			case len(k) < 3 || k[:3] != "k1_":
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusBadRequest) // unreadable: a plain 400
				_, _ = w.Write([]byte(`{"type":"bad-key","title":"Unreadable API key","status":400}`))
			case c.checksSecret && k != key:
				w.Header().Set("WWW-Authenticate", `ApiKey realm="t", header="X-API-Key"`)
				w.WriteHeader(http.StatusUnauthorized)
			default:
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusBadRequest) // the case's body breaks the schema
				_, _ = w.Write([]byte(`{"type":"invalid","title":"bad","status":400,"errors":[{"field":"body.title","message":"missing"}]}`))
			}
		}))
		rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"malformed", "forged"},
			Credentials: []conform.Credential{{Name: "k", Scheme: "key", Value: key}}})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range rep.Results {
			got[r.Case] = r.Verdict + " (" + r.Detail + ")"
		}
		if v := got["forged:key"]; !strings.HasPrefix(v, c.forged) {
			t.Errorf("%s: forged:key %s, want %s", c.name, v, c.forged)
		}
		if v := got["malformed:key"]; !strings.HasPrefix(v, c.plain) {
			t.Errorf("%s: malformed:key %s, want %s", c.name, v, c.plain)
		}
	}
}
