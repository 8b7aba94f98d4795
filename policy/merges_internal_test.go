package policy

import (
	"fmt"
	"strings"
	"testing"

	yaml3 "gopkg.in/yaml.v3"
)

// chain is a document of n templates, each merging the one before twice
// ({<<: [*bN-1, *bN-1]}), the last merged by tail: under a kilobyte,
// 2^n paths through the templates the outline shares (helper-196, on
// 7f12d15).
func chain(n int, tail string) string {
	var b strings.Builder
	b.WriteString("openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\nx-templates:\n  b0: &b0\n    x-note: 1\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  b%d: &b%d\n    <<: [*b%d, *b%d]\n", i, i, i-1, i-1)
	}
	return b.String() + fmt.Sprintf(tail, n)
}

// A scheme merging the chain: what it has is each template's members
// once, not once per path (the walk took 2^n steps and as many members).
func TestEffectiveWalksEachTemplateOnce(t *testing.T) {
	const n = 20
	doc := chain(n, "paths: {}\ncomponents:\n  securitySchemes:\n    t: {type: http, scheme: bearer}\n    s:\n      <<: *b%d\n      $ref: '#/components/securitySchemes/t'\n")
	var root yaml3.Node
	if err := yaml3.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	o, _, truncated := outlineYAML(root.Content[0])
	if truncated {
		t.Fatal("truncated")
	}
	s := givenField(givenField(givenField(o, "components").obj, "securitySchemes").obj, "s")
	if got := effective(s); len(got) > 2*n+4 {
		t.Errorf("the scheme merging a chain of %d templates has %d members, want each template's once (at most %d)", n, len(got), 2*n+4)
	}
	// An operation merging a chain of 40: looking for its security along
	// 2^40 paths would not end.
	if errs, _, _, _ := checkShape("chain.yaml", []byte(chain(40, "paths:\n  /a:\n    get:\n      <<: *b%d\n      responses: {'200': {description: ok}}\n"))); len(errs) != 0 {
		t.Errorf("an operation merging a chain of 40 templates: %v", errs)
	}
}

// A template that merges itself (a cycle) is read again at every
// reference, and its merges of another template were free: 4,901
// references to one merging 2,001 aliases built ten million entries
// unrefused (helper-196). Each reference inside a template counts.
func TestEveryReferenceInsideATemplateCounts(t *testing.T) {
	doc := "openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\nx-templates:\n  a: &a {x-n: 1}\n  t0: &t0\n    <<: [*a" + strings.Repeat(", *a", 2000) +
		"]\n    self: *t0\n  use:\n    <<: [*t0" + strings.Repeat(", *t0", 4900) + "]\npaths: {}\n"
	errs, _, _, _ := checkShape("cut.yaml", []byte(doc))
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "merge keys and aliases bring in more than") {
		t.Errorf("%d errors (%.200v), want the document refused for what it merges", len(errs), errs)
	}
}

// A template of k fields merged beside the $ref of n schemes is said once
// per field, at its line: it was k×n errors from k+n lines (2,000,000 and
// gigabytes for 1,000 by 2,000; helper-197).
func TestTemplateBesideManyRefsSaidOnce(t *testing.T) {
	const k, n = 50, 200
	var b strings.Builder
	b.WriteString("openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\npaths: {}\nx-t: &big {")
	for i := range k {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "f%d: 1", i)
	}
	b.WriteString("}\ncomponents:\n  securitySchemes:\n    t: {type: http, scheme: bearer}\n")
	for i := range n {
		fmt.Fprintf(&b, "    s%d: {<<: *big, $ref: '#/components/securitySchemes/t'}\n", i)
	}
	errs, _, _, _ := checkShape("big.yaml", []byte(b.String()))
	if len(errs) != k {
		t.Errorf("%d errors, want %d: each of the template's fields once", len(errs), k)
	}
}
