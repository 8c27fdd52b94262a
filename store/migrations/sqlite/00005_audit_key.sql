-- +goose Up
-- The id of the key whose HMAC-SHA256 is an event's hash; '' for events written before the
-- chain was keyed (plain SHA-256). The head records the key id of the last event.
ALTER TABLE events ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_head ADD COLUMN key_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audit_head DROP COLUMN key_id;
ALTER TABLE events DROP COLUMN key_id;
