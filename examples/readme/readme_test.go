// Package readme checks that the README's "Use specguard in your own
// service" works when pasted into a new module.
package readme

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// files returns the files the README shows under <!-- readme-file: NAME -->.
func files(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- readme-file: (\\S+) -->\\n```\\w*\\n(.*?)```")
	out := map[string]string{}
	for _, m := range re.FindAllSubmatch(readme, -1) {
		out[string(m[1])] = string(m[2])
	}
	if out["main.go"] == "" || out["openapi.yaml"] == "" {
		t.Fatalf("README shows %d files, want main.go and openapi.yaml", len(out))
	}
	return out
}

func TestReadmeServiceInANewModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, body := range files(t) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A new module that takes specguard from this checkout instead of the
	// proxy, with the checksums this checkout already trusts: no network.
	gomod := "module example.com/hello\n\ngo 1.26.0\n\nrequire github.com/specguard/specguard v0.0.0\n\nreplace github.com/specguard/specguard => " + repo + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	goCmd := func(args ...string) {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// go get records specguard's requirements, as it does for a user (who
	// then runs go mod tidy, which also fetches what the tests of every
	// dependency import: more than this machine may have cached).
	goCmd("get", "github.com/specguard/specguard")
	goCmd("vet", ".")
	bin := filepath.Join(dir, "hello")
	goCmd("build", "-o", bin, ".")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := exec.CommandContext(ctx, bin)
	srv.Env = append(os.Environ(), "ADDR="+addr, "DEMO_PASSWORD=secret")
	logs := &lockedBuffer{}
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = srv.Wait() }()
	base := "http://" + addr
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the README's service did not listen on %s:\n%s", addr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	do := func(method, path, body, token string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, _ := do("GET", "/hello", "", ""); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="specguard"` {
		t.Fatalf("GET /hello without a token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := do("POST", "/login", `{"password":"wrong"}`, ""); resp.StatusCode != 401 {
		t.Fatalf("login with a wrong password: %d", resp.StatusCode)
	}
	resp, body := do("POST", "/login", `{"password":"secret"}`, "")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	resp, body = do("GET", "/hello", "", tok.AccessToken)
	if resp.StatusCode != 200 || body != "hello, demo\n" || resp.Header.Get("RateLimit") == "" {
		t.Fatalf("GET /hello with the token: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body := do("GET", "/nowhere", "", ""); resp.StatusCode != 404 || !strings.Contains(body, "not-found") {
		t.Fatalf("GET /nowhere: %d %s", resp.StatusCode, body)
	}
}

// lockedBuffer is the process's output, written by os/exec's copying
// goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
