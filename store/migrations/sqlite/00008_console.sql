-- Times are TEXT in UTC, fixed width with microseconds ("2006-01-02T15:04:05.000000Z"), so
-- they sort as text; NULL is the zero time.

-- +goose Up
-- People who signed in through the OpenID Connect provider: the Timebox name is bound to the
-- provider's issuer and subject at the first sign-in; groups are those of the last sign-in. mac authenticates
-- name, issuer, subject and groups with secret_key, so a store writer cannot make an approver.
CREATE TABLE identities (
	name         TEXT PRIMARY KEY,
	issuer       TEXT NOT NULL,
	subject      TEXT NOT NULL,
	email        TEXT NOT NULL DEFAULT '',
	display_name TEXT NOT NULL DEFAULT '',
	groups       TEXT NOT NULL DEFAULT '[]',
	first_seen   TEXT NOT NULL,
	last_sign_in TEXT NOT NULL,
	mac          TEXT NOT NULL DEFAULT '',
	UNIQUE (issuer, subject)
);

-- Console sessions: only the SHA-256 hash of the cookie's secret is stored. A session ends
-- at its absolute expiry, after idle_timeout without use, or when ended_at is set.
CREATE TABLE web_sessions (
	id           TEXT PRIMARY KEY,
	hash         TEXT NOT NULL UNIQUE,
	username     TEXT NOT NULL,
	via          TEXT NOT NULL DEFAULT '',
	client       TEXT NOT NULL DEFAULT '',
	csrf         TEXT NOT NULL,
	created_at   TEXT NOT NULL,
	last_seen_at TEXT NOT NULL,
	expires_at   TEXT NOT NULL,
	ended_at     TEXT,
	mac          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX web_sessions_username ON web_sessions (username);

-- +goose Down
DROP TABLE web_sessions;
DROP TABLE identities;
