// Package apikeys is specguard's API keys: keys in a header (an
// apiKey-in-header scheme) that read sg_<id>.<secret>. The durable record
// of a key lives in security.KeyRecords (the app's database); the Store
// holds a mark per live key, so a revocation holds on every instance at
// the next request.
//
// Start with New; its Service is the guard's Authenticator for such
// schemes, and Create, List and Revoke manage an account's keys.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/specguard/specguard/internal/clock"
	"github.com/specguard/specguard/internal/onetrip"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/internal/cache"
	"github.com/specguard/specguard/security/internal/cred"
	"github.com/specguard/specguard/security/internal/hold"
)

// prefixLen is how much of a key its Prefix shows: "sg_" and 8 characters
// of its id, which is random and says nothing about the owner.
const prefixLen = len(security.APIKeyPrefix) + 8

// Service creates, lists and revokes API keys and authenticates
// apiKey-in-header schemes. A key reads sg_<id>.<secret>: the id finds the
// record, the secret is compared in constant time with its stored SHA-256
// hash. Records live in KeyRecords; the immutable parts of those in use are
// cached here, and each request asks the Store whether the key is still
// live (one store call, no database query, on a warm instance).
type Service struct {
	store    security.KeyMarkStore
	records  security.KeyRecords
	accounts *security.Accounts
	max      int
	ttl      time.Duration
	clock    clock.Clock
	cache    *cache.Bounded[*cachedKey]
	// lookups bounds the record reads in flight: an unknown key id always
	// misses the cache, so a flood of made-up keys would otherwise take
	// every database connection before any rate limit applies.
	lookups chan struct{}
}

type cachedKey struct {
	key         *security.APIKey
	lastUsed    atomic.Int64          // unix seconds last written to the records
	credentials []security.Credential // the principals' (one, shared)
	principals  hold.Memo
}

// Option configures a Service.
type Option func(*Service)

// WithTTL sets how long a key lives (DefaultTTL when absent).
func WithTTL(d time.Duration) Option { return func(s *Service) { s.ttl = d } }

// WithAccounts makes every key hold for its owner's current state (see
// security.Accounts): a disabled account's keys are refused, and a key holds the
// scopes it was made with that the owner's current role still grants.
func WithAccounts(a *security.Accounts) Option { return func(s *Service) { s.accounts = a } }

// WithMax caps the live API keys of one account: a key past it fails
// with ErrTooMany. Unlimited when absent.
func WithMax(n int) Option { return func(s *Service) { s.max = n } }

// WithClock sets the clock (time.Now when absent or nil).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.clock = clock.New(now) } }

// DefaultTTL is the lifetime of an API key when none is configured.
const DefaultTTL = 365 * 24 * time.Hour

// New returns a service keeping records in records and marks
// in store.
func New(store security.KeyMarkStore, records security.KeyRecords, opts ...Option) *Service {
	s := &Service{store: store, records: records, ttl: DefaultTTL, cache: cache.New[*cachedKey](10000),
		lookups: make(chan struct{}, maxKeyLookups)}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// Create makes a key for subject holding scopes and returns the full key,
// which is not stored and cannot be shown again. The mark goes to the store
// first: a record the store never heard of could not be used, but a mark
// without a record is harmless (nobody holds its secret).
func (s *Service) Create(ctx context.Context, subject, name string, scopes []string) (string, *security.APIKey, error) {
	version, err := s.accounts.MintVersion(ctx, subject)
	if err != nil {
		return "", nil, err
	}
	if s.max > 0 {
		// The records refuse a key over the cap, but only after its mark
		// is written, which would then hold a place in the store's count
		// for MarkTTL: an account back under the cap would still be
		// refused. Refused here, nothing is written.
		live, err := s.records.APIKeys(ctx, subject)
		if err != nil {
			return "", nil, hold.Unavailable(err)
		}
		if len(live) >= s.max {
			return "", nil, fmt.Errorf("%w: %d live API keys", security.ErrTooMany, len(live))
		}
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", nil, err
	}
	id := security.NewID()
	full := security.APIKeyPrefix + id + "." + base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256(secret)
	now := s.clock.Now().UTC().Truncate(time.Microsecond)
	k := &security.APIKey{ID: id, Subject: subject, Name: name, Prefix: full[:prefixLen],
		Scopes: slices.Sorted(slices.Values(scopes)), SecretHash: sum[:], AccountVersion: version,
		Created: now, Expires: now.Add(s.ttl)}
	if _, err := s.store.MarkKey(ctx, k, false, s.max); err != nil {
		return "", nil, hold.Unavailable(err)
	}
	if err := s.records.CreateAPIKey(ctx, k, s.max); err != nil {
		return "", nil, hold.Unavailable(err)
	}
	return full, k, nil
}

// List returns subject's live keys, newest first.
func (s *Service) List(ctx context.Context, subject string) ([]security.APIKey, error) {
	keys, err := s.records.APIKeys(ctx, subject)
	if err != nil {
		return nil, hold.Unavailable(err)
	}
	return keys, nil
}

// Revoke revokes subject's key id: in its record, then in the store, so
// that every instance refuses it at once. The record goes first because it
// outlives the store's revocation: when the store cannot be written, the
// key's mark still ends (MarkTTL at most) and the record then refuses it;
// when the record cannot be, nothing changed. Either way the caller is
// told (ErrUnavailable), and calling again finishes the work.
// ErrNotFound when subject has no live key id (revoked already: the
// store's revocation is written again first, for a call that failed
// half-way).
func (s *Service) Revoke(ctx context.Context, subject, id string) error {
	k, err := s.records.APIKey(ctx, id)
	if errors.Is(err, security.ErrNotFound) || err == nil && (k.Subject != subject || !s.clock.Now().Before(k.Expires)) {
		return security.ErrNotFound
	} else if err != nil {
		return hold.Unavailable(err)
	}
	revoked := !k.Revoked.IsZero()
	if !revoked {
		if err := s.records.RevokeAPIKey(ctx, subject, id); err != nil && !errors.Is(err, security.ErrNotFound) {
			return hold.Unavailable(err)
		}
	}
	if err := s.store.RevokeKey(ctx, subject, id, k.Expires); err != nil {
		return hold.Unavailable(err)
	}
	s.cache.Del(id)
	if revoked {
		return security.ErrNotFound
	}
	return nil
}

// RevokeAll revokes every key of subject in its records. The caller has
// already made them dead in the store (an account's NotBefore moved, or
// Store.RevokeSubject), so this is bookkeeping: lists stop showing them.
func (s *Service) RevokeAll(ctx context.Context, subject string) error {
	if err := s.records.RevokeAPIKeys(ctx, subject); err != nil {
		return hold.Unavailable(err)
	}
	return nil
}

// Authenticate verifies the API key in the header named scheme.Param:
// (nil, nil) when the request has none.
func (s *Service) Authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*security.Principal, error) {
	p, _, err := s.authenticate(ctx, r, scheme, onetrip.Mode{})
	return p, err
}

// Carries reports whether the principals of API keys carry claim:
// ClaimSubject and ClaimRole.
func (s *Service) Carries(_ *policy.Scheme, claim string) bool {
	return claim == security.ClaimSubject || claim == security.ClaimRole
}

func init() {
	hold.SetRemark(func(keys any, ctx context.Context, id string) error { return keys.(*Service).remark(ctx, id) })
	hold.RegisterDeferrer(func(s *Service) hold.DeferFunc { return s.authenticateGuarded })
}

// authenticateGuarded is Authenticate with the store check of what it
// verified left to the returned precheck when m.Gated (nil when there is
// nothing to check), for the guard to run in the rate-limit call, and the
// time the guard read for the request (see onetrip.Mode).
func (s *Service) authenticateGuarded(ctx context.Context, r *http.Request, scheme *policy.Scheme, m onetrip.Mode) (*security.Principal, onetrip.Precheck, error) {
	return hold.Deferred(s.authenticate(ctx, r, scheme, m))
}

func (s *Service) authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme, m onetrip.Mode) (*security.Principal, *hold.Gate, error) {
	values := r.Header.Values(scheme.Param)
	switch len(values) {
	case 0:
		return nil, nil, nil
	case 1:
	default:
		return nil, nil, fmt.Errorf("%w: more than one %s header", security.ErrMalformed, scheme.Param)
	}
	return s.verify(ctx, values[0], scheme.Name, m)
}

// Verify checks an API key as a request presenting it is checked (its
// record, its secret, revocation and expiry, its owner's account) and
// returns its record, for the client_credentials grant of a token
// endpoint. An error wraps ErrInvalid (a bad, revoked or expired key) or
// ErrUnavailable.
func (s *Service) Verify(ctx context.Context, key string) (*security.APIKey, *security.Principal, error) {
	p, _, err := s.verify(ctx, key, "", onetrip.Mode{})
	if err != nil {
		return nil, nil, err
	}
	id := p.Credential(security.KindAPIKey).ID()
	ck, _ := s.cache.Get(id)
	if ck == nil {
		k, err := s.record(ctx, id)
		if err != nil {
			return nil, nil, hold.Unavailable(err)
		}
		return k, p, nil
	}
	return ck.key, p, nil
}

func (s *Service) verify(ctx context.Context, value, scheme string, m onetrip.Mode) (*security.Principal, *hold.Gate, error) {
	id, secret, ok := cred.SplitKey(value)
	if !ok {
		return nil, nil, fmt.Errorf("%w: not a specguard API key", security.ErrInvalid)
	}
	now := s.clock.At(m.At)
	ck, err := s.lookup(ctx, id, now)
	if err := hold.CheckSecret(err, secret, func() []byte { return ck.key.SecretHash }, "unknown or revoked API key"); err != nil {
		return nil, nil, err
	}
	k := ck.key
	s.touch(ck, now)
	check := security.Check{Kind: security.KeyCredential, Subject: k.Subject, ID: k.ID}
	return hold.Hold(ctx, s.accounts, s.store, check, m, func(acct *security.Account) (*security.Principal, error) {
		if p := ck.principals.Get(scheme, acct); p != nil {
			return p, nil
		}
		p := &security.Principal{Subject: k.Subject, Scheme: scheme, Scopes: k.Scopes, Credentials: ck.credentials}
		if acct != nil {
			p.Role, p.Scopes = acct.Role, s.accounts.Bounded(k.Scopes, acct)
		}
		ck.principals.Put(p, acct)
		return p, nil
	}, func(ctx context.Context) error { return s.remark(ctx, k.ID) }, hold.Evict[*cachedKey]{C: s.cache})
}

// Outbound reports whether verifying r's API key for scheme reads the
// database: a well-formed key this instance has not cached. The guard
// then charges the request to the operation's anonymous tiers first, so
// that made-up key ids are throttled before they reach the database.
func (s *Service) Outbound(r *http.Request, scheme *policy.Scheme) bool {
	values := r.Header.Values(scheme.Param)
	if len(values) != 1 {
		return false
	}
	// The id alone says whether the key is cached: its secret is decoded
	// once, by Authenticate. A value whose secret does not decode is
	// refused there without a read, having been charged as anonymous once,
	// as it would be anyway.
	id, ok := cred.KeyID(values[0])
	if !ok {
		return false
	}
	_, cached := s.cache.Get(id)
	return !cached
}

// maxKeyLookups is how many record reads of keys this instance has in
// flight at most.
const maxKeyLookups = 4

// lookupWait bounds how long a read of a key's record waits for one of
// the maxKeyLookups slots: past it the request is answered 503 at once,
// never queued without end behind reads of made-up keys.
const lookupWait = 200 * time.Millisecond

// record reads key id's record, at most maxKeyLookups at a time.
func (s *Service) record(ctx context.Context, id string) (*security.APIKey, error) {
	wait := time.NewTimer(lookupWait)
	defer wait.Stop()
	select {
	case s.lookups <- struct{}{}:
	case <-wait.C:
		return nil, fmt.Errorf("%w: too many API keys being read", security.ErrUnavailable)
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting to read an API key: %v", security.ErrUnavailable, ctx.Err())
	}
	defer func() { <-s.lookups }()
	return s.records.APIKey(ctx, id)
}

// lookup returns key id's record: this instance's copy (the store check
// that follows says whether it still lives), else the records'. A revoked
// or expired key (at now) is not found.
func (s *Service) lookup(ctx context.Context, id string, now time.Time) (*cachedKey, error) {
	ck, ok := s.cache.Get(id)
	if !ok {
		k, err := s.record(ctx, id)
		if err != nil {
			return nil, err
		}
		if !k.Revoked.IsZero() {
			return nil, security.ErrNotFound
		}
		ck = &cachedKey{key: k, credentials: []security.Credential{security.NewCredential(security.KindAPIKey, k.ID)}}
		ck.lastUsed.Store(k.LastUsed.Unix())
		s.cache.Put(id, ck)
	}
	if !now.Before(ck.key.Expires) {
		s.cache.Del(id)
		return nil, security.ErrNotFound
	}
	return ck, nil
}

// remark restores the mark of key id, which the store lost (a Redis
// restart, say), from its record, unless the record says it was revoked.
// A mark or revocation written meanwhile is kept.
func (s *Service) remark(ctx context.Context, id string) error {
	k, err := s.record(ctx, id)
	if errors.Is(err, security.ErrNotFound) || err == nil && (!k.Revoked.IsZero() || !s.clock.Now().Before(k.Expires)) {
		s.cache.Del(id)
		return fmt.Errorf("%w: unknown or revoked API key", security.ErrInvalid)
	} else if err != nil {
		return hold.Unavailable(err)
	}
	if _, err := s.store.MarkKey(ctx, k, true, 0); errors.Is(err, security.ErrNotFound) {
		// Expired by the store's clock, which runs ahead of this one.
		s.cache.Del(id)
		return fmt.Errorf("%w: expired API key", security.ErrInvalid)
	} else if err != nil {
		return hold.Unavailable(err)
	}
	return nil
}

// touchEvery is how often a key's last use is written to its record: the
// time shown is accurate to this, and a busy key costs one write per
// interval per instance, off the request's path.
const touchEvery = time.Minute

// touch notes, at now, that ck was used.
func (s *Service) touch(ck *cachedKey, now time.Time) {
	last := ck.lastUsed.Load()
	if now.Unix()-last < int64(touchEvery/time.Second) || !ck.lastUsed.CompareAndSwap(last, now.Unix()) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.records.TouchAPIKey(ctx, ck.key.ID, now)
	}()
}
