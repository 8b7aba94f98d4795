-- +goose Up
CREATE TABLE owners (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- +goose Down
DROP TABLE owners;
