-- Recipients and import errors go with their outreach through a trigger, not a foreign key each.
--
-- A foreign key looks up its parent row for every inserted row: about a tenth of the time of a
-- 1,000,000-row insert, measured in sqlite3 on this schema. Only the import writes these rows, in
-- the same transaction that creates their outreach, so the check protects nothing there. What the
-- foreign key did guarantee — deleting an outreach (directly, or with its campaign) deletes its
-- recipients and import errors — the trigger keeps, whatever path deletes the outreach.
--
-- SQLite cannot drop a constraint, so both tables are rebuilt (same columns, ids and indexes).
CREATE TABLE recipients_new (
    id                  INTEGER PRIMARY KEY,
    outreach_id         BLOB    NOT NULL,
    line                INTEGER NOT NULL,
    address             TEXT    NOT NULL,
    timezone            TEXT,
    -- The row's template variables as a JSON object.
    variables           TEXT    NOT NULL,
    state               TEXT    NOT NULL,
    skip_reason         TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    -- Not to be tried before this instant (schedule window, retry back-off).
    due_at              INTEGER,
    -- A dispatcher holds the recipient until then; an expired lease means it died mid-send.
    lease_until         INTEGER,
    provider_message_id TEXT,
    error_code          TEXT,
    error_message       TEXT,
    sent_at             INTEGER,
    updated_at          INTEGER,
    -- The phone number as the file wrote it, when that says more than its E.164 form.
    raw_address         TEXT
) STRICT;

INSERT INTO recipients_new (id, outreach_id, line, address, timezone, variables, state,
    skip_reason, attempts, due_at, lease_until, provider_message_id, error_code, error_message,
    sent_at, updated_at, raw_address)
SELECT id, outreach_id, line, address, timezone, variables, state, skip_reason, attempts, due_at,
    lease_until, provider_message_id, error_code, error_message, sent_at, updated_at, raw_address
FROM recipients;

DROP TABLE recipients;
ALTER TABLE recipients_new RENAME TO recipients;

CREATE INDEX recipients_outreach_state ON recipients (outreach_id, state);
CREATE INDEX recipients_due
    ON recipients (outreach_id, ifnull(due_at, -9223372036854775808))
    WHERE state = 'pending';

CREATE TABLE import_errors_new (
    id          INTEGER PRIMARY KEY,
    outreach_id BLOB    NOT NULL,
    line        INTEGER NOT NULL,
    column_name TEXT,
    value       TEXT    NOT NULL,
    reason      TEXT    NOT NULL
) STRICT;

INSERT INTO import_errors_new (id, outreach_id, line, column_name, value, reason)
SELECT id, outreach_id, line, column_name, value, reason FROM import_errors;

DROP TABLE import_errors;
ALTER TABLE import_errors_new RENAME TO import_errors;

CREATE INDEX import_errors_outreach_line ON import_errors (outreach_id, line);

CREATE TRIGGER outreaches_delete_rows AFTER DELETE ON outreaches
BEGIN
    DELETE FROM recipients WHERE outreach_id = OLD.id;
    DELETE FROM import_errors WHERE outreach_id = OLD.id;
END;
