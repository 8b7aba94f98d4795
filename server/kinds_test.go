package server_test

// Product tests find what they need in the document by kind (see
// internal/spectest); the blog's own tests are posts_test.go.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/server"
)

func docTable(t testing.TB) *policy.Table {
	t.Helper()
	return spectest.Table(t, server.SpecSource, api.Spec)
}

// at is the path of the document's credential operation of kind
// (x-credential): tests call the operations where the document puts them.
func at(t testing.TB, kind string) string {
	t.Helper()
	table, err := pathsTable()
	if err != nil {
		t.Fatal(err)
	}
	return spectest.CredentialOp(t, table, kind).Path
}

// pathsTable is the document compiled once, for at: read only.
var pathsTable = sync.OnceValues(func() (*policy.Table, error) { return policy.Compile(server.SpecSource, api.Spec) })

// loginTier is what the tests of the login tier need: the login
// operation's path, how many attempts one address makes before its tier
// (keyed by IP, counting anonymous callers) refuses, and the environment
// that leaves the failed-password budgets (per address and per account)
// wide, so that the tier alone decides (both were 5 per 15 minutes, and tests could not tell which
// refused).
func loginTier(t testing.TB) (path string, admits int, env map[string]string) {
	t.Helper()
	op := spectest.CredentialOp(t, docTable(t), "login")
	return op.Path, spectest.Admits(spectest.TierOf(t, op, policy.KeyIP, policy.WhoAnonymous)),
		map[string]string{"SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32", "SPECGUARD_FAILED_LOGINS_PER_IP": "100000/15m", "SPECGUARD_FAILED_LOGINS_PER_ACCOUNT": "100000/15m",
			"SPECGUARD_SPEC_FILE": loginTierNoRefill(t)}
}

// loginTierNoRefill is the document, for SPECGUARD_SPEC_FILE, with the
// login tier earning back one request an hour, its burst as it is: a test
// that counts the attempts the tier admits is not thrown off by one it
// earns back meanwhile, whatever the document's rate (150 per 15 minutes
// earns one back every 6 s).
func loginTierNoRefill(t testing.TB) string {
	t.Helper()
	op := spectest.CredentialOp(t, docTable(t), "login")
	tier := spectest.TierOf(t, op, policy.KeyIP, policy.WhoAnonymous)
	spec := spectest.WithOperationTier(t, api.Spec, op, tier.Name, map[string]any{"window": fmt.Sprintf("%dh", tier.Limit), "burst": tier.Burst})
	path := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(path, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// addressBudget is a failed-password budget per address (at most the
// default, 5) below what the login tier admits, so that the budget, not the
// tier, refuses, and the environment that sets it.
func addressBudget(t testing.TB) (int, map[string]string) {
	t.Helper()
	_, admits, _ := loginTier(t)
	budget := min(5, admits-1)
	if budget < 1 {
		t.Fatalf("the login tier admits %d attempts: no budget below it to test", admits)
	}
	return budget, map[string]string{"SPECGUARD_TRUSTED_PROXIES": "127.0.0.1/32", "SPECGUARD_FAILED_LOGINS_PER_IP": fmt.Sprintf("%d/15m", budget)}
}

// accountBudget is addressBudget with an account budget of exactly the
// guesses a test makes from one address: the budget's checked ones and
// refused more. Should a refused guess spend the account's budget, the
// owner's right password is refused.
func accountBudget(t testing.TB, refused int) (int, map[string]string) {
	t.Helper()
	budget, env := addressBudget(t)
	env["SPECGUARD_FAILED_LOGINS_PER_ACCOUNT"] = fmt.Sprintf("%d/15m", budget+refused)
	return budget, env
}

// userScope is a scope the user role grants: what an API key of the
// demo user holds.
func userScope(t testing.TB) string {
	t.Helper()
	scopes := docTable(t).RoleScopes("user")
	if len(scopes) == 0 {
		t.Fatal("the user role grants no scope")
	}
	return scopes[0]
}

// keyBody is the body that makes an API key named name holding userScope.
func keyBody(t testing.TB, name string) string {
	t.Helper()
	return fmt.Sprintf(`{"name":%q,"scopes":[%q]}`, name, userScope(t))
}

// The example document compiles, and its credential operations say what
// the README says they do.
func TestCompileExampleSpec(t *testing.T) {
	table := docTable(t)
	if got, want := len(table.Operations()), len(spectest.Operations(t, api.Spec)); got != want {
		t.Errorf("%d operations, want %d (every operation of the document)", got, want)
	}
	// Public, and limited by address (how much is the document's to say).
	login := spectest.CredentialOp(t, table, "login")
	if !login.Security.Public || !slices.ContainsFunc(login.Limits, func(l policy.Tier) bool { return l.Key == policy.KeyIP }) {
		t.Errorf("login: public, limited per IP: %+v %+v", login.Security, login.Limits)
	}
	if j := spectest.CredentialOp(t, table, "jwks"); !j.Security.Public {
		t.Errorf("%s: public: %+v", spectest.Describe(j), j.Security)
	}
	if k := spectest.CredentialOp(t, table, "create-api-key"); !k.RequireFresh {
		t.Errorf("%s requires a fresh token", spectest.Describe(k))
	}
	// Every alternative the document writes, each scheme of an AND in it.
	d := spectest.CredentialOp(t, table, "disable-user")
	written := table.Doc.Security // what it inherits, when it writes none
	if d.Spec.Security != nil {
		written = *d.Spec.Security
	}
	if len(d.Security.Alternatives) != len(written) {
		t.Fatalf("%s: %d alternatives, the document writes %d", spectest.Describe(d), len(d.Security.Alternatives), len(written))
	}
	for i, alt := range d.Security.Alternatives {
		if len(alt) != len(written[i]) {
			t.Errorf("%s: alternative %d holds %s, the document writes %v", spectest.Describe(d), i, alt, written[i])
		}
		for _, sr := range alt {
			if _, ok := written[i][sr.Scheme.Name]; !ok {
				t.Errorf("%s: alternative %d holds %s, the document writes %v", spectest.Describe(d), i, sr.Scheme.Name, written[i])
			}
		}
	}
	for _, role := range []string{"user", "moderator", "admin"} {
		if len(table.RoleScopes(role)) == 0 {
			t.Errorf("role %s grants nothing", role)
		}
	}
}

// registerMinLength is the minLength the document gives the password of
// register's request body: the shortest password the server sets.
func registerMinLength(t testing.TB) int {
	t.Helper()
	op := spectest.CredentialOp(t, docTable(t), "register")
	p := op.Spec.RequestBody.Value.Content.Get("application/json").Schema.Value.Properties["password"]
	if p == nil || p.Value.MinLength == 0 {
		t.Fatalf("%s %s declares no minLength for password", op.Method, op.Path)
	}
	return int(p.Value.MinLength)
}
