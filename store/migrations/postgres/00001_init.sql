-- Times are timestamptz; NULL is the zero time. JSON columns are text, so that what is read
-- back is exactly what was written (the audit hash covers event details).

-- +goose Up
CREATE TABLE requests (
	id              text PRIMARY KEY,
	requester       text NOT NULL,
	database        text NOT NULL,
	access          text NOT NULL,
	start_at        timestamptz,
	end_at          timestamptz,
	requested_start timestamptz,
	requested_end   timestamptz,
	reason          text NOT NULL DEFAULT '',
	ticket          text NOT NULL DEFAULT '',
	state           text NOT NULL,
	ending          text NOT NULL DEFAULT '',
	ending_since    timestamptz,
	reviews         text NOT NULL DEFAULT '[]',
	activated_at    timestamptz,
	ended_at        timestamptz,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz,
	version         integer NOT NULL,
	due_at          timestamptz
);
CREATE INDEX requests_state ON requests (state);
CREATE INDEX requests_due ON requests (due_at);
CREATE INDEX requests_requester ON requests (requester);
CREATE INDEX requests_database ON requests (database);
CREATE INDEX requests_created ON requests (created_at, id);

CREATE TABLE grants (
	request_id      text PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
	server          text NOT NULL,
	principal       text NOT NULL,
	target_database text NOT NULL DEFAULT '',
	method          text NOT NULL,
	status          text NOT NULL,
	roles           text NOT NULL DEFAULT '[]',
	valid_until     timestamptz,
	sealed_password bytea,
	attempts        integer NOT NULL DEFAULT 0,
	last_error      text NOT NULL DEFAULT '',
	last_attempt_at timestamptz,
	next_attempt_at timestamptz,
	outcome         text NOT NULL DEFAULT '',
	created_at      timestamptz,
	updated_at      timestamptz
);

CREATE TABLE events (
	seq        bigint PRIMARY KEY,
	time       timestamptz NOT NULL,
	actor      text NOT NULL,
	action     text NOT NULL,
	request_id text NOT NULL DEFAULT '',
	database   text NOT NULL DEFAULT '',
	details    text,
	prev_hash  text NOT NULL,
	hash       text NOT NULL
);
CREATE INDEX events_request_id ON events (request_id);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_actor ON events (actor);

CREATE TABLE audit_head (
	id   integer PRIMARY KEY CHECK (id = 1),
	seq  bigint NOT NULL,
	hash text NOT NULL
);

CREATE TABLE tokens (
	id         text PRIMARY KEY,
	username   text NOT NULL,
	hash       text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL
);
CREATE INDEX tokens_username ON tokens (username);

-- +goose Down
DROP TABLE tokens;
DROP TABLE audit_head;
DROP TABLE events;
DROP TABLE grants;
DROP TABLE requests;
