package spectest

// Product tests use what every service keeps: the credential operations
// (found by their x-credential), and operations of the app's own found by
// kind in the document (one a read scope guards, one that admits
// anonymous callers), never a named operation of the example's domain,
// so that replacing the blog breaks only its own tests.

import (
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/policy"
)

// Table compiles spec, failing tb when it does not compile.
func Table(tb testing.TB, source string, spec []byte) *policy.Table {
	tb.Helper()
	table, err := policy.Compile(source, spec)
	if err != nil {
		tb.Fatal(err)
	}
	return table
}

// CredentialOp is the credential operation of kind (its x-credential).
func CredentialOp(tb testing.TB, table *policy.Table, kind string) *policy.Operation {
	tb.Helper()
	for _, op := range table.Operations() {
		if op.Spec.Extensions[credentials.ExtCredential] == kind {
			return op
		}
	}
	tb.Fatalf("%s declares no credential operation %q (x-credential: %s)", table.Source, kind, kind)
	return nil
}

// AppOp is the first operation of the app's own (no x-credential), in the
// document's order, that match accepts; tb fails saying what it needs
// when there is none.
func AppOp(tb testing.TB, table *policy.Table, what string, match func(*policy.Operation) bool) *policy.Operation {
	tb.Helper()
	for _, op := range table.Operations() {
		if _, cred := op.Spec.Extensions[credentials.ExtCredential]; !cred && match(op) {
			return op
		}
	}
	tb.Fatalf("this test needs %s in %s, and there is none", what, table.Source)
	return nil
}

// ScopesOf returns the scopes op requires of a credential of scheme type
// typ presented alone, and whether op accepts one.
func ScopesOf(op *policy.Operation, typ policy.SchemeType) ([]string, bool) {
	for _, alt := range op.Security.Alternatives {
		if len(alt) == 1 && alt[0].Scheme.Type == typ {
			return alt[0].Scopes, true
		}
	}
	return nil, false
}

// KeyScoped is an operation of the app's own, safe or not, that an API
// key holding one scope the user role grants may call, and that scope.
func KeyScoped(tb testing.TB, table *policy.Table, what string, safe bool) (*policy.Operation, string) {
	tb.Helper()
	user := table.RoleScopes("user")
	var scope string
	op := AppOp(tb, table, what, func(op *policy.Operation) bool {
		scopes, ok := ScopesOf(op, policy.SchemeAPIKeyHeader)
		if !ok || len(scopes) != 1 || !slices.Contains(user, scopes[0]) || IsSafe(op.Method) != safe {
			return false
		}
		scope = scopes[0]
		return true
	})
	return op, scope
}

// OtherScope is a scope of role other than those of not, or "" when the
// role has none.
func OtherScope(table *policy.Table, role string, not ...string) string {
	for _, s := range table.RoleScopes(role) {
		if !slices.Contains(not, s) {
			return s
		}
	}
	return ""
}

// IsSafe reports whether method changes nothing.
func IsSafe(method string) bool { return method == "GET" || method == "HEAD" }

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// Path is op's path with every parameter v.
func Path(op *policy.Operation, v string) string {
	return pathParam.ReplaceAllString(op.Path, v)
}

// Describe names op in messages.
func Describe(op *policy.Operation) string {
	return fmt.Sprintf("%s %s (%s)", op.Method, op.Path, op.ID)
}
