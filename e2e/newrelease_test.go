package e2e

import (
	"archive/zip"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSpecguardNewFromARelease: `specguard new` without --replace, from a
// binary that is no release (make build, go install from a clone), asks
// for the latest release of the library. Here the release is this
// checkout, served as v0.1.0 by a module proxy on disk; everything else
// comes from the module cache, offline.
func TestSpecguardNewFromARelease(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	const mod, version = "github.com/specguard/specguard", "v0.1.0"
	proxy := t.TempDir()
	dir := filepath.Join(proxy, mod, "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"list":            version + "\n",
		version + ".info": `{"Version":"` + version + `","Time":"2026-12-01T00:00:00Z"}`,
		version + ".mod":  string(gomod),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The module's zip: its tracked files, without the nested module.
	files, err := exec.Command("git", "-C", root, "ls-files").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	f, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, name := range strings.Fields(string(files)) {
		if strings.HasPrefix(name, "e2e/bench/peers/") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(mod + "@" + version + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	// The library's own dependencies come from the module cache; this
	// fills it as TestSpecguardNew does.
	_ = exec.Command("go", "mod", "tidy", "-diff").Run()
	// Built as make build or go install in a clone builds it: stamped
	// with the pseudo-version of the clone's commit, which no proxy holds.
	bin := filepath.Join(t.TempDir(), "specguard")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/specguard")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	if out, err := exec.Command("go", "version", "-m", bin).Output(); err != nil || !strings.Contains(string(out), "\tmod\t"+mod+"\tv0.0.0-") {
		t.Fatalf("the binary is not stamped with a pseudo-version: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "new", "gadgets", "--module", "example.com/gadgets")
	cmd.Dir = work
	// The module cache holds what the release needs besides itself; the
	// checksum database has never heard of this release, and the test
	// asks it nothing (the machine may not reach it).
	cmd.Env = append(os.Environ(), "GOPROXY=file://"+filepath.ToSlash(proxy), "GOFLAGS=-mod=mod", "GOSUMDB=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("specguard new without --replace: %v\n%s", err, out)
	}
	edit := exec.Command("go", "mod", "edit", "-json")
	edit.Dir = filepath.Join(work, "gadgets")
	data, err := edit.Output()
	if err != nil {
		t.Fatal(err)
	}
	var mf struct {
		Require []struct{ Path, Version string }
		Replace []any
	}
	if err := json.Unmarshal(data, &mf); err != nil {
		t.Fatal(err)
	}
	required := ""
	for _, r := range mf.Require {
		if r.Path == mod {
			required = r.Version
		}
	}
	if required != version || len(mf.Replace) != 0 {
		t.Fatalf("the new module requires %s %q (replaces %v), want the latest release, %s:\n%s", mod, required, mf.Replace, version, data)
	}
	build = exec.Command("go", "build", "-o", os.DevNull, ".")
	build.Dir = filepath.Join(work, "gadgets")
	build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the new service does not build on the release: %v\n%s", err, out)
	}
}
