package docs_test

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/service/docs"
)

func handler(t *testing.T, spec []byte) http.Handler {
	t.Helper()
	table, err := policy.Compile("spec.yaml", spec)
	if err != nil {
		t.Fatal(err)
	}
	h, err := docs.New(table, spec)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(h http.Handler, method, path string) (*http.Response, string) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(w.Result().Body)
	return w.Result(), string(body)
}

func TestDocsRoutes(t *testing.T) {
	h := handler(t, testSpec)
	for _, tc := range []struct {
		path, contentType string
		status            int
		contains          string
	}{
		{"/docs", "", http.StatusMovedPermanently, ""},
		{"/docs/", "text/html; charset=utf-8", 200, `<script src="assets/swagger-ui-bundle.js"></script>`},
		{"/docs/init.js", "text/javascript; charset=utf-8", 200, `url: "openapi.yaml"`},
		{"/docs/openapi.yaml", "application/yaml", 200, "operationId: getMe"},
		{"/docs/policy", "text/html; charset=utf-8", 200, `<tr class="public" id="op-getJWKS">`},
		{"/docs/policy.css", "text/css; charset=utf-8", 200, "tr.protected"},
		{"/docs/assets/swagger-ui-bundle.js", "text/javascript; charset=utf-8", 200, "SwaggerUIBundle"},
		{"/docs/assets/swagger-ui.css", "text/css; charset=utf-8", 200, ".swagger-ui"},
		{"/docs/assets/nope.js", "", 404, ""},
		{"/docs/assets/", "", 404, ""},
		{"/docs/elsewhere", "", 404, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := get(h, "GET", tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.contentType != "" && resp.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.contentType)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			for k, want := range map[string]string{
				"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
	if resp, _ := get(h, "POST", "/docs/"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /docs/: %d, want 405", resp.StatusCode)
	}
	if resp, _ := get(h, "GET", "/docs"); resp.Header.Get("Location") != "/docs/" {
		t.Errorf("/docs redirects to %q", resp.Header.Get("Location"))
	}
	// The embedded assets have no modification time: told no-cache, a
	// browser fetched Swagger UI's bundle whole on every page. Each has
	// an ETag of its content, and a browser that has it gets a 304.
	for _, asset := range []string{"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} {
		resp, _ := get(h, "GET", asset)
		etag := resp.Header.Get("ETag")
		if len(etag) < 3 || etag[0] != '"' {
			t.Fatalf("%s: ETag %q, want one of its content", asset, etag)
		}
		req := httptest.NewRequest("GET", asset, nil)
		req.Header.Set("If-None-Match", etag)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("%s again with If-None-Match: %d, %d bytes; want 304 and none", asset, w.Code, w.Body.Len())
		}
	}
}

// testSpec is the credential operations' document plus one operation that
// admits anonymous callers.
var testSpec = []byte(strings.Replace(string(credentials.Fragment), "\npaths:\n", `
paths:
  /things:
    get:
      operationId: listThings
      security: [{bearerAuth: []}, {}]
      responses: {'200': {description: ok}}
  /things/{id}:
    delete:
      operationId: deleteThing
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      security: [{bearerAuth: []}]
      x-owner: true
      responses: {'204': {description: ok}}
`, 1))

// The policy page colours each operation by its access and lists every
// tier; it escapes what the spec says.
func TestPolicyPage(t *testing.T) {
	_, body := get(handler(t, testSpec), "GET", "/docs/policy")
	table, err := policy.Compile("api/openapi.yaml", testSpec)
	if err != nil {
		t.Fatal(err)
	}
	loginTier := table.Operation("login").Limits[0] // whatever the spec says it is
	for _, want := range []string{
		`<tr class="optional" id="op-listThings">`,
		`<tr class="protected" id="op-getMe">`,
		`<tr class="public" id="op-getJWKS">`,
		`<li>owner only: on the caller's own resource</li>`,
		`<li>` + html.EscapeString(loginTier.String()) + `</li>`,
		`<li>apiKeyAuth[users:admin] &#43; cookieAuth</li>`,
		`<li>token must be fresh (minted from a password)</li>`,
		`<td>moderator</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("policy page lacks %s", want)
		}
	}
	if got, want := strings.Count(body, `<tr class="`), len(spectest.Operations(t, testSpec)); got != want {
		t.Errorf("%d operation rows, want %d (every operation of the document)", got, want)
	}

	hostile := regexp.MustCompile(`(?m)^  title: .*$`).ReplaceAllString(string(testSpec), "  title: <script>alert(1)</script>")
	_, body = get(handler(t, []byte(hostile)), "GET", "/docs/policy")
	if strings.Contains(body, "<script>alert(1)") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the spec's title is not escaped")
	}
}

// TestPolicyPageListsProviders: the policy page says which outside tokens
// each openIdConnect scheme accepts.
func TestPolicyPageListsProviders(t *testing.T) {
	spec := []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /reports:
    get:
      operationId: listReports
      security: [{keycloak: [reports:read]}]
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    keycloak:
      type: openIdConnect
      openIdConnectUrl: https://sso.example.com/realms/acme/.well-known/openid-configuration
      x-audience: reports-api
`)
	resp, body := get(handler(t, spec), http.MethodGet, "/docs/policy")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	body = html.UnescapeString(body)
	for _, want := range []string{"Identity providers", "<td>keycloak</td>", "audience reports-api; issuers the discovery document's issuer", "keycloak[reports:read]"} {
		if !strings.Contains(body, want) {
			t.Errorf("the policy page lacks %q", want)
		}
	}
}
