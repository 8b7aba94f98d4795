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

	"github.com/getkin/kin-openapi/routers"

	"github.com/specguard/specguard/internal/respcheck"
	"github.com/specguard/specguard/policy"
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
	if out["main.go"] == "" || out["hello.yaml"] == "" || out["install.sh"] == "" {
		t.Fatalf("README shows %d files, want install.sh, main.go and hello.yaml", len(out))
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
	// The module cache comes first (every module this checkout needs is
	// there), then the configured proxy (go mod tidy also wants what the
	// tests of every dependency import), and no checksum database is
	// asked: go.sum starts empty, as a user's does, and each command must
	// record what it needs.
	env, err := exec.Command("go", "env", "GOMODCACHE", "GOPROXY").Output()
	if err != nil {
		t.Fatal(err)
	}
	cache, configured, _ := strings.Cut(strings.TrimSpace(string(env)), "\n")
	proxy := "file://" + filepath.ToSlash(filepath.Join(cache, "cache", "download")) + "," + configured
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=", "GOPROXY="+proxy, "GOSUMDB=off", "GOWORK=off")
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("go %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		return string(out)
	}
	// The README's install step, with this checkout standing in for the
	// proxy (a replace directive; the module cache holds the rest), and
	// no -mod=mod: each command as a user runs it. A go mod tidy run
	// before any code imports specguard dropped the requirement go get had
	// just made, and the next command failed.
	// install.sh, command by command: each a go command, its output
	// perhaps redirected to a file.
	shown := files(t)
	outputs := map[string]string{}
	var commands []string
	for _, line := range strings.Split(shown["install.sh"], "\n") {
		line, _, _ = strings.Cut(line, "#")
		commands = append(commands, strings.Split(line, "&&")...)
	}
	for _, command := range commands {
		command, to, _ := strings.Cut(command, ">")
		args := strings.Fields(command)
		if len(args) == 0 {
			continue
		}
		if args[0] != "go" || len(args) < 3 || strings.ContainsAny(command, "&|;") {
			t.Fatalf("install.sh: %q is not a go command", command)
		}
		// The checkout stands in for the proxy's release.
		for i, a := range args {
			args[i] = strings.TrimSuffix(a, "@latest")
		}
		out := goCmd(args[1:]...)
		if to = strings.TrimSpace(to); to != "" {
			outputs[to] = out
		}
		if args[1] == "mod" && args[2] == "init" {
			goCmd("mod", "edit", "-replace", "github.com/specguard/specguard="+repo)
		}
	}
	fragment := outputs["openapi.yaml"]
	if !strings.Contains(fragment, "x-credential:") {
		t.Fatalf("install.sh wrote no fragment to openapi.yaml:\n%s", fragment)
	}
	if _, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil {
		t.Fatalf("install.sh made no key: %v", err)
	}
	// "Add your own operations under its paths:".
	doc := strings.Replace(fragment, "\npaths:\n", "\npaths:\n"+shown["hello.yaml"], 1)
	for name, body := range map[string]string{"openapi.yaml": doc, "main.go": shown["main.go"]} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goCmd("mod", "tidy") // the README: "go mod tidy && KEY_FILE=key.pem go run ."
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
	srv.Dir = dir
	srv.Env = append(os.Environ(), "ADDR="+addr, "KEY_FILE=key.pem")
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
	resp, _ := do("GET", "/hello", "", "")
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="specguard"`) {
		t.Fatalf("GET /hello without a credential: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	const account = `{"email":"hello@example.com","password":"correct horse battery"}`
	if resp, body := do("POST", "/auth/register", account, ""); resp.StatusCode != 201 {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do("POST", "/auth/login", `{"email":"hello@example.com","password":"wrong password!"}`, ""); resp.StatusCode != 401 {
		t.Fatalf("login with a wrong password: %d", resp.StatusCode)
	}
	resp, body := do("POST", "/auth/login", account, "")
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	resp, body = do("GET", "/hello", "", tok.AccessToken)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "hello, ") || resp.Header.Get("RateLimit") == "" {
		t.Fatalf("GET /hello with the token: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	// The answer is what the README's document declares (the check the
	// guard and conform share): its 200 declared no content, and the
	// handler wrote one.
	table, err := policy.Compile("openapi.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	hello := table.Operation("hello")
	route := &routers.Route{Spec: table.Doc, Path: hello.Path, PathItem: hello.PathItem, Method: hello.Method, Operation: hello.Spec}
	if found := respcheck.Check(t.Context(), resp.Request, route, resp.StatusCode, resp.Header, []byte(body)); len(found) > 0 {
		t.Errorf("GET /hello's answer breaks the README's document: %+v", found)
	}
	greeting := body
	resp, body = do("POST", "/api-keys", `{"name":"ci","scopes":["account:manage"]}`, tok.AccessToken)
	var key struct{ Key string }
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &key) != nil || key.Key == "" {
		t.Fatalf("an API key: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("GET", base+"/hello", nil)
	req.Header.Set("X-API-Key", key.Key)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /hello with the API key: %v %v", resp, err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != greeting {
			t.Errorf("the key's greeting %q, the token's %q", b, greeting)
		}
	}
	if resp, body := do("POST", "/auth/logout", `{"refresh_token":"`+tok.RefreshToken+`"}`, tok.AccessToken); resp.StatusCode != 204 {
		t.Fatalf("logout: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do("GET", "/hello", "", tok.AccessToken); resp.StatusCode != 401 {
		t.Errorf("the access token after logout: %d, want 401", resp.StatusCode)
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
