package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/specguard/specguard/policy"
)

// readmeBlock returns the fenced block of README.md after the marker
// <!-- name -->.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(name) + " -->\\n```\\w*\\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatalf("README.md has no block marked <!-- %s -->", name)
	}
	return string(m[1])
}

// need fails under CI=true, and skips otherwise, when a tool is missing.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required under CI=true", tool)
			}
			t.Skipf("no %s", tool)
		}
	}
}

// The README's curl walk-through works top to bottom against a fresh
// server, and prints what its "# →" comments say. It uses what every
// service keeps: logins, tokens, API keys, sessions (the blog's own is
// posts_test.go's).
func TestReadmeCurlWalkthrough(t *testing.T) {
	walkthrough(t, "readme-walkthrough")
}

// walkthrough runs the README's shell block name against a fresh server
// and checks that it prints, in order, what its "# →" comments say.
func walkthrough(t *testing.T, name string) {
	t.Helper()
	need(t, "bash", "curl", "jq")
	script := readmeBlock(t, name)
	var want []string
	for _, line := range strings.Split(script, "\n") {
		if _, after, ok := strings.Cut(line, "# → "); ok {
			v, _, _ := strings.Cut(after, " (")
			want = append(want, strings.TrimSpace(v))
		}
	}
	in := Start(t)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "BASE="+in.Base)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the walk-through stops: %v\nprinted:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	k := 0
	for _, line := range got {
		if k < len(want) && strings.TrimSpace(line) == want[k] {
			k++
		}
	}
	if k < len(want) {
		t.Errorf("the walk-through printed:\n%s\nwant, in order, the lines %q (missing from %q on)", out, want, want[k])
	}
}

// copyProject copies the files of this checkout to dir: those git tracks
// and those it would (untracked, not ignored: work not yet committed), or,
// outside git, every file but build output.
func copyProject(t *testing.T, dir string) {
	t.Helper()
	var files []string
	if out, err := exec.Command("git", "-C", "..", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output(); err == nil && len(out) > 0 {
		files = append(files, strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")...)
	} else {
		_ = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel("..", path)
			if d.IsDir() && (rel == ".git" || rel == "bin" || rel == ".specguard" || rel == "node_modules") {
				return filepath.SkipDir
			}
			if !d.IsDir() {
				files = append(files, rel)
			}
			return nil
		})
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			continue // listed but gone (a file being removed)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join("..", f))
		if err := os.WriteFile(dst, data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEditLoop follows the README's "Edit the spec, regenerate, implement"
// in a scratch copy of the project: it pastes the operation the README
// shows, lints it before any code exists, regenerates, sees the build ask
// for the handler, pastes the handler, and runs the tests that read the
// document. With SPECGUARD_TEST_LOOP=full (make e2e) it runs the whole
// make test there instead.
func TestEditLoop(t *testing.T) {
	if os.Getenv("SPECGUARD_TEST_LOOP") == "inner" {
		t.Skip("this is the loop's own make test")
	}
	need(t, "make", "git")
	dir := t.TempDir()
	copyProject(t, dir)
	run := func(wantErr bool, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SPECGUARD_TEST_LOOP=inner", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if (err != nil) != wantErr {
			t.Fatalf("%s %s: err %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	spec := filepath.Join(dir, "api", "openapi.yaml")
	doc, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "\npaths:\n"
	if !bytes.Contains(doc, []byte(anchor)) {
		t.Fatalf("api/openapi.yaml has no %q line for the README's step 1 to paste under", anchor)
	}
	doc = bytes.Replace(doc, []byte(anchor), []byte(anchor+readmeBlock(t, "loop-spec")), 1)
	if err := os.WriteFile(spec, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(false, "go", "run", "./cmd/specguard", "lint", "--strict", "api/openapi.yaml"); !strings.Contains(out, "0 errors, 0 warnings") {
		t.Fatalf("lint of the new operation:\n%s", out)
	}
	run(false, "make", "--no-print-directory", "generate")
	if out := run(true, "go", "build", "./..."); !strings.Contains(out, "missing method GetMotd") {
		t.Fatalf("before the handler exists, the build should ask for it:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(dir, "server", "motd.go"), []byte(readmeBlock(t, "loop-handler")), 0o644); err != nil {
		t.Fatal(err)
	}
	run(false, "go", "build", "./...")
	if os.Getenv("SPECGUARD_TEST_LOOP") == "full" {
		run(false, "make", "--no-print-directory", "test")
		return
	}
	run(false, "make", "--no-print-directory", "check-generated")
	run(false, "go", "vet", "./...")
	run(false, "go", "test", "-count=1", "./policy/...", "./cmd/...", "./service/docs/...")
	// The conformance suite, in process, now checks the new operation too.
	if out := run(false, "go", "test", "-count=1", "-run", "TestConformCatchesBrokenServers", "-v", "./server/"); !strings.Contains(out, "PASS") {
		t.Fatalf("conform in the scratch copy:\n%s", out)
	}
}

// TestReadmeProviderExample: the README's Keycloak- and Entra-style
// schemes compile, with the audience, issuers and scopes claim it says.
func TestReadmeProviderExample(t *testing.T) {
	block := readmeBlock(t, "readme-providers")
	doc := "openapi: 3.0.3\ninfo: {title: t, version: '1'}\n" +
		strings.Replace(block, "  securitySchemes:\n", "  securitySchemes:\n    bearerAuth: {type: http, scheme: bearer}\n", 1)
	table, err := policy.Compile("README.md", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	entra := table.Schemes["entra"]
	if entra == nil || entra.Type != policy.SchemeOIDC || len(entra.Provider.Issuers) != 2 || entra.Provider.ScopesClaim != "scp" || len(entra.Provider.Audience) != 2 {
		t.Fatalf("entra: %+v", entra)
	}
	if kc := table.Schemes["keycloak"]; kc == nil || kc.Provider.Audience[0] != "reports-api" || len(kc.Provider.Issuers) != 0 {
		t.Fatalf("keycloak: %+v", kc)
	}
	if op := table.Operation("listReports"); op == nil || op.Limits[0].Claim != "tid" {
		t.Fatalf("listReports: %+v", op)
	}
}
