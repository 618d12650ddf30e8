-- Imports in progress (SQLite only). An import on SQLite writes its recipients and import errors
-- in short transactions of a few thousand rows, so that other writers (the API, the dispatcher)
-- take turns with it instead of waiting for the whole upload. Until its last step the outreach
-- row does not exist: the rows written so far belong to no outreach, so no claim, list or read
-- sees them. The last step inserts the outreach and deletes this mark in one transaction.
--
-- A refused or interrupted import deletes its rows and then its mark. One whose process died
-- is deleted when the store is next opened (`migrate`): its `node` names a process that no
-- longer runs (boot id, pid and start time, on Linux), or it has not written for a long while
-- (`heartbeat_at`, microseconds since the epoch, refreshed by every chunk).
--
-- PostgreSQL needs no such table: an import there is one transaction, which the server rolls
-- back whatever happens to the client, and its COPY blocks no other writer.
CREATE TABLE outreach_imports (
    outreach_id  BLOB    PRIMARY KEY,
    campaign_id  BLOB    NOT NULL,
    node         TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) STRICT;
