-- +goose Up
-- Privileges granted directly on the target database (engine mysql), as a JSON array.
ALTER TABLE grants ADD COLUMN privileges TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE grants DROP COLUMN privileges;
