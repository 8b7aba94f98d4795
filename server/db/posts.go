// Package db keeps the example app's records, posts, in the service's
// database (package sqldb: SQLite or PostgreSQL), with a migration set of
// their own (Migrations), applied after the credential operations' (a
// post names its author's account).
package db

import (
	"context"
	"embed"
	"time"

	"github.com/specguard/specguard/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the posts' schema. Their versions are kept in goose's
// default table, as they were when the app's schema was one set.
var Migrations = sqldb.Migrations{Name: "the example app", FS: migrations, Dir: "migrations", Table: "goose_db_version"}

// Post is a blog post.
type Post struct {
	ID, AuthorID, Title, Body, Status string
	Created, Updated                  time.Time
}

// Posts are the posts of one database.
type Posts struct{ db *sqldb.DB }

// New returns the posts of db, which Migrations has migrated.
func New(db *sqldb.DB) *Posts { return &Posts{db: db} }

const postColumns = `id, author_id, title, body, status, created_at, updated_at`

func scanPost(row sqldb.Scanner) (*Post, error) {
	var p Post
	var created, updated int64
	if err := row.Scan(&p.ID, &p.AuthorID, &p.Title, &p.Body, &p.Status, &created, &updated); err != nil {
		return nil, err
	}
	p.Created, p.Updated = sqldb.FromMicros(created), sqldb.FromMicros(updated)
	return &p, nil
}

func (d *Posts) now() time.Time { return d.db.Now().UTC().Truncate(time.Microsecond) }

// CreatePost inserts p (its ID set by the caller), stamping Created and
// Updated. An author that does not exist is a *sqldb.ConstraintError.
func (d *Posts) CreatePost(ctx context.Context, p *Post) error {
	now := d.now()
	p.Created, p.Updated = now, now
	_, err := d.db.Exec(ctx, `INSERT INTO posts (`+postColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.AuthorID, p.Title, p.Body, p.Status, sqldb.Micros(now), sqldb.Micros(now))
	return err
}

// Post returns post id, or sqldb.ErrNotFound.
func (d *Posts) Post(ctx context.Context, id string) (*Post, error) {
	return sqldb.Get(ctx, d.db, scanPost, `SELECT `+postColumns+` FROM posts WHERE id = ?`, id)
}

// Posts lists published posts and, when viewer is not empty, the viewer's
// drafts, newest first; posts of the same microsecond by id, in the order
// of its bytes on both databases (sqldb.DB.Bytewise). PostgreSQL still
// reads them in the order of posts_by_created, sorting only the posts of
// one microsecond (an incremental sort): no index of its own is needed.
func (d *Posts) Posts(ctx context.Context, viewer string, limit, offset int) ([]Post, error) {
	return sqldb.List(ctx, d.db, scanPost, `SELECT `+postColumns+` FROM posts
		WHERE status = 'published' OR author_id = ?
		ORDER BY created_at DESC, id`+d.db.Bytewise()+` LIMIT ? OFFSET ?`, viewer, limit, offset)
}

// PostPatch names the fields of a post to change; nil leaves one as it is.
type PostPatch struct{ Title, Body, Status *string }

// UpdatePost writes the fields patch names of post id, stamping Updated,
// and returns the post as it is then, or sqldb.ErrNotFound. It writes
// only those fields, so that two edits of different fields both hold:
// writing back a copy read before would undo a concurrent edit, a post
// made a draft published again among them.
func (d *Posts) UpdatePost(ctx context.Context, id string, patch PostPatch) (*Post, error) {
	err := sqldb.Affected(d.db.Exec(ctx, `UPDATE posts SET title = COALESCE(?, title), body = COALESCE(?, body),
		status = COALESCE(?, status), updated_at = ? WHERE id = ?`,
		patch.Title, patch.Body, patch.Status, sqldb.Micros(d.now()), id))
	if err != nil {
		return nil, err
	}
	return d.Post(ctx, id)
}

// DeletePost deletes post id, or answers sqldb.ErrNotFound.
func (d *Posts) DeletePost(ctx context.Context, id string) error {
	return sqldb.Affected(d.db.Exec(ctx, `DELETE FROM posts WHERE id = ?`, id))
}
