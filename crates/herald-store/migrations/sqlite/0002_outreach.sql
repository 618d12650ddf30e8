-- Outreaches (one launch of a campaign to one uploaded list), their recipients, the per-row
-- import report, and the opt-out list uploads are checked against.

-- A campaign's outreaches go with it: deleting a campaign deletes its recipient lists.
CREATE TABLE outreaches (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    campaign_id     BLOB    NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    status          TEXT    NOT NULL
                    CHECK (status IN ('scheduled', 'in_progress', 'completed', 'stopped')),
    file_name       TEXT    NOT NULL,
    -- How the file was read: utf-8, utf-16le, utf-16be or windows-1252.
    encoding        TEXT    NOT NULL,
    default_region  TEXT,
    start_at        INTEGER NOT NULL,
    end_at          INTEGER,
    -- The import summary.
    rows_total      INTEGER NOT NULL,
    accepted        INTEGER NOT NULL,
    invalid         INTEGER NOT NULL,
    duplicates      INTEGER NOT NULL,
    suppressed      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER
) STRICT;

CREATE INDEX outreaches_campaign_id ON outreaches (campaign_id, id);
CREATE INDEX outreaches_live ON outreaches (status) WHERE status IN ('scheduled', 'in_progress');

-- One accepted row of an uploaded list. The idempotency key of a send is outreach id +
-- recipient id. `state` is the delivery state (pending, sending, sent, delivered, failed,
-- undelivered, skipped, replied, unknown); `skip_reason` explains a skipped one.
CREATE TABLE recipients (
    id                  INTEGER PRIMARY KEY,
    outreach_id         BLOB    NOT NULL REFERENCES outreaches (id) ON DELETE CASCADE,
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
    updated_at          INTEGER
) STRICT;

CREATE INDEX recipients_outreach_state ON recipients (outreach_id, state);

-- Why rows of an upload were not imported: served as errors.csv.
CREATE TABLE import_errors (
    id          INTEGER PRIMARY KEY,
    outreach_id BLOB    NOT NULL REFERENCES outreaches (id) ON DELETE CASCADE,
    line        INTEGER NOT NULL,
    column_name TEXT,
    value       TEXT    NOT NULL,
    reason      TEXT    NOT NULL
) STRICT;

CREATE INDEX import_errors_outreach_line ON import_errors (outreach_id, line);

-- Addresses that must not be messaged: for one sender (an SMS STOP, as carriers do) or, with
-- sender_id NULL, by any sender.
CREATE TABLE suppressions (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    address     TEXT    NOT NULL,
    sender_id   BLOB    REFERENCES senders (id) ON DELETE CASCADE,
    reason      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX suppressions_address_sender ON suppressions (address, ifnull(sender_id, x''));
