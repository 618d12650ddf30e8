-- Herald's first schema, SQLite flavour (the embedded default).
--
-- Conventions (the PostgreSQL schema mirrors them):
-- * Ids are uuid v7 made in Rust, stored as 16-byte BLOBs (sqlx's uuid encoding). Byte order is
--   time order, so `ORDER BY id` is creation order and lists page by `id > cursor`.
-- * Timestamps are INTEGER unix microseconds (UTC). Rust truncates `jiff::Timestamp` to whole
--   microseconds before writing, so what a create returns equals what a later read returns.
-- * Enumerations (channel, provider, role) are their lower-case names, guarded by CHECKs.
-- * Foreign keys stay RESTRICT: the store refuses a delete that would orphan a row with a message
--   naming the rows in the way, and the constraint is the backstop. Only answer variants
--   cascade with their answer.
-- * STRICT tables, so a wrongly typed value is an error rather than silently stored.

CREATE TABLE inboxes (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE senders (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    channel     TEXT    NOT NULL CHECK (channel IN ('sms', 'voice', 'email')),
    -- E.164 (`+14155550100`) for sms and voice, an email address for email.
    address     TEXT    NOT NULL,
    inbox_id    BLOB    NOT NULL REFERENCES inboxes (id),
    provider    TEXT    NOT NULL CHECK (provider IN ('file', 'smtp', 'twilio', 'webhook')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    -- The same number may be an sms sender and a voice sender, but only once on each.
    UNIQUE (channel, address)
) STRICT;

CREATE INDEX senders_inbox_id ON senders (inbox_id);

CREATE TABLE answers (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE answer_variants (
    answer_id   BLOB    NOT NULL REFERENCES answers (id) ON DELETE CASCADE,
    -- Where the variant stands in the answer's list (0-based), so variants read back in the
    -- order they were given.
    position    INTEGER NOT NULL CHECK (position >= 0),
    -- Canonical BCP 47 tag (`en-US`).
    language    TEXT    NOT NULL,
    -- Template sources; the subject is for email.
    subject     TEXT,
    body        TEXT    NOT NULL,
    PRIMARY KEY (answer_id, position),
    UNIQUE (answer_id, language)
) STRICT;

CREATE TABLE campaigns (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    channel     TEXT    NOT NULL CHECK (channel IN ('sms', 'voice', 'email', 'chat')),
    -- Chat campaigns have no sender; every other channel has one.
    sender_id   BLOB    REFERENCES senders (id),
    language    TEXT    NOT NULL,
    answer_id   BLOB    NOT NULL REFERENCES answers (id),
    -- JSON in the ScheduleInput shape: {"timezone": "Europe/Berlin", "days": {"mon": ["09:00-17:00"], ...}}.
    schedule    TEXT    NOT NULL CHECK (json_valid(schedule)),
    quiet_hours INTEGER NOT NULL CHECK (quiet_hours IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (channel, name),
    CHECK ((channel = 'chat') = (sender_id IS NULL))
) STRICT;

CREATE INDEX campaigns_channel_id ON campaigns (channel, id);
CREATE INDEX campaigns_sender_id ON campaigns (sender_id);
CREATE INDEX campaigns_answer_id ON campaigns (answer_id);

CREATE TABLE api_tokens (
    id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'agent')),
    -- SHA-256 of the secret, lower-case hex; the secret itself is never stored.
    hash_hex    TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;
