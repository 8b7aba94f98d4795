package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSpecguardNew is the README's "Start a new service" as a user runs
// it: `specguard new` makes a module outside this one (offline: the
// module cache and a replace directive), whose own make test passes (its
// generated code current, vet, its tests, specguard's conformance suite in
// process), whose document lints clean, whose go generate changes nothing,
// and whose binary serves accounts, tokens, API keys and its items over
// loopback, keeping its document under `specguard conform`.
func TestSpecguardNew(t *testing.T) {
	need(t, "make")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	// The new module is tidied and built offline, from the module cache.
	// Fill it first as make check does: go mod tidy reads the tests of
	// dependencies too, and -diff writes nothing (go mod download all
	// would write go.sum). Whether specguard itself is tidy is make
	// check's to say; a module it could not fetch fails below, by name.
	_ = exec.Command("go", "mod", "tidy", "-diff").Run()
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	run := func(dir string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run(work, toolkit, "new", "widgets", "--module", "example.com/widgets", "--replace", root)
	if !strings.Contains(out, "next: cd widgets && make test && make run") {
		t.Errorf("new says what to do next? %q", out)
	}
	dir := filepath.Join(work, "widgets")
	if left, _ := filepath.Glob(filepath.Join(work, ".*")); len(left) > 0 {
		t.Errorf("new left %v beside the service", left)
	}

	run(dir, "make", "--no-print-directory", "test")
	// The library issues the credentials: the service's own code imports
	// no JWT or password-hashing package.
	for _, imp := range strings.Fields(run(dir, "go", "list", "-f", `{{join .Imports " "}}`, "./...")) {
		if strings.Contains(imp, "jwt") || strings.HasPrefix(imp, "golang.org/x/crypto") || strings.Contains(imp, "argon2") || strings.Contains(imp, "bcrypt") {
			t.Errorf("the new service imports %s", imp)
		}
	}
	if out := run(dir, "make", "--no-print-directory", "lint"); !strings.Contains(out, "api/openapi.yaml: 0 errors, 0 warnings") {
		t.Errorf("the new service's document has findings:\n%s", out)
	}
	gen := func() map[string][]byte {
		files := map[string][]byte{}
		paths, _ := filepath.Glob(filepath.Join(dir, "api", "gen", "*.go"))
		for _, p := range paths {
			files[filepath.Base(p)], _ = os.ReadFile(p)
		}
		return files
	}
	before := gen()
	run(dir, "go", "generate", "./api/gen")
	for name, data := range gen() {
		if !bytes.Equal(before[name], data) {
			t.Errorf("go generate changed api/gen/%s: the template's generated code is stale (make generate in specguard)", name)
		}
	}

	// The real binary, over loopback: an account, a token, an item, an
	// API key that reads it; then the conformance suite from outside.
	run(dir, "make", "--no-print-directory", "build")
	in := StartBinary(t, filepath.Join(dir, "bin", "widgets"))
	call := func(method, path, body string, header ...string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, in.Base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}
	const account = `{"email":"new@example.com","password":"correct horse battery"}`
	if code, m := call("POST", "/auth/register", account); code != 201 {
		t.Fatalf("register: %d %v", code, m)
	}
	code, tok := call("POST", "/auth/login", account)
	if code != 200 {
		t.Fatalf("login: %d %v", code, tok)
	}
	bearer := []string{"Authorization", "Bearer " + tok["access_token"].(string)}
	code, item := call("POST", "/items", `{"title":"first"}`, bearer...)
	if code != 201 {
		t.Fatalf("create an item: %d %v", code, item)
	}
	code, key := call("POST", "/api-keys", `{"name":"reader","scopes":["items:read"]}`, bearer...)
	if code != 201 {
		t.Fatalf("create an API key: %d %v", code, key)
	}
	apiKey := []string{"X-API-Key", key["key"].(string)}
	if code, got := call("GET", "/items/"+item["id"].(string), "", apiKey...); code != 200 || got["title"] != "first" {
		t.Errorf("the item with the key: %d %v", code, got)
	}
	if code, _ := call("POST", "/items", `{"title":"second"}`, apiKey...); code != 403 {
		t.Errorf("a write with a read-only key: %d, want 403", code)
	}
	if code, _ := call("GET", "/items", ""); code != 401 {
		t.Errorf("items without a credential: %d, want 401", code)
	}
	cmd := exec.Command(toolkit, "conform", "--base", in.Base, "--spec", filepath.Join(dir, "api", "openapi.yaml"),
		"--credentials", filepath.Join(dir, "api", "conform.yaml"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("specguard conform against the new service: %v\n%s\nits log:\n%s", err, out, in.logs.String())
	} else {
		t.Logf("conform: %s", strings.TrimSpace(string(out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:])))
	}
}
