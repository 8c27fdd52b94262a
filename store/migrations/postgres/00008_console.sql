-- Times are timestamptz; NULL is the zero time.

-- +goose Up
-- People who signed in through the OpenID Connect provider: the Timebox name is bound to the
-- provider's issuer and subject at the first sign-in; groups are those of the last sign-in. mac authenticates
-- name, issuer, subject and groups with secret_key, so a store writer cannot make an approver.
CREATE TABLE identities (
	name         text PRIMARY KEY,
	issuer       text NOT NULL,
	subject      text NOT NULL,
	email        text NOT NULL DEFAULT '',
	display_name text NOT NULL DEFAULT '',
	groups       text NOT NULL DEFAULT '[]',
	first_seen   timestamptz NOT NULL,
	last_sign_in timestamptz NOT NULL,
	mac          text NOT NULL DEFAULT '',
	UNIQUE (issuer, subject)
);

-- Console sessions: only the SHA-256 hash of the cookie's secret is stored. A session ends
-- at its absolute expiry, after idle_timeout without use, or when ended_at is set.
CREATE TABLE web_sessions (
	id           text PRIMARY KEY,
	hash         text NOT NULL UNIQUE,
	username     text NOT NULL,
	via          text NOT NULL DEFAULT '',
	client       text NOT NULL DEFAULT '',
	csrf         text NOT NULL,
	created_at   timestamptz NOT NULL,
	last_seen_at timestamptz NOT NULL,
	expires_at   timestamptz NOT NULL,
	ended_at     timestamptz,
	mac          text NOT NULL DEFAULT ''
);
CREATE INDEX web_sessions_username ON web_sessions (username);

-- +goose Down
DROP TABLE web_sessions;
DROP TABLE identities;
