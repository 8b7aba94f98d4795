package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/internal/oidctest"
	"github.com/specguard/specguard/internal/redistest"
)

// tenantLimit is the per-tenant tier withProvider adds to the list of API
// keys.
const tenantLimit = 3

// readScope is the provider's scope withProvider requires there, and
// otherScope one of its other scopes (internal/oidctest's provider grants
// both).
const readScope, otherScope = "reports:read", "reports:write"

// withProvider is the example document plus what a user adds to accept a
// provider's tokens, with no Go code: an openIdConnect scheme "partner"
// (its URL a placeholder, overridden by SPECGUARD_OIDC_PARTNER_URL), listed
// on GET /me without scopes and, with readScope, on the credential
// operation that lists API keys (every service keeps it), where a tier
// also counts per tenant claim.
func withProvider(t *testing.T) string {
	t.Helper()
	return specFile(t, func(root *yaml.Node) {
		addProvider(t, root)
	})
}

// addProvider adds what withProvider says to the document root.
func addProvider(t *testing.T, root *yaml.Node) {
	t.Helper()
	schemes := child(t, child(t, root, "components"), "securitySchemes")
	add(t, schemes, "partner", `
type: openIdConnect
openIdConnectUrl: https://id.example.com/.well-known/openid-configuration
x-audience: [`+oidctest.JWTAudience+`, `+oidctest.OpaqueAudience+`]`)
	paths := child(t, root, "paths")
	me := child(t, child(t, paths, credentialOp(t, "me").Path), "get")
	appendTo(t, child(t, me, "security"), "{partner: []}")
	keyList := child(t, child(t, paths, keysPath(t)), "get")
	appendTo(t, child(t, keyList, "security"), "{partner: ["+readScope+"]}")
	tiers := &yaml.Node{Kind: yaml.SequenceNode}
	tiers.Content = append(tiers.Content, child(t, root, "x-rate-limit").Content...)
	appendTo(t, tiers, fmt.Sprintf("{name: per-tenant, limit: %d, window: 1m, key: 'claim:tenant', who: authenticated}", tenantLimit))
	set(keyList, "x-rate-limit", tiers)
}

// specFile is the example document as edit changes its root, written to a
// file for SPECGUARD_SPEC_FILE.
func specFile(t *testing.T, edit func(root *yaml.Node)) string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(api.Spec, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc.Content[0])
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// set sets key of mapping m to value, replacing the one it has.
func set(m *yaml.Node, key string, value *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = value
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, value)
}

// keysPath is where the document lists API keys.
func keysPath(t *testing.T) string { return credentialOp(t, "list-api-keys").Path }

func child(t *testing.T, n *yaml.Node, key string) *yaml.Node {
	t.Helper()
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	t.Fatalf("the example document has no %q where withProvider expects it", key)
	return nil
}

func parseNode(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

func add(t *testing.T, m *yaml.Node, key, value string) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, parseNode(t, value))
}

func appendTo(t *testing.T, seq *yaml.Node, value string) {
	seq.Content = append(seq.Content, parseNode(t, value))
}

// call sends GET path with a bearer token and returns the status, the
// body and the response.
func call(t *testing.T, in *Instance, path, token string) (int, string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, in.Base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

// TestOutsideProvider runs the binary against a real OpenID provider
// (oidc-provider on Node.js): a scheme added to the document, with no Go
// code, accepts the provider's JWT and opaque tokens with their scopes and
// claims, follows a key rotation, and keeps working (or answers 503, never
// a pass) while the provider is down.
func TestOutsideProvider(t *testing.T) {
	op := oidctest.Start(t)
	const ttl = 2 * time.Second
	in := Start(t,
		"SPECGUARD_SPEC_FILE="+withProvider(t),
		"SPECGUARD_OIDC_PARTNER_URL="+op.Discovery,
		"SPECGUARD_OIDC_PARTNER_CLIENT_ID="+oidctest.IntrospectID,
		"SPECGUARD_OIDC_PARTNER_CLIENT_SECRET="+oidctest.IntrospectKey,
		"SPECGUARD_OIDC_CACHE_TTL="+ttl.String(),
	)
	me := func(token string) (int, map[string]any) {
		t.Helper()
		status, body, _ := call(t, in, credentialOp(t, "me").Path, token)
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		return status, m
	}

	// client_credentials with a resource indicator: a JWT access token.
	jwt := op.Token(t, oidctest.JWTAudience, readScope)
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, body := me(jwt)
		if status == 200 {
			if body["id"] != "partner:"+oidctest.ClientID || body["scheme"] != "partner" || fmt.Sprint(body["scopes"]) != "["+readScope+"]" {
				t.Fatalf("/me = %v", body)
			}
			if _, has := body["email"]; has {
				t.Errorf("/me of an outside caller has an email: %v", body)
			}
			break
		}
		if status != 503 || time.Now().After(deadline) {
			t.Fatalf("/me with the provider's JWT: %d %v\n%s", status, body, in.logs.String())
		}
		time.Sleep(100 * time.Millisecond) // discovery and keys are fetched in the background
	}

	t.Run("scopes are checked", func(t *testing.T) {
		status, body, resp := call(t, in, keysPath(t), op.Token(t, oidctest.JWTAudience, otherScope))
		if status != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Fatalf("without %s: %d %s %q", readScope, status, body, resp.Header.Get("WWW-Authenticate"))
		}
		if status, body, _ := call(t, in, keysPath(t), jwt); status != 200 {
			t.Fatalf("with %s: %d %s", readScope, status, body)
		}
	})

	t.Run("a tier keyed on the tenant claim", func(t *testing.T) {
		var last *http.Response
		var status int
		for i := range tenantLimit + 1 {
			// A token each: the tier counts the tenant, not the token.
			status, _, last = call(t, in, keysPath(t), op.Token(t, oidctest.JWTAudience, readScope))
			if i < tenantLimit-1 && status == 429 {
				t.Fatalf("request %d limited before the tier's %d", i+1, tenantLimit)
			}
		}
		if status != 429 || !strings.Contains(last.Header.Get("RateLimit-Policy"), `"per-tenant"`) {
			t.Fatalf("request %d of one tenant: %d, RateLimit-Policy %q", tenantLimit+1, status, last.Header.Get("RateLimit-Policy"))
		}
	})

	t.Run("opaque tokens are introspected; revoked, refused within the cache lifetime", func(t *testing.T) {
		opaque := op.Token(t, oidctest.OpaqueAudience, readScope+" "+otherScope)
		if strings.Count(opaque, ".") == 2 {
			t.Fatalf("the provider gave a JWT for the opaque resource")
		}
		if status, body := me(opaque); status != 200 || fmt.Sprint(body["scopes"]) != "["+readScope+" "+otherScope+"]" {
			t.Fatalf("/me with an opaque token: %d %v", status, body)
		}
		op.Revoke(t, opaque)
		revoked := time.Now()
		for {
			status, _ := me(opaque)
			if status == 401 {
				break
			}
			if status != 200 || time.Since(revoked) > ttl+time.Second {
				t.Fatalf("revoked opaque token: %d after %v (cache lifetime %v)", status, time.Since(revoked), ttl)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("key rotation is followed without a restart", func(t *testing.T) {
		op.Restart(t, true)
		if status, body := me(op.Token(t, oidctest.JWTAudience, readScope)); status != 200 {
			t.Fatalf("token of the new key: %d %v", status, body)
		}
	})

	t.Run("provider down: fetched keys keep working, opaque tokens get 503", func(t *testing.T) {
		fresh := op.Token(t, oidctest.JWTAudience, readScope)
		opaque := op.Token(t, oidctest.OpaqueAudience, readScope)
		op.Stop()
		if status, body := me(fresh); status != 200 {
			t.Fatalf("JWT while the provider is down: %d %v", status, body)
		}
		status, body, resp := call(t, in, credentialOp(t, "me").Path, opaque)
		if status != 503 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("opaque token while the provider is down: %d %s", status, body)
		}
		if status, _, _ := call(t, in, "/readyz", ""); status != 200 {
			t.Fatalf("/readyz while only the provider is down: %d", status)
		}
		if !strings.Contains(in.logs.String(), "identity provider unreachable") {
			t.Error("no log line says the provider is down")
		}
		if m := metrics(t, in); !strings.Contains(m, `specguard_oidc_provider_up{scheme="partner"} 0`) ||
			!strings.Contains(m, `specguard_oidc_provider_keys_loaded{scheme="partner"} 1`) {
			t.Errorf("metrics while the provider is down:\n%s", grepLines(m, "specguard_oidc"))
		}
		op.Restart(t, false)
		if status, body := me(op.Token(t, oidctest.OpaqueAudience, readScope)); status != 200 {
			t.Fatalf("opaque token once the provider is back: %d %v", status, body)
		}
		if m := metrics(t, in); !strings.Contains(m, `specguard_oidc_provider_up{scheme="partner"} 1`) {
			t.Errorf("metrics once the provider is back:\n%s", grepLines(m, "specguard_oidc"))
		}
	})
}

// TestOfflineProvider: a provider that cannot be reached holds up nothing
// but its own tokens: serve starts, is ready, and specguard's own
// credentials work; the provider's tokens get 503, never a pass.
func TestOfflineProvider(t *testing.T) {
	dead := fmt.Sprintf("http://127.0.0.1:%d/.well-known/openid-configuration", redistest.FreePort(t))
	in := Start(t, "SPECGUARD_SPEC_FILE="+withProvider(t), "SPECGUARD_OIDC_PARTNER_URL="+dead)
	if status, _, _ := call(t, in, "/readyz", ""); status != 200 {
		t.Fatalf("/readyz with the provider unreachable: %d", status)
	}
	c := NewClient(t, in)
	_, tok := register(t, c)
	if status, body, _ := call(t, in, credentialOp(t, "me").Path, tok.AccessToken); status != 200 {
		t.Fatalf("own token with the provider unreachable: %d %s", status, body)
	}
	outside := "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJpc3MiOiJodHRwczovL2lkLmV4YW1wbGUuY29tIn0.c2ln"
	if status, body, _ := call(t, in, credentialOp(t, "me").Path, outside); status != 503 {
		t.Fatalf("a token for the unreachable provider: %d %s", status, body)
	}
}

// metrics reads the instance's /metrics from the admin address its
// "listening" log line names.
func metrics(t *testing.T, in *Instance) string {
	t.Helper()
	m := regexp.MustCompile(`"admin":"([^"]+)"`).FindStringSubmatch(in.logs.String())
	if m == nil {
		t.Fatalf("no admin address in the logs:\n%s", in.logs.String())
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestConformWithProvider: `specguard conform` checks a document with an
// identity provider's scheme, with the provider's tokens as credentials:
// no violation, and the provider's scope and tier cases are run.
func TestConformWithProvider(t *testing.T) {
	op := oidctest.Start(t)
	spec := withProvider(t)
	in := Start(t, "SPECGUARD_SPEC_FILE="+spec, "SPECGUARD_OIDC_PARTNER_URL="+op.Discovery, "SPECGUARD_LOG_REQUESTS=false")
	base, err := os.ReadFile("../api/conform.yaml")
	if err != nil {
		t.Fatal(err)
	}
	creds := string(base) + fmt.Sprintf(`
  - name: partner-reader
    scheme: partner
    scopes: [%s]
    value: %s
  - name: partner-writer
    scheme: partner
    scopes: [%s]
    value: %s
`, readScope, op.Token(t, oidctest.JWTAudience, readScope), otherScope, op.Token(t, oidctest.JWTAudience, otherScope))
	credsFile := filepath.Join(t.TempDir(), "conform.yaml")
	if err := os.WriteFile(credsFile, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	// The provider's keys are fetched in the background.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if status, _, _ := call(t, in, credentialOp(t, "me").Path, op.Token(t, oidctest.JWTAudience, readScope)); status == 200 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the provider's token is not accepted: %d", status)
		}
	}
	out, err := exec.Command(toolkit, "conform", "--base", in.Base, "--spec", spec, "--credentials", credsFile, "--format", "json").Output()
	var rep conform.Report
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("conform: %v; output is not a JSON report: %v\n%s", err, jerr, out)
	}
	ran := map[string]bool{}
	for _, r := range rep.Results {
		if r.Verdict == conform.Fail {
			t.Errorf("%s %s (%s) %s: %s", r.Method, r.Path, r.Operation, r.Case, r.Detail)
		}
		if r.Verdict == conform.Pass {
			ran[r.Operation+" "+r.Case] = true
		}
	}
	if err != nil || rep.Failed != 0 {
		t.Errorf("conform: exit %v, %d passed, %d failed, %d skipped", err, rep.Passed, rep.Failed, rep.Skipped)
	}
	list, me := credentialOp(t, "list-api-keys").ID, credentialOp(t, "me").ID
	for _, want := range []string{list + " scope:partner:" + readScope, list + " limit:per-tenant", me + " malformed:partner"} {
		if !ran[want] {
			t.Errorf("conform did not pass %q; passed: %v", want, ran)
		}
	}
}
