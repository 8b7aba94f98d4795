package server

import (
	"context"

	"github.com/specguard/specguard/server/db"
	"github.com/specguard/specguard/sqldb"
)

// Post is a blog post, as package db keeps it.
type Post = db.Post

// ErrNotFound: no such record.
var ErrNotFound = sqldb.ErrNotFound

// Repository holds the app's durable records: its posts. db.Posts
// implements it on SQLite and PostgreSQL. Accounts and API keys are the
// credential operations' (credentials/sqlstore), in the same database.
type Repository interface {
	CreatePost(ctx context.Context, p *Post) error
	Post(ctx context.Context, id string) (*Post, error)
	// Posts lists published posts and, when viewer is not empty, the
	// viewer's drafts, newest first.
	Posts(ctx context.Context, viewer string, limit, offset int) ([]Post, error)
	// UpdatePost writes only the fields patch names, and returns the
	// post as it is then.
	UpdatePost(ctx context.Context, id string, patch db.PostPatch) (*Post, error)
	DeletePost(ctx context.Context, id string) error
}

var _ Repository = (*db.Posts)(nil)
