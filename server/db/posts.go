package db

import (
	"context"
	"time"
)

// Post is a blog post.
type Post struct {
	ID, AuthorID, Title, Body, Status string
	Created, Updated                  time.Time
}

const postColumns = `id, author_id, title, body, status, created_at, updated_at`

func scanPost(row interface{ Scan(...any) error }) (*Post, error) {
	var p Post
	var created, updated int64
	if err := row.Scan(&p.ID, &p.AuthorID, &p.Title, &p.Body, &p.Status, &created, &updated); err != nil {
		return nil, err
	}
	p.Created, p.Updated = fromUsec(created), fromUsec(updated)
	return &p, nil
}

// CreatePost inserts p (its ID set by the caller), stamping Created and Updated.
func (d *DB) CreatePost(ctx context.Context, p *Post) error {
	now := d.now().UTC().Truncate(time.Microsecond)
	p.Created, p.Updated = now, now
	_, err := d.exec(ctx, `INSERT INTO posts (`+postColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.AuthorID, p.Title, p.Body, p.Status, usec(now), usec(now))
	return err
}

// Post returns post id, or ErrNotFound.
func (d *DB) Post(ctx context.Context, id string) (*Post, error) {
	ctx, cancel := d.ctx(ctx)
	defer cancel()
	p, err := scanPost(d.queryRow(ctx, `SELECT `+postColumns+` FROM posts WHERE id = ?`, id))
	return p, d.fail(err)
}

// Posts lists published posts and, when viewer is not empty, the viewer's
// drafts, newest first.
func (d *DB) Posts(ctx context.Context, viewer string, limit, offset int) ([]Post, error) {
	return queryAll(ctx, d, scanPost, `SELECT `+postColumns+` FROM posts
		WHERE status = 'published' OR author_id = ?
		ORDER BY created_at DESC, id LIMIT ? OFFSET ?`, viewer, limit, offset)
}

// UpdatePost writes p's title, body and status, stamping Updated.
func (d *DB) UpdatePost(ctx context.Context, p *Post) error {
	p.Updated = d.now().UTC().Truncate(time.Microsecond)
	return affected(d.exec(ctx, `UPDATE posts SET title = ?, body = ?, status = ?, updated_at = ? WHERE id = ?`,
		p.Title, p.Body, p.Status, usec(p.Updated), p.ID))
}

// DeletePost deletes post id, or answers ErrNotFound.
func (d *DB) DeletePost(ctx context.Context, id string) error {
	return affected(d.exec(ctx, `DELETE FROM posts WHERE id = ?`, id))
}
