-- The example app's records: posts. Accounts and API keys are the
-- credential operations' (credentials/sqlstore), migrated first: posts
-- name their author's account. Times are microseconds since the Unix epoch
-- (BIGINT), so SQLite and PostgreSQL store and compare them alike.
--
-- A migration, once applied, is never edited: a change is a new numbered
-- file (00002_....sql). IF NOT EXISTS: databases made before the accounts
-- had a migration set of their own applied this version with them.

-- +goose Up
CREATE TABLE IF NOT EXISTS posts (
    id         TEXT PRIMARY KEY,
    author_id  TEXT NOT NULL REFERENCES users (id),
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('draft', 'published')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS posts_by_created ON posts (created_at DESC, id);
CREATE INDEX IF NOT EXISTS posts_by_author ON posts (author_id, created_at DESC);

-- +goose Down
DROP TABLE posts;
