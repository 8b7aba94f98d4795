package e2e

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/policy"
)

// The contract check must fail when the spec and the server disagree:
// remove the 429 that /auth/login declares, drive the server to a 429, and
// the exchange is refused; with the real spec it is accepted.
func TestContractCatchesUndeclaredResponses(t *testing.T) {
	in := Start(t)
	loginOp := credentialOp(t, "login")
	real, bad := loadContract(t, api.Spec), loadContract(t, withoutResponse(t, api.Spec, loginOp, "429"))

	// From one address: what login's tier admits, then one more.
	ip := NewIP()
	var last *http.Response
	var lastBody, reqBody []byte
	var req *http.Request
	for range spectest.Admits(spectest.TierOf(t, loginOp, policy.KeyIP, policy.WhoAnonymous)) + 1 {
		reqBody = []byte(`{"email":"nobody@example.com","password":"wrong"}`)
		req, _ = http.NewRequest(loginOp.Method, in.Base+loginOp.Path, bytes.NewReader(reqBody))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		lastBody, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		last = resp
	}
	if last.StatusCode != 429 {
		t.Fatalf("the login past its tier: %d, want 429", last.StatusCode)
	}
	if err := real.check(req, reqBody, last, lastBody); err != nil {
		t.Fatalf("the real spec refuses a correct 429: %v", err)
	}
	if err := bad.check(req, reqBody, last, lastBody); err == nil {
		t.Fatal("a spec without the 429 accepted the 429 response")
	} else {
		t.Logf("broken contract detected: %v", err)
	}
}

// withoutResponse is spec with op's answer of status taken out.
func withoutResponse(t *testing.T, spec []byte, op *policy.Operation, status string) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(spec, &doc); err != nil {
		t.Fatal(err)
	}
	removed := false
	var walk func(n *yaml.Node, path ...string)
	walk = func(n *yaml.Node, path ...string) {
		if n.Kind == yaml.DocumentNode {
			walk(n.Content[0], path...)
			return
		}
		if len(path) == 0 || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value != path[0] {
				continue
			}
			if len(path) == 1 {
				n.Content, removed = append(n.Content[:i:i], n.Content[i+2:]...), true
				return
			}
			walk(n.Content[i+1], path[1:]...)
		}
	}
	walk(&doc, "paths", op.Path, strings.ToLower(op.Method), "responses", status)
	if !removed {
		t.Fatalf("%s declares no %s answer to take out", describe(op), status)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
