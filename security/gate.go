package security

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/specguard/specguard/policy"
)

// Gate is the revocation check of a verified access token, deferred by the
// guard so that it can travel in the same store call as the rate-limit
// decision: with Redis, a guarded request then costs one round trip instead
// of two. The guard defers only when its limiter says it can carry gates
// (GatedLimiter); otherwise tokens are checked when verified.
type Gate struct {
	tokens              *TokenService
	subject, family, id string
	// Redis is the check as a Lua condition, when the security store is a
	// RedisStore: a rate-limit store on the same client can evaluate it in
	// its own script.
	Redis *RedisGate
}

// RedisGate is a credential check a Redis script can evaluate. Cond is a
// Lua expression over the local variables gate_key (the key), gate_arg (the
// argument) and now (Redis TIME in microseconds); it is true while the
// credential holds.
type RedisGate struct {
	Client redis.UniversalClient // the Redis the key lives in
	Key    string
	Arg    string
	Cond   string
}

// Check runs the gate on its own: nil while the token holds, an error
// wrapping ErrInvalid once it was revoked or replaced, ErrUnavailable when
// the store cannot say.
func (g *Gate) Check(ctx context.Context) error {
	return accessError(g.tokens.store.CheckAccess(ctx, g.subject, g.family, g.id))
}

// Failed turns the gate's condition being false into the error Check gives.
func (g *Gate) Failed() error { return accessError(ErrNotFound) }

func accessError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: token revoked", ErrInvalid)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// AccessGater is a security store that can express CheckAccess as a
// RedisGate. RedisStore is one; a wrapper (metrics, say) should forward it.
type AccessGater interface {
	AccessGate(subject, family, jti string) *RedisGate
}

// checkCond is checkScript's condition (redisstore.go) as an expression.
const checkCond = `(function() local f = redis.call('HMGET', gate_key, 'a', 'e') return f[1] == gate_arg and tonumber(f[2]) > now end)()`

// AccessGate implements AccessGater.
func (s *RedisStore) AccessGate(subject, family, jti string) *RedisGate {
	return &RedisGate{Client: s.rdb, Key: s.famKey(subject, family), Arg: jti, Cond: checkCond}
}

// GatedLimiter is a Limiter that can carry a Gate in its store call.
type GatedLimiter interface {
	Limiter
	// CanGate reports whether LimitGated saves a round trip; when false
	// the guard checks tokens as it verifies them.
	CanGate() bool
	// LimitGated is Limit for principal p whose token still has gate to
	// pass. When the gate fails it charges nothing, writes nothing and
	// returns ok true with the gate's error (ErrInvalid, ErrUnavailable).
	LimitGated(w http.ResponseWriter, r *http.Request, op *policy.Operation, p *Principal, gate *Gate) (ok bool, gateErr error)
}

// gatingAuthenticator is an Authenticator that can leave the revocation
// check of what it verified to a Gate.
type gatingAuthenticator interface {
	authenticateGated(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*Principal, *Gate, error)
}

func (b BearerAuthenticator) authenticateGated(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*Principal, *Gate, error) {
	raw, err := bearerCredential(r)
	if raw == "" || err != nil {
		return nil, nil, err
	}
	c, err := b.Tokens.verifySignature(raw, isB64Token)
	if err != nil {
		return nil, nil, err
	}
	g := &Gate{tokens: b.Tokens, subject: c.Subject, family: c.Family, id: c.ID}
	if ag, ok := b.Tokens.store.(AccessGater); ok {
		g.Redis = ag.AccessGate(c.Subject, c.Family, c.ID)
	}
	return c.principal(scheme.Name), g, nil
}
