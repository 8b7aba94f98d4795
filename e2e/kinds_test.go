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
// operation before a 429, and about how long that 429 says to wait: its
// tier's (read from the document), or the failed-password budget's
// (SPECGUARD_FAILED_LOGINS_PER_IP, 5 per 15 minutes by default) where that
// refuses first.
func wrongLogins(t *testing.T) (int, time.Duration) {
	t.Helper()
	tier := spectest.TierOf(t, credentialOp(t, "login"), policy.KeyIP, policy.WhoAnonymous)
	n, wait := spectest.Admits(tier), time.Duration(tier.Interval()*tier.Cost)*time.Microsecond
	const budget, window = 5, 15 * time.Minute
	if budget < n {
		n, wait = budget, window/budget
	}
	return n, wait
}

func appOp(t *testing.T, what string, match func(*policy.Operation) bool) *policy.Operation {
	t.Helper()
	return spectest.AppOp(t, docTable(t), what, match)
}

func keyScoped(t *testing.T, what string, safe bool) (*policy.Operation, string) {
	t.Helper()
	return spectest.KeyScoped(t, docTable(t), what, safe)
}

var (
	scopesOf = spectest.ScopesOf
	isSafe   = spectest.IsSafe
	pathOf   = spectest.Path
	describe = spectest.Describe
)
