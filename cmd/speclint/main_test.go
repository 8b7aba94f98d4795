package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// speclint must build and run while the example app does not: it imports
// neither server/ nor the generated api/gen, which stop compiling between
// `make generate` and writing the new handlers.
func TestSpeclintImportsNoApp(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/specguard/specguard/server") || strings.HasPrefix(dep, "github.com/specguard/specguard/api") {
			t.Errorf("speclint depends on %s", dep)
		}
	}
}

func TestSpeclintLintsTheDocument(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"lint", "../../api/openapi.yaml"}, &out, &errOut); err != nil {
		t.Fatalf("lint: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "../../api/openapi.yaml: 0 errors") {
		t.Errorf("summary %q", errOut.String())
	}
	out.Reset()
	if err := run([]string{"routes", "../../api/openapi.yaml"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "METHOD") {
		t.Fatalf("routes: %v\n%s", err, out.String())
	}
	if err := run([]string{"lint", "no-such.yaml"}, &out, &errOut); err == nil {
		t.Error("lint of a missing file succeeded")
	}
}
