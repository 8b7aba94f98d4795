// Package oidctest runs a real OpenID provider for tests: oidc-provider
// (npm, MIT) on the machine's Node.js, from provider/ (installed with
// `make oidc-deps`, which runs npm ci on its committed lockfile).
package oidctest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/testenv"
)

// The resources (audiences) the provider issues tokens for: JWT access
// tokens for JWTAudience, opaque ones for OpaqueAudience. Clients: ClientID
// gets tokens (client_credentials); IntrospectID may introspect them.
const (
	JWTAudience    = "https://api.specguard.test"
	OpaqueAudience = "https://opaque.specguard.test"
	ClientID       = "app"
	ClientSecret   = "app-secret"
	IntrospectID   = "specguard"
	IntrospectKey  = "specguard-secret"
	Scopes         = "reports:read reports:write" // what the provider grants
	Tenant         = "acme"                       // the tenant claim of every token
)

// Provider is one running provider process.
type Provider struct {
	// Issuer is its issuer URL; Discovery its discovery document.
	Issuer, Discovery string

	port     int
	keysFile string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// dir is the provider's directory: provider.mjs and its node_modules.
func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "provider")
}

// Start runs the provider on a free loopback port and waits until it
// serves its discovery document; it is stopped when the test ends.
func Start(t testing.TB) *Provider {
	t.Helper()
	testenv.Outside(t, "Node.js and oidc-provider")
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Unavailable(t, "Node.js", "node is not on PATH", "install nodejs")
	}
	if _, err := os.Stat(filepath.Join(dir(), "node_modules", "oidc-provider")); err != nil {
		testenv.Unavailable(t, "oidc-provider", "internal/oidctest/provider/node_modules is not installed", "run make oidc-deps")
	}
	p := &Provider{port: testenv.FreePort(t), keysFile: filepath.Join(t.TempDir(), "keys.json")}
	p.Issuer = fmt.Sprintf("http://127.0.0.1:%d", p.port)
	p.Discovery = p.Issuer + "/.well-known/openid-configuration"
	p.start(t, false)
	t.Cleanup(p.Stop)
	return p
}

func (p *Provider) start(t testing.TB, rotate bool) {
	t.Helper()
	cmd := exec.Command("node", "provider.mjs")
	cmd.Dir = dir()
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", p.port), "KEYS_FILE="+p.keysFile)
	if rotate {
		cmd.Env = append(cmd.Env, "ROTATE=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	ready := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "ready ") {
				ready <- true
			}
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("the OpenID provider exited at start: %s", stderr.String())
	case <-time.After(30 * time.Second):
		// stderr is written until the process is gone: end it first.
		_ = cmd.Process.Kill()
		<-p.exited
		t.Fatalf("the OpenID provider did not start in 30 s: %s", stderr.String())
	}
}

// Stop ends the provider process; its tokens and keys are forgotten by
// nothing but it (keys stay in its keys file).
func (p *Provider) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// Restart starts the provider again on the same port, with the same keys
// or, with rotate, signing with a new key (the old one still published).
// Its in-memory state (issued opaque tokens) is lost.
func (p *Provider) Restart(t testing.TB, rotate bool) {
	t.Helper()
	p.Stop()
	p.start(t, rotate)
}

// Token gets an access token for resource with the client_credentials
// grant (a resource indicator, RFC 8707) and the space-separated scope.
func (p *Provider) Token(t testing.TB, resource, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {resource}, "scope": {scope}}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	p.post(t, "/token", form, &out)
	if out.AccessToken == "" {
		t.Fatal("the provider gave no access token")
	}
	return out.AccessToken
}

// Revoke revokes token at the provider (RFC 7009).
func (p *Provider) Revoke(t testing.TB, token string) {
	t.Helper()
	p.post(t, "/token/revocation", url.Values{"token": {token}}, nil)
}

func (p *Provider) post(t testing.TB, path string, form url.Values, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.Issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(ClientID, ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: status %d", path, resp.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}
