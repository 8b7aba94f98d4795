// Package hold decides a credential verified locally, for every kind of
// specguard's own credentials (tokens, sessions, API keys): its account's
// current state, its store check (now, or left to the rate-limit call as
// an onetrip.Precheck), the principals it made, and what it forgets once
// the store says it is gone.
package hold

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/internal/cache"
)

// Forgetter is told, with the credential's id, when the store says a
// credential was revoked, replaced or ended, which is for good: it forgets
// what it cached, or marks it so. A pointer-shaped value of the
// credential's kind (a closure would be allocated on every request).
type Forgetter interface{ Forget(id string) }

// Evict is a cache of credentials as their Forgetter: the one gone is
// dropped from it. A single pointer, so no allocation as a Forgetter.
type Evict[V any] struct{ C *cache.Bounded[V] }

// Forget drops id from the cache.
func (e Evict[V]) Forget(id string) { e.C.Del(id) }

// Hold decides a credential verified locally. It reads the account
// (nothing when a is nil), lets build make the principal for that state,
// then runs check c in the store at m.At, or, when m.Gated, returns it as
// a Gate for the rate-limit call to run. When the store says the account
// changed, it reads the account again and decides again; unmarked, when not nil,
// restores an API key's missing mark from its durable record. dead is
// told when the store says the credential was revoked, replaced or ended,
// which is for good: the caller remembers it, so that a replay is refused
// without asking the store again (and without charging its owner's tiers
// on a Redis Cluster, where they go alongside the check).
func Hold(ctx context.Context, a *security.Accounts, store security.Checker, c security.Check, m onetrip.Mode,
	build func(acct *security.Account) (*security.Principal, error), unmarked func(ctx context.Context) error, dead Forgetter) (*security.Principal, *Gate, error) {
	var acct *security.Account
	if a != nil {
		var err error
		if acct, err = a.Get(ctx, c.Subject); err == nil && acct.Disabled {
			// This copy may predate a re-enable: ask the store before refusing.
			acct, err = a.Reload(ctx, c.Subject)
		}
		if err != nil {
			return nil, nil, security.AccountError(err)
		}
	}
	for attempt := 0; ; attempt++ {
		if acct != nil {
			if acct.Disabled {
				return nil, nil, fmt.Errorf("%w: the account is disabled", security.ErrInvalid)
			}
			c.AccountStamp = acct.Stamp
		}
		p, err := build(acct)
		if err != nil {
			return nil, nil, err
		}
		if m.Gated {
			g := newGate(store, c)
			g.dead = dead
			return p, g, nil
		}
		err = checkAt(ctx, store, c, m.At)
		switch {
		case err == nil:
			return p, nil, nil
		case attempt >= 3:
			return nil, nil, fmt.Errorf("%w: the account keeps changing: %v", security.ErrUnavailable, err)
		case errors.Is(err, security.ErrStale) && a != nil:
			if acct, err = a.Reload(ctx, c.Subject); err != nil {
				return nil, nil, security.AccountError(err)
			}
		case errors.Is(err, security.ErrUnmarked) && unmarked != nil:
			if err := unmarked(ctx); err != nil {
				return nil, nil, err
			}
		default:
			if forever(err) && dead != nil {
				dead.Forget(c.ID)
			}
			return nil, nil, checkError(err)
		}
	}
}

// Gate is the store Check of a credential verified locally (a token's
// revocation, a session's or key's liveness, its account's state), left
// for later so that it travels in the same store call as the rate-limit
// decision: an onetrip.Precheck. On one Redis a guarded request then costs
// one round trip instead of two.
type Gate struct {
	store security.Checker
	check security.Check
	// dead is told when the check finds the credential revoked.
	dead Forgetter
	// The check's keys and arguments for a script, made with the gate
	// (while the request is authenticated), so that the limiter only reads
	// them.
	client any
	keys   []string
	args   []any
}

var _ onetrip.Precheck = (*Gate)(nil)

// DeferFunc is an authenticator's private form: Authenticate as the guard
// asks (onetrip.Mode), at its reading of the clock and, when gated, with
// the store check left to the returned precheck.
type DeferFunc = func(context.Context, *http.Request, *policy.Scheme, onetrip.Mode) (*security.Principal, onetrip.Precheck, error)

// RegisterDeferrer gives every authenticator of type A its private form
// (onetrip.RegisterDeferrer), by which the guard hands it its reading of
// the clock and defers its store check to the one round trip: deferred
// returns it. Call it from an init function.
func RegisterDeferrer[A any](deferred func(A) DeferFunc) {
	onetrip.RegisterDeferrer(func(auth any) any {
		if a, ok := auth.(A); ok {
			return deferred(a)
		}
		return nil
	})
}

// Deferred returns the gate of an authentication as a Precheck: nil when
// there is none (a nil *Gate would be a non-nil interface).
func Deferred(p *security.Principal, g *Gate, err error) (*security.Principal, onetrip.Precheck, error) {
	if g == nil {
		return p, nil, err
	}
	return p, g, err
}

// Check runs the gate on its own: nil while the credential holds, an error
// wrapping ErrInvalid once it was revoked or replaced, ErrUnavailable when
// the store cannot say, onetrip.ErrRecheck when the account changed
// (nothing was decided: authenticate again, without deferring). A memory
// store checks it at at, the guard's reading of the clock.
func (g *Gate) Check(ctx context.Context, at time.Time) error {
	return g.result(checkAt(ctx, g.store, g.check, at))
}

// storeCheckAt is package security's onetrip.CheckAt, set before this
// package is initialised (it imports security).
var storeCheckAt, _ = onetrip.CheckAt.(func(context.Context, security.Checker, security.Check, time.Time) (bool, error))

// checkAt runs c in store: at at, the guard's reading of the clock, in a
// memory store (see internal/clock).
func checkAt(ctx context.Context, store security.Checker, c security.Check, at time.Time) error {
	if storeCheckAt != nil {
		if ran, err := storeCheckAt(ctx, store, c, at); ran {
			return err
		}
	}
	return store.Check(ctx, c)
}

// result is the error of a check that returned err, and tells dead when
// the credential was revoked.
func (g *Gate) result(err error) error {
	if forever(err) && g.dead != nil {
		g.dead.Forget(g.check.ID)
	}
	return checkError(err)
}

// forever reports whether a check's err says the credential itself was
// revoked, replaced or ended, which is for good. One refused for its
// account's NotBefore is ended too, unless that change is set back (its
// commit failed): remembered, it stayed refused on the instance that
// checked it meanwhile, as long as it stayed in that instance's cache.
func forever(err error) bool {
	return errors.Is(err, security.ErrNotFound) && !errors.Is(err, onetrip.ErrNotBefore)
}

// Script returns the keys and arguments of the gate's check in a script
// (internal/redislua) when its store runs there (a Redis store), else a
// nil client.
func (g *Gate) Script() (client any, keys []string, args []any) {
	return g.client, g.keys, g.args
}

// Failed turns a code of the check other than redislua.Holds into the
// error Check gives.
func (g *Gate) Failed(code int64) error {
	sc := scripterOf(g.store)
	if sc == nil {
		return fmt.Errorf("%w: a gate without a script failed with code %d", security.ErrUnavailable, code)
	}
	return g.result(sc.CheckFailed(code))
}

// scriptChecker gives a store's Checks to a script, so that a Redis
// rate-limit store on the same client runs them in its own
// (redislua.CheckAndAllow): one round trip for the credential and every
// tier. The Redis store registers one (onetrip.RegisterScripter); a
// wrapper of a store (metrics, say) keeps the one round trip by Unwrap
// (see security.Store).
type scriptChecker interface {
	// CheckScript returns the keys and arguments of c's check
	// (internal/redislua), and the Redis client whose keys they are.
	CheckScript(c security.Check) (client any, keys []string, args []any)
	// CheckFailed turns a code of the check into Check's error.
	CheckFailed(code int64) error
}

// scripterOf returns what expresses store's checks in Lua, or nil: the
// registered scripter of store, or of the store it wraps (Unwrap).
func scripterOf(store security.Checker) scriptChecker {
	for range onetrip.MaxUnwrap {
		if sc, ok := onetrip.Scripter(store).(scriptChecker); ok {
			return sc
		}
		w, ok := store.(interface{ Unwrap() security.Store })
		if !ok {
			return nil
		}
		store = w.Unwrap()
	}
	return nil
}

// newGate returns the deferred form of check c on store.
func newGate(store security.Checker, c security.Check) *Gate {
	g := &Gate{store: store, check: c}
	if sc := scripterOf(store); sc != nil {
		g.client, g.keys, g.args = sc.CheckScript(c)
	}
	return g
}

// checkError maps a Checker's error to an Authenticator's.
func checkError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, security.ErrNotFound):
		return fmt.Errorf("%w: credential revoked", security.ErrInvalid)
	case errors.Is(err, security.ErrStale), errors.Is(err, security.ErrUnmarked):
		return fmt.Errorf("%w: %w", onetrip.ErrRecheck, err)
	}
	return Unavailable(err)
}

// Memo keeps the read-only principals one cached credential made (a
// token, a session, an API key), so that presenting it again
// authenticates without allocating: one per scheme name, the one of the
// newest account state.
type Memo struct{ ps atomic.Pointer[[]memoEntry] }

type memoEntry struct {
	stamp string // the account state the principal was made for
	p     *security.Principal
}

// maxPrincipals bounds the principals kept per credential: one per scheme
// that reads it, which a document declares few of.
const maxPrincipals = 8

// Get returns the principal made for scheme in account state acct (nil:
// no account state), or nil. An account state without a stamp (a store
// that does not stamp) is never memoised: its principal is made anew.
func (m *Memo) Get(scheme string, acct *security.Account) *security.Principal {
	stamp, ok := stampOf(acct)
	if !ok {
		return nil
	}
	if ps := m.ps.Load(); ps != nil {
		for _, e := range *ps {
			if e.p.Scheme == scheme && e.stamp == stamp {
				return e.p
			}
		}
	}
	return nil
}

// Put keeps p, made in account state acct, in place of the principal of
// its scheme.
func (m *Memo) Put(p *security.Principal, acct *security.Account) {
	stamp, ok := stampOf(acct)
	if !ok {
		return
	}
	old := m.ps.Load()
	next := make([]memoEntry, 0, maxPrincipals)
	if old != nil {
		for _, e := range *old {
			if e.p.Scheme != p.Scheme && len(next) < maxPrincipals-1 {
				next = append(next, e)
			}
		}
	}
	next = append(next, memoEntry{stamp: stamp, p: p})
	m.ps.CompareAndSwap(old, &next) // a lost race only costs a later allocation
}

// stampOf is acct's stamp, "" without account state; false for a state
// without a stamp, which cannot tell one state from the next.
func stampOf(acct *security.Account) (string, bool) {
	if acct == nil {
		return "", true
	}
	return acct.Stamp, acct.Stamp != ""
}

// CheckSecret decides a presented secret after the lookup of its record:
// the lookup's error (ErrNotFound: unknown or ended), then the secret's
// SHA-256 against the stored one, in constant time. Both failures say the
// same message, so a caller cannot tell an unknown id from a wrong secret.
func CheckSecret(lookupErr error, secret [32]byte, storedHash func() []byte, invalid string) error {
	if errors.Is(lookupErr, security.ErrNotFound) {
		return fmt.Errorf("%w: %s", security.ErrInvalid, invalid)
	} else if lookupErr != nil {
		return fmt.Errorf("%w: %v", security.ErrUnavailable, lookupErr)
	}
	sum := sha256.Sum256(secret[:])
	if subtle.ConstantTimeCompare(sum[:], storedHash()) != 1 {
		return fmt.Errorf("%w: %s", security.ErrInvalid, invalid)
	}
	return nil
}

// Unavailable is err as a store failure (ErrUnavailable) unless it already
// says what went wrong (ErrUnavailable, ErrInvalid, ErrTooMany).
func Unavailable(err error) error {
	if errors.Is(err, security.ErrUnavailable) || errors.Is(err, security.ErrInvalid) || errors.Is(err, security.ErrTooMany) {
		return err
	}
	return fmt.Errorf("%w: %v", security.ErrUnavailable, err)
}

// remark is set by package apikeys: it restores the store's mark of an API
// key from its record (see Remark).
var remark func(keys any, ctx context.Context, id string) error

// SetRemark is called by package apikeys, from an init function.
func SetRemark(f func(keys any, ctx context.Context, id string) error) { remark = f }

// Remark restores the store's mark of API key id of keys (an
// *apikeys.Service) from its record, for the access tokens minted from it.
func Remark(keys any, ctx context.Context, id string) error { return remark(keys, ctx, id) }
