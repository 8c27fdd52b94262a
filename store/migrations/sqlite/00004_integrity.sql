-- +goose Up
-- What a decision allowed and what the scheduler planned, each as its canonical encoding and
-- an HMAC tag from a key derived from secret_key (see docs/store-integrity.md); tampered names the
-- fields found edited without the key.
ALTER TABLE requests ADD COLUMN decision TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN decision_tag TEXT NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN tampered TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN intent TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN intent_tag TEXT NOT NULL DEFAULT '';
-- One-time upgrades the server does when it first starts with the key: "integrity" tags the
-- live requests of a store made before this migration (trust on first use).
CREATE TABLE upgrades (
	name TEXT PRIMARY KEY
) STRICT;
INSERT INTO upgrades (name) VALUES ('integrity');

-- +goose Down
DROP TABLE upgrades;
ALTER TABLE grants DROP COLUMN intent_tag;
ALTER TABLE grants DROP COLUMN intent;
ALTER TABLE requests DROP COLUMN tampered;
ALTER TABLE requests DROP COLUMN decision_tag;
ALTER TABLE requests DROP COLUMN decision;
