package security

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
)

// gate is the store Check of a credential verified locally (a token's
// revocation, a session's or key's liveness, its account's state), left
// for later so that it travels in the same store call as the rate-limit
// decision: an onetrip.Precheck. On one Redis a guarded request then costs
// one round trip instead of two. The authenticators' authenticateDeferred
// return one; Authenticate checks at once.
type gate struct {
	store Checker
	check Check
	// dead is told when the check finds the credential revoked.
	dead forgetter
	// The check as a Lua function, made with the gate (while the request
	// is authenticated), so that the limiter only reads it.
	client any
	fn     string
	keys   []string
	args   []any
}

var _ onetrip.Precheck = (*gate)(nil)

// deferFunc is an authenticator's authenticateDeferred.
type deferFunc = func(context.Context, *http.Request, *policy.Scheme) (*Principal, onetrip.Precheck, error)

func init() {
	onetrip.Deferrer = func(auth any) deferFunc {
		switch a := auth.(type) {
		case BearerAuthenticator:
			return a.authenticateDeferred
		case *APIKeyService:
			return a.authenticateDeferred
		case *SessionService:
			return a.authenticateDeferred
		}
		return nil
	}
}

// deferred returns the gate of an authentication as a Precheck: nil when
// there is none (a nil *gate would be a non-nil interface).
func deferred(p *Principal, g *gate, err error) (*Principal, onetrip.Precheck, error) {
	if g == nil {
		return p, nil, err
	}
	return p, g, err
}

// Check runs the gate on its own: nil while the credential holds, an error
// wrapping ErrInvalid once it was revoked or replaced, ErrUnavailable when
// the store cannot say, onetrip.ErrRecheck when the account changed
// (nothing was decided: authenticate again, without deferring).
func (g *gate) Check(ctx context.Context) error {
	return g.result(g.store.Check(ctx, g.check))
}

// result is the error of a check that returned err, and tells dead when
// the credential was revoked.
func (g *gate) result(err error) error {
	if errors.Is(err, ErrNotFound) && g.dead != nil {
		g.dead.forget(g.check.ID)
	}
	return checkError(err)
}

// Script returns the gate as a Lua function when its store can express it
// (a Redis store), else a nil client.
func (g *gate) Script() (client any, fn string, keys []string, args []any) {
	return g.client, g.fn, g.keys, g.args
}

// Failed turns a non-zero code of the gate's function into the error Check
// gives.
func (g *gate) Failed(code int64) error {
	sc := scripterOf(g.store)
	if sc == nil {
		return fmt.Errorf("%w: a gate without a script failed with code %d", ErrUnavailable, code)
	}
	return g.result(sc.CheckFailed(code))
}

// scriptChecker is what expresses a store's Checks as a Lua function, so
// that a Redis rate-limit store on the same client runs it in its own
// script: one round trip for the credential and every tier. The Redis
// store registers one (onetrip.RegisterScripter); a wrapper of a store
// (metrics, say) that implements it keeps the one round trip.
type scriptChecker interface {
	// CheckScript returns c as the Lua function
	// `local function gate(gk, ga, now)` (0 while the credential holds, a
	// code otherwise), its keys and arguments, and the Redis client whose
	// keys they are.
	CheckScript(c Check) (client any, fn string, keys []string, args []any)
	// CheckFailed turns a non-zero code of the function into Check's error.
	CheckFailed(code int64) error
}

// scripterOf returns what expresses store's checks in Lua, or nil.
func scripterOf(store Checker) scriptChecker {
	if sc, ok := store.(scriptChecker); ok {
		return sc
	}
	sc, _ := onetrip.Scripter(store).(scriptChecker)
	return sc
}

// newGate returns the deferred form of check c on store.
func newGate(store Checker, c Check) *gate {
	g := &gate{store: store, check: c}
	if sc := scripterOf(store); sc != nil {
		g.client, g.fn, g.keys, g.args = sc.CheckScript(c)
	}
	return g
}

// checkError maps a Checker's error to an Authenticator's.
func checkError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: credential revoked", ErrInvalid)
	case errors.Is(err, ErrStale), errors.Is(err, ErrUnmarked):
		return fmt.Errorf("%w: %w", onetrip.ErrRecheck, err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}
