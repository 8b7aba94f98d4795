package tokens

import (
	"context"
	"net/http"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// AuthenticateDeferred is the guard's private form of b.Authenticate: the
// store check left to the returned precheck.
func AuthenticateDeferred(b Bearer, ctx context.Context, r *http.Request, scheme *policy.Scheme) (*security.Principal, onetrip.Precheck, error) {
	return b.authenticateGuarded(ctx, r, scheme, onetrip.Mode{Gated: true})
}
