package security

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/specguard/specguard/internal/ctxkey"
	"github.com/specguard/specguard/security/internal/cache"
)

// AccountSource reads an account's state from its source of truth, the
// app's database. It returns ErrNotFound when there is no such account.
type AccountSource interface {
	AccountState(ctx context.Context, subject string) (Account, error)
}

// Accounts gives every credential check the current state of its account,
// so that disabling an account or changing its role holds on every
// instance at the next request, for every kind of credential.
//
// The state lives in three places. The source (the database) is the truth.
// The Store mirrors it for every instance; the app writes the mirror with
// Publish inside the transaction that changes the account. Each instance
// caches what it read, and every credential Check asserts in the store
// that the account is still at the cached version: a stale cache costs a
// second look, never a wrong decision.
type Accounts struct {
	store  AccountStore
	source AccountSource
	roles  func(role string) []string
	cache  *cache.Bounded[*Account]
}

// NewAccounts returns the account state of subjects found in source,
// mirrored in store. roleScopes gives the sorted scopes a role grants;
// every credential of an account holds at most those of its current role.
func NewAccounts(store AccountStore, source AccountSource, roleScopes func(role string) []string) *Accounts {
	return &Accounts{store: store, source: source, roles: roleScopes, cache: cache.New[*Account](100000)}
}

// Get returns subject's state: this instance's copy, else the store's,
// else the source's (then mirrored in the store). It wraps ErrNotFound
// when the account does not exist.
func (a *Accounts) Get(ctx context.Context, subject string) (*Account, error) {
	if acct, ok := a.cache.Get(subject); ok {
		return acct, nil
	}
	return a.Reload(ctx, subject)
}

// Reload is Get without this instance's copy: the store said it is stale.
func (a *Accounts) Reload(ctx context.Context, subject string) (*Account, error) {
	acct, err := a.store.Account(ctx, subject)
	if errors.Is(err, ErrNotFound) {
		var st Account
		if st, err = a.source.AccountState(ctx, subject); err != nil {
			return nil, err
		}
		// A newer state published meanwhile wins: the store returns it.
		// Filling the store from the database takes nothing away: lost,
		// the database is read again (see ctxkey.Fill).
		held, err := a.store.PutAccount(context.WithValue(ctx, ctxkey.Fill, true), subject, st)
		if err != nil {
			return nil, err
		}
		acct = &held
	} else if err != nil {
		return nil, err
	}
	a.cache.Put(subject, acct)
	return acct, nil
}

// Publish mirrors st, subject's new state, into the store every instance
// reads. Call it inside the database transaction that makes the change,
// before it commits: when Publish fails, roll back, so the database never
// holds a state the instances do not enforce.
//
// st.Version must be higher than any version the store may hold (see
// Floor): when the store holds a newer state, nothing is written and
// Publish fails, so the transaction rolls back and the change can be retried.
func (a *Accounts) Publish(ctx context.Context, subject string, st Account) error {
	held, err := a.store.PutAccount(ctx, subject, st)
	if err != nil {
		return err
	}
	if held.Version > st.Version {
		return fmt.Errorf("%w: the store holds version %d of the account, newer than %d", ErrUnavailable, held.Version, st.Version)
	}
	a.cache.Put(subject, &held)
	return nil
}

// Floor returns the version the store holds for subject (0 when none). A
// change must take the account past both it and the database's version:
// a state published by a transaction that then failed to commit may hold
// a version the database never reached, and versions must never be reused,
// for a credential minted at one must stay below a later NotBefore.
func (a *Accounts) Floor(ctx context.Context, subject string) (int64, error) {
	acct, err := a.store.Account(ctx, subject)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	return acct.Version, nil
}

// MintVersion returns the account version a new credential of subject is
// minted at: the version the source (the database) has committed, never a
// higher one the store may hold. A change published whose commit then
// failed leaves such a version in the store until it forgets it; the next
// change may take the same number, and a credential minted at it would
// outlive that change's NotBefore (a logout everywhere). Every later change
// takes a version past the committed one, so a credential minted here dies
// with it. The store's state is read too (not this instance's copy): when
// it says the account is disabled, or holds a NotBefore past the committed
// version (a change not yet settled), no credential is minted (ErrInvalid,
// ErrUnavailable: retry). 0 when a is nil.
func (a *Accounts) MintVersion(ctx context.Context, subject string) (int64, error) {
	if a == nil {
		return 0, nil
	}
	acct, err := a.Reload(ctx, subject)
	if err != nil {
		return 0, AccountError(err)
	}
	committed, err := a.source.AccountState(ctx, subject)
	if err != nil {
		return 0, AccountError(err)
	}
	if acct.Disabled || committed.Disabled {
		return 0, fmt.Errorf("%w: the account is disabled", ErrInvalid)
	}
	v := min(acct.Version, committed.Version)
	if v < acct.NotBefore || v < committed.NotBefore {
		return 0, fmt.Errorf("%w: a change of the account is not settled yet; retry", ErrUnavailable)
	}
	return v, nil
}

// Scopes returns what role grants, sorted.
func (a *Accounts) Scopes(role string) []string { return a.roles(role) }

// Bounded returns the sorted scopes of own that acct's role grants too:
// own itself when the role grants them all (no allocation). A credential
// holds no more than its account's current role grants.
func (a *Accounts) Bounded(own []string, acct *Account) []string {
	granted := a.roles(acct.Role)
	held := func(s string) bool { _, ok := slices.BinarySearch(granted, s); return ok }
	if !slices.ContainsFunc(own, func(s string) bool { return !held(s) }) {
		return own
	}
	return slices.DeleteFunc(slices.Clone(own), func(s string) bool { return !held(s) })
}

// AccountError maps a failure to read an account (Get, Reload) to what an
// Authenticator returns: ErrInvalid when the account no longer exists,
// ErrUnavailable when it could not be read. An authenticator of your own
// whose credentials follow Accounts uses it as specguard's kinds do.
func AccountError(err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: the account no longer exists", ErrInvalid)
	}
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}
