-- +goose Up
-- The approval policy's part of a request (rule, ad-hoc tables, break-glass, follow-up,
-- pending extension, use), as one JSON object; follow_up_open lets listings find open
-- follow-up reviews without decoding it.
ALTER TABLE requests ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE requests ADD COLUMN follow_up_open INTEGER NOT NULL DEFAULT 0;
CREATE INDEX requests_follow_up ON requests (follow_up_open);
-- Ad-hoc table grants of the principal, as a JSON array.
ALTER TABLE grants ADD COLUMN tables TEXT NOT NULL DEFAULT '[]';
-- Users disabled through the API (users disabled in the configuration are not listed here).
CREATE TABLE disabled_users (
	username    TEXT PRIMARY KEY,
	disabled_by TEXT NOT NULL,
	note        TEXT NOT NULL DEFAULT '',
	disabled_at TEXT NOT NULL
) STRICT;

-- +goose Down
DROP TABLE disabled_users;
ALTER TABLE grants DROP COLUMN tables;
DROP INDEX requests_follow_up;
ALTER TABLE requests DROP COLUMN follow_up_open;
ALTER TABLE requests DROP COLUMN policy;
