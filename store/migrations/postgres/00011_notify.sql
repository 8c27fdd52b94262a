-- Times are timestamptz; NULL is the zero time.

-- +goose Up
-- The notification outbox (package notify). Its source is the audit log: cursor is the seq of
-- the last event planned, moved in the transaction that adds the deliveries of the events up
-- to it, so each event is planned exactly once. dedup_key (channel, event or warning, recipient) is
-- the idempotency key receivers see.
CREATE TABLE outbox_cursor (
	id  bigint PRIMARY KEY CHECK (id = 1),
	seq bigint NOT NULL
);

CREATE TABLE deliveries (
	id            bigserial PRIMARY KEY,
	dedup_key     text NOT NULL UNIQUE,
	channel       text NOT NULL,
	kind          text NOT NULL,
	event_seq     bigint NOT NULL DEFAULT 0,
	request_id    text NOT NULL DEFAULT '',
	recipient     text NOT NULL DEFAULT '',
	status        text NOT NULL,
	attempts      bigint NOT NULL DEFAULT 0,
	next_at       timestamptz NOT NULL,
	last_error    text NOT NULL DEFAULT '',
	external_id   text NOT NULL DEFAULT '',
	created_at    timestamptz NOT NULL,
	sent_at       timestamptz
);
-- What a sender claims next: a channel's undelivered deliveries by due time (a sending one is due
-- again when its claim runs out: next_at is the end of the claim).
CREATE INDEX deliveries_due ON deliveries (channel, next_at) WHERE status IN ('pending', 'sending');
-- A webhook's deliveries go in id (audit seq) order: its first undelivered one.
CREATE INDEX deliveries_undelivered ON deliveries (channel, id) WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_failed ON deliveries (id) WHERE status = 'failed';
CREATE INDEX deliveries_request ON deliveries (request_id) WHERE request_id <> '';

-- The message that stands for a request on a channel (a Slack message's ts), updated in
-- place as the request moves on.
CREATE TABLE notify_threads (
	channel     text NOT NULL,
	request_id  text NOT NULL,
	external_id text NOT NULL,
	PRIMARY KEY (channel, request_id)
);

-- +goose Down
DROP TABLE notify_threads;
DROP TABLE deliveries;
DROP TABLE outbox_cursor;
