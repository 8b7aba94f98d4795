package security

import (
	"context"
	"net/http"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
)

// MemoryRecords is how many records (families, sessions, key marks and
// revocations, account states) m holds, expired or not.
func MemoryRecords(m *MemoryStore) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.families) + len(m.sessions) + len(m.marks) + len(m.accounts)
}

// AuthenticateDeferred is the guard's private form of b.Authenticate: the
// store check left to the returned precheck.
func AuthenticateDeferred(b BearerAuthenticator, ctx context.Context, r *http.Request, scheme *policy.Scheme) (*Principal, onetrip.Precheck, error) {
	return b.authenticateDeferred(ctx, r, scheme)
}
