package security

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/policy"
)

// Gate is the store Check of a credential verified locally (a token's
// revocation, a session's or key's liveness, its account's version),
// deferred by the guard so that it can travel in the same store call as the
// rate-limit decision: with Redis, a guarded request then costs one round
// trip instead of two. The guard defers only when its limiter says it can
// carry gates (GatedLimiter); otherwise credentials are checked when
// verified.
type Gate struct {
	store Store
	check Check
	// Redis is the check as a Lua function, when the security store is a
	// RedisStore: a rate-limit store on the same client can run it in its
	// own script.
	Redis *RedisGate
}

// RedisGate is a credential check a Redis script can run. Func defines the
// Lua function `gate(gk, ga, now)` over Keys (gk), Args (ga) and Redis
// TIME in microseconds; it returns 0 while the credential holds, and a
// code for Gate.Failed otherwise.
type RedisGate struct {
	Client redis.UniversalClient // the Redis the keys live in
	Keys   []string
	Args   []any
	Func   string
}

// Check runs the gate on its own: nil while the credential holds, an error
// wrapping ErrInvalid once it was revoked or replaced, ErrUnavailable when
// the store cannot say. Any other error means the account changed: nothing
// was decided, and the request is authenticated again without a gate.
func (g *Gate) Check(ctx context.Context) error {
	return checkError(g.store.Check(ctx, g.check))
}

// Failed turns the non-zero code of a RedisGate's function into the error
// Check gives.
func (g *Gate) Failed(code int64) error { return checkError(gateError(code)) }

// errRecheck: a deferred check found the account at another version, or an
// API key without a mark. The guard decides again on the slow path, which
// reads the account and the key's record anew.
var errRecheck = errors.New("credential must be checked again")

// checkError maps a Store.Check error to the guard's.
func checkError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: credential revoked", ErrInvalid)
	case errors.Is(err, ErrStale), errors.Is(err, ErrUnmarked):
		return fmt.Errorf("%w: %w", errRecheck, err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// RedisGater is a security store that can express a Check as a RedisGate.
// RedisStore is one; a wrapper (metrics, say) should forward it.
type RedisGater interface {
	RedisGate(c Check) *RedisGate
}

// RedisGate implements RedisGater.
func (s *RedisStore) RedisGate(c Check) *RedisGate {
	keys, args := s.gate(c)
	return &RedisGate{Client: s.rdb, Keys: keys, Args: args, Func: gateFunc}
}

// newGate returns the deferred form of check c on store.
func newGate(store Store, c Check) *Gate {
	g := &Gate{store: store, check: c}
	if rg, ok := store.(RedisGater); ok {
		g.Redis = rg.RedisGate(c)
	}
	return g
}

// GatedLimiter is a Limiter that can carry a Gate in its store call.
type GatedLimiter interface {
	Limiter
	// CanGate reports whether LimitGated saves a round trip; when false
	// the guard checks credentials as it verifies them.
	CanGate() bool
	// LimitGated is Limit for principal p whose credential still has gate
	// to pass. When the gate fails it charges nothing, writes nothing and
	// returns ok true with the gate's error.
	LimitGated(w http.ResponseWriter, r *http.Request, op *policy.Operation, p *Principal, gate *Gate) (ok bool, gateErr error)
}

// gatingAuthenticator is an Authenticator that can leave the store check
// of what it verified to a Gate.
type gatingAuthenticator interface {
	authenticateGated(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*Principal, *Gate, error)
}
