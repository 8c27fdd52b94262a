-- +goose Up
-- The console's access timeline (FindAccess) asks which confirmed access overlapped a range:
-- activated before its end and ended after its start, or still live. For a past range the
-- "ended after" side is the selective one; only activated requests are indexed. Each index
-- holds every column FindAccess's conditions and order name (activation, requester, database,
-- id), so that the requests to show are chosen from the index alone.
CREATE INDEX requests_access_database ON requests (database, ended_at, activated_at, requester, id) WHERE activated_at IS NOT NULL;
CREATE INDEX requests_access_ended ON requests (ended_at, activated_at, requester, database, id) WHERE activated_at IS NOT NULL;

-- +goose Down
DROP INDEX requests_access_ended;
DROP INDEX requests_access_database;
