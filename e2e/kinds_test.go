package e2e

// Product tests use what every service keeps (see internal/spectest): the
// credential operations, GET /me, and operations of the app's own found
// by kind in the document; the example's own tests are posts_test.go.

import (
	"sync"
	"testing"
	"time"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/policy"
)

var compiled struct {
	once  sync.Once
	table *policy.Table
}

// docTable is the example's document, compiled.
func docTable(t *testing.T) *policy.Table {
	t.Helper()
	compiled.once.Do(func() { compiled.table = spectest.Table(t, "api/openapi.yaml", api.Spec) })
	return compiled.table
}

func credentialOp(t *testing.T, kind string) *policy.Operation {
	t.Helper()
	return spectest.CredentialOp(t, docTable(t), kind)
}

// wrongLogins is how many wrong passwords one address gets at the login
// operation before a 429, and how long the 429s that follow may say to
// wait: the login tier's (read from the document) and the failed-password
// budget's (SPECGUARD_FAILED_LOGINS_PER_IP, 5 per 15 minutes by default),
// whichever refuses first, then the other too once it is spent.
func wrongLogins(t *testing.T) (int, []time.Duration) {
	t.Helper()
	tier := spectest.TierOf(t, credentialOp(t, "login"), policy.KeyIP, policy.WhoAnonymous)
	const budget, window = 5, 15 * time.Minute
	return min(spectest.Admits(tier), budget), []time.Duration{time.Duration(tier.Interval()*tier.Cost) * time.Microsecond, window / budget}
}

func appOp(t *testing.T, what string, match func(*policy.Operation) bool) *policy.Operation {
	t.Helper()
	return spectest.AppOp(t, docTable(t), what, match)
}

func keyScoped(t *testing.T, what string, safe bool) (*policy.Operation, string) {
	t.Helper()
	return spectest.KeyScoped(t, docTable(t), what, safe)
}

// listUsersScope is the scope an API key needs, alone, to list accounts.
func listUsersScope(t *testing.T) string {
	t.Helper()
	op := credentialOp(t, "list-users")
	scopes, ok := scopesOf(op, policy.SchemeAPIKeyHeader)
	if !ok || len(scopes) != 1 {
		t.Fatalf("this test needs %s to take an API key of one scope alone", describe(op))
	}
	return scopes[0]
}

var (
	bearerScheme   = spectest.BearerScheme
	scopeOtherThan = spectest.OtherScope
	scopesOf       = spectest.ScopesOf
	isSafe         = spectest.IsSafe
	pathOf         = spectest.Path
	describe       = spectest.Describe
)
