package server

import (
	"strings"
	"testing"

	"github.com/specguard/specguard/api"
)

// api/openapi.yaml edited and `make generate` not run: the server says so
// instead of failing on a stale route table.
func TestEditedSpecAsksForGenerate(t *testing.T) {
	if err := generatedFrom(api.Spec); err != nil {
		t.Fatalf("the committed document: %v", err)
	}
	edited := append([]byte(strings.Clone(string(api.Spec))), "# edited\n"...)
	err := generatedFrom(edited)
	if err == nil || !strings.Contains(err.Error(), "run `make generate`") {
		t.Fatalf("an edited document: %v, want a request to run make generate", err)
	}
}
