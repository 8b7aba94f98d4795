package policy_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/specguard/specguard/policy"
)

// chain is a document whose schema S0 names S1 twice, S1 names S2 twice,
// and so on for n levels: a value of S0 is checked against 2^n schemas.
func chain(n int, composed string) string {
	var b strings.Builder
	b.WriteString(`openapi: 3.0.3
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
`)
	for i := range n {
		fmt.Fprintf(&b, "    S%d: {%s: [{$ref: '#/components/schemas/S%d'}, {$ref: '#/components/schemas/S%d'}]}\n", i, composed, i+1, i+1)
	}
	fmt.Fprintf(&b, "    S%d: {type: object, properties: {name: {type: string}}}\n", n)
	return b.String()
}

// A schema that spreads a value over thousands of schemas is refused:
// twenty levels made one request of 12 bytes cost a second, and Lint,
// which checks the examples, ran for hours on 28. The twelve levels
// below the bound compile.
func TestSchemaSpreadBounded(t *testing.T) {
	for _, composed := range []string{"allOf", "anyOf", "oneOf"} {
		if _, err := policy.Compile("spec.yaml", []byte(chain(11, composed))); err != nil {
			t.Errorf("%s, 11 levels: %v", composed, err)
		}
		want := "spec.yaml: components.schemas.S0: a value would be checked against more than 4096 schemas through allOf, anyOf, oneOf and not"
		for _, levels := range []int{12, 28, 60} {
			src := []byte(chain(levels, composed))
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
