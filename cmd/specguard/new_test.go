package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/internal/speccli"
	"github.com/specguard/specguard/internal/testenv"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/sqldb"
)

// Bad input to new is one line naming what and where, and leaves nothing
// behind: no directory, no temporary one beside it.
func TestNewRefusesBadInput(t *testing.T) {
	work := t.TempDir()
	full := filepath.Join(work, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(work, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	afile := filepath.Join(work, "afile")
	if err := os.WriteFile(afile, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(work, "link")
	if err := os.Symlink("empty", link); err != nil {
		t.Fatal(err)
	}
	notSpecguard := filepath.Join(work, "other")
	if err := os.MkdirAll(notSpecguard, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(notSpecguard, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 51)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"new"}, "new: give one directory (got 0)"},
		{[]string{"new", "a", "b"}, "new: give one directory (got 2)"},
		// An empty one (an unset variable) used to fill the current directory.
		{[]string{"new", ""}, `new: the directory is empty: give one ("." for this one)`},
		{[]string{"new", full}, "new: " + full + " is not empty; give a new directory or an empty one"},
		// It said "open ...: not a directory".
		{[]string{"new", afile}, "new: " + afile + " is a file; give a new directory or an empty one"},
		{[]string{"new", filepath.Join(work, "svc"), "--module", "not a path"}, `new: --module "not a path" is not a module path, such as example.com/items`},
		{[]string{"new", filepath.Join(work, "9lives")}, "new: " + filepath.Join(work, "9lives") + `: the directory's name ("9lives") names the service and its binary: letters, digits, '-' and '_', a letter first`},
		{[]string{"new", filepath.Join(work, "svc"), "--replace", filepath.Join(work, "nowhere")}, "new: --replace: " + filepath.Join(work, "nowhere") + " does not exist: give the directory of a specguard checkout"},
		{[]string{"new", filepath.Join(work, "svc"), "--replace", full}, "new: --replace: " + full + " has no go.mod: give the directory of a specguard checkout"},
		// Paths the go command refuses only once tidy ran.
		{[]string{"new", filepath.Join(work, "svc"), "--module", "fmt"}, `new: --module "fmt" is a path Go keeps for itself; give one of yours, such as example.com/svc`},
		{[]string{"new", filepath.Join(work, "svc"), "--module", "example.com/x."}, `new: --module "example.com/x." is not a module path, such as example.com/items`},
		{[]string{"new", filepath.Join(work, "con")}, "new: " + filepath.Join(work, "con") + `: "con" cannot be a module path: give --module, such as example.com/con`},
		{[]string{"new", filepath.Join(work, "all")}, "new: " + filepath.Join(work, "all") + `: "all" is a path Go keeps for itself, so it cannot be the module's: give --module, such as example.com/all`},
		{[]string{"new", filepath.Join(work, "svc"), "--replace", notSpecguard}, "new: --replace: " + notSpecguard + "/go.mod is not specguard's module"},
		// A name of Go's own as the module path made a module that does
		// not build; one whose version table is the credential
		// operations' made a service that does not start; a link was
		// replaced rather than followed.
		{[]string{"new", filepath.Join(work, "errors")}, "new: " + filepath.Join(work, "errors") + `: "errors" is a path Go keeps for itself, so it cannot be the module's: give --module, such as example.com/errors`},
		{[]string{"new", filepath.Join(work, "specguard-credentials")}, "new: " + filepath.Join(work, "specguard-credentials") + ": the service's migrations would share their version table (specguard_credentials_version) with the credential operations'; choose another name"},
		{[]string{"new", link}, "new: " + link + " is a symbolic link; give the directory itself"},
		// A module named main made a service whose tests do not build; one
		// named toolchain failed in go mod tidy.
		{[]string{"new", filepath.Join(work, "main")}, "new: " + filepath.Join(work, "main") + `: "main" is a path Go keeps for itself, so it cannot be the module's: give --module, such as example.com/main`},
		{[]string{"new", filepath.Join(work, "svc"), "--module", "toolchain"}, `new: --module "toolchain" is a path Go keeps for itself; give one of yours, such as example.com/svc`},
		// A standard package's path in another case collides with it
		// ("case-insensitive import collision"), as the module's own
		// path or one of the service's packages below it; specguard's
		// own path made go mod tidy loop for ever.
		{[]string{"new", filepath.Join(work, "Fmt")}, "new: " + filepath.Join(work, "Fmt") + `: "Fmt" is a path Go keeps for itself, so it cannot be the module's: give --module, such as example.com/Fmt`},
		{[]string{"new", filepath.Join(work, "svc"), "--module", "Time"}, `new: --module "Time" is a path Go keeps for itself; give one of yours, such as example.com/svc`},
		{[]string{"new", filepath.Join(work, "svc"), "--module", "github.com/specguard/specguard"}, `new: --module "github.com/specguard/specguard" is specguard's own; give one of yours, such as example.com/svc`},
		// A package of it (the service imports it) was found in two
		// modules, in the go command's output (helper-173).
		{[]string{"new", filepath.Join(work, "svc"), "--module", "github.com/specguard/specguard/service"}, `new: --module "github.com/specguard/specguard/service" lies inside specguard's module; give one of yours, such as example.com/svc`},
		// cgo's package: a module named C did not build.
		{[]string{"new", filepath.Join(work, "C")}, "new: " + filepath.Join(work, "C") + `: "C" is a path Go keeps for itself, so it cannot be the module's: give --module, such as example.com/C`},
		// A vendor element made the service's packages vendored ones (it did
		// not build); a name over 50 bytes, a version table PostgreSQL cut
		// to its checksum table's name (it did not start there).
		{[]string{"new", filepath.Join(work, "svc"), "--module", "example.com/vendor"}, `new: --module "example.com/vendor": the go command reads a path with a vendor element as a vendored package's; give one without, such as example.com/svc`},
		{[]string{"new", filepath.Join(work, "svc"), "--module", "example.com/x/vendor/y"}, `new: --module "example.com/x/vendor/y": the go command reads a path with a vendor element as a vendored package's; give one without, such as example.com/svc`},
		{[]string{"new", filepath.Join(work, long)}, "new: " + filepath.Join(work, long) + ": the service's name is 51 bytes, and its version table (" + long + "_version) would be longer than PostgreSQL keeps names; at most 50 bytes"},
	} {
		_, _, err := cli(t, c.args...)
		if err == nil || err.Error() != c.want {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
	// A name refused is a bad value on the command line, as every one is:
	// exit 2 (the credential operations' table was exit 1).
	for _, name := range []string{"9lives", "errors", "con", "specguard-credentials", long} {
		if _, _, err := cli(t, "new", filepath.Join(work, name)); !errors.Is(err, speccli.ErrUsage) {
			t.Errorf("new %s: %v, want a usage error (exit 2)", name, err)
		}
	}
	// A failure once the directories above DIR are made (go mod tidy, here
	// with no module proxy) leaves none of them.
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	if _, _, err := cli(t, "new", filepath.Join(work, "deep", "er", "svc")); err == nil {
		t.Error("new without a module proxy or --replace: no error")
	}
	entries, _ := os.ReadDir(work)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "afile empty full link other" {
		t.Errorf("left in the working directory: %v", names)
	}
	if data, _ := os.ReadFile(filepath.Join(full, "keep.txt")); string(data) != "mine" {
		t.Error("the non-empty directory was touched")
	}
}

// Every file of the template is written, its placeholders filled; the
// module's go.mod points at the checkout given.
func TestNewWritesTheTemplate(t *testing.T) {
	dir := t.TempDir()
	if err := writeService(dir, "my-svc", "example.com/team/my-svc", "/src/specguard"); err != nil {
		t.Fatal(err)
	}
	var written []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		written = append(written, filepath.ToSlash(rel))
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), "{{.") {
			t.Errorf("%s: a placeholder is left", rel)
		}
		if strings.HasSuffix(rel, ".tmpl") {
			t.Errorf("%s: written with its template suffix", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go.mod", ".gitignore", "Makefile", "README.md", "main.go", "items.go", "health.go", "store.go",
		"service_test.go", "tools.go", "migrations/00001_items.sql", "api/openapi.yaml", "api/conform.yaml", "api/spec.go",
		"api/gen/generate.go", "api/gen/oapi-codegen.yaml", "api/gen/server.gen.go", "api/gen/spec_sum.go"} {
		found := false
		for _, w := range written {
			found = found || w == want
		}
		if !found {
			t.Errorf("%s was not written (wrote %v)", want, written)
		}
	}
	main, _ := os.ReadFile(filepath.Join(dir, "main.go"))
	for _, want := range []string{`"example.com/team/my-svc/api/gen"`, `Name: "my-svc"`, `Table: "my_svc_version"`} {
		if !strings.Contains(string(main), want) {
			t.Errorf("main.go lacks %s", want)
		}
	}
	mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.HasPrefix(string(mod), "module example.com/team/my-svc\n") || !strings.Contains(string(mod), `replace github.com/specguard/specguard => "/src/specguard"`+"\n") {
		t.Errorf("go.mod:\n%s", mod)
	}
	// Whatever the checkout's path holds, go reads it back from go.mod.
	odd := "/src/spec guard, [v2] {x}\u00a0é"
	spaced := t.TempDir()
	if err := writeService(spaced, "my-svc", "example.com/team/my-svc", odd); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "mod", "edit", "-json", filepath.Join(spaced, "go.mod")).Output()
	var mf struct {
		Replace []struct{ New struct{ Path string } }
	}
	if err == nil {
		err = json.Unmarshal(out, &mf)
	}
	if err != nil || len(mf.Replace) != 1 || mf.Replace[0].New.Path != odd {
		t.Errorf("go mod edit reads the go.mod for %q: %v\n%s", odd, err, out)
	}
}

// A service named as a YAML word (true, null, ...) gets a document whose
// title is that name: it was written unquoted, read as a boolean or null,
// and the service did not start.
func TestNewNamesThatAreYAMLWords(t *testing.T) {
	for _, name := range []string{"true", "False", "null", "NULL", "yes", "no", "on"} {
		dir := t.TempDir()
		if err := writeService(dir, name, "example.com/"+name, "/src/specguard"); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, "api", "openapi.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		table, err := policy.Compile("api/openapi.yaml", data)
		if err != nil {
			t.Errorf("%s: the document does not compile: %v", name, err)
			continue
		}
		if table.Doc.Info.Title != name {
			t.Errorf("%s: the document's title is %q", name, table.Doc.Info.Title)
		}
	}
}

// The credential operations of a new service are the library's: the same
// paths, security and limits as credentials.Fragment (which the example
// app serves too).
func TestNewServiceServesTheFragment(t *testing.T) {
	dir := t.TempDir()
	if err := writeService(dir, "items", "example.com/items", ""); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(dir, "api", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := policy.Compile("api/openapi.yaml", doc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := policy.Compile("credentials/openapi.yaml", credentials.Fragment)
	if err != nil {
		t.Fatal(err)
	}
	byKind := func(table *policy.Table) map[string]*policy.Operation {
		out := map[string]*policy.Operation{}
		for _, op := range table.Operations() {
			if kind, _ := op.Spec.Extensions[credentials.ExtCredential].(string); kind != "" {
				out[kind] = op
			}
		}
		return out
	}
	gotOps, wantOps := byKind(got), byKind(want)
	if len(gotOps) != len(credentials.Kinds) || len(wantOps) != len(credentials.Kinds) {
		t.Fatalf("credential operations: the new service has %d, the fragment %d, want %d", len(gotOps), len(wantOps), len(credentials.Kinds))
	}
	describe := func(op *policy.Operation) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s %s fresh=%v security:", op.Method, op.Path, op.ID, op.RequireFresh)
		for _, alt := range op.Security.Alternatives {
			for _, sr := range alt {
				fmt.Fprintf(&b, " %s%v", sr.Scheme.Name, sr.Scopes)
			}
			b.WriteString(" |")
		}
		for _, l := range op.Limits {
			fmt.Fprintf(&b, " limit %s %d/%s burst %d key %d who %d cost %d", l.Name, l.Limit, l.Window, l.Burst, l.Key, l.Who, l.Cost)
		}
		return b.String()
	}
	for _, kind := range credentials.Kinds {
		if g, w := describe(gotOps[kind]), describe(wantOps[kind]); g != w {
			t.Errorf("%s:\n got %s\nwant %s", kind, g, w)
		}
	}
	for _, role := range []string{"admin", "moderator", "user"} {
		if len(got.RoleScopes(role)) == 0 {
			t.Errorf("the new service has no role %s (the demo accounts have it)", role)
		}
	}
}

// What new says when it cannot go on names what the user gave, never its
// own hidden directory: a directory it cannot write in, a "." whose name
// is no service's, an interrupted run (which leaves nothing).
func TestNewSaysWhatTheUserGave(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	// procfs takes no new directory, whoever asks (root too).
	if _, _, err := cli(t, "new", "/proc/svc"); err == nil || !strings.HasPrefix(err.Error(), "new: cannot write in /proc: ") {
		t.Errorf("new /proc/svc: %v, want it to say it cannot write in /proc", err)
	}
	dotted := filepath.Join(t.TempDir(), "my.api")
	if err := os.Mkdir(dotted, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dotted)
	if _, _, err := cli(t, "new", "."); err == nil || !strings.Contains(err.Error(), `the directory's name ("my.api")`) {
		t.Errorf("new . in my.api: %v, want the name it refuses named", err)
	}
	// No release to be had (offline, or none published): the way out is
	// named.
	t.Setenv("GOPROXY", "off")
	offline := filepath.Join(t.TempDir(), "svc")
	if _, _, err := cli(t, "new", offline); err == nil || !strings.Contains(err.Error(), "give --replace PATH") {
		t.Errorf("new without a release to fetch: %v, want it to name --replace", err)
	}
	if _, err := os.Stat(offline); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a new that failed left %s: %v", offline, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Ctrl-C, before go mod tidy ends
	dir := filepath.Join(t.TempDir(), "svc")
	var out, errOut bytes.Buffer
	err = run(ctx, []string{"new", dir, "--replace", root}, func(string) string { return "" }, &out, &errOut)
	if err == nil || err.Error() != "new: interrupted; nothing was made" {
		t.Errorf("an interrupted new: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 0 {
		t.Errorf("an interrupted new left %v", entries)
	}
	// Interrupted while it fetched a release: no advice on fetching one.
	err = run(ctx, []string{"new", filepath.Join(t.TempDir(), "svc")}, func(string) string { return "" }, &out, &errOut)
	if err == nil || err.Error() != "new: interrupted; nothing was made" {
		t.Errorf("an interrupted new, fetching a release: %v", err)
	}
}

// The name new refuses is the credential operations' own version table.
func TestCredentialsTable(t *testing.T) {
	if credentialsTable != sqlstore.Migrations.Table {
		t.Errorf("credentialsTable %q, sqlstore's %q", credentialsTable, sqlstore.Migrations.Table)
	}
	if maxVersionTable != sqldb.MaxVersionTable {
		t.Errorf("maxVersionTable %d, sqldb's %d", maxVersionTable, sqldb.MaxVersionTable)
	}
}

// An empty directory given as DIR stays the directory it is (a shell may
// be in it): the service moves into it, "." names it after itself, and
// the next step quotes a path the shell would take apart.
func TestNewIntoAnEmptyDirectory(t *testing.T) {
	root := offline(t, "off")
	work := t.TempDir()
	here := filepath.Join(work, "gizmos")
	spaced := filepath.Join(work, "sp ace", "doohickeys")
	for _, d := range []string{here, spaced} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	before, err := os.Stat(here)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(here)
	out, _, err := cli(t, "new", ".", "--replace", root)
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(here)
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("the working directory was replaced: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(here, "go.mod"))
	if err != nil || !strings.HasPrefix(string(data), "module gizmos\n") {
		t.Errorf("go.mod in the working directory: %v %.40q", err, data)
	}
	if left, _ := filepath.Glob(filepath.Join(here, ".*.new-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if !strings.Contains(out, "next: cd . && make test") {
		t.Errorf("new .: %q", out)
	}

	out, _, err = cli(t, "new", spaced, "--replace", root)
	if err != nil {
		t.Fatal(err)
	}
	if want := "next: cd '" + spaced + "' && make test"; !strings.Contains(out, want) {
		t.Errorf("new %q: %q, want %q", spaced, out, want)
	}
}

// Only a release is required by its version: a binary built in a clone
// carries a pseudo-version of its commit (with +dirty for a changed tree),
// which no module proxy may hold; the new module then asks for the latest
// release.
func TestReleaseVersion(t *testing.T) {
	for v, want := range map[string]string{
		"v1.2.3":                             "v1.2.3",
		"v0.4.0-rc.1":                        "v0.4.0-rc.1",
		"(devel)":                            "",
		"":                                   "",
		"v0.0.0-20261206094345-dc67d52c0664": "",
		"v0.0.0-20261206094345-dc67d52c0664+dirty": "",
		"v1.2.4-0.20261206094345-dc67d52c0664":     "",
		"v1.2.3+dirty":                             "",
	} {
		if got := release(v); got != want {
			t.Errorf("release(%q) = %q, want %q", v, got, want)
		}
	}
}

// A service made inside a Go workspace that does not list it builds
// nothing there ("not one of the workspace modules"): new says so, and
// what to run.
func TestNewInsideAGoWorkspace(t *testing.T) {
	root := offline(t, "")
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "go.work"), []byte("go 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(ws, "widgets")
	out, _, err := cli(t, "new", dir, "--replace", root)
	if err != nil {
		t.Fatal(err)
	}
	want := "note: " + dir + " is inside the Go workspace " + filepath.Join(ws, "go.work") + ": run 'go work use " + dir + "', or build with GOWORK=off\n"
	if !strings.Contains(out, want) {
		t.Errorf("new inside a workspace: %q, want it to hold %q", out, want)
	}
}

// offline returns this specguard checkout, for --replace, with the go
// command set to run new's go mod tidy offline, from the module cache
// (filled first as e2e's TestSpecguardNew fills it: go mod tidy reads the
// tests of dependencies too, and -diff writes nothing), and GOWORK set to
// gowork.
func offline(t *testing.T, gowork string) string {
	t.Helper()
	testenv.Outside(t, "the module proxy (go mod tidy of the new module)")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	_ = exec.Command("go", "mod", "tidy", "-diff").Run()
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOWORK", gowork)
	return root
}

// A module path that is a package the service imports from another
// module makes that package ambiguous: the go command's refusal, which
// named new's hidden directory over many lines, is said in one line about
// --module, a usage error (helper-173).
func TestNewModuleThatIsAnImportedPackage(t *testing.T) {
	root := offline(t, "off")
	dir := filepath.Join(t.TempDir(), "svc")
	_, _, err := cli(t, "new", dir, "--module", "github.com/oapi-codegen/runtime/types", "--replace", root)
	want := `new: --module "github.com/oapi-codegen/runtime/types": package github.com/oapi-codegen/runtime/types, which the service imports, would be found in it too (ambiguous import); give a module path of yours, such as example.com/svc`
	if err == nil || err.Error() != want || !errors.Is(err, speccli.ErrUsage) {
		t.Errorf("new --module github.com/oapi-codegen/runtime/types: %v (usage error: %v), want %q", err, errors.Is(err, speccli.ErrUsage), want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s left: %v", dir, err)
	}
}

// A module path that is a module the service requires (no package of
// the template's, so the go command tidies it) was made, and the service
// did not build ("import cycle not allowed"): it is refused in one usage
// line (helper-180).
func TestNewModuleThatIsARequiredModule(t *testing.T) {
	root := offline(t, "off")
	dir := filepath.Join(t.TempDir(), "svc")
	_, _, err := cli(t, "new", dir, "--module", "github.com/oapi-codegen/runtime", "--replace", root)
	if err == nil || !errors.Is(err, speccli.ErrUsage) || strings.Contains(err.Error(), "\n") ||
		!strings.HasPrefix(err.Error(), `new: --module "github.com/oapi-codegen/runtime": the service's packages do not load under it (`) {
		t.Errorf("new --module github.com/oapi-codegen/runtime: %v, want one usage line about --module", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s left: %v", dir, err)
	}
}
