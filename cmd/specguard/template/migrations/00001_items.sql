-- The items. An item names its owner: the caller's subject, an account
-- of specguard's (users, migrated first) or a caller an outside identity
-- provider verified ("<scheme>:<sub>", no account here), so no foreign
-- key to users. Times are microseconds since the Unix epoch (BIGINT),
-- so SQLite and PostgreSQL store and compare them alike.
--
-- A migration, once applied, is never edited (the service refuses to
-- start on one whose content changed): a change is a new numbered file,
-- 00002_....sql.

-- +goose Up
CREATE TABLE items (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX items_by_owner ON items (owner_id, created_at DESC);

-- +goose Down
DROP TABLE items;
