-- Times are TEXT in UTC, fixed width with microseconds ("2006-01-02T15:04:05.000000Z"), so
-- they sort as text; NULL is the zero time.

-- +goose Up
-- The notification outbox (package notify). Its source is the audit log: cursor is the seq of
-- the last event planned, moved in the transaction that adds the deliveries of the events up
-- to it, so each event is planned exactly once. dedup_key (channel, event or warning, recipient) is
-- the idempotency key receivers see.
CREATE TABLE outbox_cursor (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);

CREATE TABLE deliveries (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	dedup_key     TEXT NOT NULL UNIQUE,
	channel       TEXT NOT NULL,
	kind          TEXT NOT NULL,
	event_seq     INTEGER NOT NULL DEFAULT 0,
	request_id    TEXT NOT NULL DEFAULT '',
	recipient     TEXT NOT NULL DEFAULT '',
	status        TEXT NOT NULL,
	attempts      INTEGER NOT NULL DEFAULT 0,
	next_at       TEXT NOT NULL,
	last_error    TEXT NOT NULL DEFAULT '',
	external_id   TEXT NOT NULL DEFAULT '',
	created_at    TEXT NOT NULL,
	sent_at       TEXT
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
	channel     TEXT NOT NULL,
	request_id  TEXT NOT NULL,
	external_id TEXT NOT NULL,
	PRIMARY KEY (channel, request_id)
);

-- +goose Down
DROP TABLE notify_threads;
DROP TABLE deliveries;
DROP TABLE outbox_cursor;
