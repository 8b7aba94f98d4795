package policy_test

import (
	"testing"

	"github.com/specguard/specguard/policy"
)

// A value of the wrong type (version: 1, a common slip) was refused by the
// loader with no line and a misleading half about JSON; it is now one
// error at the value, saying what is due.
func TestTypeErrorsNameTheirLine(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"version a number", "openapi: 3.0.3\ninfo:\n  title: t\n  version: 1\npaths: {}\n",
			`doc.yaml:4:12: version: 1 is a number, where a string is due: quote it ("1")`},
		{"the same key elsewhere first", "openapi: 3.0.3\nx-meta: {version: 2}\ninfo:\n  title: t\n  version: 1\npaths: {}\n",
			`doc.yaml:5:12: version: 1 is a number, where a string is due: quote it ("1")`},
		{"the same key in an example first", "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths: {}\ncomponents:\n  schemas:\n    Book:\n      type: object\n      example: {title: 1984}\n      properties:\n        name: {type: string, title: 7}\n",
			`doc.yaml:10:37: title: 7 is a number, where a string is due: quote it ("7")`},
		{"a number given as text", "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n  /a:\n    get:\n      security: []\n      x-rate-limit: false\n      parameters:\n        - {name: q, in: query, schema: {type: integer, minimum: one}}\n      responses: {'200': {description: ok}}\n",
			`doc.yaml:9:65: minimum: "one" is a string, where a number is due`},
		{"a boolean given as text", "openapi: 3.0.3\ninfo: {title: t, version: \"1\"}\npaths:\n  /a:\n    get:\n      security: []\n      x-rate-limit: false\n      deprecated: 'yes'\n      responses: {'200': {description: ok}}\n",
			`doc.yaml:8:19: deprecated: "yes" is a string, where true or false is due`},
		{"JSON", `{"openapi":"3.0.3","info":{"title":"t","version":1},"paths":{}}`,
			`doc.yaml:1:50: version: 1 is a number, where a string is due: quote it ("1")`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := policy.Compile("doc.yaml", []byte(c.doc))
			if err == nil || err.Error() != c.want {
				t.Errorf("Compile: %v\nwant %s", err, c.want)
			}
		})
	}
}
