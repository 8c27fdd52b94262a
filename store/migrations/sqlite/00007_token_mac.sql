-- +goose Up
-- mac authenticates what a token lets its holder do (its id, user, hash, creation and expiry)
-- with a key derived from secret_key, so that someone who can write the store cannot make,
-- extend, move or revive a token; revoking a token clears it. Tokens made before this
-- migration have none: the server trusts them once, at its first start with the key
-- (trust on first use, the one-time upgrade "tokens"), and refuses any token without one.
ALTER TABLE tokens ADD COLUMN mac TEXT NOT NULL DEFAULT '';
-- upgrades is made by 00004_integrity.sql.
INSERT INTO upgrades (name) VALUES ('tokens');

-- +goose Down
DELETE FROM upgrades WHERE name = 'tokens';
ALTER TABLE tokens DROP COLUMN mac;
