package speccli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"
)

// lint --help lists every warning code the linter emits (unchecked-format
// was missing), read from policy's Warn constants.
func TestLintHelpListsEveryWarning(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../policy/lint.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := 0
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Warn") {
			return true
		}
		lit, ok := vs.Values[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		code, _ := strconv.Unquote(lit.Value)
		codes++
		if code != "lint-ignore" && !strings.Contains(lintUsage, "\n  "+code+" ") && !strings.Contains(lintUsage, "\n  "+code+"\n") {
			t.Errorf("lint's help does not list the warning %s (policy.%s)", code, vs.Names[0].Name)
		}
		return true
	})
	if codes < 5 {
		t.Fatalf("found %d warning codes in policy/lint.go: the test reads the wrong file", codes)
	}
}
