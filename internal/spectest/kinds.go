package spectest

// Product tests use what every service keeps: the credential operations
// (found by their x-credential), and operations of the app's own found by
// kind in the document (one a read scope guards, one that admits
// anonymous callers), never a named operation of the example's domain,
// so that replacing the blog breaks only its own tests.

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

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

// TierOf is the first tier of op that counts by key and applies to who
// (a tier for every caller applies to both kinds); tb fails naming what
// the test needs when there is none.
func TierOf(tb testing.TB, op *policy.Operation, key policy.KeyKind, who policy.Who) *policy.Tier {
	tb.Helper()
	for i := range op.Limits {
		if t := &op.Limits[i]; t.Key == key && (t.Who == who || t.Who == policy.WhoAny) {
			return t
		}
	}
	tb.Fatalf("this test needs a tier of %s counting %s callers by %s, and there is none", Describe(op), who, key)
	return nil
}

// Admits is how many calls a full bucket of t admits at once.
func Admits(t *policy.Tier) int { return int(t.Burst / t.Cost) }

// BearerScheme is the name of the first scheme of op, in the order of its
// alternatives, that takes a bearer token (http bearer or oauth2); tb
// fails when op takes none.
func BearerScheme(tb testing.TB, op *policy.Operation) string {
	tb.Helper()
	for _, alt := range op.Security.Alternatives {
		for _, sr := range alt {
			if t := sr.Scheme.Type; t == policy.SchemeBearer || t == policy.SchemeOAuth2 {
				return sr.Scheme.Name
			}
		}
	}
	tb.Fatalf("this test needs %s to take a bearer token, and it takes none", Describe(op))
	return ""
}

// WithDefaultTier returns spec with the first tier of the document's
// default x-rate-limit that counts by key (its key field, as written)
// changed: each field of set takes its value, and a nil one is removed.
// tb fails when the document has no such tier.
func WithDefaultTier(tb testing.TB, spec []byte, key string, set map[string]any) []byte {
	tb.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(spec, &doc); err != nil || len(doc.Content) == 0 {
		tb.Fatalf("the document does not parse: %v", err)
	}
	if tiers := field(doc.Content[0], policy.ExtRateLimit); tiers != nil {
		for _, tier := range tiers.Content {
			if k := field(tier, "key"); k == nil || k.Value != key {
				continue
			}
			return changed(tb, &doc, tier, set)
		}
	}
	tb.Fatalf("this test needs a tier counting by %s in the document's default x-rate-limit, and there is none", key)
	return nil
}

// WithOperationTier returns spec with op's own tier named name changed:
// each field of set takes its value, and a nil one is removed. tb fails
// when op declares no such tier.
func WithOperationTier(tb testing.TB, spec []byte, op *policy.Operation, name string, set map[string]any) []byte {
	tb.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(spec, &doc); err != nil || len(doc.Content) == 0 {
		tb.Fatalf("the document does not parse: %v", err)
	}
	var tiers []*yaml.Node
	if paths := field(doc.Content[0], "paths"); paths != nil {
		if item := field(paths, op.Path); item != nil {
			if o := field(item, strings.ToLower(op.Method)); o != nil {
				limits := field(o, policy.ExtRateLimit)
				if limits != nil && limits.Kind == yaml.AliasNode {
					limits = limits.Alias // x-rate-limit: *anchor
				}
				switch {
				case limits == nil:
				case limits.Kind == yaml.MappingNode:
					tiers = []*yaml.Node{limits}
				default:
					tiers = limits.Content
				}
			}
		}
	}
	for _, tier := range tiers {
		if n := field(tier, "name"); n == nil || n.Value != name {
			continue
		}
		return changed(tb, &doc, tier, set)
	}
	tb.Fatalf("this test needs %s to declare a tier %s of its own, and it does not", Describe(op), name)
	return nil
}

// changed is doc, written out, with each field of set given its value in
// the mapping tier (a nil one removed).
func changed(tb testing.TB, doc, tier *yaml.Node, set map[string]any) []byte {
	tb.Helper()
	for _, name := range slices.Sorted(maps.Keys(set)) {
		setField(tb, tier, name, set[name])
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// keyAt is the index of the key name in the mapping m, or -1.
func keyAt(m *yaml.Node, name string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == name {
			return i
		}
	}
	return -1
}

// field is the value of name in the mapping m, or nil.
func field(m *yaml.Node, name string) *yaml.Node {
	if i := keyAt(m, name); i >= 0 {
		return m.Content[i+1]
	}
	return nil
}

// setField gives name the value v in the mapping m, or removes it when v
// is nil.
func setField(tb testing.TB, m *yaml.Node, name string, v any) {
	tb.Helper()
	if i := keyAt(m, name); i >= 0 {
		m.Content = slices.Delete(m.Content, i, i+2)
	}
	if v == nil {
		return
	}
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		tb.Fatal(err)
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, &n)
}

// WithoutKey returns spec with the mapping key at path taken out, such as
// "paths", "/posts", "get" for an operation; tb fails when there is none.
func WithoutKey(tb testing.TB, spec []byte, path ...string) []byte {
	tb.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(spec, &doc); err != nil || len(doc.Content) == 0 || len(path) == 0 {
		tb.Fatalf("the document does not parse, or no path was given: %v", err)
	}
	m := doc.Content[0]
	for _, key := range path[:len(path)-1] {
		if m = field(m, key); m == nil {
			tb.Fatalf("the document has no %s", strings.Join(path, "."))
		}
	}
	i := keyAt(m, path[len(path)-1])
	if i < 0 {
		tb.Fatalf("the document has no %s", strings.Join(path, "."))
	}
	m.Content = slices.Delete(m.Content, i, i+2)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
