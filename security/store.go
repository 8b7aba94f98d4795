package security

import (
	"context"
	"errors"
	"time"

	"github.com/specguard/specguard/security/internal/cred"
)

// Store errors.
var (
	// ErrNotFound: no live record with that id belongs to the caller.
	ErrNotFound = errors.New("not found")
	// ErrReused: a refresh token that was already rotated was presented
	// again; the store has revoked its whole family.
	ErrReused = errors.New("refresh token reused; its family is revoked")
	// ErrStale: a Check named an account version the store does not hold
	// (the account changed since the caller read it, or the store has no
	// state for it). Nothing was decided; read the account again and retry.
	ErrStale = errors.New("account state changed")
	// ErrTooMany: the subject already holds the most records of this kind
	// (logins, browser sessions, API keys) allowed.
	ErrTooMany = errors.New("too many for one account")
	// ErrUnmarked: the store holds no mark for an API key: it was never
	// marked, or the store lost it. The key's durable record decides.
	ErrUnmarked = errors.New("API key not marked in the store")
)

// Family is one login: a chain of refresh tokens, of which only the newest
// may be used, and the one access token minted with it.
type Family struct {
	ID             string
	Subject        string
	Device         string
	RefreshJTI     string // the only refresh token of the family that may be used
	AccessJTI      string // the only access token of the family that is accepted
	AccountVersion int64  // the account's version at login (0: no account state)
	Created        time.Time
	LastUsed       time.Time
	Expires        time.Time // absolute: rotation never extends it
}

// Session is a browser login kept server-side; the cookie carries its id
// and a secret of which only the hash is stored.
type Session struct {
	ID             string
	Subject        string
	Role           string // at login: the session holds at most this role's scopes
	Device         string
	SecretHash     []byte // SHA-256 of the secret
	CSRFHash       []byte // SHA-256 of the session's CSRF token
	AccountVersion int64  // the account's version at login (0: no account state)
	Created        time.Time
	LastUsed       time.Time
	Expires        time.Time
	// Idle ends the session once it goes unused this long (0: only
	// Expires ends it). Every check that holds counts as a use.
	Idle time.Duration
}

// ends is when s ends unless used again: its expiry, or sooner its idle
// bound past its last use.
func (s *Session) ends() time.Time {
	if s.Idle > 0 && s.LastUsed.Add(s.Idle).Before(s.Expires) {
		return s.LastUsed.Add(s.Idle)
	}
	return s.Expires
}

// APIKey is a machine credential; only the hash of its secret is stored.
// Its durable record lives in KeyRecords (the app's database); a Store
// holds only a mark saying it is live, so that every request checks
// revocation without a database query.
type APIKey struct {
	ID             string
	Subject        string
	Name           string
	Prefix         string // the key's first characters, shown to recognise it
	Scopes         []string
	SecretHash     []byte
	AccountVersion int64     // the owner's account version when it was made
	Created        time.Time // set by the caller
	LastUsed       time.Time // zero until first use; kept to about a minute
	Expires        time.Time
	Revoked        time.Time // zero while live
}

// Account is the state of an account that every credential check depends
// on. The app's database is its source of truth (AccountSource); the Store
// mirrors it, so that each instance decides with the same state.
type Account struct {
	// Version grows with every change of the fields below. It and
	// NotBefore stay at most MaxAccountVersion.
	Version int64
	// Role bounds the scopes of every credential of the account.
	Role     string
	Disabled bool
	// NotBefore: credentials minted while the account was at an older
	// version are dead (disable, logout everywhere).
	NotBefore int64
	// Stamp identifies this state as the store holds it: every PutAccount
	// that writes makes a new one. A Check asserts the stamp it decided
	// with, so a state written and then abandoned (a database commit that
	// failed after it was published) can never pass for another one of the
	// same version.
	Stamp string
}

// MaxAccountVersion is the largest account version (and NotBefore) a
// store holds: 2^53-1, the largest integer Redis's scripts compare exactly
// (as Lua numbers). PutAccount refuses a state past it (ErrUnavailable),
// so that no two versions can compare equal in one store and apart in
// another; an AccountSource that counts versions from 1 never nears it.
const MaxAccountVersion = 1<<53 - 1

// AccountTTL is how long the store keeps an account's state after it was
// written, and MarkTTL how long an API key's mark lives at most: after
// that the database is read again. They bound how long a state the
// database never committed, or a write a Redis failover lost, can last.
const (
	AccountTTL = 5 * time.Minute
	MarkTTL    = 5 * time.Minute
)

// KeyRevocationTTL is how long a store keeps an API key's revocation.
// The key's durable record says it was revoked; the store's revocation
// only has to outlast a refill of its mark from a record read before the
// revocation committed (KeyMarkStore.MarkKey with ifAbsent), which takes
// seconds at most. Past it, a check finds no mark and reads the record.
// A revoked key counts toward its owner's cap of keys (see MarkKey) for as
// long, so one account never makes the store hold more than its cap.
const KeyRevocationTTL = time.Minute

// CredentialKind is what a Check checks.
type CredentialKind uint8

const (
	AccessCredential  CredentialKind = iota + 1 // an access token: its family's current access jti
	SessionCredential                           // a browser session
	KeyCredential                               // an API key's mark
)

// Check asks whether a credential verified locally still holds: its record
// (family, session, key mark) is live and was not revoked or replaced, it
// was minted at or after its account's NotBefore version, and, when
// AccountStamp is not empty, the account is still in the state of that
// stamp, so the scopes decided from it stand.
type Check struct {
	Kind         CredentialKind
	Subject      string
	ID           string // family, session or key id
	JTI          string // AccessCredential: the access token's jti
	AccountStamp string
}

// Checker answers a Check: every authenticator asks one on every request.
type Checker interface {
	// Check implements the question of a Check: nil when the credential
	// holds; ErrNotFound when it was revoked, replaced, expired or minted
	// before the account's NotBefore; ErrStale when the account's state is
	// not the one of c.AccountStamp (or unknown to the store); ErrUnmarked
	// for an API key the store has no mark of. A session checked is marked
	// used.
	Check(ctx context.Context, c Check) error
}

// FamilyStore keeps logins: what tokens.Service needs.
type FamilyStore interface {
	Checker
	// CreateFamily records a new login; it sets Created and LastUsed.
	// When max > 0 and the subject holds max live logins, it records
	// nothing and returns ErrTooMany. A family of f's ID already held is
	// this very create again (a client retrying a call whose answer was
	// lost: ids are fresh per call): it succeeds, at any cap.
	CreateFamily(ctx context.Context, f *Family, max int) error
	// RotateFamily spends refresh token presented of subject's family id:
	// when it is the family's current one it becomes nextRefresh, with
	// nextAccess the only accepted access token; when it is an older one the
	// family is revoked and ErrReused returned; a missing, expired or
	// revoked family gives ErrNotFound. A family already on nextRefresh and
	// nextAccess is this rotation run again (a Redis client retries a call
	// whose answer was lost on the way; only that call knows the next
	// tokens): it succeeds, and revokes nothing.
	RotateFamily(ctx context.Context, subject, id, presented, nextRefresh, nextAccess string) error
	// RevokeFamily ends one login of subject.
	RevokeFamily(ctx context.Context, subject, id string) error
	// Families lists subject's live logins.
	Families(ctx context.Context, subject string) ([]Family, error)
}

// SessionStore keeps browser sessions: what sessions.Service needs.
type SessionStore interface {
	Checker
	// CreateSession records s; it sets Created and LastUsed. When max > 0
	// and the subject holds max live sessions, it records nothing and
	// returns ErrTooMany. A session of s's ID already held is this very
	// create again, as for CreateFamily: it succeeds.
	CreateSession(ctx context.Context, s *Session, max int) error
	// Session returns subject's live session id.
	Session(ctx context.Context, subject, id string) (*Session, error)
	// DeleteSession ends subject's session id.
	DeleteSession(ctx context.Context, subject, id string) error
	// Sessions lists subject's live sessions.
	Sessions(ctx context.Context, subject string) ([]Session, error)
}

// KeyMarkStore keeps the marks that say API keys are live: what
// apikeys.Service needs besides their durable records (KeyRecords).
type KeyMarkStore interface {
	Checker
	// MarkKey marks API key k live until it expires, or for MarkTTL at
	// most: the durable record is read again then. With ifAbsent an
	// existing mark or revocation is kept, so refilling a mark from the
	// durable record never undoes a revocation; it reports whether it wrote.
	// When max > 0 and the subject's keys the store knows of (revocations
	// still held included) number max, it writes nothing and returns
	// ErrTooMany: an account cannot make the store hold revocations
	// without bound by making and revoking keys; a live mark of k's ID
	// already held is then this very call again, as for CreateFamily, and
	// it reports true. A key expired by the store's clock is not marked:
	// ErrNotFound (an instance's clock may run behind the store's).
	MarkKey(ctx context.Context, k *APIKey, ifAbsent bool, max int) (bool, error)
	// RevokeKey replaces the mark of subject's key id by a revocation that
	// lasts KeyRevocationTTL (expires, the key's own expiry, when sooner).
	RevokeKey(ctx context.Context, subject, id string, expires time.Time) error
}

// AccountStore mirrors accounts' state for every instance: what Accounts
// needs besides the source of truth (AccountSource).
type AccountStore interface {
	// PutAccount mirrors account state a for subject with a new Stamp,
	// unless the store holds a newer version, or this very state (then it
	// keeps it and its Stamp: instances that re-read the database at once
	// when the mirror expired must not invalidate each other's stamps). An
	// equal version that differs is overwritten: a database commit that
	// failed may have left it. It returns the state the store holds
	// afterwards. The mirror expires after AccountTTL; the
	// source of truth is read again then. A Version or NotBefore past
	// MaxAccountVersion is refused (ErrUnavailable).
	PutAccount(ctx context.Context, subject string, a Account) (Account, error)
	// Account returns the state mirrored for subject, or ErrNotFound.
	Account(ctx context.Context, subject string) (*Account, error)
}

// Store is all the fast, shared security state, as one backend keeps it:
// NewMemoryStore for one process, redisstore.New for a fleet. Each method
// is one atomic step, and times (Created, LastUsed, revocations) come from
// the store's own clock, so instances with skewed clocks agree. Every
// record is addressed by its subject and id, so a Redis Cluster keeps all
// of one subject's state in one slot. storetest.Run checks an
// implementation.
//
// A wrapper of a Store (metrics, tracing) keeps what specguard's own
// stores do on the guard's path when it has a method Unwrap() Store that
// returns the store it wraps: a Redis store's check of a request's
// credential travels in the rate-limit script (one round trip), and a
// memory store checks at the guard's one reading of the clock. Both go
// to the wrapped store directly, past the wrapper's Check: a wrapper
// whose Check refuses more than the store it wraps (a deny list, a kill
// switch) must not have Unwrap, nor embed a type that has one (a promoted
// Unwrap counts too). A wrapper without Unwrap works too, each check a
// call of its own through its Check.
type Store interface {
	FamilyStore
	SessionStore
	KeyMarkStore
	AccountStore
	// RevokeSubject ends every family and session of subject and drops
	// its API-key marks (logout everywhere, or an account disabled); the
	// revocations of single keys are kept.
	RevokeSubject(ctx context.Context, subject string) error
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
}

// APIKeyPrefix starts every key, so leaked keys are easy to scan for.
const APIKeyPrefix = cred.APIKeyPrefix

// KeyRecords is the durable home of API keys: the app's database. A key
// must outlive any process and any loss of the Store, which holds only a
// mark per live key.
type KeyRecords interface {
	// CreateAPIKey stores k, unless max > 0 and k's subject holds max live
	// keys already: then it stores nothing and returns ErrTooMany.
	CreateAPIKey(ctx context.Context, k *APIKey, max int) error
	// APIKey returns key id, revoked and expired ones included, or ErrNotFound.
	APIKey(ctx context.Context, id string) (*APIKey, error)
	// APIKeys lists subject's live keys, newest first.
	APIKeys(ctx context.Context, subject string) ([]APIKey, error)
	// RevokeAPIKey revokes subject's live key id, or returns ErrNotFound.
	// It is the record alone: a key already checked stays good, from its
	// mark in the Store, for up to MarkTTL.
	// To revoke a key, call the key service's Revoke (security/apikeys),
	// which ends the mark too.
	RevokeAPIKey(ctx context.Context, subject, id string) error
	// RevokeAPIKeys revokes every key of subject: the records alone, as
	// RevokeAPIKey.
	RevokeAPIKeys(ctx context.Context, subject string) error
	// TouchAPIKey records that key id was used at t.
	TouchAPIKey(ctx context.Context, id string, t time.Time) error
}
