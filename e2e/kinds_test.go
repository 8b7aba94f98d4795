package e2e

// Product tests use what every service keeps (see internal/spectest): the
// credential operations, GET /me, and operations of the app's own found
// by kind in the document; the example's own tests are posts_test.go.

import (
	"sync"
	"testing"

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
