package server

import (
	"context"

	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server/db"
)

// The app's records, as package db keeps them.
type (
	User = db.User
	Post = db.Post
)

// Errors of the repository.
var (
	ErrNotFound = db.ErrNotFound
	ErrExists   = db.ErrExists
)

// Repository holds the app's durable data: accounts and posts here, API
// keys through security.KeyRecords. db.DB implements both, on SQLite and
// PostgreSQL. Security state that may be lost at the cost of a login
// (token families, sessions, revocation marks) lives in a security.Store.
type Repository interface {
	CreateUser(ctx context.Context, u *User) error
	EnsureUser(ctx context.Context, u *User) (bool, error)
	UserByEmail(ctx context.Context, email string) (*User, error)
	User(ctx context.Context, id string) (*User, error)
	Users(ctx context.Context) ([]User, error)
	// UpdateUser changes account id in a transaction that runs publish
	// before it commits (see db.DB.UpdateUser).
	UpdateUser(ctx context.Context, id string, change func(*User) error, publish func(*User) error) (*User, error)
	// SetPassword replaces the password hash of account id.
	SetPassword(ctx context.Context, id, hash string) error

	CreatePost(ctx context.Context, p *Post) error
	Post(ctx context.Context, id string) (*Post, error)
	// Posts lists published posts and, when viewer is not empty, the
	// viewer's drafts, newest first.
	Posts(ctx context.Context, viewer string, limit, offset int) ([]Post, error)
	UpdatePost(ctx context.Context, p *Post) error
	DeletePost(ctx context.Context, id string) error

	Ping(ctx context.Context) error
}

var _ Repository = (*db.DB)(nil)

// accountOf is the state of u every credential check depends on.
func accountOf(u *User) security.Account {
	return security.Account{Version: u.Version, Role: u.Role, Disabled: u.Disabled, NotBefore: u.NotBefore}
}

// accountSource reads account state from the repository for
// security.Accounts.
type accountSource struct{ repo Repository }

func (s accountSource) AccountState(ctx context.Context, subject string) (security.Account, error) {
	u, err := s.repo.User(ctx, subject)
	if err != nil {
		return security.Account{}, err
	}
	return accountOf(u), nil
}

func normEmail(e string) string { return db.EmailKey(e) }
