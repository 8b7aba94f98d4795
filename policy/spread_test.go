package policy_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/policy"
)

// spreadDoc is a document of one operation whose body is schema S0 of
// schemas.
func spreadDoc(version, schemas string) []byte {
	return []byte(`openapi: ` + version + `
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /a:
    post:
      operationId: a
      security: []
      requestBody: {required: true, content: {application/json: {schema: {$ref: '#/components/schemas/S0'}, example: {}}}}
      responses: {'200': {description: ok}}
components:
  schemas:
` + schemas)
}

// chain is a document whose schema S0 names S1 twice, S1 names S2 twice,
// and so on for n levels: a value of S0 is checked against 2^n schemas.
func chain(n int, composed string) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "    S%d: {%s: [{$ref: '#/components/schemas/S%d'}, {$ref: '#/components/schemas/S%d'}]}\n", i, composed, i+1, i+1)
	}
	fmt.Fprintf(&b, "    S%d: {type: object, properties: {name: {type: string}}}\n", n)
	return spreadDoc("3.0.3", b.String())
}

// A schema that spreads a value over thousands of schemas is refused:
// twenty levels made one request of 12 bytes cost a second, and Lint,
// which checks the examples, ran for hours on 28. The twelve levels
// below the bound compile.
func TestSchemaSpreadBounded(t *testing.T) {
	for _, composed := range []string{"allOf", "anyOf", "oneOf"} {
		if _, err := policy.Compile("spec.yaml", chain(11, composed)); err != nil {
			t.Errorf("%s, 11 levels: %v", composed, err)
		}
		want := "spec.yaml: components.schemas.S0: a value would be checked against more than 4096 schemas (through allOf"
		for _, levels := range []int{12, 28, 60} {
			src := chain(levels, composed)
			if _, err := policy.Compile("spec.yaml", src); err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("%s, %d levels: Compile = %v, want %q", composed, levels, err, want)
			}
			done := make(chan policy.Errors, 1)
			go func() {
				errs, _ := policy.Lint("spec.yaml", src)
				done <- errs
			}()
			select {
			case errs := <-done:
				if len(errs) == 0 || !strings.HasPrefix(errs[0].Error(), want) {
					t.Errorf("%s, %d levels: Lint = %v, want %q", composed, levels, errs, want)
				}
			case <-time.After(time.Minute): // a hang guard, not a bound: it ends in milliseconds
				t.Fatalf("%s, %d levels: Lint still running after a minute", composed, levels)
			}
		}
	}
}

// The same through what the walk of a value adds up: two schemas of a
// value naming one property's schema check that property twice (a chain
// doubles at each level, and a cycle without end), and the keywords of
// JSON Schema 2020-12 that check a value again (if, then, else). A tree
// of itself checks each node once, and compiles.
func TestSchemaSpreadThroughProperties(t *testing.T) {
	docOf := spreadDoc
	levels := func(n int, level func(i int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(level(i))
		}
		fmt.Fprintf(&b, "    S%d: {type: object}\n", n)
		return b.String()
	}
	refused := map[string][]byte{
		"allOf across a property": docOf("3.0.3", levels(20, func(i int) string {
			return fmt.Sprintf("    S%d: {allOf: [{$ref: '#/components/schemas/P%d'}, {$ref: '#/components/schemas/P%d'}]}\n    P%d: {type: object, properties: {p: {$ref: '#/components/schemas/S%d'}}}\n", i, i, i, i, i+1)
		})),
		"a cycle that doubles": docOf("3.0.3", "    S0: {allOf: [{$ref: '#/components/schemas/P'}, {$ref: '#/components/schemas/P'}]}\n    P: {type: object, properties: {p: {$ref: '#/components/schemas/S0'}}}\n"),
		"if, then, else": docOf("3.1.0", levels(20, func(i int) string {
			return fmt.Sprintf("    S%d: {if: {$ref: '#/components/schemas/S%d'}, then: {$ref: '#/components/schemas/S%d'}, else: {$ref: '#/components/schemas/S%d'}}\n", i, i+1, i+1, i+1)
		})),
	}
	for name, src := range refused {
		if _, err := policy.Compile("spec.yaml", src); err == nil || !strings.Contains(err.Error(), "a value would be checked against more than 4096 schemas") {
			t.Errorf("%s: Compile = %v, want it refused", name, err)
		}
	}
	tree := docOf("3.0.3", "    S0: {type: object, properties: {name: {type: string}, children: {type: array, items: {$ref: '#/components/schemas/S0'}}, parent: {allOf: [{$ref: '#/components/schemas/S0'}]}}}\n")
	if _, err := policy.Compile("spec.yaml", tree); err != nil {
		t.Errorf("a tree of itself: %v", err)
	}
}
