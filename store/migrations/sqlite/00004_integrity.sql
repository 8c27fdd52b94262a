-- +goose Up
-- What a decision allowed and what the scheduler planned are authenticated with an HMAC tag
-- from a key derived from secret_key (docs/store-integrity.md). The tags sit in the rows the
-- scheduler reads and writes all the time; the canonical encodings they authenticate (which
-- name the edited fields, and give a removal the authenticated principal) sit in proofs,
-- written only when something is decided. tampered names the fields found edited.
ALTER TABLE requests ADD COLUMN decision_tag TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN tampered TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN intent_tag TEXT NOT NULL DEFAULT '';
CREATE TABLE proofs (
	request_id TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
	kind       TEXT NOT NULL,
	body       TEXT NOT NULL,
	PRIMARY KEY (request_id, kind)
) STRICT;
-- One-time upgrades the server does when it first starts with the key: "integrity" tags the
-- live requests of a store made before this migration (trust on first use).
CREATE TABLE upgrades (
	name TEXT PRIMARY KEY
) STRICT;
INSERT INTO upgrades (name) VALUES ('integrity');

-- +goose Down
DROP TABLE upgrades;
DROP TABLE proofs;
ALTER TABLE grants DROP COLUMN intent_tag;
ALTER TABLE requests DROP COLUMN tampered;
ALTER TABLE requests DROP COLUMN decision_tag;
