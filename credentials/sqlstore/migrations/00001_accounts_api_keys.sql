-- The credential operations' durable data: accounts and API keys. Times
-- are microseconds since the Unix epoch (BIGINT), so SQLite and PostgreSQL
-- store and compare them alike; hashes are hex TEXT. IF NOT EXISTS: a
-- database made before these tables had a migration set of their own
-- holds them already.

-- +goose Up
CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    -- lower-cased and trimmed: one account per address, whatever its case
    email_key     TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    -- bumped by every change of role, disabled or not_before: the shared
    -- store mirrors (version, role, disabled, not_before) and every
    -- credential check asserts the version it decided with
    version       BIGINT NOT NULL DEFAULT 1,
    -- credentials minted under an older version than this are dead
    -- (disable, logout everywhere)
    not_before    BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    name            TEXT NOT NULL,
    prefix          TEXT NOT NULL,
    secret_hash     TEXT NOT NULL,
    -- space-separated, sorted
    scopes          TEXT NOT NULL,
    -- the owner's users.version when the key was made
    account_version BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    last_used_at    BIGINT,
    revoked_at      BIGINT
);
CREATE INDEX IF NOT EXISTS api_keys_live_by_user ON api_keys (user_id, created_at) WHERE revoked_at IS NULL;

-- +goose Down
DROP TABLE api_keys;
DROP TABLE users;
