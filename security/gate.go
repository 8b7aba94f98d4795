package security

import (
	"context"
	"errors"
	"fmt"
)

// Gate is the store Check of a credential verified locally (a token's
// revocation, a session's or key's liveness, its account's state), left
// for later so that it travels in the same store call as the rate-limit
// decision: it is a limits.Precheck. On one Redis a guarded request then
// costs one round trip instead of two. Authenticators return one from
// AuthenticateDeferred; Authenticate checks at once.
type Gate struct {
	store Checker
	check Check
	// dead is called when the check finds the credential revoked.
	dead func()
	// The check as a Lua function, made with the gate (while the request
	// is authenticated), so that the limiter only reads it.
	client any
	fn     string
	keys   []string
	args   []any
}

// Check runs the gate on its own: nil while the credential holds, an error
// wrapping ErrInvalid once it was revoked or replaced, ErrUnavailable when
// the store cannot say, ErrRecheck when the account changed (nothing was
// decided: authenticate again, without deferring).
func (g *Gate) Check(ctx context.Context) error {
	return g.result(g.store.Check(ctx, g.check))
}

// result is the error of a check that returned err, and tells dead when
// the credential was revoked.
func (g *Gate) result(err error) error {
	if errors.Is(err, ErrNotFound) && g.dead != nil {
		g.dead()
	}
	return checkError(err)
}

// Script returns the gate as a Lua function when its store can express it
// (a Redis store), else a nil client.
func (g *Gate) Script() (client any, fn string, keys []string, args []any) {
	return g.client, g.fn, g.keys, g.args
}

// Failed turns a non-zero code of the gate's function into the error Check
// gives.
func (g *Gate) Failed(code int64) error {
	sc, ok := g.store.(ScriptChecker)
	if !ok {
		return fmt.Errorf("%w: a gate without a script failed with code %d", ErrUnavailable, code)
	}
	return g.result(sc.CheckFailed(code))
}

// NewGate returns the deferred form of check c on store: for a store's
// Preload, say (the script's shape does not depend on c's values).
func NewGate(store Checker, c Check) *Gate {
	g := &Gate{store: store, check: c}
	if sc, ok := store.(ScriptChecker); ok {
		g.client, g.fn, g.keys, g.args = sc.CheckScript(c)
	}
	return g
}

// ErrRecheck: a deferred check found the account in another state, or an
// API key without a mark. Nothing was decided: authenticate again without
// deferring, which reads the account and the key's record anew.
var ErrRecheck = errors.New("credential must be checked again")

// checkError maps a Checker's error to an Authenticator's.
func checkError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: credential revoked", ErrInvalid)
	case errors.Is(err, ErrStale), errors.Is(err, ErrUnmarked):
		return fmt.Errorf("%w: %w", ErrRecheck, err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}
