-- +goose Up
CREATE TABLE things (
    id       TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL CONSTRAINT things_owner REFERENCES owners (id),
    size     BIGINT NOT NULL CONSTRAINT things_size CHECK (size > 0)
);

-- +goose Down
DROP TABLE things;
