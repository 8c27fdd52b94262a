-- Times are timestamptz; NULL is the zero time.

-- +goose Up
-- One-time codes of the console's sign-in: the state of a provider sign-in, recorded when it
-- is used (so a replayed callback is refused on every replica), and the codes that hand an API
-- token to `timebox login --sso`. Only the SHA-256 hash of a code is stored; challenge is the
-- PKCE S256 challenge the CLI must answer; mac authenticates a CLI code with secret_key, so a
-- store writer cannot mint one.
CREATE TABLE one_time_codes (
	hash        text PRIMARY KEY,
	kind        text NOT NULL,
	username    text NOT NULL DEFAULT '',
	challenge   text NOT NULL DEFAULT '',
	client_name text NOT NULL DEFAULT '',
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	used_at     timestamptz,
	mac         text NOT NULL DEFAULT ''
);
CREATE INDEX one_time_codes_expires_at ON one_time_codes (expires_at);

-- +goose Down
DROP TABLE one_time_codes;
