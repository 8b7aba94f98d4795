package policy_test

import (
	"strings"
	"testing"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/policy"
)

// A guarding extension one indentation level too deep lands in an object
// the compiler does not read: it is refused, as on a path item. It
// compiled as if it were absent, the operation less guarded than written.
func TestGuardingExtensionMisplacedInsideOperation(t *testing.T) {
	base := doc("", "      security: [{oauth: [read]}]\n"+tierOK)
	const responses = "      responses: {'200': {description: ok}}\n"
	for name, src := range map[string]string{
		// Added at the end of the operation, indented as the response codes.
		"x-require-fresh in responses":   strings.Replace(base, responses, "      responses:\n        '200': {description: ok}\n        x-require-fresh: true\n", 1),
		"x-owner in responses":           strings.Replace(base, responses, "      responses:\n        '200': {description: ok}\n        x-owner: {override: [write]}\n", 1),
		"x-require-fresh in a response":  strings.Replace(base, responses, "      responses:\n        '200':\n          description: ok\n          x-require-fresh: true\n", 1),
		"x-require-fresh in a parameter": strings.Replace(base, "schema: {type: string}}]", "schema: {type: string}, x-require-fresh: true}]", 1),
		"x-require-fresh in paths":       strings.Replace(base, "paths:\n", "paths:\n  x-require-fresh: true\n", 1),
	} {
		t.Run(name, func(t *testing.T) {
			table, err := policy.Compile("spec.yaml", []byte(src))
			if err == nil {
				op := table.Operation("getThing")
				t.Fatalf("compiled, the extension ignored (RequireFresh=%v, Owner=%v); want it refused as placed where it is not read", op.RequireFresh, op.Owner)
			}
			if !strings.Contains(err.Error(), "here it would be ignored") || strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("refused, but not for the extension's place: %v", err)
			}
		})
	}
}

// The example's own createApiKey, its x-require-fresh moved to the end of
// the operation at the indentation of its response codes: the document
// compiled, and a refreshed token could mint API keys.
func TestExampleFreshnessMisplaced(t *testing.T) {
	src := string(api.Spec)
	const at = "        - oauth2: [apikeys:manage]\n      x-require-fresh: true\n"
	const end = "        '503': { $ref: '#/components/responses/ServiceUnavailable' }\n\n  /api-keys/{id}:\n"
	if !strings.Contains(src, at) || !strings.Contains(src, end) {
		t.Fatal("the example's createApiKey is no longer as this test expects")
	}
	src = strings.Replace(src, at, "        - oauth2: [apikeys:manage]\n", 1)
	src = strings.Replace(src, end, "        '503': { $ref: '#/components/responses/ServiceUnavailable' }\n        x-require-fresh: true\n\n  /api-keys/{id}:\n", 1)
	table, err := policy.Compile("api/openapi.yaml", []byte(src))
	if err == nil {
		t.Fatalf("compiled; createApiKey RequireFresh=%v: x-require-fresh inside responses is ignored without a word", table.Operation("createApiKey").RequireFresh)
	}
	if want := "x-require-fresh: specguard reads this extension on operations, not on a responses object; here it would be ignored"; !strings.Contains(err.Error(), want) {
		t.Errorf("refused: %v; want %q", err, want)
	}
}
