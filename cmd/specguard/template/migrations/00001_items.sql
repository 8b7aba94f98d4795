-- The items. Accounts (users) are specguard's, migrated first; an item
-- names its owner's. Times are microseconds since the Unix epoch (BIGINT),
-- so SQLite and PostgreSQL store and compare them alike.
--
-- A migration, once applied, is never edited (the service refuses to
-- start on one whose content changed): a change is a new numbered file,
-- 00002_....sql.

-- +goose Up
CREATE TABLE items (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES users (id),
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX items_by_owner ON items (owner_id, created_at DESC);

-- +goose Down
DROP TABLE items;
