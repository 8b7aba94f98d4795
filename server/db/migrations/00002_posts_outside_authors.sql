-- A post's author is the caller's subject: an account of specguard's, or
-- a caller an outside identity provider verified ("<scheme>:<sub>", with
-- no account here). 00001 tied author_id to users, so a post by such a
-- caller was refused by the foreign key. The table is made again without
-- it (SQLite cannot drop a constraint), its rows and indexes kept.

-- +goose Up
CREATE TABLE posts_next (
    id         TEXT PRIMARY KEY,
    author_id  TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('draft', 'published')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO posts_next (id, author_id, title, body, status, created_at, updated_at)
    SELECT id, author_id, title, body, status, created_at, updated_at FROM posts;
DROP TABLE posts;
ALTER TABLE posts_next RENAME TO posts;
CREATE INDEX posts_by_created ON posts (created_at DESC, id);
CREATE INDEX posts_by_author ON posts (author_id, created_at DESC);

-- +goose Down
CREATE TABLE posts_prev (
    id         TEXT PRIMARY KEY,
    author_id  TEXT NOT NULL REFERENCES users (id),
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('draft', 'published')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO posts_prev (id, author_id, title, body, status, created_at, updated_at)
    SELECT id, author_id, title, body, status, created_at, updated_at FROM posts;
DROP TABLE posts;
ALTER TABLE posts_prev RENAME TO posts;
CREATE INDEX posts_by_created ON posts (created_at DESC, id);
CREATE INDEX posts_by_author ON posts (author_id, created_at DESC);
