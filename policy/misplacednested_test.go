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
			if err := refusedAsMisplaced(t, src, "here it would be ignored"); strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("refused in more than one line: %v", err)
			}
		})
	}
}

// The example's own createApiKey, its x-require-fresh moved to the end of
// the operation at the indentation of its response codes: the document
// compiled, and a refreshed token could mint API keys.
func TestExampleFreshnessMisplaced(t *testing.T) {
	src := exampleFreshnessMoved(t, "        '503': { $ref: '#/components/responses/ServiceUnavailable' }\n        x-require-fresh: true\n")
	table, err := policy.Compile("api/openapi.yaml", []byte(src))
	if err == nil {
		t.Fatalf("compiled; createApiKey RequireFresh=%v: x-require-fresh inside responses is ignored without a word", table.Operation("createApiKey").RequireFresh)
	}
	if want := "x-require-fresh: specguard reads this extension on operations, not on a responses object; here it would be ignored"; !strings.Contains(err.Error(), want) {
		t.Errorf("refused: %v; want %q", err, want)
	}
}

// The same beside a response's $ref, in block style: the ref's own
// siblings were not read.
func TestFreshnessBesideAResponseRef(t *testing.T) {
	src := exampleFreshnessMoved(t, "        '503':\n          $ref: '#/components/responses/ServiceUnavailable'\n          x-require-fresh: true\n")
	table, err := policy.Compile("api/openapi.yaml", []byte(src))
	if err == nil {
		t.Fatalf("compiled; createApiKey RequireFresh=%v: x-require-fresh beside a response's $ref is ignored without a word", table.Operation("createApiKey").RequireFresh)
	}
	if !strings.Contains(err.Error(), "x-require-fresh: specguard reads this extension on operations, not on a response; here it would be ignored") {
		t.Errorf("refused: %v", err)
	}
}

// In a response's media type or header, or beside a parameter's $ref.
func TestMisplacedInResponseParts(t *testing.T) {
	base := doc("", "      security: [{oauth: [read]}]\n"+tierOK)
	const responses = "      responses: {'200': {description: ok}}\n"
	for name, src := range map[string]string{
		"in a response's media type": strings.Replace(base, responses, "      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {type: object}\n              x-require-fresh: true\n", 1),
		"in a response header":       strings.Replace(base, responses, "      responses:\n        '200':\n          description: ok\n          headers:\n            X-Id:\n              schema: {type: string}\n              x-require-fresh: true\n", 1),
		"beside a parameter $ref": strings.Replace(strings.Replace(base, "parameters: [{name: id, in: path, required: true, schema: {type: string}}]", "parameters:\n        - $ref: '#/components/parameters/Id'\n          x-require-fresh: true", 1),
			"components:\n", "components:\n  parameters:\n    Id: {name: id, in: path, required: true, schema: {type: string}}\n", 1),
	} {
		t.Run(name, func(t *testing.T) { refusedAsMisplaced(t, src, "x-require-fresh: specguard reads this extension") })
	}
}

// One misplaced extension on one object is said once: a path item's
// parameter (it was said once per operation of the path), and a response
// in components $ref'd by two operations.
func TestMisplacedExtensionSaidOnce(t *testing.T) {
	for name, src := range map[string]string{
		"a path item's parameter": `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
security: [{bearer: []}]
paths:
  /things/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}, x-require-fresh: true}
    get:
      operationId: getThing
      responses: {'200': {description: ok}}
    delete:
      operationId: deleteThing
      responses: {'204': {description: gone}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`,
		"a response in components": `openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
security: [{bearer: []}]
paths:
  /things:
    get:
      operationId: listThings
      responses: {'200': {$ref: '#/components/responses/Ok'}}
    post:
      operationId: addThing
      responses: {'200': {$ref: '#/components/responses/Ok'}}
components:
  responses:
    Ok:
      description: ok
      x-require-fresh: true
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := policy.Compile("spec.yaml", []byte(src))
			if err == nil {
				t.Fatal("compiled")
			}
			if n := strings.Count(err.Error(), "x-require-fresh"); n != 1 {
				t.Errorf("the one misplaced extension reported %d times:\n%v", n, err)
			}
		})
	}
}

// In external docs or a callback appended after the responses.
func TestMisplacedAfterOtherBlocks(t *testing.T) {
	base := doc("", "      security: [{oauth: [read]}]\n"+tierOK)
	const responses = "      responses: {'200': {description: ok}}\n"
	for name, tail := range map[string]string{
		"in externalDocs": "      externalDocs:\n        url: https://example.com/docs\n        x-require-fresh: true\n",
		"in a callback":   "      callbacks:\n        onEvent:\n          '{$request.query.cb}':\n            post:\n              responses: {'200': {description: ok}}\n          x-require-fresh: true\n",
	} {
		t.Run(name, func(t *testing.T) {
			refusedAsMisplaced(t, strings.Replace(base, responses, responses+tail, 1), "x-require-fresh: specguard reads this extension")
		})
	}
}

// refusedAsMisplaced compiles src, whose operation getThing holds one of
// specguard's extensions where it is not read, and checks the document is
// refused, its error holding want. It returns the error.
func refusedAsMisplaced(t *testing.T, src, want string) error {
	t.Helper()
	table, err := policy.Compile("spec.yaml", []byte(src))
	if err == nil {
		op := table.Operation("getThing")
		t.Fatalf("compiled, the extension ignored (RequireFresh=%v, Owner=%v); want it refused as placed where it is not read", op.RequireFresh, op.Owner)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("refused, but not for the extension's place: %v; want %q", err, want)
	}
	return err
}

// exampleFreshnessMoved is the example's document with createApiKey's
// x-require-fresh taken off the operation and its last response ('503')
// written as moved instead, which puts the extension back a level lower.
func exampleFreshnessMoved(t *testing.T, moved string) string {
	t.Helper()
	src := string(api.Spec)
	const at = "        - oauth2: [apikeys:manage]\n      x-require-fresh: true\n"
	const end = "        '503': { $ref: '#/components/responses/ServiceUnavailable' }\n\n  /api-keys/{id}:\n"
	if !strings.Contains(src, at) || !strings.Contains(src, end) {
		t.Fatal("the example's createApiKey is no longer as this test expects")
	}
	src = strings.Replace(src, at, "        - oauth2: [apikeys:manage]\n", 1)
	return strings.Replace(src, end, moved+"\n  /api-keys/{id}:\n", 1)
}
