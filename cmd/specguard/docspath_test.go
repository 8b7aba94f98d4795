package main

import (
	"strings"
	"testing"

	"github.com/specguard/specguard/credentials"
)

// lint says the errors serve would stop on: a service's document (one
// marking credential operations) with an operation at /docs or under it
// is one, as the docs page answers those paths before the guard; lint
// passed it (helper-173).
func TestLintRefusesAnOperationUnderDocs(t *testing.T) {
	frag := string(credentials.Fragment)
	if !strings.Contains(frag, "  /.well-known/jwks.json:\n") {
		t.Fatal("the fragment has no /.well-known/jwks.json")
	}
	path := writeSpec(t, strings.Replace(frag, "  /.well-known/jwks.json:\n", "  /docs/jwks.json:\n", 1))
	out, errOut, err := cli(t, "lint", "--strict", path)
	if err == nil || !strings.Contains(out+errOut, "GET /docs/jwks.json (getJWKS): /docs and the paths under it are the docs page's") {
		t.Errorf("lint --strict of a document with GET /docs/jwks.json: err %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if _, _, err := cli(t, "lint", "--strict", writeSpec(t, frag)); err != nil {
		t.Errorf("lint --strict of the fragment: %v", err)
	}
}
