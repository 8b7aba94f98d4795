package conform_test

import (
	"bytes"
	"context"
	"encoding/hex"
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

// keyDoc is openDoc's operation needing an API key, anonymous callers not
// admitted.
var keyDoc = strings.Replace(openDoc, "security: [{}, {key: []}]", "security: [{key: []}]", 1)

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

// perOpDoc: two operations that need a key, two that declare no security.
const perOpDoc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      security: [{key: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}, '400': {description: bad}, '401': {description: no}}
  /b:
    get:
      operationId: getB
      security: [{key: []}]
      x-rate-limit: false
      responses: {'200': {description: ok}, '400': {description: bad}, '401': {description: no}}
  /pub1:
    get:
      operationId: getPub1
      security: []
      x-rate-limit: false
      responses: {'200': {description: ok}, '401': {description: no}}
  /pub2:
    get:
      operationId: getPub2
      security: []
      x-rate-limit: false
      responses: {'200': {description: ok}, '401': {description: no}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
`

// forged: and ignored: run on every operation (a server may check the
// secret, or read credentials, on some only); a hex secret is changed to
// another hex digit, not to the same one in another case; a 400 naming
// the credential's header refuses it.
func TestForgedAndIgnoredOnEveryOperation(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(perOpDoc))
	if err != nil {
		t.Fatal(err)
	}
	const key = "0123456789abcdef01234567a9abcdef" // three quarters in: an a
	want, _ := hex.DecodeString(key)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.Header.Get("X-API-Key")
		got, err := hex.DecodeString(k)
		switch {
		case r.URL.Path == "/pub1":
			w.WriteHeader(http.StatusOK)
		case r.URL.Path == "/pub2" && k != "":
			w.WriteHeader(http.StatusUnauthorized) // reads a credential where none is declared
		case r.URL.Path == "/pub2":
			w.WriteHeader(http.StatusOK)
		case k == "":
			w.Header().Set("WWW-Authenticate", `ApiKey realm="t", header="X-API-Key"`)
			w.WriteHeader(http.StatusUnauthorized)
		case err != nil:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"type":"invalid","title":"bad","status":400,"errors":[{"field":"header.X-API-Key","message":"not hex"}]}`))
		case r.URL.Path == "/b" && len(got) > 0 || bytes.Equal(got, want): // b: any readable key
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("WWW-Authenticate", `ApiKey realm="t", header="X-API-Key"`)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"malformed", "forged", "ignored"},
		Credentials: []conform.Credential{{Name: "k", Scheme: "key", Value: key}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rep.Results {
		got[r.Operation+" "+r.Case] = r.Verdict
	}
	for c, v := range map[string]string{
		"getA forged:key": conform.Pass, "getB forged:key": conform.Fail,
		"getPub1 ignored:key": conform.Pass, "getPub2 ignored:key": conform.Fail,
		"getA malformed:key": conform.Pass,
	} {
		if got[c] != v {
			t.Errorf("%s: %q, want %s (all: %v)", c, got[c], v, got)
		}
	}
}
