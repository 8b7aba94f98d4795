package security

import (
	"context"
	"errors"
	"time"
)

// Store errors.
var (
	// ErrNotFound: no live record with that id belongs to the caller.
	ErrNotFound = errors.New("not found")
	// ErrReused: a refresh token that was already rotated was presented
	// again; the store has revoked its whole family.
	ErrReused = errors.New("refresh token reused; its family is revoked")
)

// Family is one login: a chain of refresh tokens, of which only the newest
// may be used, and the one access token minted with it.
type Family struct {
	ID         string
	Subject    string
	Device     string
	RefreshJTI string // the only refresh token of the family that may be used
	AccessJTI  string // the only access token of the family that is accepted
	Created    time.Time
	LastUsed   time.Time
	Expires    time.Time // absolute: rotation never extends it
}

// Session is a browser login kept server-side; the cookie carries its id
// and a secret of which only the hash is stored.
type Session struct {
	ID         string
	Subject    string
	Role       string
	Device     string
	SecretHash []byte // SHA-256 of the secret
	Created    time.Time
	LastUsed   time.Time
	Expires    time.Time
}

// APIKey is a machine credential; only the hash of its secret is stored.
type APIKey struct {
	ID         string
	Subject    string
	Name       string
	Prefix     string // the key's first characters, shown to recognise it
	Scopes     []string
	SecretHash []byte
	Created    time.Time
	LastUsed   time.Time // zero until first use
	Expires    time.Time
}

// Store keeps every piece of security state. Implementations make each
// method one atomic step and stamp Created, LastUsed and revocation times
// with their own clock, so instances with skewed clocks agree. Every record
// is addressed by its subject and id, so a Redis Cluster keeps all of one
// subject's state in one slot.
type Store interface {
	// CreateFamily records a new login; it sets Created and LastUsed.
	CreateFamily(ctx context.Context, f *Family) error
	// RotateFamily spends refresh token presented of subject's family id:
	// when it is the family's current one it becomes nextRefresh, with
	// nextAccess the only accepted access token; when it is an older one the
	// family is revoked and ErrReused returned; a missing, expired or
	// revoked family gives ErrNotFound.
	RotateFamily(ctx context.Context, subject, id, presented, nextRefresh, nextAccess string) error
	// CheckAccess returns nil when access token jti of family is still
	// accepted for subject, ErrNotFound when it was replaced or revoked.
	CheckAccess(ctx context.Context, subject, family, jti string) error
	// RevokeFamily ends one login of subject.
	RevokeFamily(ctx context.Context, subject, id string) error
	// Families lists subject's live logins.
	Families(ctx context.Context, subject string) ([]Family, error)
	// RevokeSubject ends every family, session and API key of subject
	// (logout everywhere, or an account disabled).
	RevokeSubject(ctx context.Context, subject string) error

	// CreateSession records s; it sets Created and LastUsed.
	CreateSession(ctx context.Context, s *Session) error
	// Session returns subject's live session id and marks it used.
	Session(ctx context.Context, subject, id string) (*Session, error)
	// DeleteSession ends subject's session id.
	DeleteSession(ctx context.Context, subject, id string) error
	// Sessions lists subject's live sessions.
	Sessions(ctx context.Context, subject string) ([]Session, error)

	// CreateKey records k; it sets Created.
	CreateKey(ctx context.Context, k *APIKey) error
	// Key returns subject's live key id and marks it used.
	Key(ctx context.Context, subject, id string) (*APIKey, error)
	// RevokeKey revokes subject's key id.
	RevokeKey(ctx context.Context, subject, id string) error
	// Keys lists subject's live keys.
	Keys(ctx context.Context, subject string) ([]APIKey, error)

	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
}
