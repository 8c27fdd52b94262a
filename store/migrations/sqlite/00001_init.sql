-- Times are TEXT in UTC, fixed width with microseconds ("2006-01-02T15:04:05.000000Z"), so
-- they sort as text; NULL is the zero time.

-- +goose Up
CREATE TABLE requests (
	id              TEXT PRIMARY KEY,
	requester       TEXT NOT NULL,
	database        TEXT NOT NULL,
	access          TEXT NOT NULL,
	start_at        TEXT,
	end_at          TEXT,
	requested_start TEXT,
	requested_end   TEXT,
	reason          TEXT NOT NULL DEFAULT '',
	ticket          TEXT NOT NULL DEFAULT '',
	state           TEXT NOT NULL,
	ending          TEXT NOT NULL DEFAULT '',
	ending_since    TEXT,
	reviews         TEXT NOT NULL DEFAULT '[]',
	activated_at    TEXT,
	ended_at        TEXT,
	created_at      TEXT NOT NULL,
	updated_at      TEXT,
	version         INTEGER NOT NULL,
	due_at          TEXT
) STRICT;
CREATE INDEX requests_state ON requests (state);
CREATE INDEX requests_due ON requests (due_at);
CREATE INDEX requests_requester ON requests (requester);
CREATE INDEX requests_database ON requests (database);
CREATE INDEX requests_created ON requests (created_at, id);

CREATE TABLE grants (
	request_id      TEXT PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
	server          TEXT NOT NULL,
	principal       TEXT NOT NULL,
	target_database TEXT NOT NULL DEFAULT '',
	method          TEXT NOT NULL,
	status          TEXT NOT NULL,
	roles           TEXT NOT NULL DEFAULT '[]',
	valid_until     TEXT,
	sealed_password BLOB,
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	last_attempt_at TEXT,
	next_attempt_at TEXT,
	outcome         TEXT NOT NULL DEFAULT '',
	created_at      TEXT,
	updated_at      TEXT
) STRICT;

CREATE TABLE events (
	seq        INTEGER PRIMARY KEY,
	time       TEXT NOT NULL,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	request_id TEXT NOT NULL DEFAULT '',
	database   TEXT NOT NULL DEFAULT '',
	details    TEXT,
	prev_hash  TEXT NOT NULL,
	hash       TEXT NOT NULL
) STRICT;
CREATE INDEX events_request_id ON events (request_id);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_actor ON events (actor);

CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  INTEGER NOT NULL,
	hash TEXT NOT NULL
) STRICT;

CREATE TABLE tokens (
	id         TEXT PRIMARY KEY,
	username   TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	created_at TEXT NOT NULL
) STRICT;
CREATE INDEX tokens_username ON tokens (username);

-- +goose Down
DROP TABLE tokens;
DROP TABLE audit_head;
DROP TABLE events;
DROP TABLE grants;
DROP TABLE requests;
