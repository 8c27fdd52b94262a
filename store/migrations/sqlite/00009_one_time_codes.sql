-- Times are TEXT in UTC, fixed width with microseconds ("2006-01-02T15:04:05.000000Z"), so
-- they sort as text; NULL is the zero time.

-- +goose Up
-- One-time codes of the console's sign-in: the state of a provider sign-in, recorded when it
-- is used (so a replayed callback is refused on every replica), and the codes that hand an API
-- token to `timebox login --sso`. Only the SHA-256 hash of a code is stored; challenge is the
-- PKCE S256 challenge the CLI must answer; mac authenticates a CLI code with secret_key, so a
-- store writer cannot mint one.
CREATE TABLE one_time_codes (
	hash        TEXT PRIMARY KEY,
	kind        TEXT NOT NULL,
	username    TEXT NOT NULL DEFAULT '',
	challenge   TEXT NOT NULL DEFAULT '',
	client_name TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	expires_at  TEXT NOT NULL,
	used_at     TEXT,
	mac         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX one_time_codes_expires_at ON one_time_codes (expires_at);

-- +goose Down
DROP TABLE one_time_codes;
