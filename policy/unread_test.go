package policy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/specguard/specguard/policy"
)

// refDocument is an operation taking a scheme partner, which the tests
// below append, and a scheme acme of another audience.
const refDocument = `openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: g
      security: [{partner: []}]
      x-rate-limit: [{name: a, limit: 10, window: 1m, key: ip}]
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    acme:
      type: openIdConnect
      openIdConnectUrl: https://sso.example.com/.well-known/openid-configuration
      x-audience: acme-api
`

// A security scheme written as a $ref with fields of its own beside it:
// the loader keeps the target and drops the rest, so an x-audience or an
// openIdConnectUrl there left the scheme the target's, accepting the
// target's tokens (helper-183). Refused, naming the line.
func TestSchemeRefSiblingsRefused(t *testing.T) {
	head := refDocument + "    partner:\n      $ref: '#/components/securitySchemes/acme'\n"
	for _, beside := range []string{
		"x-audience: partner-api",
		"x-introspect: false",
		"openIdConnectUrl: https://partner.example.com/.well-known/openid-configuration",
		"type: http",
	} {
		_, err := policy.Compile("ref.yaml", []byte(head+"      "+beside+"\n"))
		field := beside[:strings.IndexByte(beside, ':')]
		if err == nil || !strings.Contains(err.Error(), "ref.yaml:18:") || !strings.Contains(err.Error(), field) ||
			!strings.Contains(err.Error(), "beside a $ref") {
			t.Errorf("%s beside the scheme's $ref: %v, want it refused on line 18", field, err)
		}
	}
	// A description beside it is documentation (OpenAPI 3.1 allows it),
	// and another tool's extension is none of specguard's to lose.
	if _, err := policy.Compile("ref.yaml", []byte(head+"      description: the partner's door\n      x-internal: true\n")); err != nil {
		t.Errorf("a description and x-internal beside the $ref: %v", err)
	}
}

// One of specguard's extensions where nothing reads it (a tag, a server
// of the document, a path item or an operation, the info object) left
// the operation on the document's default: 600 a minute for the 5
// written (helper-183). Each is refused.
func TestOurExtensionOnUnreadPartsRefused(t *testing.T) {
	const limit = `x-rate-limit: [{name: strict, limit: 5, window: 1m, key: ip}]`
	for _, tc := range []struct{ name, info, tag, root, pathServer, opServer string }{
		{name: "tag x-rate-limit", tag: limit},
		{name: "tag x-require-fresh", tag: "x-require-fresh: true"},
		{name: "document server", root: limit},
		{name: "operation server", opServer: limit},
		{name: "path item server", pathServer: "x-require-fresh: true"},
		{name: "info", info: limit},
	} {
		or := func(s string) string {
			if s == "" {
				return "x-note: none"
			}
			return s
		}
		doc := `openapi: 3.0.3
info:
  title: t
  version: "1"
  ` + or(tc.info) + `
security: [{bearer: []}]
x-rate-limit: [{name: all, limit: 600, window: 1m, key: ip}]
servers:
  - url: https://api.example.com
    ` + or(tc.root) + `
tags:
  - name: admin
    ` + or(tc.tag) + `
paths:
  /admin/users:
    servers:
      - url: https://admin.example.com
        ` + or(tc.pathServer) + `
    delete:
      operationId: deleteUsers
      tags: [admin]
      servers:
        - url: https://admin.example.com
          ` + or(tc.opServer) + `
      responses: {'204': {description: gone}}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
`
		_, err := policy.Compile("where.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), "here it would be ignored") {
			t.Errorf("%s: %v, want it refused", tc.name, err)
		}
	}
}

// OpenAPI 3.1 makes paths optional: Compile panicked on a document
// without them (helper-183). It answers, with no operations.
func TestCompileWithoutPaths(t *testing.T) {
	for _, doc := range []string{
		"openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\nwebhooks:\n  ping:\n    post:\n      operationId: ping\n      responses: {'200': {description: ok}}\n",
		"openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\ncomponents: {}\n",
	} {
		table, err := policy.Compile("nopaths.yaml", []byte(doc))
		if err != nil {
			t.Errorf("%v", err)
		} else if n := len(table.Operations()); n != 0 {
			t.Errorf("%d operations, want none", n)
		}
	}
}

// The same through a YAML alias or merge key, which the loader expands
// before it drops what is beside the $ref (helper-191); and a summary
// beside it (an OpenAPI 3.1 Reference Object's) is documentation.
func TestSchemeRefSiblingsThroughAnAlias(t *testing.T) {
	head := strings.Replace(refDocument, "paths:\n", `x-templates:
  partner: &partner
    $ref: '#/components/securitySchemes/acme'
    x-audience: partner-api
paths:
`, 1)
	for name, tail := range map[string]string{
		"alias": "    partner: *partner\n",
		"merge": "    partner:\n      <<: *partner\n",
	} {
		if _, err := policy.Compile("ref.yaml", []byte(head+tail)); err == nil || !strings.Contains(err.Error(), "x-audience: beside a $ref") {
			t.Errorf("%s: x-audience beside the scheme's $ref: %v, want it refused", name, err)
		}
	}
	summary := strings.Replace(head, "    x-audience: partner-api\n", "    summary: the partner's door\n", 1)
	if _, err := policy.Compile("ref.yaml", []byte(summary+"    partner: *partner\n    other:\n      $ref: '#/components/securitySchemes/acme'\n      summary: another door\n")); err != nil {
		t.Errorf("a summary beside the $ref: %v", err)
	}
}

// Through a chain of merge keys of any length (five and more passed,
// helper-193), and a misspelt extension of ours (x-audiance) through an
// alias, which c5f0bf9 took as another tool's.
func TestSchemeRefSiblingsThroughAMergeChain(t *testing.T) {
	for depth := 1; depth <= 8; depth++ {
		var tmpl strings.Builder
		tmpl.WriteString("x-templates:\n  t0: &t0\n    $ref: '#/components/securitySchemes/acme'\n    x-audience: partner-api\n")
		for i := 1; i < depth; i++ {
			fmt.Fprintf(&tmpl, "  t%d: &t%d\n    <<: *t%d\n", i, i, i-1)
		}
		doc := strings.Replace(refDocument, "paths:\n", tmpl.String()+"paths:\n", 1) + fmt.Sprintf("    partner:\n      <<: *t%d\n", depth-1)
		if _, err := policy.Compile("ref.yaml", []byte(doc)); err == nil || !strings.Contains(err.Error(), "x-audience: beside a $ref") {
			t.Errorf("%d merge keys deep: %v, want the x-audience beside the $ref refused", depth, err)
		}
	}
	tmpl := "x-templates:\n  partner: &partner\n    $ref: '#/components/securitySchemes/acme'\n    x-audiance: partner-api\n"
	if _, err := policy.Compile("ref.yaml", []byte(strings.Replace(refDocument, "paths:\n", tmpl+"paths:\n", 1)+"    partner: *partner\n")); err == nil {
		t.Error("x-audiance beside the scheme's $ref through an alias: taken")
	}
}

// An alias used as a key stands for its anchor's scalar (the outline read
// the anchor's name), and merges past what the outline reads made the
// check pass unseen: the first is read as the loader reads it, the second
// refuses the document (helper-194).
func TestSchemeRefSiblingsHiddenFromTheOutline(t *testing.T) {
	aliasKey := strings.Replace(refDocument, "paths:\n", "x-names: [&x-partner-note x-audience]\npaths:\n", 1) +
		"    partner:\n      $ref: '#/components/securitySchemes/acme'\n      *x-partner-note : partner-api\n"
	if _, err := policy.Compile("ref.yaml", []byte(aliasKey)); err == nil || !strings.Contains(err.Error(), "beside a $ref") {
		t.Errorf("x-audience beside the $ref as an alias key: %v, want it refused", err)
	}
	// 101 templates of 100 members each, each merged once: more than
	// the outline reads (a template merged many times is read once).
	var b strings.Builder
	b.WriteString("x-templates:\n")
	for i := range 101 {
		fmt.Fprintf(&b, "  b%d: &b%d\n", i, i)
		for j := range 100 {
			fmt.Fprintf(&b, "    k%d: %d\n", j, j)
		}
		fmt.Fprintf(&b, "  t%d:\n    <<: *b%d\n", i, i)
	}
	b.WriteString("  partner: &partner\n    x-audience: partner-api\n")
	many := strings.Replace(refDocument, "paths:\n", b.String()+"paths:\n", 1) +
		"    partner:\n      $ref: '#/components/securitySchemes/acme'\n      <<: *partner\n"
	if _, err := policy.Compile("ref.yaml", []byte(many)); err == nil || !strings.Contains(err.Error(), "merge keys and aliases bring in more than") {
		t.Errorf("x-audience merged beside the $ref after 10,100 merged members: %v, want the document refused", err)
	}
}

// A large API whose operations merge one template: the outline read the
// template again for every reference and counted its members each time,
// so 2,000 operations merging 5 fields were refused as past its bound
// (helper-195, on f51b06a). A template is read once.
func TestManyOperationsMergingATemplate(t *testing.T) {
	var b strings.Builder
	b.WriteString("openapi: 3.1.0\ninfo: {title: t, version: \"1\"}\n")
	b.WriteString("x-templates:\n  op: &op\n    security: []\n    x-rate-limit: false\n    tags: [things]\n    summary: a thing\n    responses: {'200': {description: ok}}\n")
	b.WriteString("paths:\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "  /things%d:\n    get:\n      <<: *op\n      operationId: get%d\n", i, i)
	}
	table, err := policy.Compile("big.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("3,000 operations merging one template: %v", err)
	}
	if n := len(table.Operations()); n != 3000 {
		t.Errorf("%d operations, want 3000", n)
	}
}
