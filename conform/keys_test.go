package conform_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/policy"
)

// keysDoc: tokens make API keys and revoke them; /me takes either.
const keysDoc = `openapi: 3.0.3
info: {title: t, version: "1"}
security: [{bearer: []}]
x-rate-limit: false
paths:
  /me:
    get:
      operationId: getMe
      x-credential: me
      security: [{bearer: []}, {key: []}]
      responses: {'200': {description: ok}, '401': {description: no}}
  /auth/logout:
    post:
      operationId: logout
      x-credential: logout
      responses: {'204': {description: out}, '401': {description: no}}
  /api-keys:
    post:
      operationId: createKey
      x-credential: create-api-key
      requestBody: {required: true, content: {application/json: {schema: {type: object}}}}
      responses: {'201': {description: made}, '401': {description: no}}
  /api-keys/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    delete:
      operationId: deleteKey
      x-credential: delete-api-key
      responses: {'204': {description: revoked}, '401': {description: no}, '404': {description: none}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    key: {type: apiKey, in: header, name: X-API-Key}
`

// The maker of a file's API key is marked retire, and revoked:logout ends
// it: the cleanup revokes the key with another live credential of the
// account (it used the ended token: 401, the key live; helper-109).
func TestKeysTheFileMadeRevokedAfterTheirMakerEnded(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(keysDoc))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	tokens := map[string]bool{"tok-1": true, "tok-2": true}
	keys := map[string]bool{} // id -> live
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		key := r.Header.Get("X-API-Key")
		authed := tokens[tok] || key != "" && keys[strings.TrimPrefix(key, "secret-")]
		if !authed {
			w.Header().Set("WWW-Authenticate", `Bearer realm="t"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/me":
			_, _ = w.Write([]byte(`{"id":"alice"}`))
		case r.URL.Path == "/auth/logout":
			delete(tokens, tok)
			w.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/api-keys":
			n++
			id := "k" + strconv.Itoa(n)
			keys[id] = true
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"` + id + `","key":"secret-` + id + `"}`))
		case strings.HasPrefix(r.URL.Path, "/api-keys/"):
			id := strings.TrimPrefix(r.URL.Path, "/api-keys/")
			if !keys[id] {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			keys[id] = false
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"revoked:logout"},
		Credentials: []conform.Credential{
			{Name: "user", Scheme: "bearer", Value: "tok-1", Retire: true},
			{Name: "user2", Scheme: "bearer", Value: "tok-2"},
			{Name: "k", Scheme: "key", From: &conform.Fetch{URL: "/api-keys", With: "user", Body: map[string]any{"name": "x"}, Field: "key"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(verdicts(rep), "revoked:logout=pass") || tokens["tok-1"] {
		t.Fatalf("the maker was not logged out by the case: %s", verdicts(rep))
	}
	if live, made := keys["k1"]; live || !made {
		t.Errorf("the key the credentials file made (k1; made %v) is live after the run: its maker was logged out", made)
	}
}
