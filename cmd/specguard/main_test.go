package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/internal/speccli"
	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security/tokens"
)

var update = flag.Bool("update", false, "rewrite the lint golden files")

// cli runs the command line as main would, without exiting.
func cli(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func writeSpec(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// With no file, lint and routes read api/openapi.yaml in the current
// directory: a service's root.
func TestDocumentDefaultsToTheServiceRoot(t *testing.T) {
	fixture, err := os.ReadFile(routesFixture)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "api"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "api", "openapi.yaml"), fixture, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	_, errOut, err := cli(t, "lint")
	if err != nil || !strings.HasPrefix(errOut, "api/openapi.yaml: 0 errors, ") {
		t.Fatalf("lint in a service's root: err %v, summary %q", err, errOut)
	}
	out, _, err := cli(t, "routes")
	if err != nil || !strings.HasPrefix(out, "METHOD") {
		t.Fatalf("routes in a service's root: err %v\n%s", err, out)
	}
	t.Chdir(t.TempDir())
	if _, _, err := cli(t, "lint"); err == nil || !strings.Contains(err.Error(), "api/openapi.yaml") {
		t.Fatalf("lint where there is no document: %v", err)
	}
}

// specguard builds and runs while a service does not compile (between
// editing its document and writing the new handlers): it imports no app,
// no service runtime and no generated code; and a module that runs it
// (go run .../cmd/specguard keygen) gets no database driver
// or metrics library in its go.sum.
func TestSpecguardImportsNoApp(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, app := range []string{"github.com/specguard/specguard/server", "github.com/specguard/specguard/service",
			"github.com/specguard/specguard/api", "github.com/specguard/specguard/sqldb", "github.com/jackc/pgx",
			"modernc.org/sqlite", "github.com/pressly/goose", "github.com/prometheus/"} {
			if strings.HasPrefix(dep, app) {
				t.Errorf("specguard depends on %s", dep)
			}
		}
	}
}

// lintSpec has one operation per warning, each on a known line.
const lintSpec = `openapi: 3.0.3
info: { title: lint, version: "1" }
security: [ { bearer: [] } ]
x-rate-limit: { name: all, limit: 10, window: 1m, key: ip }
paths:
  /open:
    post:
      operationId: openWrite
      security: []
      responses: { '429': { $ref: '#/components/responses/Limited' }, '200': { description: ok } }
  /free:
    delete:
      operationId: freeDelete
      x-rate-limit: false
      responses: { '401': { description: no }, '200': { description: ok } }
  /scoped:
    get:
      operationId: scopedRead
      security: [ { oauth: [read] } ]
      responses: { '429': { $ref: '#/components/responses/Limited' }, '200': { description: ok } }
  /limited:
    get:
      operationId: limitedRead
      responses: { '401': { description: no }, '429': { description: slow down }, '200': { description: ok } }
  /silenced:
    post:
      operationId: silenced
      security: []
      x-rate-limit: false
      x-lint-ignore: [anonymous-write, unlimited-write, no-such-code]
      responses: { '200': { description: ok } }
  /cookie:
    post:
      operationId: cookieWrite
      security: [ { cookie: [] } ]
      responses: { '401': { description: no }, '429': { $ref: '#/components/responses/Limited' } }
  /covered:
    delete:
      operationId: covered
      security: [ { oauth: [read] } ]
      responses: { default: { description: any }, '429': { $ref: '#/components/responses/Limited' } }
  /things/{id}:
    get:
      operationId: validatedRead
      parameters: [ { name: id, in: path, required: true, schema: { type: string } } ]
      responses: { '401': { description: no }, '429': { $ref: '#/components/responses/Limited' }, '200': { description: ok } }
components:
  responses:
    Limited:
      description: too many
      headers:
        RateLimit: { schema: { type: string } }
        RateLimit-Policy: { schema: { type: string } }
        Retry-After: { schema: { type: integer } }
  securitySchemes:
    bearer: { type: http, scheme: bearer }
    cookie: { type: apiKey, in: cookie, name: sid }
    oauth:
      type: oauth2
      flows:
        password: { tokenUrl: /token, scopes: { read: r, write: w } }
`

func TestLintWarnings(t *testing.T) {
	path := writeSpec(t, lintSpec)
	out, errOut, err := cli(t, "lint", path)
	if err != nil {
		t.Fatalf("lint without --strict exits 1 on warnings only: %v", err)
	}
	want := []string{
		path + ":33: POST /cookie (cookieWrite): warning: declares no 403 response; the guard answers 403 when a cookie-authenticated request fails the CSRF check [auth-responses]",
		path + ":33: POST /cookie (cookieWrite): warning: declares no 400 response; the guard answers 400 to a malformed credential (an unreadable bearer token, RFC 6750 invalid_request; two API-key headers or session cookies) [auth-responses]",
		path + ":12: DELETE /free (freeDelete): warning: DELETE has x-rate-limit: false; nothing limits how often it can be called [unlimited-write]",
		path + ":12: DELETE /free (freeDelete): warning: declares no 400 response; the guard answers 400 to a malformed credential (an unreadable bearer token, RFC 6750 invalid_request; two API-key headers or session cookies) [auth-responses]",
		path + ":22: GET /limited (limitedRead): warning: declares no 400 response; the guard answers 400 to a malformed credential (an unreadable bearer token, RFC 6750 invalid_request; two API-key headers or session cookies) [auth-responses]",
		path + ":22: GET /limited (limitedRead): warning: its 429 response does not declare the RateLimit header [limit-responses]",
		path + ":22: GET /limited (limitedRead): warning: its 429 response does not declare the RateLimit-Policy header [limit-responses]",
		path + ":22: GET /limited (limitedRead): warning: its 429 response does not declare the Retry-After header [limit-responses]",
		path + ":7: POST /open (openWrite): warning: POST is reachable without credentials; make sure anonymous callers may do this [anonymous-write]",
		path + ":17: GET /scoped (scopedRead): warning: declares no 401 response; the guard answers 401 to missing or invalid credentials [auth-responses]",
		path + ":17: GET /scoped (scopedRead): warning: declares no 403 response; the guard answers 403 when the credential lacks a required scope [auth-responses]",
		path + ":17: GET /scoped (scopedRead): warning: declares no 400 response; the guard answers 400 to a malformed credential (an unreadable bearer token, RFC 6750 invalid_request; two API-key headers or session cookies) [auth-responses]",
		path + ":26: POST /silenced (silenced): warning: x-lint-ignore[2]: unknown warning code no-such-code [lint-ignore]",
		path + ":43: GET /things/{id} (validatedRead): warning: declares no 400 response; the guard answers 400 when its path parameter id does not match the document [validation-responses]",
		path + ":58: components.securitySchemes.oauth: warning: scope \"write\" is declared but no operation requires it [unused-scope]",
		path + ":57: components.securitySchemes.cookie: warning: the session cookie \"sid\" is not named __Host-..., so a sibling subdomain could set it, and the credential service refuses it; name it \"__Host-sid\" [cookie-prefix]",
	}
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lint output:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
	if wantSum := path + ": 0 errors, 16 warnings\n"; errOut != wantSum {
		t.Errorf("summary %q, want %q", errOut, wantSum)
	}
	if _, _, err := cli(t, "lint", "--strict", path); !errors.Is(err, errReported) {
		t.Errorf("lint --strict with warnings: err %v, want exit 1", err)
	}
}

func TestLintReportsErrorsAndWarningsTogether(t *testing.T) {
	spec := strings.Replace(lintSpec, "      operationId: limitedRead\n", "      operationId: limitedRead\n      security: [ { basic: [] } ]\n", 1)
	spec = strings.Replace(spec, "    bearer: { type: http, scheme: bearer }\n", "    bearer: { type: http, scheme: bearer }\n    basic: { type: http, scheme: basic }\n", 1)
	path := writeSpec(t, spec)
	out, errOut, err := cli(t, "lint", path)
	if !errors.Is(err, errReported) {
		t.Fatalf("lint of a spec with errors: err %v, want exit 1", err)
	}
	first := strings.SplitN(out, "\n", 2)[0]
	if want := path + `:22: GET /limited (limitedRead): security[0].basic: http scheme "basic" cannot be enforced; specguard verifies bearer tokens`; first != want {
		t.Errorf("first line %q, want %q", first, want)
	}
	if !strings.Contains(out, "[unused-scope]") || !strings.HasSuffix(errOut, ": 1 error, 15 warnings\n") {
		t.Errorf("warnings are still reported next to errors; output:\n%s%s", out, errOut)
	}
}

// lint says what a service would refuse to start on in the credential
// operations a document marks (credentials.CheckDocument, as the service
// runs it): lint said 0 errors where the server then stopped.
func TestLintChecksTheCredentialOperations(t *testing.T) {
	frag := string(credentials.Fragment)
	me := "      summary: The calling user, by any credential specguard accepts.\n      security:\n"
	for _, c := range []struct {
		name, old, new string
		want           string // "" when lint passes
	}{
		{"the fragment", "", "", ""},
		{"an operation for its caller open to anonymous callers", me, me + "        - {}\n",
			"GET /me (getMe): x-credential: me acts for its caller, so its security must require a credential"},
		{"a request property made required", "      required: [email, password]\n      properties:\n        email: { type: string, format: email, maxLength: 254 }\n",
			"      required: [email, password, name]\n      properties:\n        name: { type: string }\n        email: { type: string, format: email, maxLength: 254 }\n",
			"x-credential: register: requestBody.application/json: required"},
		{"no role named user", "        user: [apikeys:manage, account:manage]\n", "        member: [apikeys:manage, account:manage]\n",
			`x-credential: register gives new accounts the role "user", which the document's x-roles does not declare`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(frag, c.old) {
				t.Fatalf("the fragment has no %q", c.old)
			}
			path := writeSpec(t, strings.Replace(frag, c.old, c.new, 1))
			out, errOut, err := cli(t, "lint", path)
			if c.want == "" {
				if err != nil || !strings.HasSuffix(errOut, ": 0 errors, 0 warnings\n") {
					t.Errorf("lint: %v\n%s%s", err, out, errOut)
				}
				return
			}
			if !errors.Is(err, errReported) || !strings.HasPrefix(out, path+":") || !strings.Contains(out, c.want) || !strings.HasSuffix(errOut, ": 1 error, 0 warnings\n") {
				t.Errorf("lint: %v, want one error with %q:\n%s%s", err, c.want, out, errOut)
			}
		})
	}
}

func TestLintPublicSpecs(t *testing.T) {
	specs, err := filepath.Glob("testdata/public/*.yaml")
	if err != nil || len(specs) < 3 {
		t.Fatalf("fixtures: %v %v", specs, err)
	}
	for _, spec := range specs {
		t.Run(filepath.Base(spec), func(t *testing.T) {
			out, errOut, err := cli(t, "lint", spec)
			if !errors.Is(err, errReported) {
				t.Errorf("exit: %v, want 1 (none of these declares x-rate-limit)", err)
			}
			got := out + errOut
			golden := strings.TrimSuffix(spec, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("lint %s differs from %s (run with -update after checking):\n%s", spec, golden, got)
			}
		})
	}
}

func TestLintBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"lint", "/nonexistent/openapi.yaml"}, "open /nonexistent/openapi.yaml: no such file or directory"},
		{"two files", []string{"lint", "a.yaml", "b.yaml"}, `unexpected argument "b.yaml": give one spec file at most`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := cli(t, tc.args...)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	// An unknown flag is said once, in one line saying where the usage
	// is: the error that comes back is one main does not print again.
	for _, cmd := range []string{"lint", "routes", "keygen", "conform", "new", "fragment", "specsum"} {
		_, errOut, err := cli(t, cmd, "--sloppy")
		if !errors.Is(err, errReported) || strings.Count(errOut, "flag provided but not defined: -sloppy") != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--help") {
			t.Errorf("%s --sloppy: err %v, stderr %q; want errReported, the flag named once, in one line", cmd, err, errOut)
		}
	}
	path := writeSpec(t, "openapi: 3.0.3\ninfo: [not, a, mapping]\n")
	out, _, err := cli(t, "lint", path)
	if !errors.Is(err, errReported) || !strings.HasPrefix(out, path+": cannot load OpenAPI document: ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("unloadable spec: err %v, output %q", err, out)
	}
}

// Every operation of the document has a row.
func TestRoutesEveryOperation(t *testing.T) {
	out, _, err := cli(t, "routes", routesFixture)
	if err != nil {
		t.Fatal(err)
	}
	fixture, err := os.ReadFile(routesFixture)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ops := spectest.Operations(t, fixture)
	if !strings.HasPrefix(lines[0], "METHOD") || len(lines) != 1+len(ops) {
		t.Fatalf("want a header and %d operations (every operation of the document), got %d lines:\n%s", len(ops), len(lines), out)
	}
	for _, op := range ops {
		if !strings.Contains(out, " "+op.ID+" ") {
			t.Errorf("no row for %s", op.ID)
		}
	}
}

// routesFixture is a document of its own: what the rows say is checked on
// it, not on the example's document, which users edit.
const routesFixture = "testdata/routes.yaml"

func TestRoutesTable(t *testing.T) {
	out, _, err := cli(t, "routes", routesFixture)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, want := range [][]string{
		{"GET", "/posts/{id}", "getPost", "oauth2[posts:read] | apiKeyAuth[posts:read] | cookieAuth | anonymous allowed"},
		{"POST", "/auth/login", "login", "public", "login-ip: 5/15m by ip"},
		{"POST", "/admin/users/{id}/disable", "disableUser", "oauth2[users:admin] | apiKeyAuth[users:admin] + cookieAuth"},
		{"POST", "/api-keys", "createApiKey", "oauth2[apikeys:manage] (fresh token)"},
		{"GET", "/healthz", "healthz", "public", "unlimited"},
	} {
		found := false
		for _, l := range lines {
			fields := strings.Fields(l)
			if len(fields) > 2 && fields[0] == want[0] && fields[1] == want[1] {
				found = true
				for _, w := range want[2:] {
					if !strings.Contains(l, w) {
						t.Errorf("%s %s: %q lacks %q", want[0], want[1], l, w)
					}
				}
			}
		}
		if !found {
			t.Errorf("no row for %s %s", want[0], want[1])
		}
	}
}

func TestRoutesJSON(t *testing.T) {
	out, _, err := cli(t, "routes", "--format", "json", routesFixture)
	if err != nil {
		t.Fatal(err)
	}
	var routes []policy.Route
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		t.Fatal(err)
	}
	by := map[string]policy.Route{}
	for _, r := range routes {
		by[r.OperationID] = r
	}
	d := by["disableUser"]
	if len(d.Alternatives) != 2 || len(d.Alternatives[1].Schemes) != 2 ||
		d.Alternatives[1].Schemes[0].Scheme != "apiKeyAuth" || d.Alternatives[1].Schemes[1].Scheme != "cookieAuth" ||
		d.Alternatives[0].Schemes[0].Scopes[0] != "users:admin" || d.Access != policy.AccessProtected {
		t.Errorf("disableUser: %+v", d)
	}
	l := by["login"]
	if l.Access != policy.AccessPublic || len(l.Limits) != 1 || l.Limits[0].Limit != 5 || l.Limits[0].Window != "15m" || l.Limits[0].Key != "ip" || l.Limits[0].OnStoreError != "deny" {
		t.Errorf("login: %+v", l)
	}
	if p := by["listPosts"]; p.Access != policy.AccessOptional {
		t.Errorf("listPosts access %q", p.Access)
	}
	if c := by["createPost"]; len(c.Limits) != 2 || c.Limits[1].Shared != "post-writes" || c.Limits[1].Who != "authenticated" {
		t.Errorf("createPost limits: %+v", c.Limits)
	}
	if j := by["getJWKS"]; !j.Unlimited || len(j.Limits) != 0 {
		t.Errorf("getJWKS: %+v", j)
	}
}

func TestRoutesRefusesWhatServeWould(t *testing.T) {
	path := writeSpec(t, strings.Replace(lintSpec, "security: [ { bearer: [] } ]\n", "", 1))
	out, errOut, err := cli(t, "routes", path)
	if !errors.Is(err, errReported) || out != "" {
		t.Fatalf("routes on a spec that does not compile: err %v, stdout %q", err, out)
	}
	if !strings.Contains(errOut, path+":21: GET /limited (limitedRead): security: no security declared here or at the document root") {
		t.Errorf("stderr lacks the compile error:\n%s", errOut)
	}
	if _, _, err := cli(t, "routes", "--format", "xml"); err == nil || err.Error() != `--format "xml": want table or json` {
		t.Errorf("--format xml: %v", err)
	}
}

func TestKeygen(t *testing.T) {
	for _, alg := range tokens.KeyAlgorithms {
		t.Run(alg, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "signing.pem")
			out, _, err := cli(t, "keygen", "--alg", alg, "--out", path)
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("key file: %v, mode %v, want 0600", err, st.Mode())
			}
			data, _ := os.ReadFile(path)
			key, err := tokens.ParseKeyPEM(data)
			if err != nil || !key.CanSign() {
				t.Fatalf("the key file is not a signing key SPECGUARD_SIGNING_KEY_FILE reads: %v", err)
			}
			var printed struct {
				Kid string         `json:"kid"`
				Alg string         `json:"alg"`
				JWK map[string]any `json:"jwk"`
			}
			if err := json.Unmarshal([]byte(out), &printed); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, out)
			}
			if printed.Kid != key.ID || printed.Alg != key.Algorithm() {
				t.Errorf("printed kid %q alg %q, file holds %q %q", printed.Kid, printed.Alg, key.ID, key.Algorithm())
			}
			if alg == "hs256" {
				if printed.JWK != nil || strings.Contains(out, "\"k\"") {
					t.Errorf("an HMAC secret must never be printed as a JWK: %s", out)
				}
			} else if printed.JWK["kid"] != key.ID || printed.JWK["d"] != nil {
				t.Errorf("public JWK %v: want kid %s and no private part", printed.JWK, key.ID)
			}

			// An existing file is never overwritten.
			if _, _, err := cli(t, "keygen", "--alg", alg, "--out", path); err == nil || !strings.Contains(err.Error(), "file exists") {
				t.Errorf("second keygen to the same file: %v", err)
			}
			if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
				t.Error("the existing key file was changed")
			}
		})
	}
}

func TestKeygenToStdout(t *testing.T) {
	out, errOut, err := cli(t, "keygen")
	if err != nil {
		t.Fatal(err)
	}
	key, err := tokens.ParseKeyPEM([]byte(out))
	if err != nil || key.Algorithm() != "EdDSA" {
		t.Fatalf("stdout holds no Ed25519 key: %v", err)
	}
	if !strings.Contains(errOut, key.ID) {
		t.Errorf("stderr does not name the kid %s:\n%s", key.ID, errOut)
	}
	if _, _, err := cli(t, "keygen", "--alg", "rsa1024"); err == nil || err.Error() != `--alg: unknown algorithm "rsa1024": want one of ed25519, es256, rs256, hs256` {
		t.Errorf("bad --alg: %v", err)
	}
	// --out "$KEYFILE" with the variable unset: no key printed where a
	// file was meant (it would land in a terminal's or a CI job's log).
	out, errOut, err = cli(t, "keygen", "--out", "")
	if err == nil || err.Error() != "--out is empty: give a file (without --out, the key goes to stdout)" {
		t.Errorf("keygen --out \"\": %v", err)
	}
	if strings.Contains(out+errOut, "PRIVATE KEY") {
		t.Errorf("keygen --out \"\" printed a private key:\n%s%s", out, errOut)
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []string{"new", "lint", "routes", "keygen", "conform", "specsum", "fragment"} {
		t.Run(cmd, func(t *testing.T) {
			// Asked for, the usage goes to stdout (so that it can be paged
			// or grepped); a mistake goes to stderr, in one line.
			out, errOut, err := cli(t, cmd, "--help")
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("--help: %v", err)
			}
			if !strings.Contains(out, "Usage: specguard "+cmd) || !strings.Contains(out, "Example") || !strings.Contains(out, "Flags:") || errOut != "" {
				t.Errorf("help lacks usage or examples on stdout, or wrote to stderr:\n%s\nstderr:\n%s", out, errOut)
			}
			out, errOut, err = cli(t, cmd, "--no-such-flag")
			if want := "specguard " + cmd + ": flag provided but not defined: -no-such-flag (try 'specguard " + cmd + " --help')\n"; !errors.Is(err, speccli.ErrUsage) || out != "" || errOut != want {
				t.Errorf("a wrong flag: %v, stdout:\n%s\nstderr:\n%s", err, out, errOut)
			}
		})
	}
	out, _, err := cli(t, "help")
	if err != nil || !strings.Contains(out, "keygen") {
		t.Errorf("help: %v %s", err, out)
	}
	if _, _, err := cli(t, "frobnicate"); err == nil || err.Error() != `unknown command "frobnicate" (try 'specguard help')` {
		t.Errorf("unknown command: %v", err)
	}
}

// TestProvidersListed: lint and routes say which outside tokens each
// openIdConnect scheme accepts.
func TestProvidersListed(t *testing.T) {
	const fixture = "testdata/providers.yaml"
	want := []string{
		fixture + ":15: components.securitySchemes.keycloak: openIdConnect: discovery https://sso.example.com/realms/acme/.well-known/openid-configuration; audience reports-api; issuers the discovery document's issuer; scopes in scope or scp; opaque tokens introspected",
		fixture + ":19: components.securitySchemes.entra: openIdConnect: discovery https://login.microsoftonline.com/TENANT/v2.0/.well-known/openid-configuration; audience api://reports, 00000000-0000-0000-0000-000000000001; issuers https://login.microsoftonline.com/TENANT/v2.0, https://sts.windows.net/TENANT/; scopes in scp; opaque tokens introspected when they start with \"ent_\"",
	}
	for _, cmd := range []string{"lint", "routes"} {
		out, _, err := cli(t, cmd, fixture)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		for _, w := range want {
			if !strings.Contains(out, w+"\n") {
				t.Errorf("%s output lacks %q:\n%s", cmd, w, out)
			}
		}
	}
	out, _, _ := cli(t, "routes", fixture)
	if !strings.Contains(out, "keycloak[reports:read] | entra[Reports.Read]") {
		t.Errorf("routes does not show the schemes of listReports:\n%s", out)
	}
}

// fragment prints the credential operations' document, which compiles
// and lints clean on its own.
func TestFragment(t *testing.T) {
	out, _, err := cli(t, "fragment")
	if err != nil || out != string(credentials.Fragment) {
		t.Fatalf("fragment: %v, printed %d bytes, want %d", err, len(out), len(credentials.Fragment))
	}
	path := writeSpec(t, out)
	if _, errOut, err := cli(t, "lint", "--strict", path); err != nil || !strings.HasSuffix(errOut, ": 0 errors, 0 warnings\n") {
		t.Errorf("lint of the fragment: %v %s", err, errOut)
	}
	if _, _, err := cli(t, "fragment", "extra"); err == nil {
		t.Error("fragment took an argument")
	}
}

// specsum refuses a package name that is no Go identifier (it wrote
// `package bad pkg` and exited 0), and replaces its file whole: a file it
// cannot write is left as it was, with no temporary file beside it.
func TestSpecsum(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "openapi.yaml")
	if err := os.WriteFile(doc, []byte("openapi: 3.0.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "spec_sum.go")
	if _, _, err := cli(t, "specsum", "-pkg", "bad pkg", "-o", out, doc); err == nil || err.Error() != `specsum: -pkg "bad pkg" is not a Go package name` {
		t.Errorf("-pkg 'bad pkg': %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused specsum wrote %s: %v", out, err)
	}
	// An empty -o is a wrong command line; a directory that does not
	// exist is named as given, not as the temporary file beside it.
	if _, _, err := cli(t, "specsum", "-o", "", doc); !errors.Is(err, speccli.ErrUsage) || err.Error() != "specsum: -o is empty: give the file to write" {
		t.Errorf("-o '': %v", err)
	}
	missing := filepath.Join(dir, "nowhere", "spec_sum.go")
	if _, _, err := cli(t, "specsum", "-o", missing, doc); err == nil || err.Error() != "specsum: writing "+missing+": no such file or directory" {
		t.Errorf("-o in a missing directory: %v", err)
	}
	if _, _, err := cli(t, "specsum", "-pkg", "gen", "-o", out, doc); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(got), "package gen\n") {
		t.Fatalf("spec_sum.go: %v\n%s", err, got)
	}
	if info, err := os.Stat(out); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("spec_sum.go's mode: %v %v, want 0644", info.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("files beside the document: %v, want spec_sum.go alone", entries)
	}
}

// A mistake in the command line exits 2, a command that ran and failed 1:
// both were 1, so CI could not tell a mistyped command from a document or
// server at fault.
func TestExitCodes(t *testing.T) {
	good := writeSpec(t, lintSpec)
	bad := writeSpec(t, strings.Replace(lintSpec, "      operationId: limitedRead\n", "      operationId: limitedRead\n      security: [ { nosuch: [] } ]\n", 1))
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"lint", good}, 0},
		{[]string{"lint", "--help"}, 0},
		{[]string{"lint", bad}, 1},
		{[]string{"lint", "--bogus", good}, 2},
		{[]string{"lint", good, good}, 2},
		{[]string{"routes", "--format", "xml", good}, 2},
		{[]string{"frobnicate"}, 2},
		{[]string{}, 2},
		{[]string{"conform", "--spec", good}, 2},
		{[]string{"conform", "--spec", good, "--base", "127.0.0.1:1"}, 2},
		{[]string{"conform", "--spec", good, "--base", "http://127.0.0.1:1", "--format", "xml"}, 2},
		{[]string{"conform", "--spec", good, "--base", "http://127.0.0.1:1"}, 1}, // nothing answers there
		// An unset variable would run every case, as if no flag were given.
		{[]string{"conform", "--spec", good, "--base", "http://127.0.0.1:1", "--only", ""}, 2},
		{[]string{"conform", "--spec", good, "--base", "http://127.0.0.1:1", "--skip", " , "}, 2},
		{[]string{"keygen", "--alg", "rsa1024"}, 2},
		{[]string{"new", "a", "b"}, 2},
		{[]string{"specsum", "-pkg", "bad pkg", "-o", filepath.Join(t.TempDir(), "sum.go"), good}, 2},
		{[]string{"specsum", "-pkg", "_", "-o", filepath.Join(t.TempDir(), "sum.go"), good}, 2},
		{[]string{"new", "9lives"}, 2},
		{[]string{"new", "svc", "--module", "not a path"}, 2},
		{[]string{"new", "svc", "--module", "fmt"}, 2},
		{[]string{"new", filepath.Join(t.TempDir(), "svc"), "--replace", filepath.Join(t.TempDir(), "nowhere")}, 2},
		{[]string{"new", ""}, 2},
		{[]string{"keygen", "--out", ""}, 2},
		{[]string{"specsum", "-o", "", good}, 2},
	} {
		_, _, err := cli(t, c.args...)
		if got := exitCode(err); got != c.want {
			t.Errorf("specguard %s: exit %d (%v), want %d", strings.Join(c.args, " "), got, err, c.want)
		}
	}
	// A file conform cannot read is named by its flag: the spec's and the
	// credentials' would read alike.
	missing := filepath.Join(t.TempDir(), "nowhere.yaml")
	for _, flag := range []string{"--spec", "--credentials"} {
		args := []string{"conform", "--spec", good, "--base", "http://127.0.0.1:1", flag, missing}
		if _, _, err := cli(t, args...); err == nil || !strings.HasPrefix(err.Error(), flag+": open "+missing) {
			t.Errorf("specguard %s: %v, want it to begin %s: open %s", strings.Join(args, " "), err, flag, missing)
		}
	}
	// A conform.yaml beside the document is not read unasked (its
	// credentials may be retired), but named: a run without it skips
	// every case that needs a credential, and passed as if checked.
	beside := filepath.Join(filepath.Dir(good), "conform.yaml")
	hint := "no --credentials: the cases that need a credential are skipped (" + beside + " is beside the document: --credentials " + beside + ")"
	if _, errOut, _ := cli(t, "conform", "--spec", good, "--base", "http://127.0.0.1:1"); strings.Contains(errOut, hint) {
		t.Errorf("without a conform.yaml beside the document: %s", errOut)
	}
	if err := os.WriteFile(beside, []byte("credentials: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, _ := cli(t, "conform", "--spec", good, "--base", "http://127.0.0.1:1"); !strings.Contains(errOut, hint) {
		t.Errorf("with a conform.yaml beside the document: %q, want %q", errOut, hint)
	}
}

// Ctrl-C ends a command that has nothing to tidy (lint here, waiting on
// its document) at once, as the signal does any program: caught and
// unread, it was swallowed, and keygen wrote its key after it.
func TestInterruptEndsPlainCommands(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "specguard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "lint", "/dev/stdin")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(200 * time.Millisecond) // reading its document, which never ends
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Errorf("lint after SIGINT: %v, want ended by the signal", cmd.ProcessState)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("lint went on for 10 s after SIGINT: the signal was swallowed")
	}
}

// keygen --out whose description cannot be written (stdout full) fails
// and leaves no key file: the kid was never said, and the file would
// stop the next run ("file exists").
func TestKeygenFailedLeavesNoFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "key.pem")
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"keygen", "--out", out}, func(string) string { return "" }, failingWriter{}, &errOut)
	if exitCode(err) != 1 {
		t.Errorf("keygen with stdout failing: %v, want exit 1", err)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("keygen failed (%v), and left %s: %v", err, out, serr)
	}
	if _, _, err := cli(t, "keygen", "--out", out); err != nil {
		t.Errorf("keygen again: %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// keygen interrupted while it makes the key writes none: it catches the
// signal (an RSA key takes a while), and a key written after Ctrl-C, its
// kid unsaid, would stop the next run.
func TestKeygenInterruptedWritesNothing(t *testing.T) {
	out := filepath.Join(t.TempDir(), "key.pem")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"keygen", "--alg", "rs256", "--out", out}, func(string) string { return "" }, &stdout, &stderr)
	if exitCode(err) != 1 || (err == nil || !strings.Contains(err.Error(), "interrupted")) {
		t.Errorf("keygen interrupted: %v, want exit 1 saying so", err)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("keygen interrupted left %s: %v", out, serr)
	}
}
