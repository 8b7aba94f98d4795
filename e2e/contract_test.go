package e2e

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

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
	real, bad := loadContract(t, api.Spec), loadContract(t, spectest.WithoutKey(t, api.Spec, "paths", loginOp.Path, strings.ToLower(loginOp.Method), "responses", "429"))

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
