-- Times are TEXT in UTC, fixed width with microseconds ("2006-01-02T15:04:05.000000Z"), so
-- they sort as text; NULL is the zero time.

-- +goose Up
-- API token lifecycle: a label, an expiry (NULL for tokens made before expiries existed:
-- they expire tokens.max_ttl after they were made), when the token was last used (updated
-- at most once a minute), and its revocation.
ALTER TABLE tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
ALTER TABLE tokens ADD COLUMN revoked_at TEXT;
ALTER TABLE tokens ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tokens DROP COLUMN revoked_by;
ALTER TABLE tokens DROP COLUMN revoked_at;
ALTER TABLE tokens DROP COLUMN last_used_at;
ALTER TABLE tokens DROP COLUMN expires_at;
ALTER TABLE tokens DROP COLUMN name;
