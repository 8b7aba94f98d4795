// Package onetrip is the private path by which a credential's store check
// rides in the rate-limit store call, so that a guarded request on one
// Redis costs one round trip instead of two. It is no one's public API:
// the packages that own the types fill in its hooks when they are loaded
// (security's credential kinds, security/redisstore,
// limits, limits/redislimit), and the guard reads them once,
// when it is built. The same path hands every store and cache on the
// default clock the guard's one reading of the clock for the request (see
// internal/clock). A user's own authenticator, limiter or store works
// without any of it, only without the saved round trip and clock readings.
package onetrip

import (
	"context"
	"errors"
	"time"
)

// Precheck is a store check left for later: a credential verified locally
// (a token's family, a session, a key, an account's version) that must
// still be live. The limiter decides it first, in the same store call as
// the tiers when its store can; nothing is charged when it fails.
type Precheck interface {
	// Check runs the precheck on its own, at the guard's reading of the
	// clock (see internal/clock; zero when there is none): nil while it
	// holds.
	Check(ctx context.Context, at time.Time) error
	// Script returns the keys and arguments of the credential check of
	// internal/redislua (CheckKeys and CheckArgs of them), and the Redis
	// client whose keys they are; a nil client when it cannot be run in a
	// script.
	Script() (client any, keys []string, args []any)
	// Failed turns a code of that check other than redislua.Holds into
	// Check's error.
	Failed(code int64) error
}

// Mode is how the guard asks one of specguard's authenticators to decide
// a request's credential.
type Mode struct {
	// At is the guard's one reading of the clock for the request (see
	// internal/clock); zero outside the guard.
	At time.Time
	// Gated leaves the credential's store check to the returned
	// Precheck, for the rate-limit call.
	Gated bool
}

// ErrUndecided wraps a precheck's error when the store could not answer:
// the request is refused, whatever the tiers' on-store-error says.
var ErrUndecided = errors.New("precheck could not be decided")

// HeldError is a rate-limit store's error for the tiers of a request
// whose precheck was decided, and held, in a call of its own (in process,
// or alongside the tiers): the credential is good, so the tiers'
// on-store-error decides, as for any caller, not ErrUndecided.
type HeldError struct{ Err error }

func (e *HeldError) Error() string { return e.Err.Error() }
func (e *HeldError) Unwrap() error { return e.Err }

// ErrNotBefore is wrapped beside security.ErrNotFound when a store refuses
// a credential for its account's NotBefore (a logout everywhere), not for
// its own record: ended, unless the change that set it is set back (its
// commit failed, see security.Accounts), so not remembered as dead the
// way a revoked or replaced credential is.
var ErrNotBefore = errors.New("minted before the account's not-before")

// ErrRecheck: a deferred check found the account in another state, or an
// API key without a mark. Nothing was decided: authenticate again without
// deferring, which reads the account and the key's record anew.
var ErrRecheck = errors.New("credential must be checked again")

// Field is room for one RateLimit field value and its bytes, kept by the
// guard in the allocation it makes per request anyway.
type Field struct {
	V   [1]string
	Buf [120]byte
}

// The hooks. Their types name the owners' types, which this package cannot
// import; the guard asserts them once, when it is built, and a test there
// checks that the assertions hold.
var (
	// Decider is set by limits:
	// func(*limits.Limiter) (decide func(*http.Request, *policy.Operation,
	// limits.Caller, Precheck, *Field, at time.Time, fallback bool)
	// (limits.Verdict, preErr error, anon bool), prechecks bool). With
	// fallback, a Precheck found gone (redislua.Dead or Before) has the
	// request counted as anonymous in the same store call, and anon says
	// the verdict is that one.
	Decider any
	// PrecheckStore is set by limits/redislimit:
	// func(limits.Store) func(ctx context.Context, pre Precheck, reqs
	// []limits.Request, results []limits.Result, fallback []limits.Request,
	// fallbackResults []limits.Result) (allowed, fellBack bool, preErr, err
	// error), nil for a store that cannot decide a precheck in its own
	// call.
	PrecheckStore any
)

// CheckAt is set by package security, a
// func(ctx, security.Checker, security.Check, at time.Time) (ran bool, err error)
// that runs the check in the store at the guard's reading of the clock
// (see internal/clock) when the store is a *security.MemoryStore, or
// wraps one (Unwrap, see security.Store; looked through only with a
// reading, never a zero time); it runs nothing (ran false) in any other
// store. at is zero outside the guard: the store then reads its own clock.
var CheckAt any

// MaxUnwrap bounds how many wrappers of a store (Unwrap, see
// security.Store) the private path looks through: a wrapper that returns
// itself must not loop for ever.
const MaxUnwrap = 16

// Registered from init functions only, so read without a lock.
var (
	scripters []func(store any) any
	deferrers []func(auth any) any
)

// RegisterDeferrer adds f, which returns for an authenticator of its
// package its private form, a
// func(context.Context, *http.Request, *policy.Scheme, Mode)
// (*security.Principal, Precheck, error), and nil for others. Call it from
// an init function (security/tokens, security/sessions, security/apikeys
// do).
func RegisterDeferrer(f func(auth any) any) { deferrers = append(deferrers, f) }

// Deferred returns auth's deferred form, or nil.
func Deferred(auth any) any {
	for _, f := range deferrers {
		if d := f(auth); d != nil {
			return d
		}
	}
	return nil
}

// RegisterScripter adds f, which returns for a credential store of its
// package the value that gives its checks to a script (nil for others).
// Call it from an init function.
func RegisterScripter(f func(store any) any) { scripters = append(scripters, f) }

// Scripter returns what a registered package says gives store's checks to
// a script, or nil.
func Scripter(store any) any {
	for _, f := range scripters {
		if s := f(store); s != nil {
			return s
		}
	}
	return nil
}
