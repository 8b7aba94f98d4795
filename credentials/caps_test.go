package credentials_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/security"
)

// The 409 of a cap says how to get out, naming the operations where the
// document serves them: a document serving them under /v2 was told of
// /auth/refresh and DELETE /auth/sessions/{id}, which it does not serve.
func TestTooManyNamesTheDocumentsPaths(t *testing.T) {
	spec := bytes.ReplaceAll(credentials.Fragment, []byte("\n  /auth/"), []byte("\n  /v2/auth/"))
	spec = bytes.ReplaceAll(spec, []byte("\n  /api-keys"), []byte("\n  /v2/api-keys"))
	e := newEnv(t, spec, credentials.NewMemoryAccounts(nil), security.NewMemoryKeyRecords(nil), security.NewMemoryStore(nil), limits.NewMemoryStore(nil),
		credentials.WithMaxSessions(1), credentials.WithMaxAPIKeys(1))
	if err := e.svc.Seed(ctx, []credentials.SeedAccount{{Email: "root@example.com", Password: "root-password-1", Role: "admin"}}, nil); err != nil {
		t.Fatal(err)
	}
	login := `{"email":"root@example.com","password":"root-password-1"}`
	first := e.json("POST", "/v2/auth/login", login)
	if first.code != 200 {
		t.Fatalf("login under /v2: %d %s", first.code, first.raw)
	}
	access := first.body["access_token"].(string)
	if r := e.json("POST", "/v2/api-keys", `{"name":"a","scopes":["users:read"]}`, bearer(access)...); r.code != 201 {
		t.Fatalf("a key: %d %s", r.code, r.raw)
	}
	for _, c := range []struct {
		name, method, path, body string
		want                     []string
	}{
		{"logins", "POST", "/v2/auth/login", login, []string{"POST /v2/auth/refresh", "POST /v2/auth/logout", "POST /v2/auth/session", "DELETE /v2/auth/sessions/{id}", "POST /v2/auth/logout-all"}},
		{"API keys", "POST", "/v2/api-keys", `{"name":"b","scopes":["users:read"]}`, []string{"DELETE /v2/api-keys/{id}"}},
	} {
		var header []string
		if c.name == "API keys" {
			header = bearer(access)
		}
		r := e.json(c.method, c.path, c.body, header...)
		detail, _ := r.body["detail"].(string)
		if r.code != 409 {
			t.Errorf("%s past the cap: %d %s, want 409", c.name, r.code, r.raw)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(detail, w) {
				t.Errorf("%s: the 409 does not name %s: %q", c.name, w, detail)
			}
		}
		if strings.Contains(strings.ReplaceAll(detail, "/v2/", ""), " /auth/") || strings.Contains(strings.ReplaceAll(detail, "/v2/", ""), " /api-keys") {
			t.Errorf("%s: the 409 names a path the document does not serve: %q", c.name, detail)
		}
	}
}
