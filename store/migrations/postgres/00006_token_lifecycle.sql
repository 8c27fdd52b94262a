-- +goose Up
-- API token lifecycle: a label, an expiry (NULL for tokens made before expiries existed:
-- they expire tokens.max_ttl after they were made), when the token was last used (updated
-- at most once a minute), and its revocation.
ALTER TABLE tokens ADD COLUMN name text NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN expires_at timestamptz;
ALTER TABLE tokens ADD COLUMN last_used_at timestamptz;
ALTER TABLE tokens ADD COLUMN revoked_at timestamptz;
ALTER TABLE tokens ADD COLUMN revoked_by text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tokens DROP COLUMN revoked_by;
ALTER TABLE tokens DROP COLUMN revoked_at;
ALTER TABLE tokens DROP COLUMN last_used_at;
ALTER TABLE tokens DROP COLUMN expires_at;
ALTER TABLE tokens DROP COLUMN name;
