package e2e

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/specguard/specguard/api"
)

// The contract check must fail when the spec and the server disagree:
// remove the 429 that /auth/login declares, drive the server to a 429, and
// the exchange is refused; with the real spec it is accepted.
func TestContractCatchesUndeclaredResponses(t *testing.T) {
	in := Start(t)
	spec := string(api.Spec)
	start := strings.Index(spec, "operationId: login")
	end := start + strings.Index(spec[start:], "operationId: oauthToken")
	login := spec[start:end]
	broken := spec[:start] + strings.Replace(login, "        '429': { $ref: '#/components/responses/TooManyRequests' }\n", "", 1) + spec[end:]
	if broken == spec {
		t.Fatal("the test did not manage to remove the 429 from login")
	}
	real, bad := loadContract(t, api.Spec), loadContract(t, []byte(broken))

	ip := NewIP()
	var last *http.Response
	var lastBody, reqBody []byte
	var req *http.Request
	for range 6 {
		reqBody = []byte(`{"email":"nobody@example.com","password":"wrong"}`)
		req, _ = http.NewRequest("POST", in.Base+"/auth/login", bytes.NewReader(reqBody))
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
		t.Fatalf("sixth login: %d, want 429", last.StatusCode)
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
